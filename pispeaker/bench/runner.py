"""``pispeaker bench``: runs every scenario, prints the table and writes the JSON report.

The order: the floors (a fresh process); the service (``pispeaker run`` as systemd starts
it); conversations in real time (latency and CPU); the echo of the replies through a
simulated room, in real time; background talk; the soak: conversations back to back with
faults (memory, and what is left behind).
Every scenario has its own emulator process and ALSA file PCMs in a scratch directory.
"""

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TextIO, TypeVar

from pispeaker.bench.background import measure_background
from pispeaker.bench.conversation import SPEAKER_CHANNELS, SPEAKER_RATE, measure_conversations
from pispeaker.bench.echo import TALK_ROOM, measure_echo, scratch_reply
from pispeaker.bench.figures import Figure, Report, figure_from, machine, now_utc
from pispeaker.bench.rig import (
    BenchError,
    Echo,
    Microphone,
    Speaker,
    alsa_config,
    emulator_process,
    fifo,
)
from pispeaker.bench.room import Room
from pispeaker.bench.service import measure_service
from pispeaker.bench.settings import bench_config
from pispeaker.bench.soak import EmulatorProcess, measure_soak
from pispeaker.config import Config

#: A USB microphone's native format (rate, channels), for the service scenario.
USB_MIC = (48_000, 2)
_SPEAKER_BYTES_PER_S = SPEAKER_RATE * SPEAKER_CHANNELS * 2


@dataclass(frozen=True)
class BenchOptions:
    """How much to measure; ``short`` is CI's quick run (every figure, fewer samples)."""

    json_path: Path
    short: bool = False
    conversations: int = 1000
    speed: float = 8.0
    seed: int = 19  # of the soak's faults: which conversations, which fault, when

    @property
    def cycles(self) -> int:
        """Real-time conversation cycles (about 12 s each)."""
        return 1 if self.short else 8

    @property
    def echo_replies(self) -> int:
        """Replies of each echo scenario (about 4 s each)."""
        return 6 if self.short else 100

    @property
    def talk_s(self) -> float:
        """Seconds of background talk after the exchange."""
        return 20.0 if self.short else 60.0

    @property
    def idle_s(self) -> float:
        return 3.0 if self.short else 20.0

    @property
    def floor_s(self) -> float:
        return 4.0 if self.short else 20.0

    @property
    def warmup(self) -> int:
        return 3 if self.short else 20


async def run_bench(config: Config, options: BenchOptions, out: TextIO) -> int:
    """Measure, print the table to ``out`` and write the JSON; 0 when every figure was
    produced (missed targets are reported, not failed: this is a benchmark, not a test)."""
    with tempfile.TemporaryDirectory(prefix="pispeaker-bench-") as scratch:
        figures = await _measure(config, options, Path(scratch), out)
    report = Report(tuple(figures), machine(), "short" if options.short else "full", now_utc())
    print(report.table(), file=out)
    options.json_path.write_text(report.to_json())
    print(f"written to {options.json_path}", file=out)
    return 1 if report.missing() else 0


async def _measure(
    config: Config, options: BenchOptions, scratch: Path, out: TextIO
) -> list[Figure]:
    _progress(out, "floors: libraries imported, one wake model, openWakeWord alone")
    floor = _floors(options.floor_s)
    _progress(out, "service: pispeaker run, start -> READY, idle CPU and memory")
    service = await _service(config, options, _directory(scratch, "service"))
    cycles = f"{options.cycles} cycle{'s' if options.cycles != 1 else ''}"
    _progress(out, f"conversations in real time: {cycles} of about 12 s")
    talk = await _conversations(config, options, _directory(scratch, "conversations"))
    _progress(out, f"echo in real time: 3 scenarios of {options.echo_replies} replies")
    echo = await _echo(config, options, _directory(scratch, "echo"))
    _progress(out, f"background talk in real time: one exchange, then {options.talk_s:g} s")
    background = await _background(config, options, _directory(scratch, "background"))
    _progress(out, f"soak: {options.warmup + options.conversations} conversations with faults")
    soaked = await _soak(config, options, _directory(scratch, "soak"))
    measured = {figure.key: figure for figure in service + talk + soaked}
    return [*service, *talk, *echo, *background, *soaked, *_against_floors(floor, measured)]


def _progress(out: TextIO, text: str) -> None:
    print(f"bench: {text}", file=out, flush=True)


def _directory(scratch: Path, name: str) -> Path:
    path = scratch / name
    path.mkdir()
    return path


