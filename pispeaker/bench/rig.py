"""The bench's stand-ins for a sound card and the Live API, built from real parts.

* ``alsa_config`` defines ALSA ``file`` PCMs over the ``null`` PCM: a capture device reading
  a FIFO that a ``Microphone`` feeds a period at a time, as a card completes periods, and a
  playback device writing into a FIFO that a ``Speaker`` drains in real time (or into
  /dev/null, where playback takes no time). Real libasound, no sound card.
* ``EmulatorProcess`` runs ``pispeaker emulator`` in its own process, so that its work is
  not counted as pispeaker's CPU time or memory.

Every time is ``time.monotonic()``, one clock for all processes of the machine.
"""

import contextlib
import os
import queue
import re
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pispeaker.audio.pcm import INPUT_RATE, SAMPLE_WIDTH, byte_count
from pispeaker.audio.resample import resample
from pispeaker.bench.room import Room
from pispeaker.errors import PispeakerError

#: The capture and playback PCM names the bench defines.
MIC, SPEAKER = "bench_mic", "bench_speaker"
#: Room noise under everything the microphone says (quiet: no voice detector takes it for
#: speech), which also makes every stretch of captured audio unique.
NOISE_RMS = 10.0


def alsa_config(directory: Path, mic_fifo: Path, speaker_file: Path) -> Path:
    """Write an ALSA configuration defining MIC (reading ``mic_fifo``) and SPEAKER (writing
    ``speaker_file``) to ``directory``; return its path, for ``ALSA_CONFIG_PATH``."""
    path = directory / "asound.conf"
    path.write_text(
        "</usr/share/alsa/alsa.conf>\n"
        f'pcm.{MIC} {{\n type file\n slave.pcm "null"\n infile "{mic_fifo}"\n'
        f' file "/dev/null"\n format "raw"\n}}\n'
        f'pcm.{SPEAKER} {{\n type file\n slave.pcm "null"\n file "{speaker_file}"\n'
        f' format "raw"\n}}\n'
    )
    return path


def fifo(path: Path) -> Path:
    """Make a FIFO at ``path``; return the path."""
    os.mkfifo(path)
    return path


# -- the microphone --------------------------------------------------------------------------


