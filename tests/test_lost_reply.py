"""A reply survives a lost connection: what was received plays out while the link
reconnects, through the real SDK against the emulator and a speaker playing in real time."""

import asyncio
from collections.abc import Callable

import pytest

from pispeaker.audio.pcm import INPUT_RATE, OUTPUT_RATE, byte_count, silence
from pispeaker.audio.resample import resample
from pispeaker.controller import Policy
from pispeaker.conversation import routing
from pispeaker.conversation.core import Change, Duplex
from pispeaker.emulator import Fault, LiveEmulator, Reply
from pispeaker.states import Effect, Event, State
from tests.conftest import RecordingBackoff, Rig, StartEmulator, speech

QUESTION = silence(0.3, INPUT_RATE) + speech(0.5) + silence(12.0, INPUT_RATE)


def record_received(rig: Rig) -> bytearray:
    """Every piece of reply audio the controller is given to play, from now on."""
    received = bytearray()
    play = rig.controller.router.play

    def recording(change: Change) -> None:
        assert isinstance(change.cause, bytes)
        received.extend(change.cause)
        play(change)

    rig.controller.conversation.handlers[Effect.PLAY_AUDIO] = recording
    return received


@pytest.mark.parametrize(
    ("fault", "backoff_s"),
    # A reconnect before the reply has played out, and one after (the reply's end must not
    # cancel the reconnect waiting for its backoff).
    [(Fault.INTERNAL_ERROR, 0.05), (Fault.DROP, 0.05), (Fault.INTERNAL_ERROR, 4.0)],
)
async def test_a_reply_plays_out_through_a_lost_connection_and_its_cut_is_told(
    fault: Fault,
    backoff_s: float,
    start_emulator: StartEmulator,
    rig_factory: Callable[..., "asyncio.Future[Rig]"],
) -> None:
    # The audio comes in a burst; its turnComplete only once it would have played (3 s).
    emulator = await start_emulator(pace=0.0, playback_hold=1.0)
    emulator.script.push(Reply(audio="tone", seconds=3.0), Reply())
    rig = await rig_factory(emulator, QUESTION, Policy(follow_up_s=3.0))
    rig.controller.backoff = RecordingBackoff(initial_s=backoff_s, uniform=lambda: 0.0)
    received = record_received(rig)
    rig.controller.dispatch(Event.BUTTON_PRESS)
    await rig.reach(State.SPEAKING)
    await emulator.timeline.wait_for("generation.complete")  # the whole reply was sent
    await emulator.inject(fault)  # ... and the connection fails before its turnComplete
    await rig.reach(State.LISTENING, count=2, within_s=20)  # played out, and back
    # Everything received was played, nothing flushed; the session was resumed.
    assert bytes(rig.sink.played) == bytes(received)
    assert len(received) > byte_count(1.0, OUTPUT_RATE)
    assert rig.sink.flushed_at == []
    assert Effect.EARCON_CUT in rig.controller.record.effects
    states = rig.controller.record.states
    assert states[states.index(State.SPEAKING) + 1] in (State.LISTENING, State.CONNECTING)
    assert len(emulator.store.sessions) == 1


async def test_a_new_session_hears_the_whole_question_when_it_cannot_resume(
    emulator: LiveEmulator, rig_factory: Callable[..., "asyncio.Future[Rig]"]
) -> None:
    question = speech(1.5, frequency_hz=500)
    audio = silence(0.5, INPUT_RATE) + question + silence(3.0, INPUT_RATE)
    # No resumption: a lost connection means a new session, which never heard the question.
    rig = await rig_factory(emulator, audio, live_settings={"session_resumption": False})
    rig.controller.backoff = RecordingBackoff(initial_s=0.05, uniform=lambda: 0.0)
    rig.controller.dispatch(Event.BUTTON_PRESS)
    await emulator.timeline.wait_for("vad.start")  # the user has begun the question
    await asyncio.sleep(0.5)  # ... and is in the middle of it
    await emulator.inject(Fault.INTERNAL_ERROR)
    await rig.reach(State.LISTENING, count=3, within_s=15)  # back, then answered
    assert len(emulator.store.sessions) == 2  # a new session, not a resumed one
    # The parrot answers with the question as the new session heard it: all of it.
    assert bytes(rig.sink.played) == resample(question, INPUT_RATE, OUTPUT_RATE)


async def test_talking_over_a_reply_stops_it_after_a_handover(
    start_emulator: StartEmulator, rig_factory: Callable[..., "asyncio.Future[Rig]"]
) -> None:
    # The reply arrives at once and its turn ends at once; a goAway then hands over to a
    # resumed session while the reply still plays, and the user talks over it: the new
    # session has no reply to interrupt, but the device hears the user, and the answer to
    # what they said (a turn after the one stopped) is played, not dropped.
    emulator = await start_emulator(pace=0.0, playback_hold=0.0, go_away_lead_s=20.0)
    emulator.script.push(Reply(audio="tone", seconds=5.0), Reply())
    over = speech(1.0, frequency_hz=600)
    audio = silence(0.3, INPUT_RATE) + speech(0.5) + silence(1.5, INPUT_RATE) + over
    policy = Policy(follow_up_s=3.0, duplex=Duplex.HARDWARE)  # the microphone goes live
    rig = await rig_factory(emulator, audio + silence(6.0, INPUT_RATE), policy)
    rig.controller.dispatch(Event.BUTTON_PRESS)
    await rig.reach(State.SPEAKING)
    await emulator.inject(Fault.GO_AWAY)
    await emulator.timeline.wait_for("setup", lambda event: event.connection == 2)
    await rig.reach(State.SPEAKING, count=2, within_s=15)  # the answer to what was said over
    states = rig.controller.record.states
    assert states[states.index(State.SPEAKING) + 1] is State.INTERRUPTED  # stopped at once
    assert rig.sink.flushed_at[0] < byte_count(5.0, OUTPUT_RATE)
    assert len(emulator.store.sessions) == 1  # the same session, resumed


