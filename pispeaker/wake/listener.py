"""The wake-word listener: a ``WakeDetector`` in its own thread, so that inference (a few
ms per 80 ms frame, several times more on a Pi) never holds up the event loop.

Audio goes in with ``feed`` (never blocks) and reaches the worker a whole 80 ms frame at a
time, so the thread wakes once per inference however the audio is chunked; frames come back
on the event loop through
``report`` (only those with a detection) and ``on_frame`` (every frame, for live score
displays). If inference falls behind by more than ``backlog_s`` the newest audio is
dropped and counted, and the detector is told how much it missed so that its clock stays
in step with the controller's pre-roll ring.
"""

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pispeaker.audio.pcm import INPUT_RATE, byte_count
from pispeaker.wake.detector import FRAME_BYTES, Frame, WakeDetector

log = logging.getLogger(__name__)

#: How long stopping waits for the worker to finish the frame it is scoring.
STOP_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class _Reset:
    """Start the detector afresh (after a gap in the audio)."""


@dataclass(frozen=True)
class _Skipped:
    """Audio that was dropped before the worker saw it."""

    byte_count: int


_Item = bytes | _Reset | _Skipped | None  # None stops the worker


class WakeListener:
    """Runs ``detector`` on a worker thread; ``start`` and then ``stop`` (once each) on the
    event loop."""

    def __init__(
        self,
        detector: WakeDetector,
        report: Callable[[Frame], None],
        on_frame: Callable[[Frame], None] | None = None,
        backlog_s: float = 2.0,
    ) -> None:
        self.detector = detector
        self._report = report
        self._on_frame = on_frame
        self._limit = byte_count(backlog_s, INPUT_RATE)
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._queued = 0  # bytes of audio waiting for the worker
        self._partial = bytearray()  # audio short of a whole frame, not yet queued
        self._lock = threading.Lock()  # guards _queued
        self._unsent_skip = 0
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()  # the worker scores nothing more, reports nothing
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failed: asyncio.Future[None] | None = None
        self.dropped_bytes = 0

    async def start(self) -> None:
        """Start the worker thread (the detector's warm-up begins with the first audio)."""
        self._loop = asyncio.get_running_loop()
        self._failed = self._loop.create_future()
        self._thread = threading.Thread(target=self._run, name="wake-word", daemon=True)
        self._thread.start()

    def feed(self, chunk: bytes) -> None:
        """Take 16 kHz mono s16le audio for the detector; never blocks. It is queued once
        it makes whole frames."""
        self._partial += chunk
        whole = len(self._partial) - len(self._partial) % FRAME_BYTES
        if whole:
            self._queue_audio(bytes(self._partial[:whole]))
            del self._partial[:whole]

    def reset(self) -> None:
        """Start the detector afresh, in order with the audio fed before (a part frame is
        handed over first, so that it counts on the detector's clock)."""
        if self._partial:
            self._queue_audio(bytes(self._partial))
            self._partial.clear()
        self._queue.put(_Reset())

    def _queue_audio(self, audio: bytes) -> None:
        with self._lock:
            if self._queued + len(audio) > self._limit:
                self._unsent_skip += len(audio)
                self.dropped_bytes += len(audio)
                return
            self._queued += len(audio)
        if self._unsent_skip:
            self._queue.put(_Skipped(self._unsent_skip))
            log.warning("wake word fell behind: %.2f s of audio not scored", self._seconds())
            self._unsent_skip = 0
        self._queue.put(audio)

    async def stop(self) -> None:
        """Stop the worker: audio still queued is not scored, and nothing reaches the loop
        from now on (it may close before a busy worker has noticed); safe to call twice."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping.set()
        self._queue.put(None)
        await asyncio.to_thread(thread.join, STOP_TIMEOUT_S)

    async def wait_failed(self) -> None:
        """Raise what stopped the worker thread (a bug: inference itself does not fail),
        once that happens; wait forever while it works."""
        assert self._failed is not None, "start() first"
        await asyncio.shield(self._failed)

    def _seconds(self) -> float:
        return self._unsent_skip / 2 / INPUT_RATE

    def _run(self) -> None:
        try:
            self._work()
        except BaseException as error:  # noqa: BLE001 - handed to the loop, which raises it
            self._to_loop(self._fail, error)

    def _to_loop(self, callback: Callable[[Any], None], argument: Any) -> None:
        """Call ``callback(argument)`` on the loop, unless the listener was stopped."""
        assert self._loop is not None  # set by start, before the thread runs
        if not self._stopping.is_set():
            self._loop.call_soon_threadsafe(callback, argument)

    def _fail(self, error: BaseException) -> None:
        if self._failed is not None and not self._failed.done():
            self._failed.set_exception(error)

    def _work(self) -> None:
        while (item := self._queue.get()) is not None and not self._stopping.is_set():
            if isinstance(item, _Reset):
                self.detector.reset()
            elif isinstance(item, _Skipped):
                self.detector.skip(item.byte_count)
            else:
                with self._lock:
                    self._queued -= len(item)
                for frame in self.detector.process(item):
                    self._deliver(frame)

    def _deliver(self, frame: Frame) -> None:
        if self._on_frame is not None:
            self._to_loop(self._on_frame, frame)
        if frame.detection is not None:
            self._to_loop(self._report, frame)
