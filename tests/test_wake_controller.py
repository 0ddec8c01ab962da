"""The wake word in whole conversations: what it opens, what is sent (the pre-roll, and
nothing said before it), barge-in while speaking, and mute. The controller runs with the
real listener and detector, the real Live link and the emulator; a tone stands in for the
wake word (tests/test_wake_speech.py does the same with real models on real speech)."""

import asyncio
from collections.abc import Callable

from pispeaker.audio.pcm import INPUT_RATE, byte_count, silence, tone
from pispeaker.controller import MakeWake, Policy
from pispeaker.emulator import LiveEmulator, Reply
from pispeaker.states import Event, State
from pispeaker.wake.detector import Frame, WakeDetector
from pispeaker.wake.listener import WakeListener
from tests.conftest import Rig, StartEmulator, record_uplink, speech
from tests.wake_fakes import WAKE_TONE_HZ, ToneScorer

RigFactory = Callable[..., "asyncio.Future[Rig]"]


def tone_wake(warmup_s: float = 0.2) -> MakeWake:
    def make(report: Callable[[Frame], None]) -> WakeListener:
        detector = WakeDetector(ToneScorer(), {"tone": 0.5}, refractory_s=1.0, warmup_s=warmup_s)
        return WakeListener(detector, report)

    return make


def gap(seconds: float) -> bytes:
    return silence(seconds, INPUT_RATE)


def wake_word(seconds: float = 0.4) -> bytes:
    return tone(WAKE_TONE_HZ, seconds, INPUT_RATE)


async def test_the_words_after_the_wake_word_are_sent_and_nothing_before(
    emulator: LiveEmulator, rig_factory: RigFactory
) -> None:
    before = speech(1.0, frequency_hz=200)  # a private remark, then the wake word
    request = speech(0.8, frequency_hz=300)
    audio = gap(0.6) + before + gap(0.4) + wake_word() + request + gap(2.0)
    rig = await rig_factory(emulator, audio, make_wake=tone_wake())
    sent = record_uplink(rig.controller)
    await rig.reach(State.LISTENING)
    await rig.reach(State.SPEAKING)
    # The wake word starts at 2.0 s: the first 80 ms frame wholly in it ends at 2.08 s, and
    # the uplink starts exactly there; the request right after it is all sent.
    start = audio.index(bytes(sent[:6400]))
    assert start == byte_count(2.08, INPUT_RATE)
    assert request in bytes(sent)
    assert len(sent) <= len(audio) - start
    assert rig.controller.record.states[:3] == [State.IDLE, State.CONNECTING, State.LISTENING]


async def test_a_wake_word_in_the_warm_up_is_ignored(
    emulator: LiveEmulator, rig_factory: RigFactory
) -> None:
    audio = wake_word(0.5) + gap(1.5)
    rig = await rig_factory(emulator, audio, make_wake=tone_wake(warmup_s=1.0))
    await asyncio.sleep(1.5)
    assert rig.controller.record.states == [State.IDLE]
    assert not emulator.timeline.of("connect")


async def test_the_wake_word_while_speaking_interrupts_when_enabled(
    start_emulator: StartEmulator, rig_factory: RigFactory
) -> None:
    emulator = await start_emulator(pace=1.0)
    emulator.script.push(Reply(audio="tone", seconds=4.0), Reply(audio="parrot"))
    question = speech(0.5, frequency_hz=500)
    audio = gap(0.4) + wake_word() + speech(0.4) + gap(1.6) + wake_word() + question + gap(3.0)
    rig = await rig_factory(emulator, audio, make_wake=tone_wake())
    await rig.reach(State.INTERRUPTED)
    flushed = rig.sink.flushed_at[-1]
    await rig.reach(State.LISTENING, count=2)
    await rig.reach(State.SPEAKING, count=2)  # the question said after it is answered
    states = rig.controller.record.states
    cut = states.index(State.INTERRUPTED)
    assert states[cut - 1 : cut + 2] == [State.SPEAKING, State.INTERRUPTED, State.LISTENING]
    assert flushed < 4.0 * 24000 * 2  # the 4 s reply was cut short


async def test_the_wake_word_while_speaking_is_ignored_when_barge_in_is_off(
    start_emulator: StartEmulator, rig_factory: RigFactory
) -> None:
    emulator = await start_emulator(pace=1.0)
    emulator.script.push(Reply(audio="tone", seconds=2.5))
    audio = gap(0.4) + wake_word() + speech(0.4) + gap(1.6) + wake_word() + gap(3.0)
    policy = Policy(follow_up_s=3.0, wake_barge_in=False)
    rig = await rig_factory(emulator, audio, policy, make_wake=tone_wake())
    await rig.reach(State.LISTENING, count=2)  # after the whole reply
    assert State.INTERRUPTED not in rig.controller.record.states
    assert not rig.sink.flushed_at
    assert len(rig.sink.played) == 2.5 * 24000 * 2


async def test_nothing_heard_while_muted_is_kept_or_heard_by_the_wake_word(
    emulator: LiveEmulator, rig_factory: RigFactory
) -> None:
    audio = gap(0.6) + wake_word() + gap(0.2) + gap(2.0)
    rig = await rig_factory(emulator, audio, make_wake=tone_wake())
    rig.controller.dispatch(Event.BUTTON_HOLD)  # muted before the wake word is said
    await asyncio.sleep(1.6)
    assert rig.controller.record.states == [State.IDLE, State.MUTED]
    assert len(rig.controller.router.preroll) == 0
    assert rig.controller.wake is not None
    assert rig.controller.wake.detector.position_s == 0.0  # it heard nothing at all
    rig.controller.dispatch(Event.BUTTON_HOLD)
    await asyncio.sleep(0.3)
    assert rig.controller.wake.detector.scorer.names == ("tone",)
    assert rig.controller.record.states == [State.IDLE, State.MUTED, State.IDLE]
