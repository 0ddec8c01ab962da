"""The conversation stays open only for speech addressed to the speaker: the whole controller
with the real SDK against the emulator (gemini-3.8-live: proactive audio, so the model may
decline to answer), and a microphone and speaker in real time."""

import asyncio
from collections.abc import Callable

import pytest

from pispeaker.audio.pcm import INPUT_RATE, silence
from pispeaker.controller import Policy
from pispeaker.emulator import LiveEmulator, Reply, ToolCall
from pispeaker.states import Event, State
from tests.conftest import Rig, speech

FOLLOW_UP_S = 1.5


def _gap(seconds: float) -> bytes:
    return silence(seconds, INPUT_RATE)


def _chatter(utterances: int) -> bytes:
    """People talking among themselves: short utterances with pauses the service's voice
    detection ends a turn in (the rig's silence_duration_ms is 300)."""
    return b"".join(speech(0.5, frequency_hz=220 + 40 * k) + _gap(0.6) for k in range(utterances))


def _uploaded(emulator: LiveEmulator) -> int:
    return sum(event.data["bytes"] for event in emulator.timeline.of("audio.in"))


async def test_talk_the_model_declines_ends_the_conversation_once_the_answer_is_overdue(
    emulator: LiveEmulator,
    rig_factory: Callable[..., "asyncio.Future[Rig]"],
    caplog: pytest.LogCaptureFixture,
) -> None:
    emulator.script.push(Reply(audio="tone", seconds=0.5))  # the answer to the question
    for _ in range(20):
        emulator.script.push(Reply(declined=True))  # then the room's chatter, declined
    audio = _gap(0.2) + speech(0.5) + _gap(1.0) + _chatter(20)
    rig = await rig_factory(emulator, audio, Policy(follow_up_s=FOLLOW_UP_S))
    with caplog.at_level("INFO", logger="pispeaker.conversation.core"):
        rig.controller.dispatch(Event.BUTTON_PRESS)
        await rig.reach(State.IDLE, count=2, within_s=30)
    # Chatter kept the follow-up window open, but once the answer was overdue the first
    # turn the model declined ended the conversation, long before the chatter did.
    assert "thinking -> idle (turn complete)" in caplog.text
    declined = len(emulator.timeline.of("turn.declined"))
    assert 1 <= declined < 20
    ended_with = _uploaded(emulator)
    await asyncio.sleep(1.0)  # the chatter goes on: nothing more leaves the device
    assert _uploaded(emulator) == ended_with
    assert rig.controller.status.state is State.IDLE


async def test_talk_nobody_answers_ends_the_conversation_at_max_unanswered_s(
    emulator: LiveEmulator,
    rig_factory: Callable[..., "asyncio.Future[Rig]"],
    caplog: pytest.LogCaptureFixture,
) -> None:
    emulator.script.push(Reply(audio="tone", seconds=0.5))
    # Then one long stretch of talk with no pause for the service to end a turn in: the
    # follow-up window waits while it goes on, and nothing is declined.
    audio = _gap(0.2) + speech(0.5) + _gap(1.0) + speech(20.0)
    policy = Policy(follow_up_s=FOLLOW_UP_S, max_unanswered_s=FOLLOW_UP_S + 2.0)
    rig = await rig_factory(emulator, audio, policy)
    with caplog.at_level("INFO", logger="pispeaker.conversation.core"):
        rig.controller.dispatch(Event.BUTTON_PRESS)
        await rig.reach(State.IDLE, count=2, within_s=30)
    assert "listening -> idle (unanswered limit)" in caplog.text
    assert not emulator.timeline.of("turn.declined")


async def test_an_answer_by_a_tool_alone_keeps_the_conversation(
    emulator: LiveEmulator, rig_factory: Callable[..., "asyncio.Future[Rig]"]
) -> None:
    # The model answers the second question, which goes on past the follow-up window's
    # length, by calling a tool and saying nothing: an answer, not a declined turn.
    emulator.script.push(Reply(audio="tone", seconds=0.5))
    emulator.script.push(
        Reply(audio="silence", seconds=0.0, tool_calls=(ToolCall("set_volume", {"level": 40}),))
    )
    audio = _gap(0.2) + speech(0.5) + _gap(1.0) + speech(2.5) + _gap(6.0)
    rig = await rig_factory(emulator, audio, Policy(follow_up_s=FOLLOW_UP_S))
    rig.controller.dispatch(Event.BUTTON_PRESS)
    await rig.reach(State.IDLE, count=2, within_s=30)
    assert rig.controller.volume.level == 40
    states = rig.controller.record.states
    # ... then listened for a follow-up for the whole window after that turn.
    assert states[-3:] == [State.THINKING, State.LISTENING, State.IDLE]
