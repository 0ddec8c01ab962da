"""Tool calls as the service makes them: blocking or not, answered by id, cancelled by barge-in.

A reply's calls go out in one ``toolCall``. A batch with a BLOCKING call (the 2.5 and 3.1
default) holds the reply until every call has its ``toolResponse``; a batch of NON_BLOCKING
calls (the 3.8 default) lets the model talk on, and each answer comes back as an
:class:`Answer` whose ``scheduling`` says when the model speaks about it. While calls are
pending the session is not resumable (an empty ``sessionResumptionUpdate`` says so). A
response naming no pending call closes the socket with 1008, as the real service does. A
barge-in cancels what is pending with ``toolCallCancellation``; late responses to those
calls then name no pending call. Every answer goes into the session history on arrival.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from pispeaker.emulator import wire
from pispeaker.emulator.channel import Channel
from pispeaker.emulator.handshake import SessionConfig
from pispeaker.emulator.script import FOLLOW_UP, Reply

INTERRUPT = "INTERRUPT"
WHEN_IDLE = "WHEN_IDLE"
SILENT = "SILENT"


@dataclass(frozen=True)
class Answer:
    """The response to a NON_BLOCKING call, and what the model says about it."""

    call_id: str
    name: str
    #: INTERRUPT, WHEN_IDLE or SILENT.
    scheduling: str
    follow_up: Reply


@dataclass(frozen=True)
class _Pending:
    name: str
    blocking: bool
    follow_up: Reply


class ToolCalls:
    """The pending tool calls of one connection, by id (ids are unique per emulator)."""

    def __init__(self, channel: Channel, config: SessionConfig) -> None:
        self.channel = channel
        self.config = config
        self._pending: dict[str, _Pending] = {}
        self._answered: asyncio.Event | None = None

    async def call(self, reply: Reply) -> None:
        """Send the reply's calls; return once all are answered if any is BLOCKING, else now."""
        blocking = any(self.config.blocking(call.name) for call in reply.tool_calls)
        ids = [f"function-call-{next(self.channel.shared.call_ids)}" for _ in reply.tool_calls]
        follow_up = reply.follow_up or FOLLOW_UP
        for call_id, call in zip(ids, reply.tool_calls, strict=True):
            self._pending[call_id] = _Pending(call.name, blocking, follow_up)
        self._answered = asyncio.Event() if blocking else None
        if self.config.resumable:  # not resumable while a call is pending
            await self.channel.send("sessionResumptionUpdate", {})
        function_calls = [
            {"id": call_id, "name": call.name, "args": call.args}
            for call_id, call in zip(ids, reply.tool_calls, strict=True)
        ]
        await self.channel.send("toolCall", {"functionCalls": function_calls})
        names = [call.name for call in reply.tool_calls]
        self.channel.record("tool.call", ids=ids, names=names, blocking=blocking)
        if self._answered is not None:
            await self._answered.wait()

    async def answer(self, body: dict[str, Any]) -> list[Answer]:
        """Take a ``toolResponse`` body: the answers to NON_BLOCKING calls in it.

        Closes with 1008 (and returns no answers) if any id is not pending.
        """
        responses = body.get("functionResponses", [])
        ids = [str(response.get("id", "")) for response in responses]
        self.channel.record("tool.response", ids=ids, responses=responses)
        if not ids or len(set(ids)) < len(ids) or not set(ids) <= set(self._pending):
            await self.channel.close(wire.NOT_FOUND)  # the real service's answer to unknown ids
            return []
        answers = [self._take(response) for response in responses]
        if self._answered and not any(call.blocking for call in self._pending.values()):
            self._answered.set()
        return [answer for answer in answers if answer is not None]

    async def cancel(self, blocking_only: bool = False) -> list[str]:
        """Cancel the pending calls (or only the BLOCKING ones, which belong to the reply in
        flight), telling the client if there were any; their ids."""
        cancelled = [i for i, call in self._pending.items() if call.blocking or not blocking_only]
        if cancelled:
            await self.channel.send("toolCallCancellation", {"ids": cancelled})
        for call_id in cancelled:
            del self._pending[call_id]
        return cancelled

    def _take(self, response: dict[str, Any]) -> Answer | None:
        """Settle the pending call ``response`` answers: its Answer if it is NON_BLOCKING."""
        call_id = str(response.get("id", ""))
        call = self._pending.pop(call_id)
        self.channel.remember("tool", f"{response.get('name', '')}: {response.get('response')}")
        if call.blocking:
            return None
        return Answer(call_id, call.name, scheduling(response), call.follow_up)


def scheduling(response: dict[str, Any]) -> str:
    """A function response's scheduling: its ``scheduling`` field, or ``response.scheduling``
    as the ai.google.dev tools guide writes it; WHEN_IDLE (the default) if neither is valid."""
    inner = response.get("response")
    nested = inner.get("scheduling") if isinstance(inner, dict) else None
    value = str(response.get("scheduling") or nested).upper()
    return value if value in (INTERRUPT, WHEN_IDLE, SILENT) else WHEN_IDLE
