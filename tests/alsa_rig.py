"""Real libasound without a sound card: ALSA `file` PCMs over the `null` PCM.

A capture PCM reads its `infile` (a regular file, or a FIFO that a writer thread feeds in
real time); a playback PCM writes into its `file` (a regular file, or a FIFO that a reader
thread drains in real time, which paces playback as a card would). The null slave accepts any
rate and format, so each test PCM is used at the exact format the adapter is told to open.
"""

import contextlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pispeaker.audio.alsa import AlsaSink, Request
from pispeaker.bench.rig import Speaker


class AlsaRig:
    """Writes an ALSA configuration of test PCMs and points libasound at it."""

    def __init__(self, directory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.directory = directory
        self._pcms: dict[str, str] = {}
        self.cleanups: list[Callable[[], None]] = []  # for fixtures to run at the end
        self._monkeypatch = monkeypatch
        self._version = 0
        self._write()

    def capture(self, name: str, infile: Path) -> str:
        """Define capture PCM ``name`` reading ``infile``; return the name."""
        self._pcms[name] = (
            f'type file\n slave.pcm "null"\n infile "{infile}"\n file "/dev/null"\n format "raw"'
        )
        self._write()
        return name

    def playback(self, name: str, outfile: Path) -> str:
        """Define playback PCM ``name`` writing into ``outfile``; return the name."""
        self._pcms[name] = f'type file\n slave.pcm "null"\n file "{outfile}"\n format "raw"'
        self._write()
        return name

    def unplug(self, name: str) -> None:
        """Remove PCM ``name``, as unplugging its card does."""
        del self._pcms[name]
        self._write()

    def _write(self) -> None:
        # libasound reloads its configuration when the file's path, inode or mtime changes;
        # mtime has one-second steps, so every change gets a new file.
        self._version += 1
        self.path = self.directory / f"asound-{self._version}.conf"
        body = "".join(f"pcm.{name} {{\n {text}\n}}\n" for name, text in self._pcms.items())
        self.path.write_text(f"</usr/share/alsa/alsa.conf>\n{body}")
        self._monkeypatch.setenv("ALSA_CONFIG_PATH", str(self.path))


def request(device: str, rate: int, channels: int = 1, format_name: str = "S16_LE") -> Request:
    """A device request with an explicit format (file PCMs accept anything)."""
    key = "audio.capture_device" if "mic" in device else "audio.playback_device"
    return Request(key, device, rate, channels, format_name)


class PacedWriter(threading.Thread):
    """Feeds a FIFO like a microphone: ``period`` bytes every ``period_s`` seconds.

    ``pause()`` stops writing while keeping the FIFO open (a hung device); ``resume()``
    carries on. When the reader closes the FIFO the writer is done, unless it should
    ``reopen``: then it waits for the next reader (the device opened again) and goes on.
    """

    def __init__(
        self, fifo: Path, audio: bytes, period: int, period_s: float, reopen: bool = False
    ) -> None:
        super().__init__(daemon=True)
        self.fifo, self.audio, self.period, self.period_s = fifo, audio, period, period_s
        self.reopen = reopen
        self.paused = threading.Event()
        self.done = threading.Event()
        self._offset = 0

    def run(self) -> None:
        while not self.done.is_set():
            with contextlib.suppress(BrokenPipeError):  # the capture side closed
                self._write_paced()
            if not self.reopen:
                return

    def _write_paced(self) -> None:
        with open(self.fifo, "wb", buffering=0) as pipe:
            start, first = time.monotonic(), self._offset
            while self._offset < len(self.audio):
                if self.done.is_set():
                    return
                while self.paused.is_set() and not self.done.is_set():
                    time.sleep(0.01)
                pipe.write(self.audio[self._offset : self._offset + self.period])
                self._offset += self.period
                due = start + (self._offset - first) / self.period * self.period_s
                time.sleep(max(0.0, due - time.monotonic()))
            self.done.wait()

    def _unblock(self) -> None:
        """Be a reader for a moment: that ends a wait in open() for one, and what it reads
        ends a write blocked on a full pipe."""
        with contextlib.suppress(OSError):  # BlockingIOError: nothing to read
            fd = os.open(self.fifo, os.O_RDONLY | os.O_NONBLOCK)
            try:
                os.read(fd, 1 << 16)
            finally:
                os.close(fd)

    def pause(self) -> None:
        self.paused.set()

    def resume(self) -> None:
        self.paused.clear()

    def finish(self, within_s: float = 10.0) -> None:
        """Stop writing and end the thread, even one still waiting in open() for a reader
        that never came (a test that failed before its device opened the FIFO)."""
        self.done.set()
        deadline = time.monotonic() + within_s
        while self.is_alive() and time.monotonic() < deadline:
            self._unblock()
            self.join(0.05)
        assert not self.is_alive(), f"the writer of {self.fifo} did not end"


#: The speaker process: opens the FIFO read-write (so the open does not wait for a writer and
#: the pipe can be shrunk to one page before data arrives: the writer then feels the pace, as
#: on a card), then drains it at most BYTES_PER_S into OUT until killed.
class PacedReader(Speaker):
    """Drains a FIFO like a speaker, in real time and in its own process (the bench's
    speaker: see there why, and how ``drop`` makes a dropped stream end as on a card).
    ``received`` is what it played; ``hang_up()`` kills it, closing the FIFO as an unplugged
    card vanishes."""

    def __init__(self, fifo: Path, bytes_per_s: int) -> None:
        stem = fifo.with_name(f"{fifo.name}.{time.monotonic_ns()}")
        super().__init__(fifo, bytes_per_s, stem.with_suffix(".log"), stem.with_suffix(".played"))
        self.fifo = fifo

    @property
    def received(self) -> bytes:
        assert self.content is not None
        return self.content.read_bytes()

    def card_like(self, sink: AlsaSink) -> None:
        """Discard what ``sink`` held when it drops its device, as a card does."""

        def mark(point: str, detail: object) -> None:
            if point in ("playback.dropping", "playback.regain"):
                assert isinstance(detail, int)
                self.drop(detail)

        sink.mark = mark

    def wait_for(self, size: int, within_s: float = 5.0) -> bytes:
        """What was received, once it is at least ``size`` bytes (the pipe and the pacing
        hold some back after ALSA has drained)."""
        deadline = time.monotonic() + within_s
        while len(self.received) < size and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.received

    def hang_up(self) -> None:
        self.stop()