class Microphone(threading.Thread):
    """Feeds a FIFO as a capture card delivers: one period of s16le at ``rate`` and
    ``channels`` every ``period_s`` seconds, ``speed`` times faster than real time.

    It hears room noise unless told to ``say`` something (16 kHz mono, queued in order).
    With ``keep`` (16 kHz mono only) it keeps what it wrote in ``written`` and the time each
    period was written in ``periods`` (its end offset in ``written``), for the uplink figures.

    With an ``echo`` (16 kHz mono, real time only) it also hears the bench speaker through a
    simulated room, and its noise is the room's: ``written`` is then what the FIFO got, and
    ``near`` (with ``keep``) what it heard without the loudspeaker. A period's last sample is
    captured when it is due to be written, as a card delivers it: ``moments`` (with ``keep``)
    holds those moments, one a period (``periods`` holds when the writes really happened).
    """

    def __init__(
        self,
        path: Path,
        rate: int = INPUT_RATE,
        channels: int = 1,
        period_s: float = 0.02,
        speed: float = 1.0,
        keep: bool = False,
        seed: int = 7,
        echo: "Echo | None" = None,
    ) -> None:
        super().__init__(name="bench-microphone", daemon=True)
        if (keep or echo) and (rate, channels) != (INPUT_RATE, 1):
            raise ValueError("only a 16 kHz mono microphone keeps what it wrote or hears a room")
        if echo and speed != 1.0:
            raise ValueError("a room's echo needs a microphone in real time")
        self.path, self.rate, self.channels = path, rate, channels
        self.period_frames = round(rate * period_s)
        self.speed = speed
        self.keep = keep
        self.echo = echo
        self.noise_rms = echo.room.noise_rms if echo else NOISE_RMS
        self.written = bytearray()
        self.near = bytearray()
        self.moments: list[float] = []
        self.periods: list[tuple[float, int]] = []
        self.said: list[tuple[int, int]] = []  # (start, end) offsets in 16 kHz bytes
        self.cpu_s = 0.0  # this thread's CPU time, to subtract from the process's
        self.offset = 0  # 16 kHz mono bytes written so far
        self._random = np.random.default_rng(seed)
        self._utterances: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self._pending = b""  # device-format audio of the utterance being said
        self._stopping = threading.Event()

    def say(self, pcm: bytes) -> float:
        """Say 16 kHz mono s16le ``pcm`` after what is queued already; return its seconds."""
        self._utterances.put(pcm)
        return len(pcm) / SAMPLE_WIDTH / INPUT_RATE

    def seconds_at(self, offset: int) -> float:
        """When the 16 kHz byte at ``offset`` was written (needs ``keep``)."""
        ends = [end for _, end in self.periods]
        index = int(np.searchsorted(ends, offset, side="left"))
        return self.periods[min(index, len(self.periods) - 1)][0]

    def captured_at(self, offset: int) -> float:
        """When the sample at 16 kHz byte ``offset`` was captured (needs ``keep``)."""
        period = self.period_frames * SAMPLE_WIDTH
        index = min(offset // period, len(self.moments) - 1)
        later = self.period_frames - 1 - (offset - index * period) // SAMPLE_WIDTH
        return self.moments[index] - later / self.rate

    def silent_s(self) -> float:
        """Seconds written since the last utterance ended (0 while one is said or queued)."""
        if self._pending or not self._utterances.empty():
            return 0.0
        end = self.said[-1][1] if self.said else 0
        return max(0, self.offset - end) / SAMPLE_WIDTH / INPUT_RATE

    def offset_at(self, moment: float) -> int:
        """How many 16 kHz bytes had been written at ``moment`` (needs ``keep``)."""
        times = [t for t, _ in self.periods]
        index = int(np.searchsorted(times, moment, side="right"))
        return self.periods[index - 1][1] if index else 0

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        with contextlib.suppress(BrokenPipeError), open(self.path, "wb", buffering=0) as pipe:
            start, done = time.monotonic(), 0.0  # done: audio seconds since ``start``
            speed = self.speed
            while not self._stopping.is_set():
                if speed != self.speed:  # a new speed counts from now
                    start, done, speed = time.monotonic(), 0.0, self.speed
                pipe.write(self._next_period(start + done / speed))
                done += self.period_frames / self.rate
                time.sleep(max(0.0, start + done / speed - time.monotonic()))
                self.cpu_s = time.thread_time()

    def _next_period(self, moment: float) -> bytes:
        """The period whose last sample is captured at ``moment``."""
        need = self.period_frames * self.channels * SAMPLE_WIDTH
        noise = self._noise(self.period_frames)
        voiced = bytearray()
        while len(voiced) < len(noise):
            if not self._pending:
                self._pending = self._next_utterance(len(voiced))
                if not self._pending:
                    break
            take = self._pending[: len(noise) - len(voiced)]
            voiced += take
            self._pending = self._pending[len(take) :]
        near = _mix(noise, bytes(voiced))
        mono = near if self.echo is None else self.echo.heard(near, moment)
        self._remember(mono, near, moment)
        period = np.repeat(np.frombuffer(mono, "<i2"), self.channels).tobytes()
        assert len(period) == need
        return period

    def _next_utterance(self, into_period: int) -> bytes:
        try:
            pcm = self._utterances.get_nowait()
        except queue.Empty:
            return b""
        start = self.offset + into_period * INPUT_RATE // self.rate
        self.said.append((start, start + len(pcm)))
        return pcm if self.rate == INPUT_RATE else resample(pcm, INPUT_RATE, self.rate)

    def _noise(self, frames: int) -> bytes:
        noise = np.round(self._random.normal(0.0, self.noise_rms, frames))
        return bytes(np.clip(noise, -32768, 32767).astype("<i2").tobytes())

    def _remember(self, mono: bytes, near: bytes, moment: float) -> None:
        self.offset += byte_count(len(mono) / SAMPLE_WIDTH / self.rate, INPUT_RATE)
        if self.keep:
            self.written += mono
            self.near += near
            self.moments.append(moment)
            self.periods.append((time.monotonic(), self.offset))


def _mix(noise: bytes, voiced: bytes) -> bytes:
    total = np.frombuffer(noise, "<i2").astype(np.int32)
    total[: len(voiced) // SAMPLE_WIDTH] += np.frombuffer(voiced, "<i2")
    return np.clip(total, -32768, 32767).astype("<i2").tobytes()


@dataclass
class Echo:
    """The room between the bench speaker and microphone: what the speaker drained (read
    back from its content, ``rate`` and ``channels`` s16le) reaches the microphone."""

    room: Room
    played: "PlayedReader"
    rate: int
    channels: int

    def heard(self, near: bytes, end: float) -> bytes:
        """16 kHz mono ``near`` with the echo, its last sample captured at ``end``."""
        for moment, pcm in self.played.new():
            self.room.played(pcm, self.rate, self.channels, moment)
        samples = self.room.microphone(np.frombuffer(near, "<i2"), end)
        return bytes(samples.astype("<i2").tobytes())


# -- the speaker -----------------------------------------------------------------------------

#: The speaker process: opens the FIFO read-write (so the open does not wait for ALSA, and the
#: pipe shrinks to one page before data arrives: the writer then feels the pace, as on a
#: card), drains it at BYTES_PER_S, and logs (moment, bytes) of every read into LOG, after
#: appending the bytes to CONTENT (so a logged read's bytes are always there already).
#: A read's moment is on the speaker's own steady clock, as a card's DAC plays: a read that
#: comes late because this process slept late plays where the one before it ended (a
#: scheduling hiccup of the bench is not an echo path that jumps by milliseconds); only after
#: STARVED_S with nothing to play does the sound start again at the moment the data came.
_SPEAKER = """
import fcntl, os, struct, sys, time
path, bytes_per_s, log, content = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
STARVED_S = 0.01
fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, 4096)
os.set_blocking(0, False)
step = max(4, bytes_per_s // 1000 // 4 * 4)  # about 1 ms of audio per read
sound = open(content, "wb", buffering=0) if content else None
commands = b""
position = discard_to = 0  # bytes read so far; what a drop discards, up to
with open(log, "wb", buffering=0) as out:
    print("open", flush=True)
    clock = 0.0  # when the next byte plays
    while True:
        try:
            commands += os.read(0, 4096)
        except BlockingIOError:
            pass
        *lines, commands = commands.split(b"\\n")
        for line in lines:  # "drop N": the card discards what it holds of the first N bytes
            discard_to = max(discard_to, int(line.split()[1]))
        try:
            data = os.read(fd, min(4096, discard_to - position) if discard_to > position else step)
        except BlockingIOError:
            data = b""
        now = time.monotonic()
        if not data:
            time.sleep(0.0005)
            continue
        discarded = min(len(data), max(0, discard_to - position))
        position += len(data)
        data = data[discarded:]
        if not data:
            continue
        if now - clock > STARVED_S:
            clock = now
        if sound:
            sound.write(data)
        out.write(struct.pack("<dI", clock, len(data)))
        clock += len(data) / bytes_per_s
        time.sleep(max(0.0, clock - time.monotonic()))
"""
_LOG_RECORD = struct.Struct("<dI")


class Speaker:
    """Drains a FIFO in real time like a speaker, in its own process (pyalsaaudio's drop()
    holds the GIL while the file plugin writes out what it buffered, so a thread of the
    process playing would deadlock). ``heard_between`` says how much it played when; with
    ``content``, the bytes it drained are kept there too, for :meth:`reader`.

    A card discards what it holds when the stream is dropped; ALSA's file plugin instead
    writes it into its file. ``drop(committed)``, given how many bytes had been written to
    the device when it was dropped (the sink's marks say), makes the speaker discard them as
    a card would: what it had not played of those never plays.
    """

    def __init__(
        self, path: Path, bytes_per_s: int, log: Path, content: Path | None = None
    ) -> None:
        self.path, self.bytes_per_s, self.log, self.content = path, bytes_per_s, log, content
        self._process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        """Start draining; return once the FIFO is open and shrunk (before ALSA opens it)."""
        args = [sys.executable, "-c", _SPEAKER, str(self.path), str(self.bytes_per_s)]
        args += [str(self.log), str(self.content or "")]
        self._process = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self._process.stdout is not None
        if self._process.stdout.readline() != "open\n":
            raise BenchError("the bench speaker process did not start")

    def drop(self, committed: int) -> None:
        """The device was dropped when ``committed`` bytes had been written to it: discard
        what of them has not played (called from the sink's writer thread)."""
        if self._process is not None and self._process.stdin is not None:
            with contextlib.suppress(BrokenPipeError):  # it was stopped: nothing plays
                self._process.stdin.write(f"drop {committed}\n")
                self._process.stdin.flush()

    def heard_between(self, start: float, end: float) -> float:
        """Seconds of audio it played between two moments."""
        played = sum(count for moment, count in self.records() if start <= moment < end)
        return played / self.bytes_per_s

    def records(self) -> list[tuple[float, int]]:
        """(time, bytes) of every read so far."""
        data = self.log.read_bytes()
        return [
            (moment, count)
            for moment, count in _LOG_RECORD.iter_unpack(data[: len(data) // 12 * 12])
        ]

    def reader(self, frame_bytes: int) -> "PlayedReader":
        """A reader of what it plays from now on (needs ``content``)."""
        if self.content is None:
            raise ValueError("a speaker without content keeps no audio to read")
        return PlayedReader(self.log, self.content, frame_bytes)

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait(5)
            for pipe in (self._process.stdin, self._process.stdout):
                if pipe is not None:
                    with contextlib.suppress(BrokenPipeError):
                        pipe.close()


class PlayedReader:
    """Reads a :class:`Speaker`'s log and content as they grow: ``new()`` returns what it
    played since the last call, as (moment, whole frames of ``frame_bytes``)."""

    def __init__(self, log: Path, content: Path, frame_bytes: int) -> None:
        self.frame_bytes = frame_bytes
        self._log, self._content = log.open("rb"), content.open("rb")
        self._partial = b""  # a read may end inside a frame: its rest comes with the next

    def new(self) -> list[tuple[float, bytes]]:
        data = self._log.read()
        whole = len(data) // _LOG_RECORD.size * _LOG_RECORD.size
        self._log.seek(whole - len(data), os.SEEK_CUR)
        played = []
        for moment, count in _LOG_RECORD.iter_unpack(data[:whole]):
            chunk = self._partial + self._content.read(count)
            cut = len(chunk) // self.frame_bytes * self.frame_bytes
            chunk, self._partial = chunk[:cut], chunk[cut:]
            if chunk:
                played.append((moment, chunk))
        return played

    def close(self) -> None:
        self._log.close()
        self._content.close()


# -- the Live API ----------------------------------------------------------------------------


class BenchError(PispeakerError):
    """A part of the bench could not be set up or did not behave."""

    exit_code = os.EX_SOFTWARE


@dataclass(frozen=True)
class Endpoint:
    """Where a running emulator listens and the key it takes."""

    base_url: str
    ca_file: Path
    api_key: str


@contextlib.contextmanager
def emulator_process(
    directory: Path,
    pace: float,
    playback_hold: float,
    response_latency_s: float,
    reply: Path | None = None,
    decline_after: int | None = None,
) -> Iterator[Endpoint]:
    """``pispeaker emulator`` in a process of its own, until the block ends; it answers with
    the 24 kHz mono s16le audio in ``reply``, or else parrots what it heard (with
    ``decline_after``, only the first turns: it declines the rest)."""
    command = [sys.executable, "-m", "pispeaker", "emulator", "--port", "0"]
    command += ["--state-dir", str(directory), "--pace", str(pace)]
    command += ["--playback-hold", str(playback_hold)]
    command += ["--response-latency", str(response_latency_s), "--lifetime", "0"]
    command += ["--reply-audio", str(reply)] if reply else []
    command += ["--decline-after", str(decline_after)] if decline_after is not None else []
    with (directory / "emulator.log").open("w") as log:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        yield _endpoint(process)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        if process.stdout is not None:
            process.stdout.close()


def _endpoint(process: "subprocess.Popen[str]") -> Endpoint:
    assert process.stdout is not None
    said: dict[str, str] = {}
    for line in process.stdout:
        match = re.match(r"\s+(base URL|CA file|API key):\s+(\S+)", line)
        if match:
            said[match[1]] = match[2]
        if len(said) == 3:
            return Endpoint(said["base URL"], Path(said["CA file"]), said["API key"])
    raise BenchError(f"the emulator process ended at start (exit code {process.wait(5)})")
