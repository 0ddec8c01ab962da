"""Server-side session state and the session-resumption store.

A session outlives its connection: a client that reconnects with a resumption handle
continues the same session (its history and counters) on a new socket, as the real service
allows for 2 hours after the last connection ends.
"""

import secrets
from dataclasses import dataclass, field
from typing import Literal

from pispeaker.emulator import wire
from pispeaker.emulator.vad import EnergyVad

Role = Literal["user", "model", "tool"]


@dataclass(frozen=True)
class HistoryEntry:
    """One entry of the conversation the server remembers."""

    role: Role
    text: str
    audio_bytes: int = 0


@dataclass
class Session:
    """A Live session: what survives a resumption, plus byte accounting for tests."""

    id: str
    model: str
    history: list[HistoryEntry] = field(default_factory=list)
    turns: int = 0
    uploaded_audio_bytes: int = 0
    downloaded_audio_bytes: int = 0
    connection: int | None = None
    detached_at: float | None = None
    #: The voice detector, with the user's unfinished utterance: a session resumed after a
    #: lost connection keeps what it heard of the turn in progress, as it keeps its context
    #: (the real service's handling of a half-heard turn is unverified).
    vad: EnergyVad | None = None


class ResumeRejected(Exception):
    """A resumption handle cannot be used; ``close`` is what the server sends."""

    def __init__(self, close: wire.Close) -> None:
        super().__init__(close.reason)
        self.close = close


class SessionStore:
    """Sessions by id, and resumption handles that point at them."""

    def __init__(self, ttl_s: float = 7200.0) -> None:
        self.ttl_s = ttl_s
        self.sessions: dict[str, Session] = {}
        self._handles: dict[str, str] = {}

    def create(self, model: str, connection: int) -> Session:
        """A new session attached to ``connection``."""
        session = Session(id=f"session-{len(self.sessions) + 1}", model=model)
        session.connection = connection
        self.sessions[session.id] = session
        return session

    def issue_handle(self, session: Session) -> str:
        """A new opaque handle for the session's current state."""
        handle = secrets.token_urlsafe(24)
        self._handles[handle] = session.id
        return handle

    def resume(self, handle: str, model: str, connection: int, now: float) -> Session:
        """Attach the session behind ``handle`` to ``connection``.

        Rejects an unknown or expired handle (1008 not found; the real code is unverified),
        a different model (1007), and a session whose previous socket is still open (1011, as
        reported for the real service: clients must close the old socket first).
        """
        session = self.sessions.get(self._handles.get(handle, ""))
        if session is None or self._expired(session, now):
            raise ResumeRejected(wire.NOT_FOUND)
        if session.model != model:
            raise ResumeRejected(wire.INVALID_ARGUMENT)
        if session.connection is not None:
            raise ResumeRejected(wire.INTERNAL)
        session.connection, session.detached_at = connection, None
        return session

    def detach(self, session: Session, now: float) -> None:
        """The session's socket closed; its handles stay valid for ``ttl_s``."""
        session.connection, session.detached_at = None, now

    def _expired(self, session: Session, now: float) -> bool:
        return session.detached_at is not None and now - session.detached_at > self.ttl_s
