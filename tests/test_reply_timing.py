"""SPEAKING follows what the speaker plays, whatever the order in which the service ends its
turns: the whole controller with the real SDK against the emulator, and a speaker that plays
in real time."""

import asyncio
from collections.abc import Callable
from typing import Any

from pispeaker.audio.pcm import INPUT_RATE, OUTPUT_RATE, byte_count, silence
from pispeaker.controller import Policy
from pispeaker.emulator import Reply, ToolCall
from pispeaker.states import Event, State
from pispeaker.tools import Tool, ToolBox
from tests.conftest import Rig, StartEmulator, speech


async def _look_up(_args: dict[str, Any]) -> str:
    return "found"


#: A call the model talks on through, and speaks of once it has finished talking.
LOOK_UP = Tool("look_up", "a lookup", {"type": "object"}, _look_up, blocking=False)
QUESTION = silence(0.3, INPUT_RATE) + speech(0.5) + silence(6.0, INPUT_RATE)


async def test_a_reply_that_comes_while_another_plays_is_played_whole_and_spoken_over(
    start_emulator: StartEmulator, rig_factory: Callable[..., "asyncio.Future[Rig]"]
) -> None:
    # Generated in bursts, each turnComplete after half its audio's playing time: the answer
    # to the tool call arrives while the first reply still plays, and its turnComplete only
    # after the first reply has finished playing (the service's timing is not the speaker's).
    emulator = await start_emulator(pace=0.0, playback_hold=0.5)
    after_the_call = Reply(audio="tone", seconds=4.0, frequency_hz=660.0)
    emulator.script.push(
        Reply(
            audio="tone",
            seconds=1.0,
            tool_calls=(ToolCall("look_up"),),
            follow_up=after_the_call,
        )
    )
    rig = await rig_factory(emulator, QUESTION, Policy(follow_up_s=1.0))
    rig.controller.tools.box = ToolBox([LOOK_UP])
    rig.controller.dispatch(Event.BUTTON_PRESS)
    await rig.reach(State.IDLE, count=2, within_s=20)  # the follow-up window ended it
    # Both replies played to their last sample: the window never ran while one played.
    assert rig.sink.flushed_at[0] == byte_count(5.0, OUTPUT_RATE)
    states = rig.controller.record.states
    speaking = states.index(State.SPEAKING)
    assert states[speaking:] == [State.SPEAKING, State.LISTENING, State.IDLE]


async def test_a_turn_complete_long_after_the_audio_keeps_the_window_closed_until_then(
    start_emulator: StartEmulator, rig_factory: Callable[..., "asyncio.Future[Rig]"]
) -> None:
    # The audio comes at once; turnComplete twice the audio's length later.
    emulator = await start_emulator(pace=0.0, playback_hold=2.0)
    emulator.script.push(Reply(audio="tone", seconds=1.0))
    rig = await rig_factory(emulator, QUESTION, Policy(follow_up_s=1.0))
    rig.controller.dispatch(Event.BUTTON_PRESS)
    await rig.reach(State.IDLE, count=2, within_s=20)
    assert rig.sink.flushed_at[0] == byte_count(1.0, OUTPUT_RATE)
    states = rig.controller.record.states
    assert states[states.index(State.SPEAKING) :] == [State.SPEAKING, State.LISTENING, State.IDLE]
