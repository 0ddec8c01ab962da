"""Real MCP servers for tests/test_mcphub.py, each run in a process of its own.

``home``: a Home-Assistant-like server built with the SDK's MCPServer: HassTurnOn, HassTurnOff
and GetLiveContext as Home Assistant names them, and faults: SlowQuery never finishes,
BoilerStatus fails, HugeReport answers 100 kB, Snapshot answers an image, OddSchema declares
a schema the Live API cannot use, set_volume clashes with a built-in, Pid gives the server's
process id. Every call, and every SlowQuery start and cancellation, is appended to the
``--record`` file as a JSON line, so that a test sees what the server saw.

``garbage``: a hand-written stdio server that completes the handshake, then answers Garbage
with a line that is not JSON, Wrong with a malformed result, Refuse with a JSON-RPC error,
Liar against its own output schema and Silent not at all; Echo works.

    python tests/mcp_servers.py home [--stdio] --record FILE
    python tests/mcp_servers.py home --http [--sse] [--port N] --record FILE
    python tests/mcp_servers.py garbage

Over HTTP the server binds 127.0.0.1 (a free port unless --port), prints ``PORT <n>`` once it
accepts connections, and answers 401 to a request without ``Authorization: Bearer <token>``,
the token given in $MCP_TEST_TOKEN. ``--modern``: it refuses the initialize handshake as a
server speaking only the 2026-07-28 protocol does.
"""

import argparse
import asyncio
import json
import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

HUGE = 100_000
TOKEN_ENV = "MCP_TEST_TOKEN"
STATES = {"kitchen light": "off", "hall light": "on", "boiler": "idle"}


def home_server(record: Path, modern: bool = False) -> "MCPServer":
    """The Home-Assistant-like server (the SDK is imported here: ``garbage`` starts fast)."""
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.shared.exceptions import MCPError
    from mcp.types import (
        UNSUPPORTED_PROTOCOL_VERSION,
        CallToolResult,
        ImageContent,
        TextContent,
        ToolAnnotations,
    )

    class NoHandshake:
        """Refuses initialize as too old, as a server of the 2026-07-28 protocol only."""

        async def __call__(self, ctx: Any, call_next: Any) -> Any:
            if ctx.method == "initialize":
                supported = {"supported": ["2026-07-28"], "requested": "?"}
                raise MCPError(UNSUPPORTED_PROTOCOL_VERSION, "Unsupported version", supported)
            return await call_next(ctx)

    server: MCPServer = MCPServer("home", middleware=[NoHandshake()] if modern else [])

    def note(entry: dict[str, Any]) -> None:
        with record.open("a") as file:
            file.write(json.dumps(entry) + "\n")

    def switch(
        tool: str, state: str, name: str | None, area: str | None, domain: str | None
    ) -> str:
        note({"tool": tool, "args": {"name": name, "area": area, "domain": domain}})
        what = name or f"{area or 'every'} {domain or 'device'}"
        STATES[what] = state
        return f"Turned {state} the {what}"

    @server.tool(name="HassTurnOn", description="Turns on a device or entity.")
    def turn_on(name: str | None = None, area: str | None = None, domain: str | None = None) -> str:
        return switch("HassTurnOn", "on", name, area, domain)

    @server.tool(name="HassTurnOff", description="Turns off a device or entity.")
    def turn_off(
        name: str | None = None, area: str | None = None, domain: str | None = None
    ) -> str:
        return switch("HassTurnOff", "off", name, area, domain)

    @server.tool(
        name="GetLiveContext",
        description="The states of the devices in the home.",
        annotations=ToolAnnotations(read_only_hint=True),
    )
    def live_context() -> str:
        return "\n".join(f"{name}: {state}" for name, state in STATES.items())

    @server.tool(name="SlowQuery", description="Never finishes; notes its start and cancel.")
    async def slow(tag: str) -> str:
        note({"event": "started", "tag": tag})
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            note({"event": "cancelled", "tag": tag})
            raise
        return "too late"

    @server.tool(name="BoilerStatus", description="Fails.")
    def boiler() -> str:
        raise ToolError("the boiler is offline")

    @server.tool(name="HugeReport", description="A 100 kB answer.")
    def huge() -> str:
        return "x" * HUGE

    @server.tool(name="Snapshot", description="An image, and structured data.")
    def snapshot(text: bool = True) -> CallToolResult:
        content: list[Any] = [ImageContent(data="AAAA", mime_type="image/png")]
        if text:
            content.append(TextContent(text="the hall camera"))
        return CallToolResult(content=content, structured_content={"camera": "hall", "ok": True})

    @server.tool(name="set_volume", description="Sets the volume of the living room TV.")
    def tv_volume(level: int) -> str:
        return f"TV volume {level}"

    @server.tool(name="Pid", description="The server's process id.")
    def pid() -> str:
        return str(os.getpid())

    @server.tool(name="OddSchema", description="Declares a schema the Live API cannot use.")
    def odd(level: int = 0) -> str:
        return str(level)

    # A boolean subschema is valid JSON Schema, but the Live API's Schema has no such thing.
    tool = server._tool_manager.get_tool("OddSchema")
    assert tool is not None
    tool.parameters = {"type": "object", "properties": {"level": True}}
    return server


