"""McpHub against real MCP servers (tests/mcp_servers.py, each in a process of its own) over
streamable HTTP, SSE and stdio: what the model is offered, what a call does on the server,
and each way a server can fail.

Nothing here is timed except by generous hang bounds (HANG_S): a test waits for what the
server recorded, not for a while. Ports are free ones, files are per test, so several copies
of the suite can run at once.
"""

import asyncio
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pispeaker.config import McpServerConfig
from pispeaker.mcphub import BUILTIN_NAMES, RESULT_LIMIT, McpHub, ServerState, _schema_problem
from pispeaker.tools import ToolError

SERVERS = Path(__file__).with_name("mcp_servers.py")
TOKEN = f"tok-{secrets.token_hex(16)}"
#: A bound for what must happen, never a budget for how fast.
HANG_S = 30.0
#: timeout_s where a test waits for a timeout on purpose: short, yet ample for a local answer.
SHORT_S = 2.0
HOME_TOOLS = {
    "HassTurnOn",
    "HassTurnOff",
    "GetLiveContext",
    "SlowQuery",
    "BoilerStatus",
    "HugeReport",
    "Snapshot",
    "home_set_volume",  # set_volume is a built-in's name
    "Pid",
}


class HttpServer:
    """tests/mcp_servers.py home over HTTP, in a subprocess, on a free port (or ``port``)."""

    def __init__(self, directory: Path, *flags: str, port: int = 0) -> None:
        self.record = directory / f"http-{secrets.token_hex(4)}.jsonl"
        self.record.touch()
        command = [sys.executable, str(SERVERS), "home", "--http", "--port", str(port)]
        self.process = subprocess.Popen(
            [*command, "--record", str(self.record), *flags],
            stdout=subprocess.PIPE,
            env=os.environ | {"MCP_TEST_TOKEN": TOKEN},
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # bounded by pytest-timeout
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError(f"the test server did not start: it said {line!r}")
        self.port = int(line.split()[1])
        self.url = f"http://127.0.0.1:{self.port}/{'sse' if '--sse' in flags else 'mcp'}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture
def home(tmp_path: Path) -> Iterator[HttpServer]:
    server = HttpServer(tmp_path)
    yield server
    server.stop()


async def offered(hub: McpHub, name: str) -> None:
    """Refresh until the tool ``name`` is on offer: a server's start-up may take longer than
    a short timeout_s on a busy machine (it is then tried again, as a conversation would)."""
    async with asyncio.timeout(HANG_S * 2):
        while name not in {tool.name for tool in hub.tools()}:
            await hub.refresh()


def http(server: HttpServer, name: str = "home", **fields: Any) -> McpServerConfig:
    return McpServerConfig(name=name, url=server.url, **{"timeout_s": HANG_S} | fields)


def stdio(record: Path, *args: str, name: str = "home", **fields: Any) -> McpServerConfig:
    record.touch()
    command = [sys.executable, str(SERVERS), *(args or ("home", "--record", str(record)))]
    return McpServerConfig(name=name, command=command, **{"timeout_s": HANG_S} | fields)


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def recorded(path: Path, entry: dict[str, Any]) -> None:
    """Wait until the server has recorded ``entry``."""
    async with asyncio.timeout(HANG_S):
        while True:
            if entry in records(path):
                return
            await asyncio.sleep(0.02)  # the server is another process: its file is polled


def state_of(hub: McpHub, name: str = "home") -> ServerState:
    return next(state for state in hub.states() if state.name == name)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def warnings_about(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.levelno == logging.WARNING and text in record.getMessage()
    ]


# -- connecting, listing, calling -----------------------------------------------------------


async def test_http_server_lists_its_tools_and_runs_calls(home: HttpServer) -> None:
    async with McpHub([http(home)], {"home": TOKEN}) as hub:
        await hub.refresh()
        state = state_of(hub)
        assert (state.reachable, state.reason) == (True, "")
        assert set(state.tools) == HOME_TOOLS
        tools = {tool.name: tool for tool in hub.tools()}
        assert set(tools) == HOME_TOOLS
        turn_on = tools["HassTurnOn"]
        assert turn_on.description == "Turns on a device or entity."
        assert turn_on.parameters["type"] == "object"
        assert set(turn_on.parameters["properties"]) == {"name", "area", "domain"}
        # Actions and reads alike: the model needs the answer.
        assert {(tool.blocking, tool.scheduling) for tool in tools.values()} == {
            (True, "WHEN_IDLE")
        }

        args = {"name": "kitchen light", "area": "kitchen", "domain": "light"}
        assert await turn_on.run(args) == "Turned on the kitchen light"
        assert "kitchen light: on" in await hub.call("GetLiveContext", {})

    assert records(home.record) == [{"tool": "HassTurnOn", "args": args}]


async def test_stdio_server_lists_calls_and_is_stopped_on_close(tmp_path: Path) -> None:
    threads = set(threading.enumerate())
    record = tmp_path / "stdio.jsonl"
    async with McpHub([stdio(record)], {}) as hub:
        await hub.refresh()
        assert set(state_of(hub).tools) == HOME_TOOLS
        answer = await hub.call("HassTurnOff", {"area": "hall", "domain": "light"})
        assert answer == "Turned off the hall light"
        pid = int(await hub.call("Pid", {}))

    assert records(record) == [
        {"tool": "HassTurnOff", "args": {"name": None, "area": "hall", "domain": "light"}}
    ]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # stopped and reaped
    assert asyncio.all_tasks() == {asyncio.current_task()}
    assert set(threading.enumerate()) == threads


async def test_sse_server(tmp_path: Path) -> None:
    server = await asyncio.to_thread(HttpServer, tmp_path, "--sse")
    try:
        async with McpHub([http(server)], {"home": TOKEN}) as hub:
            await hub.refresh()
            assert set(state_of(hub).tools) == HOME_TOOLS
            assert await hub.call("HassTurnOn", {"name": "boiler"}) == "Turned on the boiler"
    finally:
        server.stop()


async def test_server_of_the_2026_protocol_only_is_connected_by_discovery(
    tmp_path: Path,
) -> None:
    server = await asyncio.to_thread(HttpServer, tmp_path, "--modern")
    try:
        async with McpHub([http(server)], {"home": TOKEN}) as hub:
            await hub.refresh()
            assert state_of(hub).reachable, state_of(hub).reason
            assert await hub.call("HassTurnOn", {"name": "hall light"}) == (
                "Turned on the hall light"
            )
    finally:
        server.stop()


async def test_before_the_first_refresh_nothing_is_offered(home: HttpServer) -> None:
    async with McpHub([http(home)], {"home": TOKEN}) as hub:
        assert hub.tools() == []
        state = state_of(hub)
        assert not state.reachable
        assert "not connected yet" in state.reason
        with pytest.raises(ToolError, match="no MCP server offers a tool called 'HassTurnOn'"):
            await hub.call("HassTurnOn", {})


# -- the token ------------------------------------------------------------------------------


async def test_the_token_is_never_logged_nor_shown(
    home: HttpServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    nowhere = McpServerConfig(name="nowhere", url=home.url.replace("/mcp", "/nope"))
    async with McpHub([http(home), nowhere], {"home": TOKEN, "nowhere": TOKEN}) as hub:
        await hub.refresh()
        assert state_of(hub).reachable
        assert not state_of(hub, "nowhere").reachable
        errors = []
        assert await hub.call("HassTurnOn", {"name": "boiler"}) == "Turned on the boiler"
        for name in ("BoilerStatus", "missing"):
            with pytest.raises(ToolError) as failure:
                await hub.call(name, {})
            errors.append(str(failure.value))
        shown = [repr(hub), *map(repr, hub.states()), *map(repr, hub.tools()), *errors]

    assert "Authorization" not in caplog.text
    assert TOKEN not in caplog.text
    assert all(TOKEN not in text for text in shown)


async def test_a_wrong_token_leaves_the_server_out_with_the_reason(
    home: HttpServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with McpHub([http(home)], {"home": "not-the-token"}) as hub:
        await hub.refresh()
        await hub.refresh()
        state = state_of(hub)
        assert not state.reachable
        assert "refused the token (HTTP 401)" in state.reason
        assert "mcp-home-token" in state.reason
        assert hub.tools() == []
    assert len(warnings_about(caplog, "MCP server home is unreachable")) == 1


async def test_a_token_no_header_can_carry_is_not_sent(
    home: HttpServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with McpHub([http(home)], {"home": f"{TOKEN}\nsecond line"}) as hub:
        await hub.refresh()
        assert "its token has characters a header cannot carry" in state_of(hub).reason
    assert TOKEN not in caplog.text


async def test_no_token_where_one_is_needed(home: HttpServer) -> None:
    async with McpHub([http(home)], {}) as hub:
        await hub.refresh()
        assert "asks for a token (HTTP 401) and none is configured" in state_of(hub).reason


async def test_a_wrong_token_for_an_sse_server(tmp_path: Path) -> None:
    server = await asyncio.to_thread(HttpServer, tmp_path, "--sse")
    try:
        async with McpHub([http(server)], {"home": "not-the-token"}) as hub:
            await hub.refresh()
            assert "refused the token (HTTP 401)" in state_of(hub).reason
    finally:
        server.stop()


async def test_a_url_that_is_no_mcp_endpoint(home: HttpServer) -> None:
    config = McpServerConfig(name="home", url=home.url.replace("/mcp", "/api/nope"))
    async with McpHub([config], {"home": TOKEN}) as hub:
        await hub.refresh()
        assert "/api/nope answered HTTP 404: check the url" in state_of(hub).reason


# -- outages --------------------------------------------------------------------------------


async def test_a_server_down_at_start_is_logged_once_and_taken_back_when_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pispeaker.mcphub")
    port = free_port()
    config = McpServerConfig(name="home", url=f"http://127.0.0.1:{port}/mcp", timeout_s=HANG_S)
    async with McpHub([config], {"home": TOKEN}) as hub:
        await hub.refresh()
        await hub.refresh()
        state = state_of(hub)
        assert not state.reachable
        assert f"cannot reach http://127.0.0.1:{port}/mcp" in state.reason
        assert hub.tools() == []

        server = await asyncio.to_thread(HttpServer, tmp_path, port=port)
        try:
            await hub.refresh()
            assert state_of(hub).reachable
            assert set(state_of(hub).tools) == HOME_TOOLS
            assert await hub.call("HassTurnOn", {"name": "boiler"}) == "Turned on the boiler"
        finally:
            server.stop()

    assert len(warnings_about(caplog, "MCP server home is unreachable")) == 1
    assert "MCP server home is back: it lists 10 tools" in caplog.messages


async def test_an_http_server_that_dies_mid_conversation(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = await asyncio.to_thread(HttpServer, tmp_path)
    async with McpHub([http(server)], {"home": TOKEN}) as hub:
        await hub.refresh()
        server.stop()
        with pytest.raises(ToolError, match="home server"):
            await hub.call("HassTurnOn", {"name": "boiler"})
        await hub.refresh()
        state = state_of(hub)
        assert not state.reachable
        assert "cannot reach" in state.reason
        assert hub.tools() == []
    assert len(warnings_about(caplog, "MCP server home is unreachable")) == 1


async def test_a_stdio_server_that_dies_mid_conversation_is_restarted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pispeaker.mcphub")
    async with McpHub([stdio(tmp_path / "stdio.jsonl")], {}) as hub:
        await hub.refresh()
        pid = int(await hub.call("Pid", {}))
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(ToolError, match="the home server closed the connection"):
            await hub.call("HassTurnOn", {"name": "boiler"})
        assert not state_of(hub).reachable
        assert "tried again when the next conversation opens" in state_of(hub).reason
        await hub.refresh()
        assert state_of(hub).reachable
        assert int(await hub.call("Pid", {})) != pid
    assert any("MCP server home reconnected" in message for message in caplog.messages)


async def test_a_server_that_never_answers_the_handshake(tmp_path: Path) -> None:
    mute = [sys.executable, "-c", "import sys; sys.stdin.read()"]  # ends when stdin closes
    config = McpServerConfig(name="mute", command=mute, timeout_s=SHORT_S)
    async with McpHub([config], {}) as hub:
        await hub.refresh()
        state = state_of(hub, "mute")
        assert not state.reachable
        assert state.reason.startswith("it did not answer within 2 s")
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_an_unknown_program(tmp_path: Path) -> None:
    config = McpServerConfig(name="home", command=[str(tmp_path / "no-such-server")])
    async with McpHub([config], {}) as hub:
        await hub.refresh()
        assert "no such program; check the command" in state_of(hub).reason


# -- calls that fail ------------------------------------------------------------------------


async def test_a_slow_tool_times_out_and_its_handler_is_cancelled(home: HttpServer) -> None:
    async with McpHub([http(home, timeout_s=SHORT_S)], {"home": TOKEN}) as hub:
        await hub.refresh()
        with pytest.raises(ToolError, match=r"^the home server did not answer within 2 s$"):
            await hub.call("SlowQuery", {"tag": "slow"})
        await recorded(home.record, {"event": "cancelled", "tag": "slow"})
        assert await hub.call("HassTurnOn", {"name": "boiler"}) == "Turned on the boiler"


@pytest.mark.parametrize("transport", ["http", "http-2026", "stdio"])
async def test_cancelling_a_call_cancels_its_handler_on_the_server(
    transport: str, tmp_path: Path
) -> None:
    """The SDK sends notifications/cancelled (over HTTP of the 2026-07-28 protocol, it
    abandons the request's POST instead); the server cancels the handler."""
    server = None
    if transport == "stdio":
        record = tmp_path / "stdio.jsonl"
        config = stdio(record)
    else:
        flags = ["--modern"] if transport == "http-2026" else []
        server = await asyncio.to_thread(HttpServer, tmp_path, *flags)
        config, record = http(server), server.record
    try:
        async with McpHub([config], {"home": TOKEN}) as hub:
            await hub.refresh()
            assert state_of(hub).reachable, state_of(hub).reason
            call = asyncio.create_task(hub.call("SlowQuery", {"tag": transport}))
            await recorded(record, {"event": "started", "tag": transport})
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            await recorded(record, {"event": "cancelled", "tag": transport})
            assert state_of(hub).reachable
            assert await hub.call("HassTurnOn", {"name": "boiler"}) == "Turned on the boiler"
    finally:
        if server is not None:
            server.stop()


async def test_a_cancelled_conversation_still_closes_everything(tmp_path: Path) -> None:
    connected = asyncio.Event()
    pids = []

    async def conversation() -> None:
        async with McpHub([stdio(tmp_path / "stdio.jsonl")], {}) as hub:
            await hub.refresh()
            pids.append(int(await hub.call("Pid", {})))
            connected.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(conversation())
    await connected.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(ProcessLookupError):
        os.kill(pids[0], 0)
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_arguments_the_server_refuses(home: HttpServer) -> None:
    async with McpHub([http(home)], {"home": TOKEN}) as hub:
        await hub.refresh()
        with pytest.raises(ToolError, match="level"):
            await hub.call("home_set_volume", {"level": "loud"})
        assert state_of(hub).reachable


async def test_a_tool_error_goes_back_as_its_text(home: HttpServer) -> None:
    async with McpHub([http(home)], {"home": TOKEN}) as hub:
        await hub.refresh()
        with pytest.raises(ToolError, match="the boiler is offline"):
            await hub.call("BoilerStatus", {})
        assert state_of(hub).reachable


async def test_an_oversized_result_is_cut(home: HttpServer) -> None:
    async with McpHub([http(home)], {"home": TOKEN}) as hub:
        await hub.refresh()
        answer = await hub.call("HugeReport", {})
    cut = f"… (cut: {100_000 - RESULT_LIMIT} more characters)"
    assert answer == "x" * RESULT_LIMIT + cut


async def test_images_are_noted_and_structured_content_stands_in_for_missing_text(
    home: HttpServer,
) -> None:
    async with McpHub([http(home)], {"home": TOKEN}) as hub:
        await hub.refresh()
        assert await hub.call("Snapshot", {}) == "[image omitted]\nthe hall camera"
        assert await hub.call("Snapshot", {"text": False}) == (
            '[image omitted]\n{"camera":"hall","ok":true}'
        )


async def test_malformed_answers_are_isolated(home: HttpServer, tmp_path: Path) -> None:
    garbage = stdio(tmp_path / "garbage.jsonl", "garbage", name="garbage", timeout_s=SHORT_S)
    async with McpHub([garbage, http(home)], {"home": TOKEN}) as hub:
        await offered(hub, "Garbage")
        assert set(state_of(hub, "garbage").tools) == {
            "Garbage",
            "Wrong",
            "Silent",
            "Refuse",
            "Liar",
            "Echo",
        }
        failures = await asyncio.gather(
            hub.call("Garbage", {}), hub.call("Silent", {}), return_exceptions=True
        )
        assert [str(failure) for failure in failures] == [
            "the garbage server did not answer within 2 s"
        ] * 2
        for name in ("Wrong", "Liar"):
            with pytest.raises(ToolError, match=f"the garbage server answered {name} malformed"):
                await hub.call(name, {})
        with pytest.raises(
            ToolError, match="the garbage server answered Refuse with an error: Unknown arguments"
        ):
            await hub.call("Refuse", {})
        assert await hub.call("Echo", {}) == "echo"
        assert await hub.call("HassTurnOn", {"name": "boiler"}) == "Turned on the boiler"
        await hub.refresh()
        assert state_of(hub, "garbage").reachable


# -- what is offered ------------------------------------------------------------------------


async def test_allow_offers_only_the_allowed_and_reports_what_is_not_listed(
    home: HttpServer, caplog: pytest.LogCaptureFixture
) -> None:
    allow = ["GetLiveContext", "HassTurnOn", "HassToggle"]
    async with McpHub([http(home, allow=allow)], {"home": TOKEN}) as hub:
        await hub.refresh()
        await hub.refresh()
        state = state_of(hub)
        assert state.tools == ("HassTurnOn", "GetLiveContext")
        [problem] = state.problems
        assert "allow names 'HassToggle', but the server lists no such tool" in problem
    assert len(warnings_about(caplog, "'HassToggle'")) == 1


async def test_clashing_names_get_the_server_prefix_or_are_left_out(home: HttpServer) -> None:
    servers = [http(home), http(home, name="attic")]
    async with McpHub(servers, {"home": TOKEN, "attic": TOKEN}) as hub:
        await hub.refresh()
        assert set(state_of(hub, "attic").tools) == {
            f"attic_{name}" if name != "home_set_volume" else "attic_set_volume"
            for name in HOME_TOOLS
        }
        assert await hub.call("attic_HassTurnOn", {"name": "attic"}) == "Turned on the attic"

    reserved = [*BUILTIN_NAMES, "home_set_volume"]
    async with McpHub([http(home)], {"home": TOKEN}, reserved=reserved) as hub:
        await hub.refresh()
        state = state_of(hub)
        assert set(state.tools) == HOME_TOOLS - {"home_set_volume"}
        assert any("'set_volume' and home_set_volume are both taken" in p for p in state.problems)


async def test_a_schema_the_live_api_cannot_use_is_left_out(home: HttpServer) -> None:
    async with McpHub([http(home)], {"home": TOKEN}) as hub:
        await hub.refresh()
        assert "OddSchema" not in state_of(hub).tools
        assert any(
            "'OddSchema' is left out: its input schema gives argument 'level' true" in problem
            for problem in state_of(hub).problems
        )


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        ({"type": "object"}, None),
        ({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}, None),
        (
            {"type": "object", "properties": {"a": {"anyOf": [{"type": "string"}, {}]}}},
            None,
        ),
        ({"type": "string"}, "does not describe an object of named arguments"),
        ([], "does not describe an object of named arguments"),
        ({"type": "object", "properties": []}, "properties that are not an object"),
        ({"type": "object", "required": "a"}, "'required' that is not a list of names"),
        (
            {"type": "object", "properties": {"a": {"type": "array", "items": False}}},
            "gives the items of argument 'a' false",
        ),
        (
            {"type": "object", "properties": {"a": {"anyOf": [True]}}},
            "gives a variant of argument 'a' true",
        ),
    ],
)
def test_schema_check(schema: Any, problem: str | None) -> None:
    found = _schema_problem(schema)
    assert found == problem if problem is None else problem in (found or "")
