"""ALSA sound cards through pyalsaaudio: the only importer of alsaaudio.

Each open device belongs to one thread that opens, reads or writes, and closes it, so no
PCM is ever touched by two threads (and a read stuck on a dead device cannot block the event
loop). Capture and playback run at whatever rate, channel count and sample format the device
accepts; convert.py turns that into pispeaker's 16 kHz and 24 kHz mono s16le.

A device that fails, vanishes (USB unplug) or stops delivering audio raises, or reports
through ``wait_lost``, a DeviceLostError that names the config key, the device and the next
step; the controller then shows ERROR and calls ``start`` again with backoff.
"""

import asyncio
import contextlib
import ctypes
import ctypes.util
import enum
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import alsaaudio

from pispeaker.audio.convert import (
    FORMATS,
    CaptureConverter,
    PlaybackConverter,
    Rechunker,
    frame_bytes,
)
from pispeaker.audio.pcm import INPUT_RATE, OUTPUT_RATE, byte_count
from pispeaker.audio.ports import DeviceLostError
from pispeaker.config import AudioConfig
from pispeaker.marks import Mark

log = logging.getLogger(__name__)

#: How long opening a device may take; a busy hw: device blocks an open indefinitely.
OPEN_TIMEOUT_S = 5.0
#: Capture delivering nothing for this long counts as a lost device.
STALL_S = 2.0
#: Captured audio held for a slow event loop before the oldest is dropped (counted).
CAPTURE_BACKLOG_S = 2.0
#: The capture rate asked for when the config says 0: what nearly every USB microphone runs
#: at natively, so that soxr, not plughw's linear converter (which does not filter before
#: decimating, so noise above 8 kHz would alias into the speech band), makes the 16 kHz.
NATIVE_CAPTURE_RATE = 48_000
#: The order in which sample formats are tried when the config says "auto".
PREFERRED_FORMATS = ("S16_LE", "S32_LE", "S24_LE", "S24_3LE", "FLOAT_LE")
#: pyalsaaudio's read() and write() return this (-EPIPE) on an overrun or underrun.
XRUN = -32
NEXT_STEP = "run `pispeaker devices` to see the devices and what they accept"

T = TypeVar("T")


# -- libasound's own error printing ---------------------------------------------------------

_ERROR_HANDLER_TYPE = ctypes.CFUNCTYPE(
    None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p
)


def _libasound_says(file: bytes, line: int, function: bytes, err: int, fmt: bytes) -> None:
    # The message's printf arguments cannot be read from Python; the format names the cause.
    log.debug("libasound %s:%d %s: %s", file.decode(), line, function.decode(), fmt.decode())


#: Kept referenced for the life of the process: libasound calls it.
_ERROR_HANDLER = _ERROR_HANDLER_TYPE(_libasound_says)


def _quiet_libasound() -> None:
    """Send libasound's messages to the debug log instead of stderr (where they would
    otherwise interleave with ours on every failed open)."""
    name = ctypes.util.find_library("asound") or "libasound.so.2"
    ctypes.CDLL(name).snd_lib_error_set_handler(_ERROR_HANDLER)


_quiet_libasound()


# -- opening ---------------------------------------------------------------------------------


class Pcm(Protocol):
    """The part of alsaaudio.PCM pispeaker uses (a test may wrap a real PCM to inject
    faults that file-backed PCMs cannot produce, such as xruns)."""

    def read(self) -> tuple[int, bytes]: ...
    def write(self, data: bytes) -> int: ...
    def drop(self) -> int: ...
    def drain(self) -> int: ...
    def close(self) -> None: ...
    def info(self) -> dict[str, Any]: ...
    def getformats(self) -> dict[str, int]: ...


@dataclass(frozen=True)
class Request:
    """What to ask a device for; 0 and "auto" mean pispeaker's preference."""

    key: str  # the config key naming the device, for messages
    device: str
    rate: int = 0
    channels: int = 0
    format_name: str = "auto"
    period_ms: int = 20
    periods: int = 4


