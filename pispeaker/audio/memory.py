"""In-memory audio adapters for fast tests and the demo: they pass the same contract suite as
the real ALSA adapter."""

import asyncio
import time
from collections.abc import Callable

from pispeaker.audio.pcm import INPUT_RATE, OUTPUT_RATE, SAMPLE_WIDTH, byte_count, duration_s, scale
from pispeaker.audio.ports import DeviceLostError


class MemorySource:
    """A microphone that says ``audio``, then room silence forever.

    With ``realtime`` each chunk arrives when a real microphone would deliver it; without,
    chunks come as fast as they are read (silence then too: tests stop reading).
    ``lose_after_s`` makes the device disappear after that much audio.
    """

    def __init__(
        self,
        audio: bytes = b"",
        chunk_ms: int = 20,
        realtime: bool = False,
        lose_after_s: float | None = None,
    ) -> None:
        self.chunk_bytes = byte_count(chunk_ms / 1000, INPUT_RATE)
        self._audio = audio
        self._realtime = realtime
        self._playing: tuple[bytes, float] | None = None  # the piece playing (realtime), from when
        self._lose_at = None if lose_after_s is None else byte_count(lose_after_s, INPUT_RATE)
        self._position = 0
        self._started_at: float | None = None
        self.running = False
        self.captured_at = 0.0
        self.batch = 1  # each chunk is read when asked for: nothing to hold back

    async def start(self) -> None:
        self.running = True
        self._started_at = asyncio.get_running_loop().time()

    async def read(self) -> bytes:
        if not self.running:
            raise DeviceLostError("memory microphone is not started")
        if self._lose_at is not None and self._position >= self._lose_at:
            raise DeviceLostError("memory microphone disappeared (as scripted)")
        chunk = self._audio[self._position : self._position + self.chunk_bytes]
        chunk += bytes(self.chunk_bytes - len(chunk))  # pad with silence
        self._position += self.chunk_bytes
        if self._realtime and self._started_at is not None:
            due = self._started_at + self._position / (SAMPLE_WIDTH * INPUT_RATE)
            await asyncio.sleep(max(0.0, due - asyncio.get_running_loop().time()))
            self.captured_at = due
        else:
            await asyncio.sleep(0)  # a read is a suspension point, as with a real device
            self.captured_at = time.monotonic()
        return chunk

    async def stop(self) -> None:
        self.running = False


class MemorySink:
    """A speaker that records what it plays in ``played``.

    With ``realtime`` audio takes its real duration to play (so flushes cut it short, as on
    a device, and a new gain applies to the rest of the piece playing, tapped again); without,
    it plays the moment it is written.
    """

    def __init__(self, realtime: bool = False) -> None:
        self.tap: Callable[[bytes, float], None] | None = None
        self._gain = 1.0
        self.played = bytearray()
        self.flushed_at: list[int] = []  # len(played) at each flush
        #: Each piece as it started to play: (moment, audio, moment it was cut short or None).
        self.heard: list[tuple[float, bytes, float | None]] = []
        self._realtime = realtime
        self._playing: tuple[bytes, float] | None = None  # the piece playing (realtime), from when
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._player: asyncio.Task[None] | None = None
        self._written = self._done = 0  # pieces written, and played or flushed
        self._progress = asyncio.Event()  # set whenever a piece is done
        self._lost = asyncio.Event()
        self._lost_message = ""

    async def start(self) -> None:
        self._lost.clear()
        if self._player is None:
            self._player = asyncio.create_task(self._play_forever(), name="memory-sink")

    def write(self, pcm: bytes) -> None:
        if self._player is None:
            raise DeviceLostError("memory speaker is not started")
        if self._lost.is_set():
            return
        self._written += 1
        self._queue.put_nowait(pcm)

    @property
    def gain(self) -> float:
        return self._gain

    @gain.setter
    def gain(self, gain: float) -> None:
        if gain == self._gain:
            return
        self._gain = gain
        if self._playing is None:
            return
        rest = self._cut_short(keep=True)
        if not rest:  # it had just played out
            self._finished(self._done + 1)
        queued = [rest] if rest else []
        while not self._queue.empty():
            queued.append(self._queue.get_nowait())
        for pcm in queued:
            self._queue.put_nowait(pcm)

    def flush(self) -> None:
        while not self._queue.empty():
            self._queue.get_nowait()
        self.flushed_at.append(len(self.played))
        self._cut_short()
        self._finished(self._written)

    def _cut_short(self, keep: bool = False) -> bytes:
        """Stop the piece playing now where it is; return the rest of it, as written. With
        ``keep`` what it played is kept in ``played`` (the rest follows at a new gain)."""
        if self._playing is None or self._player is None:
            return b""
        pcm, started = self._playing
        now = time.monotonic()
        cut = min(len(pcm), byte_count(now - started, OUTPUT_RATE))
        moment, heard, _ = self.heard[-1]
        self.heard[-1] = (moment, heard, now)
        if keep:
            self.played.extend(heard[:cut])
        self._playing = None
        self._player.cancel()
        self._player = asyncio.create_task(self._play_forever(), name="memory-sink")
        return pcm[cut:]

    async def drain(self) -> None:
        """Return once every piece written before the call has played (or was flushed)."""
        written = self._written
        while self._done < written:
            self._progress.clear()
            await self._progress.wait()

    def _finished(self, done: int) -> None:
        self._done = done
        self._progress.set()

    def heard_between(self, start: float, end: float) -> bytes:
        """24 kHz audio of what played from ``start`` to ``end`` (zeros where nothing did)."""
        out = bytearray(byte_count(end - start, OUTPUT_RATE))
        for moment, pcm, cut in self.heard:
            if cut is not None:
                pcm = pcm[: byte_count(max(0.0, cut - moment), OUTPUT_RATE)]
            low = byte_count(max(start, moment) - moment, OUTPUT_RATE)
            high = min(len(pcm), byte_count(end - moment, OUTPUT_RATE))
            if low < high:
                at = byte_count(max(start, moment) - start, OUTPUT_RATE)
                out[at : at + high - low] = pcm[low:high][: len(out) - at]
        return bytes(out)

    async def wait_lost(self) -> str:
        await self._lost.wait()
        return self._lost_message

    def lose(self, message: str = "memory speaker disappeared (as scripted)") -> None:
        """Make the speaker fail, as an unplugged one does."""
        self.flush()
        self._lost_message = message
        self._lost.set()

    async def stop(self) -> None:
        if self._player is not None:
            player, self._player = self._player, None
            player.cancel()
            # wait, unlike awaiting the task, neither raises the cancel asked for here nor
            # swallows one of this task
            await asyncio.wait([player])
            if not player.cancelled():
                player.result()  # it failed before the cancel: raise what it failed with
        self._finished(self._written)  # nothing queued will play

    async def _play_forever(self) -> None:
        while True:
            given = await self._queue.get()
            pcm = scale(given, self.gain) if self.gain != 1.0 else given
            started = time.monotonic()
            self.heard.append((started, pcm, None))
            if self.tap:  # handed over as it starts to play, as a card's buffer starts
                self.tap(pcm, started)
            if self._realtime:
                self._playing = (given, started)
                await asyncio.sleep(duration_s(pcm, OUTPUT_RATE))
                self._playing = None
            self.played.extend(pcm)
            self._finished(self._done + 1)
