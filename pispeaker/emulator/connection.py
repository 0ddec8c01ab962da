"""One Live API connection as the real service runs it: setup, input, turns, tools, lifetime.

The flow per socket: the first client message must be ``setup``; the server validates the
credential, model and modalities (closing with the real codes and reasons), answers
``setupComplete`` first, then runs three things at once: a reader that feeds audio to the
VAD and dispatches client messages, a responder that answers user turns one at a time, and
timers (connection lifetime, scheduled faults).
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
from pispeaker.emulator.options import Fault, ScheduledFault
from pispeaker.emulator.turns import Responder
from pispeaker.emulator.websocket import ControlledConnection

log = logging.getLogger(__name__)

FAULT_CLOSES = {
    Fault.INTERNAL_ERROR: wire.INTERNAL,
    Fault.UNAVAILABLE: wire.UNAVAILABLE,
    Fault.QUOTA: wire.QUOTA,
    Fault.NORMAL_CLOSE: wire.NORMAL,
}


class LiveConnection:
    """Serve one client socket until it closes."""

    def __init__(self, ws: ControlledConnection, handshake: Handshake, shared: Shared) -> None:
        self.ws = ws
        self.handshake = handshake
        self.shared = shared
        self.number = handshake.number
        self.channel = Channel(ws, handshake.number, shared)
        self._background: set[asyncio.Task[None]] = set()

    # -- lifecycle -----------------------------------------------------------------------

    async def serve(self) -> None:
        """Run the connection; return when the socket is closed."""
        self.channel.record(
            "connect", api_version=self.handshake.api_version, method=self.handshake.method
        )
        try:
            config = await SetupGate(self.channel, self.handshake).admit()
            if config is not None:
                await self._run_session(config)
        except ConnectionClosed:
            pass  # the client went away; the close is recorded below
        finally:
            self.channel.record("disconnect", code=self.ws.close_code, reason=self.ws.close_reason)
            if self.channel.session:
                self.shared.store.detach(self.channel.session, self.shared.timeline.now())

    async def _run_session(self, config: SessionConfig) -> None:
        session = self.channel.session
        assert session is not None  # admitted: the gate attached one
        tools = ToolCalls(self.channel, config)
        responder = Responder(self.channel, config, session, tools)
        client = ClientInput(self.channel, config, session, responder, tools)
        self._spawn(responder.run(), "responder")
        self._spawn(self._lifetime(), "lifetime")
        for fault in self.shared.options.faults:
            if fault.connection in (None, self.number):
                self._spawn(self._scheduled(fault), "fault")
        try:
            async for raw in self.ws:
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

    # -- timers and faults ---------------------------------------------------------------

    async def _lifetime(self) -> None:
        options = self.shared.options
        if options.connection_lifetime_s is None:
            return
        lead = min(options.go_away_lead_s, options.connection_lifetime_s)
        await asyncio.sleep(options.connection_lifetime_s - lead)
        await self._go_away(lead)

    async def _go_away(self, lead: float) -> None:
        """Announce the end of the connection; close it ``lead`` seconds later."""
        await self.channel.send("goAway", {"timeLeft": wire.duration_text(lead)})
        self.channel.record("go_away", time_left_s=lead)
        self._spawn(self._close_later(lead, wire.DEADLINE), "deadline")

    async def _close_later(self, delay: float, close: wire.Close) -> None:
        await asyncio.sleep(delay)
        await self.channel.close(close)

    async def _scheduled(self, scheduled: ScheduledFault) -> None:
        await asyncio.sleep(scheduled.at_s)
        await self.apply(scheduled.fault)

    async def apply(self, fault: Fault) -> None:
        """Produce ``fault`` on this connection now."""
        self.channel.record("fault", fault=fault.value)
        if fault in FAULT_CLOSES:
            await self.channel.close(FAULT_CLOSES[fault])
        elif fault is Fault.DROP:
            self.ws.transport.abort()
        elif fault is Fault.MALFORMED:
            await self.ws.send(b"{this is not json")
        elif fault is Fault.UNKNOWN_ONLY:
            await self.ws.send(b'{"someFutureMessage": {}}')
        elif fault is Fault.GO_AWAY:
            await self._go_away(self.shared.options.go_away_lead_s)
        elif fault is Fault.SLOW_PONGS:
            self.ws.pong_delay = self.shared.options.slow_pong_s
        elif fault is Fault.NO_PONGS:
            self.ws.pong_delay = None