@dataclass(frozen=True)
class Opened:
    """What a device actually gave (it may differ from the request)."""

    pcm: Pcm
    rate: int
    channels: int
    format_name: str

    def describe(self) -> str:
        return f"{self.rate} Hz, {self.channels} ch, {self.format_name}"


def capture_request(audio: AudioConfig) -> Request:
    """The capture device request from the [audio] section."""
    return _request(audio, "capture")


def playback_request(audio: AudioConfig) -> Request:
    """The playback device request from the [audio] section."""
    return _request(audio, "playback")


def _request(audio: AudioConfig, direction: str) -> Request:
    def setting(name: str) -> Any:
        return getattr(audio, f"{direction}_{name}")

    return Request(
        f"audio.{direction}_device",
        setting("device"),
        setting("rate"),
        setting("channels"),
        setting("format"),
        audio.period_ms,
        audio.periods,
    )


Opener = Callable[[int, Request, int], Opened]


def open_device(kind: int, request: Request, preferred_rate: int) -> Opened:
    """Open ``request.device`` for ``kind`` (alsaaudio.PCM_CAPTURE or PCM_PLAYBACK).

    ALSA settles on the nearest rate and channel count the device supports; a sample format
    it refuses falls back to another, so with "auto" an unusable one is swapped for the
    first of PREFERRED_FORMATS the device offers. Raises DeviceLostError naming the device.
    """
    rate = request.rate or preferred_rate
    wanted = PREFERRED_FORMATS[0] if request.format_name == "auto" else request.format_name
    pcm = _open_pcm(kind, request, rate, wanted)
    got = str(pcm.info()["format_name"])
    if got not in FORMATS and request.format_name == "auto":
        offered = pcm.getformats()
        usable = [name for name in PREFERRED_FORMATS if name in offered]
        pcm.close()
        if not usable:
            raise DeviceLostError(
                f"{request.key} {request.device!r} offers only {', '.join(offered)}, none of "
                f"which pispeaker reads; use its plughw: name instead"
            )
        pcm = _open_pcm(kind, request, rate, usable[0])
        got = str(pcm.info()["format_name"])
    if got not in FORMATS or (request.format_name != "auto" and got != request.format_name):
        pcm.close()
        raise DeviceLostError(
            f"{request.key} {request.device!r} does not accept {wanted} (it gave {got}); "
            f"set the matching {request.key.replace('device', 'format')} or {NEXT_STEP}"
        )
    info = pcm.info()
    return Opened(pcm, int(info["rate"]), int(info["channels"]), got)


