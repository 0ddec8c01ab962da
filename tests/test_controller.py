"""Whole conversations: the controller with the real Live link, the emulator (real SDK over
TLS) and in-memory audio ports that run in real time."""

import asyncio
from collections.abc import Callable

import pytest

from pispeaker.audio.memory import MemorySink, MemorySource
from pispeaker.audio.pcm import INPUT_RATE, OUTPUT_RATE, silence
from pispeaker.audio.resample import resample
from pispeaker.config import LiveConfig
from pispeaker.controller import Controller, Policy
from pispeaker.conversation.core import Duplex
from pispeaker.emulator import Fault, LiveEmulator, Reply, ScheduledFault, ToolCall
from pispeaker.live.link import LiveLink
from pispeaker.states import Effect, Event, State, Status
from pispeaker.tools import ToolBox
from tests.conftest import RecordingBackoff, Rig, SlowTool, StartEmulator, speech
from tests.signals import dominant_frequency


def _gap(seconds: float) -> bytes:
    return silence(seconds, INPUT_RATE)


async def test_two_turn_conversation_plays_both_replies_byte_exact(
    emulator: LiveEmulator, rig_factory: Callable[..., "asyncio.Future[Rig]"]
) -> None:
    first, second = speech(0.6), speech(0.5, frequency_hz=500)
    audio = _gap(0.3) + first + _gap(2.0) + second + _gap(1.0)
    rig = await rig_factory(emulator, audio)
    rig.controller.dispatch(Event.BUTTON_PRESS)
    await rig.reach(State.LISTENING, count=3)  # after setup, after reply 1, after reply 2
    expected = resample(first, INPUT_RATE, OUTPUT_RATE) + resample(second, INPUT_RATE, OUTPUT_RATE)
    assert bytes(rig.sink.played) == expected
    reference = rig.controller.reference.take()  # the echo canceller's view of the speaker
    assert reference
    assert expected.endswith(reference)
    states = rig.controller.record.states
    assert states[:3] == [State.IDLE, State.CONNECTING, State.LISTENING]
    assert states.count(State.SPEAKING) == 2
    await rig.reach(State.IDLE, count=2, within_s=6)  # the follow-up window ends it
    assert rig.controller.record.effects[-2:] == [Effect.CLOSE_SESSION, Effect.EARCON_END]


async def test_nothing_is_sent_before_the_trigger(
    emulator: LiveEmulator, rig_factory: Callable[..., "asyncio.Future[Rig]"]
) -> None:
    rig = await rig_factory(emulator, speech(1.0) + _gap(0.5))
    await asyncio.sleep(0.5)  # the user talks while the speaker is idle
    assert rig.controller.link.sent_bytes == 0
    assert not emulator.timeline.of("connect")


async def test_mute_cuts_the_uplink(
    emulator: LiveEmulator, rig_factory: Callable[..., "asyncio.Future[Rig]"]
) -> None:
    rig = await rig_factory(emulator, speech(3.0))
    rig.controller.dispatch(Event.BUTTON_PRESS)
    await rig.reach(State.LISTENING)
    rig.controller.dispatch(Event.BUTTON_HOLD)
    sent = rig.controller.link.sent_bytes
    assert rig.controller.status == Status(State.MUTED)
    await asyncio.sleep(0.3)
    assert rig.controller.link.sent_bytes == sent


@pytest.mark.parametrize("trigger", [Event.BUTTON_PRESS, Event.WAKE_WORD])
async def test_button_or_wake_word_while_speaking_stops_the_reply_at_once(
    start_emulator: StartEmulator,
    rig_factory: Callable[..., "asyncio.Future[Rig]"],
    trigger: Event,
) -> None:
    emulator = await start_emulator(pace=1.0)
    emulator.script.push(Reply(audio="tone", seconds=3.0))
    rig = await rig_factory(emulator, _gap(0.2) + speech(0.4) + _gap(4.0))
    rig.controller.dispatch(trigger)
    await rig.reach(State.SPEAKING)
    await asyncio.sleep(0.5)  # let some of the reply play
    rig.controller.dispatch(trigger)
    assert rig.controller.status.state is State.INTERRUPTED
    await rig.reach(State.LISTENING, count=2)
    await asyncio.sleep(0.5)  # the rest of the reply keeps arriving: none of it may play
    assert rig.sink.flushed_at
    assert len(rig.sink.played) == rig.sink.flushed_at[-1]
    assert len(rig.sink.played) < 2 * OUTPUT_RATE * 2


