"""The Live link against the emulator through the real SDK: no lost words, handovers, tools."""

import asyncio

import pytest
import websockets

from pispeaker.audio.pcm import INPUT_RATE, OUTPUT_RATE, byte_count
from pispeaker.audio.resample import resample
from pispeaker.config import LiveConfig
from pispeaker.emulator import Fault, LiveEmulator, Reply, ScheduledFault, ToolCall
from pispeaker.live import genai
from pispeaker.live.link import CUT_NOTE, LiveLink
from pispeaker.live.port import (
    Interrupted,
    Kind,
    Lost,
    Message,
    ModelAudio,
    Ready,
    ToolRequest,
    TurnComplete,
)
from tests.conftest import Recorder, StartEmulator, padded, speech

CHUNK = byte_count(0.02, INPUT_RATE)


def _link(emulator: LiveEmulator, recorder: Recorder, **live: object) -> LiveLink:
    pointed = {"base_url": emulator.base_url, "ca_file": emulator.ca_file}
    config = LiveConfig().model_copy(update=pointed | {"silence_duration_ms": 200} | live)
    return LiveLink(config, emulator.api_key, recorder)


async def _stream(link: LiveLink, pcm: bytes, realtime: bool) -> None:
    for offset in range(0, len(pcm), CHUNK):
        link.send_audio(pcm[offset : offset + CHUNK])
        await asyncio.sleep(0.02 if realtime else 0)


async def test_audio_queued_before_the_session_is_ready_is_sent(emulator: LiveEmulator) -> None:
    recorder, said = Recorder(), speech(0.8)
    link = _link(emulator, recorder)
    link.send_audio(padded(said))  # the pre-roll: captured while connecting
    link.open()
    await recorder.wait_for(TurnComplete)
    assert recorder.events[0] == Ready(resumed=False)
    assert recorder.audio() == resample(said, INPUT_RATE, OUTPUT_RATE)
    assert link.sent_bytes == len(padded(said))
    await link.close()


async def test_go_away_mid_utterance_loses_no_audio(start_emulator: StartEmulator) -> None:
    emulator = await start_emulator(
        faults=(ScheduledFault(Fault.GO_AWAY, at_s=0.3, connection=1),), go_away_lead_s=10.0
    )
    recorder = Recorder()
    link = _link(emulator, recorder)
    link.open()
    await recorder.wait_for(Ready)
    stream = padded(speech(1.5), lead_s=0.2, tail_s=0.6)
    await _stream(link, stream, realtime=True)
    await recorder.wait_for(TurnComplete)
    assert Ready(resumed=True) in recorder.events  # handed over, not cut off
    [session] = emulator.store.sessions.values()
    await emulator.timeline.wait_for(
        "audio.in", lambda _: session.uploaded_audio_bytes == len(stream), within_s=5
    )
    assert [e.connection for e in emulator.timeline.of("setup")] == [1, 2]
    assert not emulator.timeline.of("close", connection=1)  # we left before the deadline
    await link.close()


@pytest.mark.parametrize("time_left_s", [20.0, 3.0])
async def test_go_away_during_a_reply_hands_over_after_the_turn(
    start_emulator: StartEmulator, time_left_s: float
) -> None:
    # 3 s left is less than the usual 5 s margin: the 1 s reply still fits before it.
    emulator = await start_emulator(pace=1.0, go_away_lead_s=time_left_s)
    emulator.script.push(Reply(audio="tone", seconds=1.0), Reply(audio="tone", seconds=0.3))
    recorder = Recorder()
    link = _link(emulator, recorder)
    link.send_audio(padded(speech(0.3)))
    link.open()
    await recorder.wait_for(ModelAudio)
    await emulator.inject(Fault.GO_AWAY)
    await recorder.wait_for(Ready, lambda e: e == Ready(resumed=True))
    assert len(recorder.audio()) == OUTPUT_RATE * 2  # the whole reply arrived first
    link.send_audio(padded(speech(0.3)))
    await recorder.wait_for(TurnComplete, count=2)  # the resumed session answers
    await link.close()


async def test_transient_loss_is_reported_and_resume_continues_the_session(
    emulator: LiveEmulator,
) -> None:
    recorder = Recorder()
    link = _link(emulator, recorder)
    link.open()
    await recorder.wait_for(Ready)
    await emulator.inject(Fault.INTERNAL_ERROR)
    lost = await recorder.wait_for(Lost)
    assert isinstance(lost, Lost)
    assert (lost.failure.kind, lost.failure.code) == (Kind.TRANSIENT, 1011)
    assert link.handle is not None
    link.send_audio(padded(speech(0.5)))  # spoken while reconnecting: kept
    link.open(resume=True)
    await recorder.wait_for(TurnComplete)
    assert Ready(resumed=True) in recorder.events
    assert len(emulator.store.sessions) == 1
    await link.close()


