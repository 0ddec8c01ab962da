"""The receive path under fuzzing (tests/fuzz.py): a seeded slice of broken server messages
leaves nothing unhandled and no hang, each kind of broken message the adapter used to trip
over is logged once while the session goes on, and the fuzzer would notice a crash or a hang.
"""

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from pispeaker.controller import Controller
from pispeaker.emulator import Fault, LiveEmulator, wire
from pispeaker.live import genai
from pispeaker.states import Effect
from tests.fuzz import OPTIONS, PROBE_EVERY, WITHIN_S, Frame, Fuzzer, run_fuzz

# The SDK notes each enum value it does not know (and goes on): not the daemon's concern.
pytestmark = pytest.mark.filterwarnings("ignore:.* is not a valid :UserWarning")

SLICE = 2000
KINDS = {"valid", "mutated", "garbage", "out-of-order", "huge", "before-setup"}


# The fuzzer's own bounds (WITHIN_S a probe) catch a hang; this only stops a runaway run, and
# is generous: three copies of the suite may share two cores.
@pytest.mark.timeout(900)
async def test_a_seeded_slice_leaves_nothing_unhandled_and_no_hang() -> None:
    result = await run_fuzz(SLICE, seed=1)
    assert result.problems == []
    assert (result.messages, result.unhandled, result.hangs) == (SLICE, 0, 0)
    assert result.probes == SLICE // PROBE_EVERY + 1
    assert set(result.kinds) == KINDS  # every kind of message was sent
    assert result.warnings > SLICE // 4  # the broken ones were noticed, not ignored


@pytest.fixture
async def fuzzer() -> AsyncIterator[Fuzzer]:
    """A fuzzer whose daemon listens in a conversation with the emulator."""
    async with LiveEmulator(OPTIONS) as emulator:
        fuzzer = Fuzzer(emulator, WITHIN_S, None)
        await fuzzer.start()
        yield fuzzer
        await fuzzer.daemon.stop()


DEEP = b"[" * 100_000 + b"]" * 100_000
#: (message, what its warning says, connections the link uses): each of these ended the
#: session, crashed the link or put the speaker in ERROR before the fuzzer found them.
BROKEN = [
    (b"{this is not json", "cannot be read (ValueError", 1),
    (b"[1, 2]", "cannot be read (AttributeError", 1),
    (DEEP, "cannot be read (RecursionError", 1),
    (b'{"serverContent": {"interactionStatus": true}}', "cannot be read (AttributeError", 1),
    (b'{"someFutureMessage": {}}', "cannot be read (TypeError", 1),
    (b'{"code": 1007, "message": "API key not valid"}', "cannot be read (APIError: 1007", 1),
    (b'{"toolCall": {"functionCalls": [{"name": "get_local_time"}]}}', "without an id", 1),
    # goAway is obeyed, at once: no time left it can read
    (b'{"goAway": {"timeLeft": "nans"}}', "time left of 'nans': handing over now", 2),
]


@pytest.mark.parametrize(
    ("message", "warning", "connections"),
    BROKEN,
    ids=["not-json", "list", "deep", "enum-of-bool", "unknown-only", "error-1007", "no-id", "nan"],
)
async def test_a_broken_message_is_logged_once_and_the_conversation_goes_on(
    fuzzer: Fuzzer,
    caplog: pytest.LogCaptureFixture,
    message: bytes,
    warning: str,
    connections: int,
) -> None:
    caplog.set_level(logging.WARNING)
    await fuzzer.deliver(Frame(message, "broken"))
    await fuzzer.probe()  # the next question is answered
    logged = [r for r in caplog.records if r.name == genai.__name__]
    assert [warning in r.getMessage() for r in logged] == [True]
    assert [r for r in caplog.records if r.levelno > logging.WARNING or r.exc_info] == []
    assert len(fuzzer.emulator.timeline.of("connect")) == connections
    assert fuzzer.emulator.timeline.of("tool.response") == []  # no answer to a call without id


async def test_a_stream_of_unreadable_messages_ends_the_session(
    fuzzer: Fuzzer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    for _ in range(genai.UNREADABLE_LIMIT - 1):
        await fuzzer.deliver(Frame(b"{", "broken"))
    await fuzzer.deliver(Frame(b"{}", "readable"))  # starts the count afresh
    await fuzzer.probe()
    assert len(fuzzer.emulator.timeline.of("connect")) == 1
    for _ in range(genai.UNREADABLE_LIMIT):
        await fuzzer.deliver(Frame(b"{", "broken"))
    await fuzzer.probe()  # answered by a new session
    assert len(fuzzer.emulator.timeline.of("connect")) == 2
    assert "unreadable messages in a row" in caplog.text


def _crash_on_audio(controller: Controller) -> None:
    def explode(_change: object) -> None:
        raise RuntimeError("a bug planted to be found")

    controller.conversation.handlers[Effect.PLAY_AUDIO] = explode


def _mute(controller: Controller) -> None:
    controller.conversation.handlers[Effect.PLAY_AUDIO] = lambda _change: None


async def test_the_fuzzer_counts_a_crash_as_unhandled() -> None:
    result = await run_fuzz(40, seed=1, probe_every=20, sabotage=_crash_on_audio)
    assert result.unhandled >= 1
    assert all("a bug planted to be found" in p for p in result.problems)


async def test_the_fuzzer_counts_a_reply_that_never_plays_as_a_hang() -> None:
    # The probe can never pass: its bound need not be long for the test to hold.
    result = await run_fuzz(10, seed=1, probe_every=10, within_s=5.0, sabotage=_mute)
    assert (result.unhandled, result.hangs) == (0, 2)  # the probe after 10, and the last
    assert all("nothing played" in p for p in result.problems)


async def test_a_split_sample_of_a_lost_session_does_not_shift_the_next_reply(
    fuzzer: Fuzzer,
) -> None:
    odd = {"modelTurn": {"parts": [wire.audio_part(b"\x01\x02\x03")]}}
    await fuzzer.deliver(Frame(wire.server_message("serverContent", odd), "3 bytes of reply"))
    await fuzzer.emulator.inject(Fault.INTERNAL_ERROR)  # the turn never ends
    await fuzzer.emulator.timeline.wait_for("setup", lambda event: event.connection == 2)
    # Half the probes' bound: the probe takes a fraction of a second; a reply shifted by a
    # byte never plays right however long it is given.
    async with asyncio.timeout(WITHIN_S / 2):
        await fuzzer.probe(settle=False)  # a new session has no turn to end
