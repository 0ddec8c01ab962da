"""MCP tools in a conversation: the emulator's scripted model calls a real MCP server's tools
(tests/mcp_servers.py) through the real SDK, the link, the tool runner and the hub."""

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pispeaker.audio.pcm import INPUT_RATE, silence
from pispeaker.config import McpServerConfig
from pispeaker.controller import Policy
from pispeaker.emulator import LiveEmulator, Reply, ToolCall
from pispeaker.emulator.timeline import Event as TimelineEvent
from pispeaker.mcphub import McpHub
from pispeaker.states import Event, State
from tests.conftest import Rig, speech
from tests.test_mcphub import TOKEN, HttpServer, free_port, offered, recorded, stdio

pytestmark = pytest.mark.timeout(120)

Build = Callable[..., "asyncio.Future[Rig]"]


def _question() -> bytes:
    return silence(0.2, INPUT_RATE) + speech(0.4) + silence(3.0, INPUT_RATE)


async def _answered(emulator: LiveEmulator) -> dict[str, Any]:
    """The response the model got to its one tool call."""
    answered: TimelineEvent = await emulator.timeline.wait_for("tool.response", within_s=30)
    [response] = answered.data["responses"]
    return dict(response["response"])


async def test_the_model_turns_on_a_light_through_home_assistants_tools(
    emulator: LiveEmulator, rig_factory: Build, tmp_path: Path
) -> None:
    server = HttpServer(tmp_path)
    config = McpServerConfig(name="home", url=server.url, timeout_s=30.0)
    call = ToolCall("HassTurnOn", {"name": "kitchen light", "domain": "light"})
    emulator.script.push(Reply(audio="tone", seconds=0.3, tool_calls=(call,)))
    try:
        async with McpHub([config], {"home": TOKEN}) as hub:
            await hub.refresh()
            rig = await rig_factory(emulator, _question(), Policy(follow_up_s=1.0), tool_source=hub)
            rig.controller.dispatch(Event.BUTTON_PRESS)
            answer = await _answered(emulator)
            await rig.reach(State.IDLE, count=2, within_s=30)
    finally:
        server.stop()
    assert answer == {"output": "Turned on the kitchen light"}
    await recorded(
        server.record,
        {"tool": "HassTurnOn", "args": {"name": "kitchen light", "area": None, "domain": "light"}},
    )
    [setup] = emulator.timeline.of("setup")
    declared = {
        d["name"]: d.get("behavior")
        for tool in setup.data["setup"]["tools"]
        for d in tool.get("functionDeclarations", [])
    }
    assert declared["HassTurnOn"] == "BLOCKING"  # the model waits for the light
    assert "GetLiveContext" in declared
    assert State.THINKING in rig.controller.record.states  # while the call ran


async def test_a_tool_that_never_answers_gets_an_error_the_model_can_say(
    emulator: LiveEmulator, rig_factory: Build, tmp_path: Path
) -> None:
    config = stdio(tmp_path / "record.jsonl", timeout_s=1.0)
    emulator.script.push(
        Reply(audio="tone", seconds=0.3, tool_calls=(ToolCall("SlowQuery", {"tag": "t"}),))
    )
    async with McpHub([config], {}) as hub:
        await offered(hub, "SlowQuery")
        rig = await rig_factory(emulator, _question(), Policy(follow_up_s=1.0), tool_source=hub)
        rig.controller.dispatch(Event.BUTTON_PRESS)
        answer = await _answered(emulator)
        await rig.reach(State.IDLE, count=2, within_s=30)
    assert "did not answer within" in answer["error"]
    await recorded(tmp_path / "record.jsonl", {"event": "cancelled", "tag": "t"})


async def test_a_server_down_at_start_is_offered_from_the_conversation_after_it_is_up(
    emulator: LiveEmulator, rig_factory: Build, tmp_path: Path
) -> None:
    port = free_port()
    config = McpServerConfig(name="home", url=f"http://127.0.0.1:{port}/mcp", timeout_s=30.0)
    emulator.script.push(Reply(audio="tone", seconds=0.2), Reply(audio="tone", seconds=0.2))
    audio = _question() + _question()
    async with McpHub([config], {"home": TOKEN}) as hub:
        await hub.refresh()
        assert not hub.tools()  # down: left out
        server = HttpServer(tmp_path, port=port)
        try:
            rig = await rig_factory(emulator, audio, Policy(follow_up_s=0.5), tool_source=hub)
            rig.controller.dispatch(Event.BUTTON_PRESS)  # the opening conversation looks again
            await rig.reach(State.IDLE, count=2, within_s=30)
            rig.controller.dispatch(Event.BUTTON_PRESS)
            await rig.reach(State.IDLE, count=3, within_s=30)
        finally:
            server.stop()
    first, second = (
        [
            d["name"]
            for tool in setup.data["setup"].get("tools", [])
            for d in tool.get("functionDeclarations", [])
        ]
        for setup in emulator.timeline.of("setup")
    )
    assert "HassTurnOn" not in first
    assert "HassTurnOn" in second
