"""Tool calls as the service makes them: blocking, one batch per reply, cancelled by barge-in.

A reply that calls tools sends ``toolCall`` and goes on only once every call has its
``toolResponse``; while calls are pending the session is not resumable (an empty
``sessionResumptionUpdate`` says so). A response naming no pending call closes the socket
with 1008, as the real service does. A barge-in cancels what is pending with
``toolCallCancellation``; late responses to those calls then name no pending call.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pispeaker.emulator import wire
from pispeaker.emulator.channel import Channel
from pispeaker.emulator.handshake import SessionConfig
from pispeaker.emulator.script import ToolCall


class ToolCalls:
    """The pending tool calls of one connection, by id (ids are unique per emulator)."""

    def __init__(self, channel: Channel, config: SessionConfig) -> None:
        self.channel = channel
        self.config = config
        self._pending: dict[str, str] = {}
        self._waiter: asyncio.Future[list[dict[str, Any]]] | None = None
        self._answers: list[dict[str, Any]] = []

    async def call(self, calls: tuple[ToolCall, ...]) -> None:
        """Send ``calls``; return once all are answered, their answers in the history."""
        ids = [f"function-call-{next(self.channel.shared.call_ids)}" for _ in calls]
        self._pending = {call_id: call.name for call_id, call in zip(ids, calls, strict=True)}
        self._answers = []
        self._waiter = asyncio.get_running_loop().create_future()
        if self.config.resumable:  # not resumable while a call is pending
            await self.channel.send("sessionResumptionUpdate", {})
        function_calls = [
            {"id": call_id, "name": call.name, "args": call.args}
            for call_id, call in zip(ids, calls, strict=True)
        ]
        await self.channel.send("toolCall", {"functionCalls": function_calls})
        self.channel.record("tool.call", ids=ids, names=[call.name for call in calls])
        for answer in await self._waiter:
            self.channel.remember("tool", f"{answer.get('name', '')}: {answer.get('response')}")

    async def answer(self, body: dict[str, Any]) -> None:
        """Take a ``toolResponse`` body; close with 1008 if any id is not pending."""
        responses = body.get("functionResponses", [])
        ids = [str(response.get("id", "")) for response in responses]
        self.channel.record("tool.response", ids=ids, responses=responses)
        if not ids or any(call_id not in self._pending for call_id in ids):
            await self.channel.close(wire.NOT_FOUND)  # the real service's answer to unknown ids
            return
        for call_id in ids:
            del self._pending[call_id]
        if self._waiter and not self._waiter.done():
            self._answers.extend(responses)
            if not self._pending:
                self._waiter.set_result(self._answers)

    async def cancel(self) -> list[str]:
        """Cancel the pending calls, telling the client if there were any; their ids."""
        cancelled = list(self._pending)
        if cancelled:
            await self.channel.send("toolCallCancellation", {"ids": cancelled})
        self._pending.clear()
        return cancelled
