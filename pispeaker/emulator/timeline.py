"""A timeline of everything the emulator did, with monotonic timestamps.

Tests wait on it and assert on it; benchmarks read latencies off it; ``--timeline FILE``
writes it as JSON lines.
"""

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO


@dataclass(frozen=True)
class Event:
    """One thing that happened. ``t`` is ``time.monotonic()`` seconds."""

    t: float
    kind: str
    connection: int
    session: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


class Timeline:
    """An append-only event list that can be awaited."""

    def __init__(self, jsonl: Path | None = None, clock: Callable[[], float] = time.monotonic):
        self.events: list[Event] = []
        self._clock = clock
        self._changed = asyncio.Event()
        self._file: TextIO | None = jsonl.open("a", encoding="utf-8") if jsonl else None

    def now(self) -> float:
        """The timeline's clock."""
        return self._clock()

    def record(self, kind: str, connection: int, session: str | None = None, **data: Any) -> Event:
        """Append an event and wake every waiter."""
        event = Event(self._clock(), kind, connection, session, data)
        self.events.append(event)
        if self._file:
            self._file.write(json.dumps(asdict(event)) + "\n")
            self._file.flush()
        self._changed.set()
        self._changed = asyncio.Event()
        return event

    def of(self, kind: str, connection: int | None = None) -> list[Event]:
        """Events of one kind, optionally of one connection."""
        return [
            e
            for e in self.events
            if e.kind == kind and (connection is None or e.connection == connection)
        ]

    async def wait_for(
        self,
        kind: str,
        where: Callable[[Event], bool] = lambda _: True,
        within_s: float = 10.0,
        start: int = 0,
    ) -> Event:
        """The first event of ``kind`` at index >= ``start`` that satisfies ``where``."""
        async with asyncio.timeout(within_s):
            index = start
            while True:
                for event in self.events[index:]:
                    if event.kind == kind and where(event):
                        return event
                index = len(self.events)
                await self._changed.wait()

    def close(self) -> None:
        """Close the JSON lines file, if any."""
        if self._file:
            self._file.close()
            self._file = None
