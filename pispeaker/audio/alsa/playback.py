"""The speaker: an ALSA playback device fed by a thread of its own, which converts the audio
for the device and writes it a period at a time, so that a flush silences it within one
period and the event loop does no conversion."""

import asyncio
import contextlib
import enum
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

import alsaaudio

from pispeaker.audio.alsa.device import (
    XRUN,
    DeviceThread,
    Opened,
    Opener,
    Request,
    open_device,
    open_in_thread,
)
from pispeaker.audio.convert import PlaybackConverter, frame_bytes
from pispeaker.audio.pcm import OUTPUT_RATE, SAMPLE_WIDTH, byte_count, duration_s, scale
from pispeaker.audio.ports import DeviceLostError
from pispeaker.marks import Mark

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Write:
    """The audio of one ``write`` call (24 kHz mono s16le) and the call's number, to be
    played from byte ``offset``; a replay (audio the device held, played again at a new
    gain) has no number."""

    pcm: bytes
    number: int | None
    offset: int = 0


class _Signal(enum.Enum):
    DROP = "drop what the device holds"
    REGAIN = "play what the device holds again at the new gain"
    IDLE = "nothing to play for a while"
    STOP = "stop"


@dataclass
class _DrainMark:
    """Everything queued before it has played once the device drains; then ``done``."""

    done: asyncio.Future[None]


