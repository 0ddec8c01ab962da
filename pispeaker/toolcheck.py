"""``pispeaker tools``: every tool the speaker would declare, built-in and per MCP server,
with each server's reachability; ``--call NAME --args JSON`` calls one, as the model would
("does my Home Assistant token work?")."""

import contextlib
import json
import os
from typing import TYPE_CHECKING, Any, TextIO

from pispeaker.app import tool_servers
from pispeaker.config import Config
from pispeaker.credentials import mcp_tokens
from pispeaker.errors import UsageError
from pispeaker.live.models import rules_of
from pispeaker.tools import Tool, ToolBox, builtin_tools

if TYPE_CHECKING:
    from pispeaker.mcphub import McpHub, ServerState


async def list_tools(config: Config, out: TextIO) -> int:
    """Print the tools; 0 if every configured MCP server was reached, else 1."""
    async with _servers(config) as hub:
        rules = rules_of(config.live.model)
        out.write("built-in:\n")
        for tool in _builtins():
            out.write(_tool_line(tool, rules.runs_async(tool)))
        if config.live.google_search:
            out.write("  Google Search (the service's own; live.google_search)\n")
        if hub is None:
            out.write("no MCP servers configured ([[tools.mcp]] in the config file)\n")
            return 0
        offered = {tool.name: tool for tool in hub.tools()}
        for state in hub.states():
            out.write(f"\nMCP server {state.name}: {_reachability(state)}\n")
            for name in state.tools:
                out.write(_tool_line(offered[name], rules.runs_async(offered[name])))
            for problem in state.problems:
                out.write(f"  ! {problem}\n")
        return 0 if all(state.reachable for state in hub.states()) else 1


async def call_tool(config: Config, name: str, arguments: str, out: TextIO) -> int:
    """Call tool ``name`` with ``arguments`` (a JSON object) and print the answer the model
    would get; 0 for an output, 1 for an error answer."""
    args = _arguments(arguments)
    async with _servers(config) as hub:
        box = ToolBox(_builtins(), hub)
        answer = await box.call(name, args)
    out.write(json.dumps(answer, ensure_ascii=False, indent=2) + "\n")
    return 0 if "output" in answer else 1


def _servers(config: Config) -> contextlib.AbstractAsyncContextManager["McpHub | None"]:
    """The MCP servers of ``config``, connected (None if there are none)."""
    return tool_servers(config.tools.mcp, mcp_tokens(config.tools.mcp, os.environ))


def _builtins() -> list[Tool]:
    """The built-in tools, acting on nothing: this is a check, not the service."""
    return builtin_tools(lambda: None, lambda _level: None)


def _tool_line(tool: Tool, runs_async: bool) -> str:
    kind = "NON_BLOCKING" if runs_async else "BLOCKING"
    return f"  {tool.name} ({kind}): {tool.description}\n"


def _reachability(state: "ServerState") -> str:
    if state.reachable:
        return f"reachable, {len(state.tools)} tools"
    return f"UNREACHABLE: {state.reason}"


def _arguments(text: str) -> dict[str, Any]:
    try:
        args = json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(
            f'--args is not JSON ({error}); give an object, e.g. \'{{"name": "kitchen light"}}\''
        ) from None
    if not isinstance(args, dict):
        raise UsageError(
            f'--args must be a JSON object, e.g. \'{{"area": "kitchen"}}\', not {text!r}'
        )
    return args
