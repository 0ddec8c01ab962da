"""Tests for pispeaker.emulator.store: sessions and session-resumption handles."""

import pytest

from pispeaker.emulator import wire
from pispeaker.emulator.store import HistoryEntry, ResumeRejected, SessionStore

MODEL = "models/gemini-3.8-live"


def rejected(store: SessionStore, handle: str, model: str, connection: int, now: float) -> int:
    """The close code of a rejected resumption."""
    with pytest.raises(ResumeRejected) as caught:
        store.resume(handle, model, connection, now)
    assert isinstance(caught.value.close, wire.Close)
    assert str(caught.value) == caught.value.close.reason
    return caught.value.close.code


def test_create_attaches_a_new_session() -> None:
    store = SessionStore()
    session = store.create(MODEL, connection=1)
    assert session.model == MODEL
    assert session.connection == 1
    assert session.detached_at is None
    assert session.history == []
    assert session.turns == 0
    assert store.sessions[session.id] is session


def test_sessions_get_distinct_ids() -> None:
    store = SessionStore()
    ids = {store.create(MODEL, connection=n).id for n in range(5)}
    assert len(ids) == 5
    assert len(store.sessions) == 5


def test_handles_are_distinct_and_opaque() -> None:
    store = SessionStore()
    session = store.create(MODEL, connection=1)
    handles = {store.issue_handle(session) for _ in range(20)}
    assert len(handles) == 20
    assert all(session.id not in handle for handle in handles)


def test_resume_round_trip_keeps_history_and_counters() -> None:
    store = SessionStore()
    session = store.create(MODEL, connection=1)
    session.history.append(HistoryEntry("user", "[1.00 s of speech]", 32_000))
    session.history.append(HistoryEntry("model", "Reply 1.", 48_000))
    session.turns = 1
    session.uploaded_audio_bytes = 32_000
    session.downloaded_audio_bytes = 48_000
    handle = store.issue_handle(session)
    store.detach(session, now=100.0)
    assert session.connection is None
    assert session.detached_at == 100.0

    resumed = store.resume(handle, MODEL, connection=2, now=160.0)
    assert resumed is session
    assert resumed.connection == 2
    assert resumed.detached_at is None
    assert resumed.history == [
        HistoryEntry("user", "[1.00 s of speech]", 32_000),
        HistoryEntry("model", "Reply 1.", 48_000),
    ]
    assert (resumed.turns, resumed.uploaded_audio_bytes, resumed.downloaded_audio_bytes) == (
        1,
        32_000,
        48_000,
    )


def test_resume_finds_the_right_session_among_several() -> None:
    store = SessionStore()
    a = store.create(MODEL, connection=1)
    b = store.create(MODEL, connection=2)
    handle_a, handle_b = store.issue_handle(a), store.issue_handle(b)
    store.detach(a, now=0.0)
    store.detach(b, now=0.0)
    assert store.resume(handle_b, MODEL, connection=3, now=1.0) is b
    assert store.resume(handle_a, MODEL, connection=4, now=1.0) is a


def test_unknown_handle_is_rejected_with_1008() -> None:
    store = SessionStore()
    session = store.create(MODEL, connection=1)
    store.issue_handle(session)
    store.detach(session, now=0.0)
    assert rejected(store, "no-such-handle", MODEL, 2, now=1.0) == 1008
    assert rejected(store, "", MODEL, 2, now=1.0) == 1008
    assert session.connection is None


def test_session_id_is_not_a_handle() -> None:
    store = SessionStore()
    session = store.create(MODEL, connection=1)
    store.detach(session, now=0.0)
    assert rejected(store, session.id, MODEL, 2, now=1.0) == 1008


def test_wrong_model_is_rejected_with_1007() -> None:
    store = SessionStore()
    session = store.create(MODEL, connection=1)
    handle = store.issue_handle(session)
    store.detach(session, now=0.0)
    assert rejected(store, handle, "models/other-model", 2, now=1.0) == 1007
    # The failed attempt does not attach the session: the right model still resumes it.
    assert session.connection is None
    assert store.resume(handle, MODEL, connection=3, now=2.0) is session


def test_resume_while_still_attached_is_rejected_with_1011() -> None:
    store = SessionStore()
    session = store.create(MODEL, connection=1)
    handle = store.issue_handle(session)
    assert rejected(store, handle, MODEL, 2, now=1.0) == 1011
    assert session.connection == 1
    store.detach(session, now=2.0)
    assert store.resume(handle, MODEL, connection=2, now=3.0) is session


def test_second_resume_without_detach_is_rejected_with_1011() -> None:
    store = SessionStore()
    session = store.create(MODEL, connection=1)
    handle = store.issue_handle(session)
    store.detach(session, now=0.0)
    store.resume(handle, MODEL, connection=2, now=1.0)
    assert rejected(store, handle, MODEL, 3, now=2.0) == 1011
    assert session.connection == 2


def test_handle_expires_after_ttl() -> None:
    store = SessionStore(ttl_s=10.0)
    session = store.create(MODEL, connection=1)
    handle = store.issue_handle(session)
    store.detach(session, now=100.0)
    assert rejected(store, handle, MODEL, 2, now=110.5) == 1008
    assert session.connection is None


def test_handle_is_valid_until_the_ttl() -> None:
    store = SessionStore(ttl_s=10.0)
    session = store.create(MODEL, connection=1)
    handle = store.issue_handle(session)
    store.detach(session, now=100.0)
    assert store.resume(handle, MODEL, connection=2, now=109.5) is session


def test_ttl_counts_from_the_last_detach() -> None:
    store = SessionStore(ttl_s=10.0)
    session = store.create(MODEL, connection=1)
    handle = store.issue_handle(session)
    store.detach(session, now=0.0)
    store.resume(handle, MODEL, connection=2, now=9.0)
    store.detach(session, now=50.0)
    # 59 s after the first detach, but only 9 s after the last one.
    assert store.resume(handle, MODEL, connection=3, now=59.0) is session


def test_attached_session_never_expires() -> None:
    store = SessionStore(ttl_s=10.0)
    session = store.create(MODEL, connection=1)
    handle = store.issue_handle(session)
    # Long after the TTL, an attached session is still "in use" (1011), not "not found".
    assert rejected(store, handle, MODEL, 2, now=10_000.0) == 1011


def test_default_ttl_is_two_hours() -> None:
    store = SessionStore()
    assert store.ttl_s == 7200.0
    session = store.create(MODEL, connection=1)
    handle = store.issue_handle(session)
    store.detach(session, now=0.0)
    assert rejected(store, handle, MODEL, 2, now=7201.0) == 1008
    store2 = SessionStore()
    session2 = store2.create(MODEL, connection=1)
    handle2 = store2.issue_handle(session2)
    store2.detach(session2, now=0.0)
    assert store2.resume(handle2, MODEL, connection=2, now=7199.0) is session2


def test_every_issued_handle_resumes_the_session() -> None:
    store = SessionStore()
    session = store.create(MODEL, connection=1)
    handles = [store.issue_handle(session) for _ in range(3)]
    connection = 1
    for handle in handles + handles[::-1]:
        store.detach(session, now=float(connection))
        connection += 1
        assert store.resume(handle, MODEL, connection=connection, now=float(connection)) is session
        assert session.connection == connection


def test_resume_rejected_carries_the_close() -> None:
    error = ResumeRejected(wire.NOT_FOUND)
    assert error.close == wire.NOT_FOUND
    assert str(error) == wire.NOT_FOUND.reason