async def test_voice_barge_in_interrupts_and_the_new_question_is_answered(
    start_emulator: StartEmulator, rig_factory: Callable[..., "asyncio.Future[Rig]"]
) -> None:
    emulator = await start_emulator(pace=1.0)
    emulator.script.push(Reply(audio="tone", seconds=3.0), Reply(audio="parrot"))
    question = speech(0.4, frequency_hz=500)
    audio = _gap(0.2) + speech(0.4) + _gap(1.2) + question + _gap(2.0)
    rig = await rig_factory(emulator, audio, Policy(follow_up_s=3.0, duplex=Duplex.HARDWARE))
    rig.controller.dispatch(Event.BUTTON_PRESS)
    await rig.reach(State.INTERRUPTED)
    flushed = rig.sink.flushed_at[-1]
    await rig.reach(State.SPEAKING, count=2)
    await rig.reach(State.LISTENING, count=3)
    assert bytes(rig.sink.played[flushed:]) == resample(question, INPUT_RATE, OUTPUT_RATE)


async def test_end_conversation_tool_ends_after_the_goodbye(
    emulator: LiveEmulator, rig_factory: Callable[..., "asyncio.Future[Rig]"]
) -> None:
    emulator.script.push(
        Reply(audio="tone", seconds=0.5, tool_calls=(ToolCall("end_conversation"),))
    )
    rig = await rig_factory(emulator, _gap(0.2) + speech(0.4) + _gap(3.0))
    rig.controller.dispatch(Event.BUTTON_PRESS)
    await rig.reach(State.IDLE, count=2)
    assert rig.controller.record.states[-2:] == [State.SPEAKING, State.IDLE]
    assert len(rig.sink.played) == 0.5 * OUTPUT_RATE * 2  # the goodbye played in full


async def test_unknown_tool_gets_an_error_answer_and_the_talk_goes_on(
    emulator: LiveEmulator, rig_factory: Callable[..., "asyncio.Future[Rig]"]
) -> None:
    emulator.script.push(Reply(audio="tone", seconds=0.3, tool_calls=(ToolCall("open_garage"),)))
    rig = await rig_factory(emulator, _gap(0.2) + speech(0.4) + _gap(2.0))
    rig.controller.dispatch(Event.BUTTON_PRESS)
    await rig.reach(State.LISTENING, count=2)
    [answer] = emulator.timeline.of("tool.response")
    assert "unknown tool 'open_garage'" in answer.data["responses"][0]["response"]["error"]


async def test_rejected_key_goes_to_error_with_the_fix_and_no_retry_storm(
    emulator: LiveEmulator, rig_factory: Callable[..., "asyncio.Future[Rig]"]
) -> None:
    rig = await rig_factory(emulator, _gap(1.0), api_key="wrong-key")
    rig.controller.dispatch(Event.BUTTON_PRESS)
    await rig.reach(State.ERROR)
    assert "gemini-api-key" in rig.controller.record.errors[-1]
    assert Effect.SCHEDULE_RETRY in rig.controller.record.effects
    await asyncio.sleep(0.3)
    assert len(emulator.timeline.of("connect")) == 1


async def test_transient_failures_retry_with_backoff_then_give_up(
    emulator: LiveEmulator, rig_factory: Callable[..., "asyncio.Future[Rig]"]
) -> None:
    emulator.reject_upgrades(503)
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        # Backoff delays pass at once; long timers (session limit, retry) really wait.
        slept.append(seconds)
        await asyncio.sleep(0 if seconds < 60 else seconds)

    policy = Policy(max_reconnects=4, fatal_retry_s=3600)
    rig = await rig_factory(emulator, _gap(1.0), policy, sleep=fake_sleep)
    rig.controller.backoff = backoff = RecordingBackoff(
        initial_s=1.0, cap_s=4.0, uniform=lambda: 0.0
    )
    rig.controller.dispatch(Event.BUTTON_PRESS)
    await rig.reach(State.ERROR)
    assert backoff.delays == [1.0, 2.0, 4.0, 4.0]
    assert len(emulator.timeline.events) == 0  # every upgrade was refused before a session
    assert "offline" in rig.controller.record.errors[-1]


async def test_follow_up_window_does_not_end_the_talk_while_the_user_speaks(
    emulator: LiveEmulator, rig_factory: Callable[..., "asyncio.Future[Rig]"]
) -> None:
    rig = await rig_factory(emulator, _gap(0.2) + speech(2.5) + _gap(2.0), Policy(follow_up_s=1.0))
    rig.controller.dispatch(Event.BUTTON_PRESS)
    await rig.reach(State.SPEAKING)  # the whole question was heard and answered
    assert rig.controller.record.states.count(State.IDLE) == 1


