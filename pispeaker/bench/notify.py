"""The service manager's end of ``$NOTIFY_SOCKET``: what ``pispeaker bench`` (and the service
tests) hear from a ``pispeaker run`` daemon, with the time each message arrived."""

import asyncio
import contextlib
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Note:
    """One sd_notify datagram: its fields, and when it arrived (monotonic seconds)."""

    at: float
    fields: dict[str, str]


class DatagramSocket:
    """An AF_UNIX datagram socket at ``directory / name`` handing each datagram to
    ``receive`` on the event loop, until ``close``."""

    def __init__(self, name: str, receive: Callable[[bytes], None]) -> None:
        # AF_UNIX paths are limited to 108 bytes: pytest's tmp_path can be longer.
        self.directory = Path(tempfile.mkdtemp(prefix=f"{name}-"))
        self.path = self.directory / name
        self._receive = receive
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind(str(self.path))
        self._socket.setblocking(False)
        asyncio.get_running_loop().add_reader(self._socket.fileno(), self._drain)

    def _drain(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while True:
                self._receive(self._socket.recv(65536))

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self._socket.fileno())
        self._socket.close()
        self.path.unlink()
        self.directory.rmdir()


class NotifyListener:
    """The service manager's end of $NOTIFY_SOCKET: collects every datagram as a Note."""

    def __init__(self) -> None:
        self.notes: list[Note] = []
        self._arrived = asyncio.Event()
        self._socket = DatagramSocket("notify", self._receive)
        self.path = self._socket.path
        self.close = self._socket.close

    def _receive(self, data: bytes) -> None:
        pairs = (line.partition("=") for line in data.decode().splitlines() if line)
        self.notes.append(Note(time.monotonic(), {key: value for key, _, value in pairs}))
        self._arrived.set()

    async def wait_for(
        self, wanted: Callable[[Note], bool], after: int = 0, within_s: float = 20.0
    ) -> int:
        """The index of the first note from index ``after`` on that is ``wanted``."""
        async with asyncio.timeout(within_s):
            while True:
                for index in range(after, len(self.notes)):
                    if wanted(self.notes[index]):
                        return index
                self._arrived.clear()
                await self._arrived.wait()

    def statuses(self, start: int = 0) -> list[str]:
        """Every STATUS= sent from note ``start`` on, in order."""
        return [note.fields["STATUS"] for note in self.notes[start:] if "STATUS" in note.fields]

    def count(self, name: str, start: float = 0.0, end: float = float("inf")) -> int:
        """How many notes set ``name`` (e.g. "WATCHDOG") between two monotonic times."""
        return sum(1 for note in self.notes if name in note.fields and start <= note.at < end)
