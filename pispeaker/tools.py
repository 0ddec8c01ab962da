"""Functions the model may call, and running them safely.

A tool is a name, a description, a JSON schema for its arguments and an async function. The
ToolBox answers every call with ``{"output": ...}`` or ``{"error": ...}``: an unknown tool,
bad arguments or a failing tool become an error response the model can read, never a crash.
"""

import datetime
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

log = logging.getLogger(__name__)

Response = dict[str, Any]
#: What the model does with the answer of a NON_BLOCKING call: nothing more (SILENT), speak
#: of it once it has finished talking (WHEN_IDLE), or stop and speak of it now (INTERRUPT).
Scheduling = Literal["SILENT", "WHEN_IDLE", "INTERRUPT"]


@dataclass(frozen=True)
class Tool:
    """One callable function, declared to the model in the session setup.

    ``blocking``: the model needs the answer before it can go on (it waits, where the model
    can); otherwise it talks on while the call runs, and ``scheduling`` says what it does
    with the answer.
    """

    name: str
    description: str
    parameters: dict[str, Any]  # JSON schema of an object
    run: Callable[[dict[str, Any]], Awaitable[Any]]
    blocking: bool = True
    scheduling: Scheduling = "WHEN_IDLE"


class ToolError(Exception):
    """A tool's own, expected failure: its message goes back to the model."""


class ToolSource(Protocol):
    """Tools from outside pispeaker (MCP servers): those on offer now, and a fresh look."""

    def tools(self) -> list[Tool]:
        """The tools on offer now (those of the servers reachable at the last look)."""
        ...

    async def refresh(self) -> None:
        """Look again: reconnect what is down, list its tools. Never raises for a server's
        failure (it is logged, and its tools are left out)."""
        ...


class ToolBox:
    """The tools of a session, by name: the built-in ones, then those of ``extra``."""

    def __init__(self, tools: Iterable[Tool], extra: ToolSource | None = None) -> None:
        self.builtins = {tool.name: tool for tool in tools}
        self.extra = extra

    @property
    def tools(self) -> dict[str, Tool]:
        """Every tool on offer now; a built-in wins a clash (the source avoids them)."""
        extra = self.extra.tools() if self.extra is not None else []
        return {tool.name: tool for tool in extra} | self.builtins

    def declared(self) -> list[Tool]:
        """The tools a session opened now declares."""
        return list(self.tools.values())

    async def call(self, name: str, args: dict[str, Any]) -> Response:
        """Run tool ``name``; the answer is an output or an error, never an exception."""
        tools = self.tools
        tool = tools.get(name)
        if tool is None:
            log.warning("the model called an unknown tool %r", name)
            return {"error": f"unknown tool {name!r}; available: {', '.join(sorted(tools))}"}
        try:
            return {"output": await tool.run(args)}
        except ToolError as error:
            return {"error": str(error)}
        except Exception as error:  # logged: a tool bug must not end the conversation
            log.exception("tool %s failed", name)
            return {"error": f"{name} failed: {error}"}


def builtin_tools(
    end_conversation: Callable[[], None],
    set_volume: Callable[[int], None],
    now: Callable[[], datetime.datetime] = lambda: datetime.datetime.now().astimezone(),
) -> list[Tool]:
    """end_conversation, set_volume and get_local_time, wired to the given actions."""

    async def end(_args: dict[str, Any]) -> str:
        end_conversation()
        return "the conversation will end after your reply"

    async def volume(args: dict[str, Any]) -> str:
        level = args.get("level")
        if not isinstance(level, int | float) or not 0 <= level <= 100:
            raise ToolError(f"level must be a number from 0 to 100, got {level!r}")
        set_volume(round(level))
        return f"volume set to {round(level)}"

    async def local_time(_args: dict[str, Any]) -> str:
        return now().isoformat(timespec="seconds")

    return [
        Tool(
            "end_conversation",
            "End the conversation when the user is done (say goodbye first).",
            {"type": "object", "properties": {}},
            end,
            # The model says goodbye as the call runs; the answer needs no more words.
            blocking=False,
            scheduling="SILENT",
        ),
        Tool(
            "set_volume",
            "Set the speaker volume.",
            {
                "type": "object",
                "properties": {
                    "level": {
                        "type": "integer",
                        "minimum": 0,
                        "maximum": 100,
                        "description": "volume from 0 (silent) to 100 (loudest)",
                    }
                },
                "required": ["level"],
            },
            volume,
            # The model says "OK" as the call runs; the new volume is answer enough.
            blocking=False,
            scheduling="SILENT",
        ),
        Tool(
            "get_local_time",
            "The current local date and time with the UTC offset.",
            {"type": "object", "properties": {}},
            local_time,
            blocking=True,  # the model needs the time to answer; where it cannot wait, it
            scheduling="WHEN_IDLE",  # tells the time once it has finished talking
        ),
    ]