async def test_the_follow_up_window_waits_once_per_burst_of_speech_not_per_chunk(
    emulator: LiveEmulator, rig_factory: Callable[..., "asyncio.Future[Rig]"]
) -> None:
    rig = await rig_factory(emulator, _gap(0.2) + speech(2.5) + _gap(2.0), Policy(follow_up_s=3.0))
    rig.controller.dispatch(Event.BUTTON_PRESS)
    await rig.reach(State.SPEAKING)
    # 125 chunks of speech: the window started with the session, waited while the user
    # talked and (unless their turn had ended first) started again when they stopped.
    assert rig.controller.record.effects.count(Effect.HOLD_FOLLOW_UP) == 1
    assert 1 <= rig.controller.record.effects.count(Effect.START_FOLLOW_UP) <= 2


async def test_a_mid_session_failure_reconnects_into_the_same_session(
    emulator: LiveEmulator, rig_factory: Callable[..., "asyncio.Future[Rig]"]
) -> None:
    question = speech(0.5, frequency_hz=500)
    rig = await rig_factory(emulator, _gap(1.0) + question + _gap(2.0))
    rig.controller.backoff = backoff = RecordingBackoff(initial_s=0.05, uniform=lambda: 0.0)
    rig.controller.dispatch(Event.BUTTON_PRESS)
    await rig.reach(State.LISTENING)
    await emulator.inject(Fault.INTERNAL_ERROR)
    await rig.reach(State.SPEAKING)
    assert rig.controller.record.states[:5] == [
        State.IDLE,
        State.CONNECTING,
        State.LISTENING,
        State.CONNECTING,
        State.LISTENING,
    ]
    assert backoff.delays == [0.05]
    assert len(emulator.store.sessions) == 1  # resumed, not started afresh
    await rig.reach(State.LISTENING, count=3)
    assert bytes(rig.sink.played) == resample(question, INPUT_RATE, OUTPUT_RATE)


async def test_go_away_mid_utterance_loses_no_words(
    start_emulator: StartEmulator, rig_factory: Callable[..., "asyncio.Future[Rig]"]
) -> None:
    emulator = await start_emulator(
        faults=(ScheduledFault(Fault.GO_AWAY, at_s=0.5, connection=1),), go_away_lead_s=10.0
    )
    question = speech(1.5, frequency_hz=500)
    rig = await rig_factory(emulator, _gap(0.2) + question + _gap(2.0))
    rig.controller.dispatch(Event.BUTTON_PRESS)
    await rig.reach(State.SPEAKING)
    assert [e.connection for e in emulator.timeline.of("setup")] == [1, 2]
    assert State.CONNECTING not in rig.controller.record.states[2:]  # seamless for the user
    [session] = emulator.store.sessions.values()
    # Nothing is sent while SPEAKING; what was sent just before may still be on its way.
    async with asyncio.timeout(5):
        while session.uploaded_audio_bytes < rig.controller.link.sent_bytes:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    assert session.uploaded_audio_bytes == rig.controller.link.sent_bytes
    assert rig.controller.link.dropped_bytes == 0


@pytest.mark.parametrize("enabled", [True, False])
async def test_transcripts_are_logged_only_when_enabled(
    emulator: LiveEmulator,
    rig_factory: Callable[..., "asyncio.Future[Rig]"],
    caplog: pytest.LogCaptureFixture,
    enabled: bool,
) -> None:
    emulator.script.push(Reply(audio="tone", seconds=0.2, text="Hello from the model."))
    policy = Policy(follow_up_s=3.0, log_transcripts=enabled)
    rig = await rig_factory(emulator, _gap(0.2) + speech(0.4) + _gap(2.0), policy)
    with caplog.at_level("INFO", logger="pispeaker.conversation.session"):
        rig.controller.dispatch(Event.BUTTON_PRESS)
        await rig.reach(State.LISTENING, count=2)
    assert ("Hello from the model." in caplog.text) is enabled


async def test_earcons_mark_the_start_and_the_end(
    emulator: LiveEmulator, rig_factory: Callable[..., "asyncio.Future[Rig]"]
) -> None:
    rig = await rig_factory(emulator, _gap(3.0), Policy(follow_up_s=1.0, earcons=True))
    rig.controller.dispatch(Event.BUTTON_PRESS)
    await rig.reach(State.IDLE, count=2)  # nobody spoke: the follow-up window ended it
    await rig.sink.drain()
    played, earcon = bytes(rig.sink.played), len(bytes(rig.sink.played)) // 2
    assert abs(dominant_frequency(played[:earcon], OUTPUT_RATE) - 880) < 10
    assert abs(dominant_frequency(played[earcon:], OUTPUT_RATE) - 660) < 10


class BrokenSink(MemorySink):
    """A speaker adapter with a bug (not a lost device)."""

    def write(self, pcm: bytes) -> None:
        raise RuntimeError("bug in the speaker adapter")


