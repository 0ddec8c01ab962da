"""Tools: built-ins do their job; unknown, invalid and failing calls answer with an error."""

import asyncio
import datetime

import pytest

from pispeaker.config import LiveConfig
from pispeaker.emulator import LiveEmulator, Reply, ToolCall
from pispeaker.live.genai import connect_config
from pispeaker.live.link import LiveLink
from pispeaker.live.port import ToolRequest, TurnComplete
from pispeaker.tools import Tool, ToolBox, builtin_tools
from tests.conftest import Recorder, padded, speech

NOON = datetime.datetime(2026, 11, 21, 12, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=1)))


def _box(calls: list[object]) -> ToolBox:
    return ToolBox(builtin_tools(lambda: calls.append("end"), calls.append, lambda: NOON))


async def test_builtins_do_their_job() -> None:
    calls: list[object] = []
    box = _box(calls)
    assert await box.call("set_volume", {"level": 35}) == {"output": "volume set to 35"}
    assert await box.call("get_local_time", {}) == {"output": "2026-11-21T12:00:00+01:00"}
    assert "output" in await box.call("end_conversation", {})
    assert calls == [35, "end"]


@pytest.mark.parametrize("level", [-1, 101, "loud", None])
async def test_set_volume_rejects_bad_levels_with_an_error_response(level: object) -> None:
    calls: list[object] = []
    answer = await _box(calls).call("set_volume", {"level": level})
    assert "0 to 100" in answer["error"]
    assert calls == []


async def test_unknown_tool_answers_with_an_error_listing_the_real_ones() -> None:
    answer = await _box([]).call("launch_rockets", {})
    assert "unknown tool 'launch_rockets'" in answer["error"]
    assert "get_local_time" in answer["error"]


async def test_a_failing_tool_answers_with_an_error() -> None:
    async def broken(_args: dict[str, object]) -> str:
        raise RuntimeError("sensor unplugged")

    box = ToolBox([Tool("read_sensor", "x", {"type": "object"}, broken)])
    assert await box.call("read_sensor", {}) == {"error": "read_sensor failed: sensor unplugged"}


async def test_a_cancelled_tool_stays_cancelled() -> None:
    started = asyncio.Event()

    async def slow(_args: dict[str, object]) -> str:
        started.set()
        await asyncio.sleep(60)
        return "never"

    box = ToolBox([Tool("slow", "x", {"type": "object"}, slow)])
    task = asyncio.create_task(box.call("slow", {}))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_declared_in_the_setup_and_answered_end_to_end(emulator: LiveEmulator) -> None:
    emulator.script.push(
        Reply(audio="tone", seconds=0.2, tool_calls=(ToolCall("set_volume", {"level": 7}),))
    )
    calls: list[object] = []
    box, recorder = _box(calls), Recorder()
    live = LiveConfig().model_copy(
        update={
            "base_url": emulator.base_url,
            "ca_file": emulator.ca_file,
            "silence_duration_ms": 200,
        }
    )
    link = LiveLink(live, emulator.api_key, recorder, tools=list(box.tools.values()))
    link.send_audio(padded(speech(0.4)))
    link.open()
    request = await recorder.wait_for(ToolRequest)
    assert isinstance(request, ToolRequest)
    await link.respond(request, await box.call(request.name, request.args))
    await recorder.wait_for(TurnComplete)
    await link.close()
    [setup] = emulator.timeline.of("setup")
    tools = setup.data["setup"]["tools"]
    [declared] = [tool["functionDeclarations"] for tool in tools if "functionDeclarations" in tool]
    assert [d["name"] for d in declared] == ["end_conversation", "set_volume", "get_local_time"]
    assert {"googleSearch": {}} in tools  # on by default
    assert declared[1]["parametersJsonSchema"]["required"] == ["level"]
    [answered] = emulator.timeline.of("tool.response")
    assert answered.data["responses"][0]["response"] == {"output": "volume set to 7"}
    # gemini-3.8-live runs set_volume in the background; its answer needs no more words.
    assert answered.data["responses"][0]["scheduling"] == "SILENT"
    assert [d.get("behavior") for d in declared] == ["NON_BLOCKING", "NON_BLOCKING", "BLOCKING"]
    assert calls == [7]
    no_search = LiveConfig().model_copy(update={"google_search": False})
    assert connect_config(no_search, tools=[]).tools is None  # no tools: no tools key


class _Offered:
    """A ToolSource whose offer changes between looks, as MCP servers come and go."""

    def __init__(self, *offers: list[Tool]) -> None:
        self._offers = list(offers)
        self.looks = 0

    def tools(self) -> list[Tool]:
        return self._offers[min(self.looks, len(self._offers) - 1)]

    async def refresh(self) -> None:
        self.looks += 1


def _echo(name: str) -> Tool:
    async def run(args: dict[str, object]) -> str:
        return f"{name} got {args}"

    return Tool(name, f"{name} for a test", {"type": "object"}, run)


async def test_a_tool_source_adds_its_tools_and_built_ins_win_a_clash() -> None:
    source = _Offered([_echo("HassTurnOn"), _echo("set_volume")])
    box = ToolBox(_box([]).builtins.values(), source)
    assert [tool.name for tool in box.declared()] == [
        "HassTurnOn",
        "set_volume",
        "end_conversation",
        "get_local_time",
    ]
    assert await box.call("HassTurnOn", {"area": "kitchen"}) == {
        "output": "HassTurnOn got {'area': 'kitchen'}"
    }
    assert await box.call("set_volume", {"level": 5}) == {"output": "volume set to 5"}


async def test_each_session_declares_the_tools_on_offer_when_it_opens(
    emulator: LiveEmulator,
) -> None:
    source = _Offered([], [_echo("HassTurnOn")])
    box, recorder = ToolBox([], source), Recorder()
    live = LiveConfig().model_copy(
        update={"base_url": emulator.base_url, "ca_file": emulator.ca_file}
    )
    link = LiveLink(live, emulator.api_key, recorder, tools=box.declared)
    for session in (1, 2):
        link.open()
        await emulator.timeline.wait_for("setup", lambda event, n=session: event.connection == n)
        await source.refresh()  # the server came back meanwhile
    await link.close()
    declared = [
        [
            d["name"]
            for tool in setup.data["setup"].get("tools", [])
            for d in tool.get("functionDeclarations", [])
        ]
        for setup in emulator.timeline.of("setup")
    ]
    assert declared == [[], ["HassTurnOn"]]
