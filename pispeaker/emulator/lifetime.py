"""How a connection ends when the service ends it: the lifetime limit, goAway, and faults.

With ``connection_lifetime_s`` set, ``goAway`` comes ``go_away_lead_s`` before the limit
and the socket closes with 1011 (deadline expired) at it. Faults, scheduled in the options
or injected, produce the service's failures: closes with its codes and reasons, a TCP drop,
frames the SDK cannot or need not read, an early goAway, late or missing pongs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from pispeaker.emulator import wire
from pispeaker.emulator.channel import Channel
from pispeaker.emulator.options import Fault, ScheduledFault

FAULT_CLOSES = {
    Fault.INTERNAL_ERROR: wire.INTERNAL,
    Fault.UNAVAILABLE: wire.UNAVAILABLE,
    Fault.QUOTA: wire.QUOTA,
    Fault.NORMAL_CLOSE: wire.NORMAL,
    Fault.NOT_FOUND: wire.NOT_FOUND,
    Fault.DEADLINE: wire.DEADLINE,
}
#: Runs work in the background of the connection, ending with it: ``spawn(work, name)``.
Spawn = Callable[[Awaitable[None], str], None]


class Lifetime:
    """The lifetime timer and faults of one connection; its timers run through ``spawn``."""

    def __init__(self, channel: Channel, spawn: Spawn) -> None:
        self.channel = channel
        self.spawn = spawn
        self.options = channel.shared.options

    def start(self) -> None:
        """Start the lifetime timer and the faults scheduled for this connection."""
        self.spawn(self._lifetime(), "lifetime")
        for fault in self.options.faults:
            if fault.connection in (None, self.channel.number):
                self.spawn(self._scheduled(fault), "fault")

    async def apply(self, fault: Fault) -> None:
        """Produce ``fault`` on this connection now."""
        ws = self.channel.ws
        self.channel.record("fault", fault=fault.value)
        if fault in FAULT_CLOSES:
            await self.channel.close(FAULT_CLOSES[fault])
        elif fault is Fault.DROP:
            ws.transport.abort()
        elif fault is Fault.MALFORMED:
            await ws.send(b"{this is not json")
        elif fault is Fault.UNKNOWN_ONLY:
            await ws.send(b'{"someFutureMessage": {}}')
        elif fault is Fault.STALL:
            self.channel.stalled = True
        elif fault is Fault.GO_AWAY:
            await self._go_away(self.options.go_away_lead_s)
        elif fault is Fault.SLOW_PONGS:
            ws.pong_delay = self.options.slow_pong_s
        elif fault is Fault.NO_PONGS:
            ws.pong_delay = None

    async def _lifetime(self) -> None:
        limit = self.options.connection_lifetime_s
        if limit is None:
            return
        lead = min(self.options.go_away_lead_s, limit)
        await asyncio.sleep(limit - lead)
        await self._go_away(lead)

    async def _go_away(self, lead: float) -> None:
        """Announce the end of the connection; close it ``lead`` seconds later."""
        await self.channel.send("goAway", {"timeLeft": wire.duration_text(lead)})
        self.channel.record("go_away", time_left_s=lead)
        self.spawn(self._close_later(lead, wire.DEADLINE), "deadline")

    async def _close_later(self, delay: float, close: wire.Close) -> None:
        await asyncio.sleep(delay)
        await self.channel.close(close)

    async def _scheduled(self, scheduled: ScheduledFault) -> None:
        await asyncio.sleep(scheduled.at_s)
        await self.apply(scheduled.fault)
