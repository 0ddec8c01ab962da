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
    ) -> None:
        super().__init__(name="bench-microphone", daemon=True)
        if keep and (rate, channels) != (INPUT_RATE, 1):
            raise ValueError("only a 16 kHz mono microphone keeps what it wrote")
        self.path, self.rate, self.channels = path, rate, channels
        self.period_frames = round(rate * period_s)
        self.speed = speed
        self.keep = keep
        self.written = bytearray()
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
                pipe.write(self._next_period())
                done += self.period_frames / self.rate
                time.sleep(max(0.0, start + done / speed - time.monotonic()))
                self.cpu_s = time.thread_time()

    def _next_period(self) -> bytes:
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
        mono = _mix(noise, bytes(voiced))
        self._remember(mono)
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
        return bytes(np.round(self._random.normal(0.0, NOISE_RMS, frames)).astype("<i2").tobytes())

    def _remember(self, mono: bytes) -> None:
        self.offset += byte_count(len(mono) / SAMPLE_WIDTH / self.rate, INPUT_RATE)
        if self.keep:
            self.written += mono
            self.periods.append((time.monotonic(), self.offset))


def _mix(noise: bytes, voiced: bytes) -> bytes:
    total = np.frombuffer(noise, "<i2").astype(np.int32)
    total[: len(voiced) // SAMPLE_WIDTH] += np.frombuffer(voiced, "<i2")
    return np.clip(total, -32768, 32767).astype("<i2").tobytes()


# -- the speaker -----------------------------------------------------------------------------

#: The speaker process: opens the FIFO read-write (so the open does not wait for ALSA, and the
#: pipe shrinks to one page before data arrives: the writer then feels the pace, as on a
#: card), drains it at BYTES_PER_S, and logs (time, bytes) of every read into LOG.
_SPEAKER = """
import fcntl, os, struct, sys, time
path, bytes_per_s, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, 4096)
step = max(4, bytes_per_s // 1000 // 4 * 4)  # about 1 ms of audio per read
with open(log, "wb", buffering=0) as out:
    print("open", flush=True)
    due = time.monotonic()
    while True:
        try:
            data = os.read(fd, step)
        except BlockingIOError:
            data = b""
        now = time.monotonic()
        if data:
            out.write(struct.pack("<dI", now, len(data)))
        due = max(due, now - 0.002) + len(data) / bytes_per_s if data else now + 0.0005
        time.sleep(max(0.0, due - time.monotonic()))
"""
_LOG_RECORD = struct.Struct("<dI")


class Speaker:
    """Drains a FIFO in real time like a speaker, in its own process (pyalsaaudio's drop()
    holds the GIL while the file plugin writes out what it buffered, so a thread of the
    process playing would deadlock). ``heard_between`` says how much it played when."""

    def __init__(self, path: Path, bytes_per_s: int, log: Path) -> None:
        self.path, self.bytes_per_s, self.log = path, bytes_per_s, log
        self._process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        """Start draining; return once the FIFO is open and shrunk (before ALSA opens it)."""
        args = [sys.executable, "-c", _SPEAKER, str(self.path), str(self.bytes_per_s)]
        self._process = subprocess.Popen([*args, str(self.log)], stdout=subprocess.PIPE, text=True)
        assert self._process.stdout is not None
        if self._process.stdout.readline() != "open\n":
            raise BenchError("the bench speaker process did not start")

    def heard_between(self, start: float, end: float) -> float:
        """Seconds of audio it played between two moments."""
        data = self.log.read_bytes()
        played: int = sum(
            count
            for moment, count in _LOG_RECORD.iter_unpack(data[: len(data) // 12 * 12])
            if start <= moment < end
        )
        return played / self.bytes_per_s

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait(5)
            if self._process.stdout is not None:
                self._process.stdout.close()


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
    directory: Path, pace: float, playback_hold: float, response_latency_s: float
) -> Iterator[Endpoint]:
    """``pispeaker emulator`` in a process of its own, until the block ends."""
    command = [sys.executable, "-m", "pispeaker", "emulator", "--port", "0"]
    command += ["--state-dir", str(directory), "--pace", str(pace)]
    command += ["--playback-hold", str(playback_hold)]
    command += ["--response-latency", str(response_latency_s), "--lifetime", "0"]
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
