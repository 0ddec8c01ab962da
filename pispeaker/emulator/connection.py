"""One Live API connection as the real service runs it: setup, input, turns, tools, lifetime.

The flow per socket: the first client message must be ``setup``; :class:`SetupGate` refuses
it with the real codes and reasons, or attaches a session and answers ``setupComplete``.
Then three things run at once until the socket closes: a reader that dispatches client
messages (:class:`ClientInput`), a responder that answers user turns one at a time
(:class:`Responder`, with :class:`ToolCalls`), and timers (:class:`Lifetime`: connection
lifetime, scheduled faults). All of them talk through one :class:`Channel`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

from websockets.exceptions import ConnectionClosed

from pispeaker.emulator import wire
from pispeaker.emulator.calls import ToolCalls
from pispeaker.emulator.channel import Channel, Shared
from pispeaker.emulator.dispatch import ClientInput
from pispeaker.emulator.handshake import Handshake, SessionConfig, SetupGate
from pispeaker.emulator.lifetime import Lifetime
from pispeaker.emulator.options import Fault
from pispeaker.emulator.turns import Responder
from pispeaker.emulator.websocket import ControlledConnection

log = logging.getLogger(__name__)


class LiveConnection:
    """Serve one client socket until it closes; owns every task that serves it."""

    def __init__(self, ws: ControlledConnection, handshake: Handshake, shared: Shared) -> None:
        self.handshake = handshake
        self.number = handshake.number
        self.channel = Channel(ws, handshake.number, shared)
        self.lifetime = Lifetime(self.channel, self._spawn)
        self._background: set[asyncio.Task[None]] = set()

    async def serve(self) -> None:
        """Run the connection; return when the socket is closed, the session detached."""
        handshake, channel = self.handshake, self.channel
        channel.record("connect", api_version=handshake.api_version, method=handshake.method)
        try:
            config = await SetupGate(channel, handshake).admit()
            if config is not None:
                await self._run_session(config)
        except ConnectionClosed:
            pass  # the client went away; the close is recorded below
        finally:
            channel.record("disconnect", code=channel.ws.close_code, reason=channel.ws.close_reason)
            if channel.session:
                channel.shared.store.detach(channel.session, channel.shared.timeline.now())

    async def apply(self, fault: Fault) -> None:
        """Produce ``fault`` on this connection now."""
        await self.lifetime.apply(fault)

    async def _run_session(self, config: SessionConfig) -> None:
        session = self.channel.session
        assert session is not None  # admitted: the gate attached one
        tools = ToolCalls(self.channel, config)
        responder = Responder(self.channel, config, session, tools)
        client = ClientInput(self.channel, config, session, responder, tools)
        self._spawn(responder.run(), "responder")
        self.lifetime.start()
        try:
            async for raw in self.channel.ws:
                await client.dispatch(raw)
        finally:
            for task in self._background:
                task.cancel()
            await asyncio.wait(self._background)

    def _spawn(self, work: Awaitable[None], name: str) -> None:
        """Run work in the background of this connection; it ends with the connection."""
        task = asyncio.create_task(self._guard(work), name=f"{name}-{self.number}")
        self._background.add(task)

    async def _guard(self, work: Awaitable[None]) -> None:
        """Run background work; a bug in it closes the socket with 1011 instead of hanging."""
        try:
            await work
        except ConnectionClosed:
            return
        except Exception:
            log.exception("emulator connection %d failed", self.number)
            await self.channel.close(wire.INTERNAL)
