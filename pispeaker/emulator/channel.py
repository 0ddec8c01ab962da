"""The server's side of one socket, as every part of a connection uses it.

A :class:`Channel` sends server messages, closes with the service's codes, issues
resumption handles, and writes the emulator's two records: the timeline (every event, for
tests) and the session's history (what the model would remember).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from pispeaker.emulator import wire
from pispeaker.emulator.options import EmulatorOptions
from pispeaker.emulator.script import Script
from pispeaker.emulator.store import HistoryEntry, Role, Session, SessionStore
from pispeaker.emulator.timeline import Timeline
from pispeaker.emulator.websocket import ControlledConnection


@dataclass
class Shared:
    """What all connections of one emulator share."""

    options: EmulatorOptions
    script: Script
    store: SessionStore
    timeline: Timeline
    call_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))


class Channel:
    """Connection number ``number``'s socket and records.

    ``session`` is None until setup attaches one; events recorded before then carry no
    session id, and nothing is remembered.
    """

    def __init__(self, ws: ControlledConnection, number: int, shared: Shared) -> None:
        self.ws = ws
        self.number = number
        self.shared = shared
        self.session: Session | None = None
        self.stalled = False  # the service has gone silent: nothing more is sent

    async def send(self, kind: str, body: dict[str, Any], **extra: Any) -> None:
        """Send one server message; ``extra`` are top-level companions like usageMetadata.
        Once ``stalled``, wait instead until the socket closes."""
        if self.stalled:
            await self.ws.wait_closed()
            return
        await self.ws.send(wire.server_message(kind, body, **extra))

    async def close(self, close: wire.Close) -> None:
        """Record the close, then close the socket as the real service would."""
        self.record("close", code=close.code, reason=close.reason)
        await self.ws.close(close.code, wire.truncate_reason(close.reason))

    async def send_handle(self) -> None:
        """Issue a fresh resumption handle for the attached session and send it."""
        assert self.session is not None
        handle = self.shared.store.issue_handle(self.session)
        await self.send("sessionResumptionUpdate", {"newHandle": handle, "resumable": True})
        self.record("resumption.update", handle=handle)

    def record(self, kind: str, **data: Any) -> None:
        """Add an event to the timeline, tagged with this connection and its session."""
        session = self.session.id if self.session else None
        self.shared.timeline.record(kind, self.number, session, **data)

    def remember(self, role: Role, text: str, audio_bytes: int = 0) -> None:
        """Add an entry to the session's history."""
        if self.session:
            self.session.history.append(HistoryEntry(role, text, audio_bytes))
