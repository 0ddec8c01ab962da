"""One ALSA PCM device: what to ask it for, opening it with an error that names it, and the
thread that alone uses it once open (capture.py and playback.py build on these)."""

import abc
import asyncio
import ctypes
import ctypes.util
import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import alsaaudio

from pispeaker.audio.convert import FORMATS
from pispeaker.audio.ports import DeviceLostError

log = logging.getLogger(__name__)

#: How long opening a device may take; a busy hw: device blocks an open indefinitely.
OPEN_TIMEOUT_S = 5.0
#: The order in which sample formats are tried when the config says "auto".
PREFERRED_FORMATS = ("S16_LE", "S32_LE", "S24_LE", "S24_3LE", "FLOAT_LE")
#: pyalsaaudio's read() and write() return this (-EPIPE) on an overrun or underrun.
XRUN = -32
NEXT_STEP = "run `pispeaker devices` to see the devices and what they accept"

T = TypeVar("T")


# -- libasound's own error printing ---------------------------------------------------------


def _libasound_says(file: bytes, line: int, function: bytes, err: int, fmt: bytes) -> None:
    # The message's printf arguments cannot be read from Python; the format names the cause.
    log.debug("libasound %s:%d %s: %s", file.decode(), line, function.decode(), fmt.decode())


@functools.cache
def quiet_libasound() -> object:
    """Send libasound's messages to the debug log instead of stderr (where they would
    otherwise interleave with ours on every failed open). Call it before using alsaaudio;
    only the first call does anything.

    Returns the handler, which the cache keeps referenced for as long as libasound may call it.
    """
    handler_type = ctypes.CFUNCTYPE(
        None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p
    )
    handler = handler_type(_libasound_says)
    name = ctypes.util.find_library("asound") or "libasound.so.2"
    ctypes.CDLL(name).snd_lib_error_set_handler(handler)
    return handler


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

    @property
    def subject(self) -> str:
        """The config key and the device, as messages name them."""
        return f"{self.key} {self.device!r}"


@dataclass(frozen=True)
class Opened:
    """What a device actually gave (it may differ from the request)."""

    pcm: Pcm
    rate: int
    channels: int
    format_name: str

    def describe(self) -> str:
        return f"{self.rate} Hz, {self.channels} ch, {self.format_name}"


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
                f"{request.subject} offers only {', '.join(offered)}, none of which "
                f"pispeaker reads; use its plughw: name instead"
            )
        pcm = _open_pcm(kind, request, rate, usable[0])
        got = str(pcm.info()["format_name"])
    if got not in FORMATS or (request.format_name != "auto" and got != request.format_name):
        pcm.close()
        raise DeviceLostError(
            f"{request.subject} does not accept {wanted} (it gave {got}); "
            f"set the matching {request.key.replace('device', 'format')} or {NEXT_STEP}"
        )
    info = pcm.info()
    return Opened(pcm, int(info["rate"]), int(info["channels"]), got)


def _open_pcm(kind: int, request: Request, rate: int, format_name: str) -> Pcm:
    quiet_libasound()
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
            f"{request.subject} cannot be opened: {error}; {NEXT_STEP}"
        ) from error
    return pcm


async def open_in_thread(opener: Opener, kind: int, request: Request, rate: int) -> Opened:
    """``opener(kind, request, rate)`` in a thread of its own, for at most OPEN_TIMEOUT_S
    (then DeviceLostError; the device is closed whenever the open does return)."""
    try:
        return await _in_own_thread(
            lambda: opener(kind, request, rate), OPEN_TIMEOUT_S, lambda late: late.pcm.close()
        )
    except TimeoutError:
        raise DeviceLostError(
            f"{request.subject} did not open within {OPEN_TIMEOUT_S:g} s: another program may "
            f"be using it (share it with dsnoop/dmix, see config/alsa/)"
        ) from None


async def _in_own_thread(work: Callable[[], T], timeout_s: float, late: Callable[[T], None]) -> T:
    """Run blocking ``work`` in a fresh daemon thread and await its result for at most
    ``timeout_s``; a result that arrives after that is handed to ``late`` (to close it)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def succeed(result: T) -> None:
        if future.done():
            late(result)
        else:
            future.set_result(result)

    def fail(error: Exception) -> None:
        if not future.done():  # else nobody awaits it any more, and there is nothing to close
            future.set_exception(error)

    def run() -> None:
        try:
            result = work()
        except Exception as error:  # noqa: BLE001 - handed to the awaiting task, not lost
            call_soon(loop, fail, error)
            return
        if not call_soon(loop, succeed, result):
            late(result)  # the loop is gone: nobody will use the result

    threading.Thread(target=run, name="alsa-open", daemon=True).start()
    async with asyncio.timeout(timeout_s):  # a cancel is never lost, unlike with wait_for
        return await future


# -- the thread that owns an open device -----------------------------------------------------


def call_soon(
    loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: object
) -> bool:
    """From another thread, run ``callback(*args)`` on ``loop``; False if the loop has
    closed (then nobody is listening)."""
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:
        return False
    return True


class DeviceThread(threading.Thread, abc.ABC):
    """The one thread that uses an open device, so no PCM is touched by two threads and a
    call stuck on a dead device cannot block the event loop.

    It runs ``work`` until that returns, turns an ALSA error into ``failed(message)``, then
    calls ``release`` and closes the device. All three run on the thread: results go to the
    event loop through ``call_soon``.
    """

    def __init__(
        self, name: str, request: Request, opened: Opened, loop: asyncio.AbstractEventLoop
    ) -> None:
        super().__init__(name=name, daemon=True)
        self.request, self.opened, self.loop = request, opened, loop

    def run(self) -> None:
        try:
            self.work()
        except alsaaudio.ALSAAudioError as error:
            self.failed(f"{self.request.subject} failed: {error}; {NEXT_STEP}")
        finally:
            self.release()
            self.opened.pcm.close()

    @abc.abstractmethod
    def work(self) -> None:
        """Use the device until told to stop."""

    @abc.abstractmethod
    def failed(self, message: str) -> None:
        """Tell the event loop the device failed; ``message`` names it and the next step."""

    def release(self) -> None:
        """Last things to do before the device is closed."""

    def call_soon(self, callback: Callable[..., None], *args: object) -> None:
        """Run ``callback(*args)`` on the event loop, unless it has closed."""
        call_soon(self.loop, callback, *args)

    def log_xrun(self, what: str, count: int) -> None:
        # ALSA recovered already (pyalsaaudio re-prepares the stream); the count tells whether
        # the machine is too busy or period_ms x periods too small.
        log.warning("%s on %r (%d so far)", what, self.request.device, count)