async def _tool_requested(emulator: LiveEmulator) -> tuple[LiveLink, Recorder, ToolRequest]:
    """A link whose session asked for get_local_time, not yet answered."""
    emulator.script.push(Reply(audio="tone", seconds=0.2, tool_calls=(ToolCall("get_local_time"),)))
    recorder = Recorder()
    link = _link(emulator, recorder)
    link.send_audio(padded(speech(0.4)))
    link.open()
    request = await recorder.wait_for(ToolRequest)
    assert isinstance(request, ToolRequest)
    return link, recorder, request


async def test_tool_requests_are_reported_and_answered(emulator: LiveEmulator) -> None:
    link, recorder, request = await _tool_requested(emulator)
    assert request.name == "get_local_time"
    await link.respond(request, {"output": "10:42"})
    await recorder.wait_for(TurnComplete)
    assert len(recorder.audio()) == byte_count(0.2, OUTPUT_RATE)
    await link.close()


async def test_a_tool_answer_the_closing_socket_refuses_is_dropped_not_raised(
    emulator: LiveEmulator, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The socket can close between the receiver's last message and the tool's answer; the
    # receiver meets the loss itself, so the tool task must not crash the conversation.
    link, _, request = await _tool_requested(emulator)

    async def closed(*_: object) -> None:
        raise websockets.ConnectionClosedError(None, None)

    monkeypatch.setattr(genai.Session, "respond", closed)
    await link.respond(request, {"output": "10:42"})
    assert "tool get_local_time answered as its session failed" in caplog.text
    await link.close()


@pytest.mark.parametrize(
    ("model", "lost_mid_reply", "told"),
    [
        ("gemini-3.8-live", True, True),
        ("gemini-3.8-live", False, False),  # nothing was cut
        ("gemini-3.1-flash-live-preview", True, False),  # it takes no notes mid-session
    ],
)
async def test_a_resumed_session_is_told_when_the_loss_cut_its_answer_short(
    start_emulator: StartEmulator, model: str, lost_mid_reply: bool, told: bool
) -> None:
    emulator = await start_emulator(pace=1.0)
    emulator.script.push(Reply(audio="tone", seconds=3.0 if lost_mid_reply else 0.2))
    recorder = Recorder()
    link = _link(emulator, recorder, model=model)
    link.send_audio(padded(speech(0.4)))
    link.open()
    await recorder.wait_for(ModelAudio if lost_mid_reply else TurnComplete)
    await emulator.inject(Fault.INTERNAL_ERROR)
    await recorder.wait_for(Lost)
    emulator.reject_upgrades(503)  # the first try to resume fails: the next is told
    link.open(resume=True)
    await recorder.wait_for(Lost, count=2)
    emulator.reject_upgrades(None)
    link.open(resume=True)
    await recorder.wait_for(Ready, count=2)
    link.send_audio(speech(0.1))  # after any note on the same socket: its arrival bounds
    await emulator.timeline.wait_for("audio.in", lambda event: event.connection == 2)
    notes = [event.data for event in emulator.timeline.of("client.content", connection=2)]
    assert notes == ([{"texts": [CUT_NOTE], "turn_complete": False}] if told else [])
    await link.close()


async def test_close_forgets_unsent_audio_and_the_handle(emulator: LiveEmulator) -> None:
    recorder = Recorder()
    link = _link(emulator, recorder)
    link.open()
    await recorder.wait_for(Ready)
    await link.close()
    link.send_audio(speech(0.2))
    await link.close()
    assert link.handle is None
    closed = await emulator.timeline.wait_for("disconnect")  # the socket is closed
    assert closed.data["code"] == 1000
    assert emulator.store.sessions["session-1"].uploaded_audio_bytes == 0


async def test_server_interruption_is_reported(start_emulator: StartEmulator) -> None:
    emulator = await start_emulator(pace=1.0)
    emulator.script.push(Reply(audio="tone", seconds=3.0))
    recorder = Recorder()
    link = _link(emulator, recorder)
    link.send_audio(padded(speech(0.4)))
    link.open()
    await recorder.wait_for(ModelAudio)
    link.send_audio(padded(speech(0.3)))
    await recorder.wait_for(Interrupted)
    await link.close()


def test_reply_audio_reaches_the_speaker_in_whole_samples() -> None:
    # The server's chunks need not end on a sample; a write of half a sample would fail.
    recorder = Recorder()
    link = LiveLink(LiveConfig(), "unused-key", recorder)
    for audio in [(b"\x01\x02\x03",), (b"\x04", b"\x05\x06\x07")]:
        link._dispatch(Message(audio=audio))
    link._dispatch(Message(turn_complete=True))
    link._dispatch(Message(audio=(b"\x08\x09",)))  # the next turn starts on a sample
    assert [e.pcm for e in recorder.events if isinstance(e, ModelAudio)] == [
        b"\x01\x02",
        b"\x03\x04",
        b"\x05\x06",
        b"\x08\x09",
    ]