def _open_pcm(kind: int, request: Request, rate: int, format_name: str) -> Pcm:
    try:
        pcm: Pcm = alsaaudio.PCM(
            kind,
            device=request.device,
            rate=rate,
            channels=request.channels or 1,
            format=getattr(alsaaudio, f"PCM_FORMAT_{format_name}"),
            periodsize=max(1, rate * request.period_ms // 1000),
            periods=request.periods,
        )
    except alsaaudio.ALSAAudioError as error:
        raise DeviceLostError(
            f"{request.key} {request.device!r} cannot be opened: {error}; {NEXT_STEP}"
        ) from error
    return pcm


async def _in_own_thread(work: Callable[[], T], timeout_s: float, late: Callable[[T], None]) -> T:
    """Run blocking ``work`` in a fresh daemon thread and await its result for at most
    ``timeout_s``; a result that arrives after that is handed to ``late`` (to close it)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            if error is None:
                late(result)  # type: ignore[arg-type]
        elif error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        try:
            result, error = work(), None
        except Exception as failure:  # noqa: BLE001 - handed to the awaiting task, not lost
            result, error = None, failure
        try:
            loop.call_soon_threadsafe(settle, result, error)
        except RuntimeError:  # the loop is gone: nobody will use the result
            if error is None:
                late(result)  # type: ignore[arg-type]

    threading.Thread(target=run, name="alsa-open", daemon=True).start()
    async with asyncio.timeout(timeout_s):  # a cancel is never lost, unlike with wait_for
        return await future


async def _open_in_thread(opener: Opener, kind: int, request: Request, rate: int) -> Opened:
    try:
        return await _in_own_thread(
            lambda: opener(kind, request, rate), OPEN_TIMEOUT_S, lambda late: late.pcm.close()
        )
    except TimeoutError:
        raise DeviceLostError(
            f"{request.key} {request.device!r} did not open within {OPEN_TIMEOUT_S:g} s: another "
            f"program may be using it (share it with dsnoop/dmix, see config/alsa/)"
        ) from None


# -- capture ---------------------------------------------------------------------------------


class AlsaSource:
    """A microphone on an ALSA capture device, as 16 kHz mono s16le chunks of ``chunk_ms``.

    ``overruns`` counts audio the card lost because reading fell behind; ``dropped`` counts
    chunks thrown away because the event loop fell behind by more than CAPTURE_BACKLOG_S.
    """

    def __init__(
        self,
        request: Request,
        chunk_ms: int = 20,
        channel: int = 0,
        stall_s: float = STALL_S,
        opener: Opener = open_device,
    ) -> None:
        self.request = request
        self.chunk_bytes = byte_count(chunk_ms / 1000, INPUT_RATE)
        self.channel = channel
        self.stall_s = stall_s
        self.overruns = 0
        self.dropped = 0
        self.opened: Opened | None = None
        self._opener = opener
        self._chunks: asyncio.Queue[bytes | DeviceLostError] | None = None
        self._reader: _Reader | None = None

    async def start(self) -> None:
        await self.stop()
        opened = await _open_in_thread(
            self._opener, alsaaudio.PCM_CAPTURE, self.request, NATIVE_CAPTURE_RATE
        )
        if self.channel > opened.channels:
            opened.pcm.close()
            raise DeviceLostError(
                f"audio.capture_channel is {self.channel} but {self.request.device!r} has "
                f"{opened.channels} channels"
            )
        log.info("capturing from %r at %s", self.request.device, opened.describe())
        backlog = max(1, byte_count(CAPTURE_BACKLOG_S, INPUT_RATE) // self.chunk_bytes)
        self._chunks = asyncio.Queue(maxsize=backlog)
        self.opened = opened
        self._reader = _Reader(self, opened, self._chunks, asyncio.get_running_loop())
        self._reader.start()

    async def read(self) -> bytes:
        if self._chunks is None:
            raise DeviceLostError(f"{self.request.key} {self.request.device!r} is not open")
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for returns a chunk that was
            # ready instead of raising a cancel that arrived at the same time.
            async with asyncio.timeout(self.stall_s):
                chunk = await self._chunks.get()
        except TimeoutError:
            raise DeviceLostError(
                f"{self.request.key} {self.request.device!r} delivered no audio for "
                f"{self.stall_s:g} s (unplugged or hung?)"
            ) from None
        if isinstance(chunk, DeviceLostError):
            self._chunks = None
            raise chunk
        return chunk

    async def stop(self) -> None:
        self._chunks = None
        if self._reader is not None:
            reader, self._reader = self._reader, None
            await reader.stop()


class _Reader(threading.Thread):
    """Reads periods, converts them and queues exact chunks on the event loop."""

    def __init__(
        self,
        source: AlsaSource,
        opened: Opened,
        chunks: "asyncio.Queue[bytes | DeviceLostError]",
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        super().__init__(name="alsa-capture", daemon=True)
        self.source, self.opened, self.chunks, self.loop = source, opened, chunks, loop
        self.stopping = threading.Event()
        self.converter = CaptureConverter(
            opened.rate, opened.channels, opened.format_name, source.channel
        )
        self.rechunker = Rechunker(source.chunk_bytes)

    def run(self) -> None:
        try:
            self._read_until_stopped()
        except alsaaudio.ALSAAudioError as error:
            request = self.source.request
            self._deliver(
                DeviceLostError(f"{request.key} {request.device!r} failed: {error}; {NEXT_STEP}")
            )
        finally:
            self.opened.pcm.close()

    def _read_until_stopped(self) -> None:
        while not self.stopping.is_set():
            frames, data = self.opened.pcm.read()
            if frames == XRUN:
                self.source.overruns += 1
                _log_xrun("capture overrun", self.source.request, self.source.overruns)
                continue
            if self.stopping.is_set():
                return  # a read that ended after stop() may hold anything
            for chunk in self.rechunker.push(self.converter.convert(data)):
                self._deliver(chunk)

    def _deliver(self, item: "bytes | DeviceLostError") -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody is listening
            self.loop.call_soon_threadsafe(self._put, item)

    def _put(self, item: "bytes | DeviceLostError") -> None:
        if self.stopping.is_set():
            return
        if self.chunks.full():
            self.chunks.get_nowait()
            self.source.dropped += 1
        self.chunks.put_nowait(item)

    async def stop(self) -> None:
        """Ask the thread to end and give it one period; a read stuck on a hung device is
        abandoned (the thread closes its PCM whenever that read returns)."""
        self.stopping.set()
        await asyncio.to_thread(self.join, 0.5)


# -- playback --------------------------------------------------------------------------------


@dataclass
class _Piece:
    """One period or less of reply audio, as given and as the device wants it."""

    pcm: bytes
    frames: bytes
    write: int = 0  # the number of the ``write`` call whose audio it starts, else 0


class _Signal(enum.Enum):
    DROP = "drop what the device holds"
    IDLE = "nothing to play for a while"
    STOP = "stop"


@dataclass
class _DrainMark:
    """Everything queued before it has played once the device drains; then ``done``."""

    done: asyncio.Future[None]


class AlsaSink:
    """A speaker on an ALSA playback device, fed 24 kHz mono s16le.

    Audio is queued and written by a thread a period at a time, so ``flush`` stops sound
    within one period: it empties the queue and the thread drops what the device holds.
    ``underruns`` counts times the card ran dry in the middle of audio.
    """

    def __init__(self, request: Request, opener: Opener = open_device) -> None:
        self.request = request
        self.tap: Callable[[bytes], None] | None = None
        self.underruns = 0
        self.writes = 0  # ``write`` calls so far
        #: Marks "playback.written" (the write's number) once the first piece of a ``write``
        #: is in the device, "playback.dropping" and "playback.dropped" before and after a
        #: flush empties the device.
        self.mark: Mark | None = None
        self.opened: Opened | None = None
        self._opener = opener
        self._writer: _Writer | None = None
        self._converter: PlaybackConverter | None = None
        self._lost = asyncio.Event()
        self._lost_message = ""

    async def start(self) -> None:
        await self.stop()
        opened = await _open_in_thread(
            self._opener, alsaaudio.PCM_PLAYBACK, self.request, OUTPUT_RATE
        )
        log.info("playing to %r at %s", self.request.device, opened.describe())
        self.opened = opened
        self._lost.clear()
        self._converter = PlaybackConverter(opened.rate, opened.channels, opened.format_name)
        self._writer = _Writer(self, opened, asyncio.get_running_loop())
        self._writer.start()

    def write(self, pcm: bytes) -> None:
        if self._lost.is_set():
            return  # the device is gone (even if a reopen failed): the controller recovers it
        if self._writer is None or self._converter is None:
            raise DeviceLostError(f"{self.request.key} {self.request.device!r} is not open")
        self.writes += 1
        piece_bytes = byte_count(self.request.period_ms / 1000, OUTPUT_RATE)
        converter = self._converter
        pieces = [
            _Piece(piece, converter.convert(piece))
            for piece in (pcm[i : i + piece_bytes] for i in range(0, len(pcm), piece_bytes))
        ]
        if pieces:
            pieces[0].write = self.writes
        self._writer.queue(pieces)

    def flush(self) -> None:
        if self._writer is not None and self._converter is not None:
            self._writer.flush()
            self._converter.reset()

    async def drain(self) -> None:
        if self._writer is not None and self._converter is not None:
            tail = self._converter.finish()  # what soxr held back (nothing in passthrough)
            if tail:
                self._writer.queue([_Piece(b"", tail)])
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


class _Writer(threading.Thread):
    """Writes queued pieces to the device; drops the device's buffer on flush."""

    def __init__(self, sink: AlsaSink, opened: Opened, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(name="alsa-playback", daemon=True)
        self.sink, self.opened, self.loop = sink, opened, loop
        self.frame = frame_bytes(opened.format_name, opened.channels)
        self.buffer_s = sink.request.period_ms * sink.request.periods / 1000
        self.pending: deque[_Piece | _DrainMark] = deque()
        self.wakeup = threading.Condition()
        self.drop_requested = False
        self.stopping = False
        self.finished = False
        self.playing = False  # audio went to the device since it was last drained

    # -- called on the event loop

    def queue(self, pieces: list[_Piece]) -> None:
        with self.wakeup:
            self.pending.extend(pieces)
            self.wakeup.notify()

    def flush(self) -> None:
        with self.wakeup:
            marks = self._take_marks()
            self.drop_requested = True
            self.wakeup.notify()
        _resolve(*marks)  # nothing is left to play

    async def drain(self) -> None:
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

    def run(self) -> None:
        try:
            self._play_until_stopped()
        except alsaaudio.ALSAAudioError as error:
            request = self.sink.request
            self._call_soon(
                self.sink.report_lost,
                f"{request.key} {request.device!r} failed: {error}; {NEXT_STEP}",
            )
        finally:
            with self.wakeup:
                self.finished = True
                marks = self._take_marks()
            self._call_soon(_resolve, *marks)
            with contextlib.suppress(alsaaudio.ALSAAudioError):
                self.opened.pcm.drop()  # close() alone would play the buffer out first
            self.opened.pcm.close()

    def _play_until_stopped(self) -> None:
        while (item := self._next()) is not _Signal.STOP:
            if item is _Signal.DROP:
                self.playing = False
                self._mark("playback.dropping", None)
                self.opened.pcm.drop()
                self._mark("playback.dropped", None)
            elif item is _Signal.IDLE:
                self._drain()
            elif isinstance(item, _DrainMark):
                self._drain()
                self._call_soon(_resolve, item.done)
            else:
                self._play(item)

    def _next(self) -> "_Piece | _DrainMark | _Signal":
        """What to do next. A flush's drop comes first; a buffer's time with nothing to
        play drains the device, so the pause between replies is not counted as an
        underrun. (The lock is never held while ALSA is called: that may block.)"""
        with self.wakeup:
            while True:
                if self.drop_requested:
                    self.drop_requested = False
                    return _Signal.DROP
                if self.stopping:
                    return _Signal.STOP
                if self.pending:
                    return self.pending.popleft()
                if not self.wakeup.wait(self.buffer_s) and self.playing:
                    return _Signal.IDLE

    def _drain(self) -> None:
        self.opened.pcm.drain()
        self.playing = False

    def _play(self, piece: _Piece) -> None:
        if self.sink.tap is not None and piece.pcm:
            self._call_soon(self.sink.tap, piece.pcm)
        frames = piece.frames
        self.playing = True
        while frames and not self.drop_requested:
            written = self.opened.pcm.write(frames)
            if written == XRUN:
                self.sink.underruns += 1
                _log_xrun("playback underrun", self.sink.request, self.sink.underruns)
                continue
            frames = frames[max(0, written) * self.frame :]
        if piece.write:
            self._mark("playback.written", piece.write)

    def _mark(self, point: str, detail: object) -> None:
        if self.sink.mark is not None:
            self.sink.mark(point, detail)

    def _take_marks(self) -> list[asyncio.Future[None]]:
        marks = [item.done for item in self.pending if isinstance(item, _DrainMark)]
        self.pending.clear()
        return marks

    def _call_soon(self, callback: Callable[..., None], *args: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody is listening
            self.loop.call_soon_threadsafe(callback, *args)


def _log_xrun(what: str, request: Request, count: int) -> None:
    # ALSA recovered already (pyalsaaudio re-prepares the stream); the count tells whether
    # the machine is too busy or period_ms x periods too small.
    log.warning("%s on %r (%d so far)", what, request.device, count)


def _resolve(*futures: asyncio.Future[None]) -> None:
    for future in futures:
        if not future.done():
            future.set_result(None)


# -- mixer -----------------------------------------------------------------------------------


def open_mixer(control: str, device: str) -> Callable[[int], None]:
    """A setter of hardware volume control ``control`` on ``device``, 0-100 (percent of the
    control's range). Raises DeviceLostError listing the controls that device has."""
    try:
        mixer = alsaaudio.Mixer(control, device=device)
    except alsaaudio.ALSAAudioError as error:
        raise DeviceLostError(
            f"audio.mixer_control {control!r} on audio.mixer_device {device!r}: {error}; "
            f"controls there: {', '.join(mixer_controls(device)) or 'none'}"
        ) from error

    def set_level(level: int) -> None:
        mixer.setvolume(level)

    return set_level


def mixer_controls(device: str) -> list[str]:
    """The simple mixer controls of ``device`` (empty if it has none or is missing)."""
    try:
        return list(alsaaudio.mixers(device=device))
    except alsaaudio.ALSAAudioError:
        return []


# -- what is there ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Card:
    """A sound card: its index, short id (as in CARD=...) and long name."""

    index: int
    id: str
    name: str


@dataclass(frozen=True)
class DeviceReport:
    """What one ALSA PCM accepts, or why it could not be opened."""

    name: str
    rates: str = ""
    channels: tuple[int, ...] = ()
    formats: tuple[str, ...] = ()
    problem: str = ""


#: Channel counts probed (asking a plug device for every count it "supports" never ends).
PROBED_CHANNELS = (1, 2, 4, 6, 8)
#: Above this, a rate range means "anything": ALSA's plug layer converts.
MAX_REAL_RATE = 768_000


def cards() -> list[Card]:
    """The sound cards the kernel knows."""
    return [
        Card(index, alsaaudio.cards()[position], str(alsaaudio.card_name(index)[0]))
        for position, index in enumerate(alsaaudio.card_indexes())
    ]


def device_names(capture: bool) -> list[str]:
    """The PCM names ALSA's configuration offers for capture or playback."""
    return list(alsaaudio.pcms(alsaaudio.PCM_CAPTURE if capture else alsaaudio.PCM_PLAYBACK))


def probe(name: str, capture: bool) -> DeviceReport:
    """Open ``name`` without waiting (a busy device says so) and ask what it accepts."""
    kind = alsaaudio.PCM_CAPTURE if capture else alsaaudio.PCM_PLAYBACK
    try:
        pcm = alsaaudio.PCM(kind, alsaaudio.PCM_NONBLOCK, device=name)
    except alsaaudio.ALSAAudioError as error:
        return DeviceReport(name, problem=str(error))
    try:
        formats = tuple(pcm.getformats())
        rates = _describe_rates(pcm.getrates())
    finally:
        pcm.close()
    return DeviceReport(name, rates, _channels(kind, name), formats)


def _describe_rates(rates: int | tuple[int, int] | list[int]) -> str:
    if isinstance(rates, int):
        return f"{rates} Hz"
    if isinstance(rates, tuple):
        low, high = rates
        if high > MAX_REAL_RATE:
            return "any rate (ALSA converts)"
        return f"{low}-{high} Hz"
    return ", ".join(str(rate) for rate in rates) + " Hz"


def _channels(kind: int, name: str) -> tuple[int, ...]:
    accepted = []
    for count in PROBED_CHANNELS:
        try:
            pcm = alsaaudio.PCM(kind, alsaaudio.PCM_NONBLOCK, device=name, channels=count)
        except alsaaudio.ALSAAudioError:
            continue
        if int(pcm.info()["channels"]) == count:
            accepted.append(count)
        pcm.close()
    return tuple(accepted)