def serve_http(server: "MCPServer", token: str, port: int, sse: bool) -> None:
    """Serve ``server`` on 127.0.0.1:``port`` (0: a free one), to bearer ``token`` only."""
    import uvicorn

    app = server.sse_app() if sse else server.streamable_http_app()

    async def guarded(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            if headers.get(b"authorization") != f"Bearer {token}".encode():
                await send({"type": "http.response.start", "status": 401, "headers": []})
                await send({"type": "http.response.body", "body": b"unauthorized"})
                return
        await app(scope, receive, send)

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    uvicorn_server = uvicorn.Server(uvicorn.Config(guarded, log_level="warning"))

    async def run() -> None:
        serving = asyncio.create_task(uvicorn_server.serve(sockets=[sock]))
        while not uvicorn_server.started:
            if serving.done():
                await serving
            await asyncio.sleep(0.01)
        print(f"PORT {sock.getsockname()[1]}", flush=True)
        await serving

    asyncio.run(run())


def garbage() -> None:
    """The misbehaving stdio server: a 2025-11-25 handshake, then faults (module doc)."""
    tools: list[dict[str, Any]] = [
        {"name": name, "description": name, "inputSchema": {"type": "object"}}
        for name in ("Garbage", "Wrong", "Silent", "Refuse", "Liar", "Echo")
    ]
    tools[4]["outputSchema"] = {"type": "object", "properties": {"ok": {"type": "boolean"}}}
    for line in sys.stdin:
        message = json.loads(line)
        if "id" not in message:
            continue  # a notification
        answer: dict[str, Any] = {"jsonrpc": "2.0", "id": message["id"]}
        method = message.get("method")
        if method == "initialize":
            answer["result"] = {
                "protocolVersion": "2025-11-25",
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "garbage", "version": "1"},
            }
        elif method == "tools/list":
            answer["result"] = {"tools": tools}
        elif method == "ping":
            answer["result"] = {}
        elif method == "tools/call":
            name = message["params"]["name"]
            if name == "Silent":
                continue
            if name == "Garbage":
                sys.stdout.write("}{ this is not JSON-RPC\n")
                sys.stdout.flush()
                continue
            if name == "Refuse":
                answer["error"] = {"code": -32602, "message": "Unknown arguments"}
            elif name == "Liar":  # against its own outputSchema
                answer["result"] = {"content": [], "structuredContent": {"ok": "yes"}}
            else:
                text = [{"type": "text", "text": "echo"}]
                answer["result"] = {"content": "not a list" if name == "Wrong" else text}
        else:
            answer["error"] = {"code": -32601, "message": f"no method {method}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=["home", "garbage"])
    parser.add_argument("--stdio", action="store_true", help="over stdio (the default)")
    parser.add_argument("--http", action="store_true", help="over streamable HTTP")
    parser.add_argument("--sse", action="store_true", help="with --http: SSE at /sse")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--modern", action="store_true")
    parser.add_argument("--record", type=Path, default=Path(os.devnull))
    args = parser.parse_args()
    if args.kind == "garbage":
        garbage()
        return
    server = home_server(args.record, modern=args.modern)
    if args.http:
        serve_http(server, os.environ[TOKEN_ENV], args.port, args.sse)
    else:
        server.run("stdio")


if __name__ == "__main__":
    main()
