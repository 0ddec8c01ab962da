"""The conversation core's parts on their own: the driver, the task owner, speech bursts,
the tool runner."""

import asyncio

import pytest

from pispeaker.audio.memory import MemorySink, MemorySource
from pispeaker.audio.pcm import INPUT_RATE
from pispeaker.config import LiveConfig
from pispeaker.controller import Controller
from pispeaker.conversation.core import Change, Conversation, Policy
from pispeaker.conversation.tasks import TaskOwner
from pispeaker.conversation.toolrunner import ToolRunner
from pispeaker.live.link import LiveLink
from pispeaker.live.port import ToolRequest
from pispeaker.states import Effect, Event, State
from pispeaker.tools import Tool, ToolBox
from tests.conftest import SlowTool

CHUNK_S = 0.02


def _chunks(pcm: bytes) -> list[bytes]:
    size = round(CHUNK_S * INPUT_RATE) * 2
    return [pcm[offset : offset + size] for offset in range(0, len(pcm), size)]


def _crash_list() -> tuple[TaskOwner, list[BaseException]]:
    crashes: list[BaseException] = []
    return TaskOwner(crashes.append), crashes


# -- the driver ---------------------------------------------------------------------------------


async def test_effects_run_before_the_observers_hear_of_the_change() -> None:
    tasks, _ = _crash_list()
    conversation = Conversation(Policy(), tasks, asyncio.sleep)
    order: list[str] = []
    conversation.handlers = {effect: lambda _, e=effect: order.append(e.value) for effect in Effect}
    conversation.observers.append(lambda change: order.append(f"told {change.after.state.value}"))
    conversation.dispatch(Event.BUTTON_PRESS)
    assert order == ["open session", "earcon start", "told connecting"]
    await tasks.close()


async def test_a_state_timer_ends_with_its_state() -> None:
    tasks, _ = _crash_list()
    conversation = Conversation(Policy(), tasks, asyncio.sleep)
    conversation.handlers = {effect: lambda _: None for effect in Effect}
    changes: list[Change] = []
    conversation.observers.append(changes.append)
    conversation.dispatch(Event.BUTTON_PRESS)
    conversation.after("soon", 0.01, Event.SESSION_LIMIT)  # would end the conversation
    conversation.dispatch(Event.SESSION_READY)  # a new state: the timer goes
    await asyncio.sleep(0.05)
    assert conversation.status.state is State.LISTENING
    assert [change.event for change in changes] == [Event.BUTTON_PRESS, Event.SESSION_READY]
    await tasks.close()


# -- the task owner -----------------------------------------------------------------------------


async def test_starting_a_name_again_replaces_the_task() -> None:
    tasks, _ = _crash_list()
    cancelled = asyncio.Event()

    async def first() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            cancelled.set()

    tasks.start("timer", first())
    await asyncio.sleep(0)
    tasks.start("timer", asyncio.sleep(60))
    await asyncio.wait_for(cancelled.wait(), 1)
    await tasks.close()


async def test_close_cancels_and_awaits_every_task() -> None:
    tasks, crashes = _crash_list()
    finished: list[str] = []

    async def work(name: str) -> None:
        try:
            await asyncio.sleep(60)
        finally:
            finished.append(name)

    for name in ("a", "b"):
        tasks.start(name, work(name))
    await asyncio.sleep(0)
    await tasks.close()
    assert sorted(finished) == ["a", "b"]
    assert crashes == []


async def test_a_failing_task_is_reported_as_a_crash() -> None:
    tasks, crashes = _crash_list()

    async def broken() -> None:
        raise RuntimeError("a bug")

    tasks.start("broken", broken())
    await asyncio.sleep(0.01)
    assert [str(error) for error in crashes] == ["a bug"]
    await tasks.close()


async def test_close_does_not_swallow_a_cancellation_of_its_caller() -> None:
    tasks, _ = _crash_list()
    tasks.start("slow", asyncio.sleep(60))
    closing = asyncio.create_task(tasks.close())
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing


# -- the tool runner ----------------------------------------------------------------------------


class _Answers:
    """Stands in for the link's one tool method: keeps every answer."""

    def __init__(self) -> None:
        self.answers: list[tuple[str, dict[str, object]]] = []
        self.arrived = asyncio.Event()

    async def respond(self, request: ToolRequest, response: dict[str, object]) -> None:
        self.answers.append((request.id, response))
        self.arrived.set()


def _box(slow: SlowTool) -> ToolBox:
    async def quick(args: dict[str, object]) -> str:
        return f"done {args['n']}"

    return ToolBox([slow.tool, Tool("quick", "x", {"type": "object"}, quick)])


async def test_the_tool_runner_answers_each_call_and_cancels_a_withdrawn_one() -> None:
    tasks, crashes = _crash_list()
    slow, link = SlowTool("slow"), _Answers()
    runner = ToolRunner(_box(slow), link, tasks)  # type: ignore[arg-type]  # only respond() is used
    runner.start(ToolRequest("1", "slow"))
    runner.start(ToolRequest("2", "quick", {"n": 2}))
    await asyncio.wait_for(link.arrived.wait(), 1)
    await asyncio.wait_for(slow.started.wait(), 1)
    runner.cancel(("1",))
    await asyncio.wait_for(slow.cancelled.wait(), 1)
    await tasks.close()
    assert link.answers == [("2", {"output": "done 2"})]  # the withdrawn call is not answered
    assert crashes == []


async def test_the_tool_runner_cancels_every_call_when_the_session_ends() -> None:
    tasks, _ = _crash_list()
    slow, link = SlowTool("slow"), _Answers()
    runner = ToolRunner(_box(slow), link, tasks)  # type: ignore[arg-type]  # only respond() is used
    runner.start(ToolRequest("1", "slow"))
    await asyncio.wait_for(slow.started.wait(), 1)
    runner.cancel_all()
    await asyncio.wait_for(slow.cancelled.wait(), 1)
    runner.start(ToolRequest("2", "quick", {"n": 3}))  # a new call still runs
    await asyncio.wait_for(link.arrived.wait(), 1)
    await tasks.close()
    assert link.answers == [("2", {"output": "done 3"})]


def test_the_controller_carries_out_every_effect_the_machine_can_return() -> None:
    controller = Controller(
        MemorySource(b""),
        MemorySink(),
        lambda report, tools: LiveLink(LiveConfig(), "unused-key", report, tools),
    )
    assert set(controller.conversation.handlers) == set(Effect)