class AlsaSink:
    """A speaker on an ALSA playback device, fed 24 kHz mono s16le.

    Audio is queued as given; a thread converts it and writes it a period at a time, so
    ``flush`` stops sound within one period: it empties the queue and the thread drops what
    the device holds. ``tap`` is called on the event loop with each period of the audio as
    given (at most ``period_ms``, a slice of one ``write``), as that period goes to the
    device, with when it is heard: then, or once what the device holds has played; audio
    flushed before then is not tapped. ``gain`` applies to each period as it goes to the
    device (the tap hears it applied), and a new gain to what the device holds too: that is
    dropped and written again, tapped again with when it is now heard. ``underruns``
    counts times the card ran dry in the middle of audio.
    """

    def __init__(self, request: Request, opener: Opener = open_device) -> None:
        self.request = request
        self.tap: Callable[[bytes, float], None] | None = None
        self._gain = 1.0  # read by the writer thread at each period
        self.underruns = 0
        self.writes = 0  # ``write`` calls so far
        #: Bytes of device frames written since the sink was made (read by the writer's marks).
        self.committed = 0
        #: Marks "playback.written" (the write's number) once the first period of a ``write``
        #: is in the device, "playback.dropping" and "playback.dropped" before and after a
        #: flush empties the device, and "playback.regain" before a new gain drops what the
        #: device holds; a drop's two marks come with ``committed`` (what a card discards is
        #: what it holds of that).
        self.mark: Mark | None = None
        self.opened: Opened | None = None
        self._opener = opener
        self._writer: _Writer | None = None
        self._lost = asyncio.Event()
        self._lost_message = ""

    async def start(self) -> None:
        await self.stop()
        opened = await open_in_thread(
            self._opener, alsaaudio.PCM_PLAYBACK, self.request, OUTPUT_RATE
        )
        log.info("playing to %r at %s", self.request.device, opened.describe())
        self.opened = opened
        self._lost.clear()
        self._writer = _Writer(self, opened, asyncio.get_running_loop())
        self._writer.start()

    def write(self, pcm: bytes) -> None:
        """Queue ``pcm`` to play after what is queued, and return at once. Raises ValueError
        for a partial sample (here, not in the thread that converts it)."""
        if self._lost.is_set():
            return  # the device is gone (even if a reopen failed): the controller recovers it
        if self._writer is None:
            raise DeviceLostError(f"{self.request.subject} is not open")
        if len(pcm) % SAMPLE_WIDTH:
            raise ValueError(f"{len(pcm)} bytes of s16le audio is not a whole number of samples")
        self.writes += 1
        self._writer.queue(_Write(pcm, self.writes))

    @property
    def gain(self) -> float:
        return self._gain

    @gain.setter
    def gain(self, gain: float) -> None:
        """Play at ``gain`` from now on, what the device holds too (a duck is heard at once,
        not once the device's buffer has played out)."""
        if gain != self._gain:
            self._gain = gain
            if self._writer is not None:
                self._writer.regain()

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    async def drain(self) -> None:
        """Return once everything written so far has played, the resampler's tail too."""
        if self._writer is not None:
            await self._writer.drain()

    async def wait_lost(self) -> str:
        """Wait until the open device fails; return the message naming it."""
        await self._lost.wait()
        return self._lost_message

    async def stop(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            await writer.stop()

    def report_lost(self, message: str) -> None:
        """Called on the event loop by the writer thread when the device failed."""
        log.error("%s", message)
        self._lost_message = message
        self._lost.set()


class _Writer(DeviceThread):
    """Converts queued audio and writes it to the device a period at a time; drops the
    device's buffer on flush. The converter is the thread's alone."""

    def __init__(self, sink: AlsaSink, opened: Opened, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__("alsa-playback", sink.request, opened, loop)
        self.sink = sink
        self.converter = PlaybackConverter(opened.rate, opened.channels, opened.format_name)
        self.frame = frame_bytes(opened.format_name, opened.channels)
        self.period_bytes = byte_count(sink.request.period_ms / 1000, OUTPUT_RATE)
        self.buffer_s = sink.request.period_ms * sink.request.periods / 1000
        self.pending: deque[_Write | _DrainMark] = deque()
        self.wakeup = threading.Condition()
        self.drop_requested = False
        self.regain_requested = False
        self.stopping = False
        self.finished = False
        self.playing = False  # audio went to the device since it was last drained
        self.heard_until = 0.0  # when what went to the device has played (monotonic s)
        #: The periods (as given, before the gain) that went to the device and may not have
        #: been heard yet, with when each is heard: what a new gain plays again.
        self.recent: deque[tuple[bytes, float]] = deque()

    # -- called on the event loop

    def queue(self, write: _Write) -> None:
        with self.wakeup:
            self.pending.append(write)
            self.wakeup.notify()

    def regain(self) -> None:
        with self.wakeup:
            self.regain_requested = True
            self.wakeup.notify()

    def flush(self) -> None:
        with self.wakeup:
            marks = self._take_marks()
            self.drop_requested = True
            self.wakeup.notify()
        _resolve(*marks)  # nothing is left to play

    async def drain(self) -> None:
        """Return once everything queued before has played (at once if the thread ended)."""
        mark = _DrainMark(self.loop.create_future())
        with self.wakeup:
            if self.finished:
                return
            self.pending.append(mark)
            self.wakeup.notify()
        await mark.done

    async def stop(self) -> None:
        with self.wakeup:
            self.stopping = self.drop_requested = True
            self.wakeup.notify()
        await asyncio.to_thread(self.join, 1.0)

    # -- the thread

    def work(self) -> None:
        while (item := self._next()) is not _Signal.STOP:
            if item is _Signal.DROP:
                self._drop()
            elif item is _Signal.REGAIN:
                self._regain()
            elif item is _Signal.IDLE:
                self._drain()
            elif isinstance(item, _DrainMark):
                self._write_frames(self.converter.finish())  # what soxr held back
                self._drain()
                self.call_soon(_resolve, item.done)
            else:
                self._play(item)

    def failed(self, message: str) -> None:
        self.call_soon(self.sink.report_lost, message)

    def release(self) -> None:
        with self.wakeup:
            self.finished = True
            marks = self._take_marks()
        self.call_soon(_resolve, *marks)
        with contextlib.suppress(alsaaudio.ALSAAudioError):
            self.opened.pcm.drop()  # close() alone would play the buffer out first

    def _next(self) -> "_Write | _DrainMark | _Signal":
        """What to do next. A flush's drop comes first; a buffer's time with nothing to
        play drains the device, so the pause between replies is not counted as an
        underrun. (The lock is never held while ALSA is called: that may block.)"""
        with self.wakeup:
            while True:
                if self.drop_requested:
                    self.drop_requested = self.regain_requested = False
                    return _Signal.DROP
                if self.regain_requested:
                    self.regain_requested = False
                    return _Signal.REGAIN
                if self.stopping:
                    return _Signal.STOP
                if self.pending:
                    return self.pending.popleft()
                if not self.wakeup.wait(self.buffer_s) and self.playing:
                    return _Signal.IDLE

    def _drop(self) -> None:
        self.playing, self.heard_until = False, 0.0
        self.recent.clear()
        self.converter.reset()  # nothing of a flushed reply leaks into the next one
        self._mark("playback.dropping", self.sink.committed)
        self.opened.pcm.drop()
        self._mark("playback.dropped", self.sink.committed)

    def _regain(self) -> None:
        """Drop what the device holds and queue it first, to be written at the new gain.
        On a card the drop is instant: the gap is the time to write a period again."""
        now = time.monotonic()
        unheard = b"".join(
            pcm[byte_count(max(0.0, now - at), OUTPUT_RATE) :] for pcm, at in self.recent
        )
        if not unheard:
            return
        self.recent.clear()
        self.converter.reset()  # what soxr held back is in ``unheard``
        self._mark("playback.regain", self.sink.committed)
        self.opened.pcm.drop()
        self.heard_until = 0.0  # the device is empty: heard from when it is written
        with self.wakeup:
            self.pending.appendleft(_Write(unheard, None))

    def _drain(self) -> None:
        self.opened.pcm.drain()
        self.playing, self.heard_until = False, 0.0

    def _play(self, write: _Write) -> None:
        """Tap, convert and write ``write`` a period at a time, until a flush, or a new gain
        (the rest is queued first again, after what the device held)."""
        for start in range(write.offset, len(write.pcm), self.period_bytes):
            if self.drop_requested:
                return
            if self.regain_requested:
                with self.wakeup:
                    self.pending.appendleft(replace(write, offset=start))
                return
            given = write.pcm[start : start + self.period_bytes]
            period = scale(given, gain) if (gain := self.sink.gain) != 1.0 else given
            now = time.monotonic()
            heard_at = max(now, self.heard_until)  # later after an underrun
            self.heard_until = heard_at + duration_s(period, OUTPUT_RATE)
            self._remember(given, heard_at, now)
            if self.sink.tap is not None:
                self.call_soon(self.sink.tap, period, heard_at)
            self._write_frames(self.converter.convert(period))
            if start == 0 and write.number is not None:
                self._mark("playback.written", write.number)

    def _remember(self, period: bytes, heard_at: float, now: float) -> None:
        """Keep ``period`` until it has been heard; forget those that have."""
        while self.recent and _heard_by(*self.recent[0]) <= now:
            self.recent.popleft()
        self.recent.append((period, heard_at))

    def _write_frames(self, frames: bytes) -> None:
        """Write device ``frames``, again after an underrun, until a flush."""
        self.playing = True
        while frames and not self.drop_requested:
            written = self.opened.pcm.write(frames)
            if written == XRUN:
                self.sink.underruns += 1
                self.log_xrun("playback underrun", self.sink.underruns)
                continue
            frames = frames[max(0, written) * self.frame :]
            self.sink.committed += max(0, written) * self.frame

    def _mark(self, point: str, detail: object) -> None:
        if self.sink.mark is not None:
            self.sink.mark(point, detail)

    def _take_marks(self) -> list[asyncio.Future[None]]:
        marks = [item.done for item in self.pending if isinstance(item, _DrainMark)]
        self.pending.clear()
        return marks


def _heard_by(period: bytes, heard_at: float) -> float:
    """When ``period``, first heard at ``heard_at``, has played out."""
    return heard_at + duration_s(period, OUTPUT_RATE)


def _resolve(*futures: asyncio.Future[None]) -> None:
    for future in futures:
        if not future.done():
            future.set_result(None)