async def test_a_session_the_service_will_not_resume_starts_afresh_and_hears_the_question(
    start_emulator: StartEmulator, rig_factory: Callable[..., "asyncio.Future[Rig]"]
) -> None:
    question = speech(1.5, frequency_hz=500)
    audio = silence(0.5, INPUT_RATE) + question + silence(3.0, INPUT_RATE)
    # Handles expire the moment their socket closes: the resume is refused (1008).
    emulator = await start_emulator(resumption_ttl_s=0.0)
    rig = await rig_factory(emulator, audio)
    rig.controller.backoff = RecordingBackoff(initial_s=0.05, uniform=lambda: 0.0)
    rig.controller.dispatch(Event.BUTTON_PRESS)
    await emulator.timeline.wait_for("vad.start")
    await asyncio.sleep(0.5)  # in the middle of the question
    await emulator.inject(Fault.INTERNAL_ERROR)
    await rig.reach(State.LISTENING, count=3, within_s=15)  # back, then answered
    [refused] = [c for c in emulator.timeline.of("close") if c.data["code"] == 1008]
    assert refused.connection == 2
    assert len(emulator.store.sessions) == 2  # the refused resume, then a new session
    assert bytes(rig.sink.played) == resample(question, INPUT_RATE, OUTPUT_RATE)
    assert State.ERROR not in rig.controller.record.states


async def test_a_working_session_ended_with_1008_reconnects_instead_of_failing(
    emulator: LiveEmulator, rig_factory: Callable[..., "asyncio.Future[Rig]"]
) -> None:
    rig = await rig_factory(emulator, QUESTION)
    rig.controller.backoff = RecordingBackoff(initial_s=0.05, uniform=lambda: 0.0)
    rig.controller.dispatch(Event.BUTTON_PRESS)
    await rig.reach(State.LISTENING)
    await emulator.inject(Fault.NOT_FOUND)  # as after some tool responses
    await rig.reach(State.LISTENING, count=2, within_s=15)
    assert State.ERROR not in rig.controller.record.states
    assert len(emulator.store.sessions) == 1  # resumed


async def test_a_reply_that_stops_coming_with_the_socket_open_is_a_lost_connection(
    start_emulator: StartEmulator,
    rig_factory: Callable[..., "asyncio.Future[Rig]"],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(routing, "REPLY_STALL_S", 0.5)
    emulator = await start_emulator(pace=0.0, playback_hold=1.0)
    emulator.script.push(Reply(audio="tone", seconds=2.0), Reply())
    rig = await rig_factory(emulator, QUESTION, Policy(follow_up_s=3.0))
    rig.controller.backoff = RecordingBackoff(initial_s=0.05, uniform=lambda: 0.0)
    received = record_received(rig)
    rig.controller.dispatch(Event.BUTTON_PRESS)
    await rig.reach(State.SPEAKING)
    await emulator.timeline.wait_for("generation.complete")  # the audio is all here
    await emulator.inject(Fault.STALL)  # ... and its turnComplete will never come
    await rig.reach(State.LISTENING, count=2, within_s=20)  # played out, reconnected
    assert bytes(rig.sink.played) == bytes(received)
    assert rig.sink.flushed_at == []
    assert Effect.EARCON_CUT in rig.controller.record.effects
    assert Effect.RECONNECT in rig.controller.record.effects
    assert "the reply stopped coming" in caplog.text
    assert len(emulator.timeline.of("connect")) >= 2
    assert len(emulator.store.sessions) == 1  # resumed


async def test_a_setup_the_service_never_answers_times_out_and_the_next_hears_the_question(
    start_emulator: StartEmulator,
    rig_factory: Callable[..., "asyncio.Future[Rig]"],
    caplog: pytest.LogCaptureFixture,
) -> None:
    question = speech(1.0, frequency_hz=500)
    audio = silence(0.3, INPUT_RATE) + question + silence(6.0, INPUT_RATE)
    emulator = await start_emulator(unanswered_setups=frozenset({1}))
    rig = await rig_factory(emulator, audio, live_settings={"connect_timeout_s": 1.0})
    rig.controller.backoff = RecordingBackoff(initial_s=0.05, uniform=lambda: 0.0)
    rig.controller.dispatch(Event.BUTTON_PRESS)
    await rig.reach(State.LISTENING, count=2, within_s=20)  # connected at last, answered
    assert "live.connect_timeout_s" in caplog.text
    assert [e.connection for e in emulator.timeline.of("setup.unanswered")] == [1]
    assert bytes(rig.sink.played) == resample(question, INPUT_RATE, OUTPUT_RATE)
