"""Whole conversations on each model's semantics (the emulator's profiles, the real SDK):
background tool calls, background reasoning, utterances the model declines, grounding."""

import asyncio
from collections.abc import Callable

import pytest

from pispeaker.audio.pcm import INPUT_RATE, OUTPUT_RATE, silence
from pispeaker.controller import Policy
from pispeaker.emulator import LiveEmulator, Reply, ToolCall
from pispeaker.states import Event, State
from tests.conftest import Rig, StartEmulator, speech

RigFactory = Callable[..., "asyncio.Future[Rig]"]
EXTENDED = {"model": "gemini-3.8-live-extended-thinking"}


def _gap(seconds: float) -> bytes:
    return silence(seconds, INPUT_RATE)


def _kinds(emulator: LiveEmulator) -> list[str]:
    return [event.kind for event in emulator.timeline.events]


async def test_the_model_talks_on_through_a_background_call_and_its_answer_is_silent(
    start_emulator: StartEmulator, rig_factory: RigFactory
) -> None:
    emulator = await start_emulator(pace=1.0)
    set_volume = ToolCall("set_volume", {"level": 30})
    emulator.script.push(Reply(audio="tone", seconds=1.0, tool_calls=(set_volume,)))
    rig = await rig_factory(emulator, _gap(0.2) + speech(0.4) + _gap(3.0))
    rig.controller.dispatch(Event.BUTTON_PRESS)
    await rig.reach(State.LISTENING, count=2)  # the reply played out
    kinds = _kinds(emulator)
    call, answer = kinds.index("tool.call"), kinds.index("tool.response")
    assert "audio.out" in kinds[call:answer]  # it kept talking while the call ran
    [response] = emulator.timeline.of("tool.response")
    assert response.data["responses"][0]["scheduling"] == "SILENT"
    assert rig.controller.volume.level == 30
    assert len(rig.sink.played) == 1.0 * OUTPUT_RATE * 2  # no words about the answer


async def test_a_call_the_model_needs_answered_holds_the_reply(
    emulator: LiveEmulator, rig_factory: RigFactory
) -> None:
    emulator.script.push(Reply(audio="tone", seconds=0.3, tool_calls=(ToolCall("get_local_time"),)))
    rig = await rig_factory(emulator, _gap(0.2) + speech(0.4) + _gap(2.0))
    rig.controller.dispatch(Event.BUTTON_PRESS)
    await rig.reach(State.LISTENING, count=2)
    kinds = _kinds(emulator)
    assert "audio.out" not in kinds[kinds.index("tool.call") : kinds.index("tool.response")]
    [response] = emulator.timeline.of("tool.response")
    assert "scheduling" not in response.data["responses"][0]


async def test_while_the_model_reasons_the_speaker_keeps_thinking_and_waits_for_the_answer(
    start_emulator: StartEmulator, rig_factory: RigFactory
) -> None:
    emulator = await start_emulator(pace=1.0)
    emulator.script.push(Reply(audio="tone", seconds=0.4, think_s=2.0))
    rig = await rig_factory(
        emulator,
        _gap(0.2) + speech(0.4) + _gap(5.0),
        Policy(follow_up_s=1.0),  # shorter than the thinking: it must not end the talk
        live_settings=EXTENDED,
    )
    rig.controller.dispatch(Event.BUTTON_PRESS)
    await rig.reach(State.LISTENING, count=2, within_s=15)
    states = rig.controller.record.states
    first = states.index(State.SPEAKING)
    # The acknowledgment, thinking (the LEDs say so) until the answer, then the follow-up.
    assert states[first:] == [State.SPEAKING, State.THINKING, State.SPEAKING, State.LISTENING]
    assert len(emulator.timeline.of("turn.complete")) >= 2


async def test_an_utterance_the_model_declines_leaves_the_follow_up_window_to_end_it(
    emulator: LiveEmulator, rig_factory: RigFactory
) -> None:
    emulator.script.push(Reply(declined=True))
    rig = await rig_factory(emulator, _gap(0.2) + speech(0.4) + _gap(3.0), Policy(follow_up_s=1.0))
    rig.controller.dispatch(Event.BUTTON_PRESS)
    await rig.reach(State.IDLE, count=2)
    assert State.SPEAKING not in rig.controller.record.states
    assert len(rig.sink.played) == 0


async def test_a_grounded_answer_is_logged_with_its_searches(
    emulator: LiveEmulator, rig_factory: RigFactory, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.script.push(Reply(audio="tone", seconds=0.3, search_queries=("weather Lyon today",)))
    rig = await rig_factory(emulator, _gap(0.2) + speech(0.4) + _gap(2.0))
    with caplog.at_level("INFO", logger="pispeaker.conversation.session"):
        rig.controller.dispatch(Event.BUTTON_PRESS)
        await rig.reach(State.LISTENING, count=2)
    assert "the answer is grounded in Google Search (weather Lyon today)" in caplog.text


async def test_a_model_the_service_refuses_names_the_setting_and_the_known_models(
    emulator: LiveEmulator, rig_factory: RigFactory
) -> None:
    rig = await rig_factory(emulator, _gap(1.0), live_settings={"model": "gemini-0-gone"})
    rig.controller.dispatch(Event.BUTTON_PRESS)
    await rig.reach(State.ERROR)
    error = rig.controller.last_error or ""
    assert "check live.model (known: gemini-3.8-live," in error