async def test_a_bug_crashes_the_controller_instead_of_hiding(emulator: LiveEmulator) -> None:
    live = LiveConfig().model_copy(
        update={
            "base_url": emulator.base_url,
            "ca_file": emulator.ca_file,
            "silence_duration_ms": 300,
        }
    )
    sink = BrokenSink()
    controller = Controller(
        MemorySource(_gap(0.2) + speech(0.4) + _gap(2.0), realtime=True),
        sink,
        lambda report, tools: LiveLink(live, emulator.api_key, report, tools),
    )
    await controller.source.start()
    await sink.start()
    task = asyncio.create_task(controller.run())
    controller.dispatch(Event.BUTTON_PRESS)
    with pytest.raises(RuntimeError, match="bug in the speaker adapter"):
        await asyncio.wait_for(task, 10)
    await sink.stop()


async def test_interrupting_cancels_a_running_tool(
    emulator: LiveEmulator, rig_factory: Callable[..., "asyncio.Future[Rig]"]
) -> None:
    slow = SlowTool("slow_lookup")
    emulator.script.push(Reply(tool_calls=(ToolCall("slow_lookup"),)))
    audio = _gap(0.2) + speech(0.4) + _gap(1.0) + speech(0.4) + _gap(2.0)
    rig = await rig_factory(emulator, audio, Policy(follow_up_s=3.0, duplex=Duplex.HARDWARE))
    rig.controller.tools.box = ToolBox([slow.tool])
    rig.controller.dispatch(Event.BUTTON_PRESS)
    await asyncio.wait_for(slow.started.wait(), 5)
    await asyncio.wait_for(slow.cancelled.wait(), 5)  # the user spoke again: the call was withdrawn
    assert not emulator.timeline.of("tool.response")


async def test_each_conversation_logs_the_tokens_it_used(
    emulator: LiveEmulator,
    rig_factory: Callable[..., "asyncio.Future[Rig]"],
    caplog: pytest.LogCaptureFixture,
) -> None:
    emulator.script.push(Reply(audio="tone", seconds=0.4))
    rig = await rig_factory(emulator, _gap(0.2) + speech(0.4) + _gap(3.0), Policy(follow_up_s=1.0))
    with caplog.at_level("INFO", logger="pispeaker.conversation.session"):
        rig.controller.dispatch(Event.BUTTON_PRESS)
        await rig.reach(State.IDLE, count=2)  # the follow-up window ended it
    [used] = [r.getMessage() for r in caplog.records if "tokens" in r.getMessage()]
    # 0.4 s of speech in, 0.4 s of reply out, at the service's 25 audio tokens a second.
    assert used == "the conversation used 20 tokens (10 in, 10 out)"


async def test_with_the_echo_canceller_a_voice_over_the_reply_ducks_it_then_stops_it(
    start_emulator: StartEmulator, rig_factory: Callable[..., "asyncio.Future[Rig]"]
) -> None:
    """duplex "auto" with the real canceller and voice model, in a room where the microphone
    hears the speaker 15 dB down: the reply teaches the canceller the room, then the
    microphone is heard over it; the user's voice ducks the reply at its first chunk, stops
    it, and what they said from their first word is sent."""
    from pispeaker.audio.echo import EchoCanceller
    from pispeaker.audio.voice import VoiceDetector
    from tests import speech as fixtures

    voice = fixtures.read_pcm(fixtures.say("no stop, I meant tomorrow", fixtures.REQUEST_VOICE))
    answer = (
        "the weather tomorrow will be sunny with a light breeze from the west and highs of twenty"
    )
    spoken = fixtures.read_pcm(fixtures.say(answer, fixtures.OTHER_VOICES[1]))
    emulator = await start_emulator(pace=1.0)  # a spoken reply: AEC3 treats a tone otherwise
    emulator.script.push(Reply(audio=resample(spoken, INPUT_RATE, OUTPUT_RATE)), Reply())
    audio = _gap(0.2) + speech(0.4) + _gap(2.5) + voice + _gap(3.0)
    rig = await rig_factory(
        emulator,
        audio,
        Policy(follow_up_s=3.0, duplex=Duplex.AUTO),
        canceller=EchoCanceller(),
        voice_model=VoiceDetector(),
        echo=(0.03, -15.0),
    )
    rig.controller.dispatch(Event.BUTTON_PRESS)
    await rig.reach(State.INTERRUPTED, within_s=15)
    states = rig.controller.record.states
    over_reply = states[states.index(State.SPEAKING) : states.index(State.INTERRUPTED)]
    assert set(over_reply) == {State.SPEAKING, State.DUCKED}  # a residual may duck it too
    assert over_reply[-1] is State.DUCKED  # the voice ducked it before it stopped
    assert rig.controller.ear.hears_over_reply
    assert rig.sink.flushed_at
    await rig.reach(State.THINKING, count=2)  # the words over the reply made a turn
    turns = emulator.timeline.of("turn.queued")
    assert len(turns) == 2
    assert turns[1].data["audio_bytes"] >= 0.95 * len(voice)  # from the first word on