def _floors(seconds: float) -> dict[str, float]:
    command = [sys.executable, "-m", "pispeaker.bench.floor", str(seconds)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BenchError(f"measuring the floors failed: {done.stderr.strip()[-500:]}")
    floors: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return floors


async def _service(config: Config, options: BenchOptions, directory: Path) -> list[Figure]:
    mic_path = fifo(directory / "mic")
    alsa = alsa_config(directory, mic_path, Path("/dev/null"))
    with (
        emulator_process(directory, 0.0, 0.0, 0.0) as endpoint,
        _running(Microphone(mic_path, *USB_MIC)),
    ):
        # the owner's duplex (the shipped "auto" loads the echo canceller): its memory counts
        settings = bench_config(
            config, endpoint, USB_MIC, USB_MIC, duplex=config.conversation.duplex
        )
        environ = dict(os.environ, ALSA_CONFIG_PATH=str(alsa))
        return await measure_service(settings, endpoint, environ, directory, options.idle_s)


async def _conversations(config: Config, options: BenchOptions, directory: Path) -> list[Figure]:
    mic_path, speaker_path = fifo(directory / "mic"), fifo(directory / "speaker")
    speaker = Speaker(speaker_path, _SPEAKER_BYTES_PER_S, directory / "played")
    playback = (SPEAKER_RATE, SPEAKER_CHANNELS)
    with (
        emulator_process(directory, 1.0, 1.0, 0.3) as endpoint,
        _alsa_config_path(alsa_config(directory, mic_path, speaker_path)),
        _running(speaker),
        _running(Microphone(mic_path, keep=True)) as mic,
    ):
        settings = bench_config(config, endpoint, (16_000, 1), playback)
        return await measure_conversations(settings, endpoint.api_key, mic, speaker, options.cycles)


async def _echo(config: Config, options: BenchOptions, directory: Path) -> list[Figure]:
    mic_path, speaker_path = fifo(directory / "mic"), fifo(directory / "speaker")
    speaker = Speaker(
        speaker_path, _SPEAKER_BYTES_PER_S, directory / "played", directory / "content"
    )
    playback = (SPEAKER_RATE, SPEAKER_CHANNELS)
    with (
        # The replies come twice as fast as they play, as the service sends them ahead: the
        # bench speaker's file plugin holds a buffer back, so a just-in-time chunk would
        # leave a silent gap that shifts the rest (a card plays on, or underruns and says so).
        emulator_process(directory, 0.5, 1.0, 0.3, scratch_reply(directory)) as endpoint,
        _alsa_config_path(alsa_config(directory, mic_path, speaker_path)),
        _running(speaker),
    ):
        echo = Echo(Room(TALK_ROOM), speaker.reader(SPEAKER_CHANNELS * 2), *playback)
        with _running(Microphone(mic_path, keep=True, echo=echo)) as mic:
            # The shipped default: the echo canceller, the microphone sent over a reply once
            # it has converged, local ducking and barge-in.
            settings = bench_config(config, endpoint, (16_000, 1), playback, duplex="auto")
            return await measure_echo(
                settings, endpoint.api_key, mic, speaker, echo, options.echo_replies
            )


async def _background(config: Config, options: BenchOptions, directory: Path) -> list[Figure]:
    mic_path, speaker_path = fifo(directory / "mic"), fifo(directory / "speaker")
    speaker = Speaker(speaker_path, _SPEAKER_BYTES_PER_S, directory / "played")
    playback = (SPEAKER_RATE, SPEAKER_CHANNELS)
    with (
        emulator_process(directory, 1.0, 1.0, 0.3, decline_after=1) as endpoint,
        _alsa_config_path(alsa_config(directory, mic_path, speaker_path)),
        _running(speaker),
        _running(Microphone(mic_path, keep=True)) as mic,
    ):
        # The owner's follow-up window (the other scenarios shorten it), and the shipped
        # duplex default: the voice detector hears the room.
        settings = bench_config(config, endpoint, (16_000, 1), playback, duplex="auto")
        owners = settings.conversation.model_copy(
            update={"follow_up_s": config.conversation.follow_up_s}
        )
        settings = settings.model_copy(update={"conversation": owners})
        return await measure_background(settings, endpoint.api_key, mic, speaker, options.talk_s)


async def _soak(config: Config, options: BenchOptions, directory: Path) -> list[Figure]:
    mic_path = fifo(directory / "mic")
    with (
        _alsa_config_path(alsa_config(directory, mic_path, Path("/dev/null"))),
        _running(Microphone(mic_path, speed=options.speed)) as mic,
    ):
        async with EmulatorProcess(directory) as emulator:
            settings = bench_config(config, emulator.endpoint, (16_000, 1), (16_000, 1))
            return await measure_soak(
                settings, emulator, mic, options.warmup, options.conversations, options.seed
            )


class _Part(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...


PartT = TypeVar("PartT", bound=_Part)


@contextlib.contextmanager
def _running(part: PartT) -> Iterator[PartT]:
    """``part`` (a bench microphone or speaker) started for the block, stopped after it."""
    part.start()
    try:
        yield part
    finally:
        part.stop()


@contextlib.contextmanager
def _alsa_config_path(path: Path) -> Iterator[None]:
    """libasound in this process reads ``path`` (it reloads when the path changes)."""
    before = os.environ.get("ALSA_CONFIG_PATH")
    os.environ["ALSA_CONFIG_PATH"] = str(path)
    try:
        yield
    finally:
        if before is None:
            del os.environ["ALSA_CONFIG_PATH"]
        else:
            os.environ["ALSA_CONFIG_PATH"] = before


def _against_floors(floor: dict[str, float], measured: dict[str, Figure]) -> list[Figure]:
    """The floors, and the figures that are judged against them."""

    def value(key: str) -> float | None:
        figure = measured.get(key)
        return figure.value if figure is not None else None

    idle, talk, resident = value("idle_cpu"), value("conversation_cpu"), value("steady_rss_mb")
    wake = floor["wake_cpu"]
    return [
        figure_from("floor_wake_cpu", "floor: openWakeWord alone", "CPU-s/s", value=wake),
        figure_from(
            "floor_rss_mb", "floor: libraries imported, one model", "MB", value=floor["rss_mb"]
        ),
        figure_from(
            "idle_cpu_ratio",
            "idle CPU / openWakeWord floor",
            "x",
            value=None if idle is None else idle / wake,
            limit=1.2,
        ),
        figure_from(
            "conversation_cpu_beyond_floor",
            "conversation CPU beyond the floor",
            "CPU-s/s",
            value=None if talk is None else talk - wake,
            limit=0.03,
        ),
        figure_from(
            "rss_above_floor_mb",
            "resident memory above the floor, listening",
            "MB",
            value=None if resident is None else resident - floor["rss_mb"],
            limit=15.0,
        ),
    ]
