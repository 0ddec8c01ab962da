"""The microphone: an ALSA capture device read by a thread of its own, delivered to the event
loop as 16 kHz mono s16le chunks."""

import asyncio
import logging
import threading
import time
from dataclasses import dataclass

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
from pispeaker.audio.convert import CaptureConverter, Rechunker
from pispeaker.audio.pcm import INPUT_RATE, SAMPLE_WIDTH, byte_count
from pispeaker.audio.ports import DeviceLostError

log = logging.getLogger(__name__)

#: Bytes of the delivered audio (16 kHz s16le) a second: how long ago a chunk ended.
BYTES_PER_S = INPUT_RATE * SAMPLE_WIDTH
#: Capture delivering nothing for this long counts as a lost device.
STALL_S = 2.0
#: Captured audio held for a slow event loop before the oldest is dropped (counted).
CAPTURE_BACKLOG_S = 2.0
#: The capture rate asked for when the config says 0: what nearly every USB microphone runs
#: at natively, so that soxr, not plughw's linear converter (which does not filter before
#: decimating, so noise above 8 kHz would alias into the speech band), makes the 16 kHz.
NATIVE_CAPTURE_RATE = 48_000


class AlsaSource:
    """A microphone on an ALSA capture device, as 16 kHz mono s16le chunks of ``chunk_ms``,
    delivered to the event loop ``batch`` at a time.

    ``overruns`` counts audio the card lost because reading fell behind; ``dropped`` counts
    chunks thrown away because the event loop fell behind by more than ``backlog_s``.
    """

    def __init__(
        self,
        request: Request,
        chunk_ms: int = 20,
        channel: int = 0,
        stall_s: float = STALL_S,
        opener: Opener = open_device,
        backlog_s: float = CAPTURE_BACKLOG_S,
    ) -> None:
        self.request = request
        self.chunk_bytes = byte_count(chunk_ms / 1000, INPUT_RATE)
        self.channel = channel
        self.stall_s = stall_s
        self.backlog_s = backlog_s
        self.overruns = 0
        self.dropped = 0
        self.captured_at = 0.0
        self.batch = 1
        self.opened: Opened | None = None
        self._opener = opener
        self._chunks: asyncio.Queue[_Chunk | DeviceLostError] | None = None
        self._reader: _Reader | None = None

    async def start(self) -> None:
        await self.stop()
        opened = await open_in_thread(
            self._opener, alsaaudio.PCM_CAPTURE, self.request, NATIVE_CAPTURE_RATE
        )
        if self.channel > opened.channels:
            opened.pcm.close()
            raise DeviceLostError(
                f"audio.capture_channel is {self.channel} but {self.request.device!r} has "
                f"{opened.channels} channels"
            )
        log.info("capturing from %r at %s", self.request.device, opened.describe())
        backlog = max(1, byte_count(self.backlog_s, INPUT_RATE) // self.chunk_bytes)
        self._chunks = asyncio.Queue(maxsize=backlog)
        self.opened = opened
        self._reader = _Reader(self, opened, self._chunks, asyncio.get_running_loop())
        self._reader.start()

    async def read(self) -> bytes:
        if self._chunks is None:
            raise DeviceLostError(f"{self.request.subject} is not open")
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for returns a chunk that was
            # ready instead of raising a cancel that arrived at the same time.
            async with asyncio.timeout(self.stall_s):
                chunk = await self._chunks.get()
        except TimeoutError:
            raise DeviceLostError(
                f"{self.request.subject} delivered no audio for {self.stall_s:g} s "
                f"(unplugged or hung?)"
            ) from None
        if isinstance(chunk, DeviceLostError):
            self._chunks = None
            raise chunk
        self.captured_at = chunk.captured_at
        return chunk.pcm

    async def stop(self) -> None:
        self._chunks = None
        if self._reader is not None:
            reader, self._reader = self._reader, None
            await reader.stop()


@dataclass(frozen=True)
class _Chunk:
    """A chunk of 16 kHz audio and when its last sample was captured."""

    pcm: bytes
    captured_at: float


class _Reader(DeviceThread):
    """Reads periods, converts them and queues exact chunks on the event loop, each with
    when its last sample was captured: a read returns once the card has captured the last
    sample of its period, so the converted audio ends then (less soxr's held-back few)."""

    def __init__(
        self,
        source: AlsaSource,
        opened: Opened,
        chunks: "asyncio.Queue[_Chunk | DeviceLostError]",
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        super().__init__("alsa-capture", source.request, opened, loop)
        self.source, self.chunks = source, chunks
        self.stopping = threading.Event()
        self.converter = CaptureConverter(
            opened.rate, opened.channels, opened.format_name, source.channel
        )
        self.rechunker = Rechunker(source.chunk_bytes)
        self.raw: list[bytes] = []  # periods read, not yet converted
        self.raw_frames = 0
        self.held: list[_Chunk] = []  # converted, to go to the loop together

    def work(self) -> None:
        while not self.stopping.is_set():
            frames, data = self.opened.pcm.read()
            if frames == XRUN:
                self.source.overruns += 1
                self.log_xrun("capture overrun", self.source.overruns)
                continue
            captured_at = time.monotonic()
            if self.stopping.is_set():
                return  # a read that ended after stop() may hold anything
            self.raw.append(data)
            self.raw_frames += frames
            if self.raw_frames >= self._frames_per_batch():
                self._convert(captured_at)
            if self.held:
                self.call_soon(self._put, self.held)
                self.held = []

    def _frames_per_batch(self) -> int:
        """Device frames to read before converting: one period while each chunk goes out
        as soon as it is whole; a batch's worth otherwise, because soxr and numpy cost about
        half as much per period on four at once (50 -> 30 us a period at 48 kHz stereo)."""
        batch = self.source.batch
        return (
            0 if batch == 1 else batch * self.source.chunk_bytes * self.opened.rate // BYTES_PER_S
        )

    def _convert(self, captured_at: float) -> None:
        """Convert what was read; hold each whole chunk with when its last sample was
        captured (the last period read ended at ``captured_at``)."""
        data = self.raw[0] if len(self.raw) == 1 else b"".join(self.raw)
        self.raw, self.raw_frames = [], 0
        chunks = self.rechunker.push(self.converter.convert(data))
        after = self.rechunker.waiting  # bytes captured after the last chunk's end
        for index, chunk in enumerate(chunks):
            later = (len(chunks) - 1 - index) * len(chunk) + after
            self.held.append(_Chunk(chunk, captured_at - later / BYTES_PER_S))

    def failed(self, message: str) -> None:
        if self.raw:  # what was read before the device failed still counts
            self._convert(time.monotonic())
        self.call_soon(self._put, [*self.held, DeviceLostError(message)])

    def _put(self, items: "list[_Chunk | DeviceLostError]") -> None:
        if self.stopping.is_set():
            return
        for item in items:
            if self.chunks.full():
                self.chunks.get_nowait()
                self.source.dropped += 1
            self.chunks.put_nowait(item)

    async def stop(self) -> None:
        """Ask the thread to end and give it one period; a read stuck on a hung device is
        abandoned (the thread closes its PCM whenever that read returns)."""
        self.stopping.set()
        await asyncio.to_thread(self.join, 0.5)
