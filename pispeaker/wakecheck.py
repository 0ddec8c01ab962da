"""``pispeaker test-wake``: live wake-word scores, from the microphone or a WAV file, so that
a threshold can be chosen by watching the numbers instead of guessing."""

import asyncio
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TextIO

from pispeaker.app import wake_detector
from pispeaker.audio.pcm import INPUT_RATE, byte_count, silence
from pispeaker.audio.wavfile import read_wav
from pispeaker.config import Config, WakeConfig
from pispeaker.errors import ConfigError
from pispeaker.wake.detector import Frame

BAR_WIDTH = 20
#: A line per this much audio when the output is not a terminal (a log, a pipe, CI).
LINE_EVERY_S = 0.5
#: Audio handed to the detector at a time from a WAV file (the microphone gives 100 ms).
WAV_CHUNK_S = 1.0
#: Silence scored after a WAV file: a model's score peaks a few frames after the word ends.
WAV_TAIL_S = 1.0


def bar(score: float, threshold: float) -> str:
    """A text bar for a score, with ``|`` at the threshold: ``[#####|....] 0.62``."""
    filled = round(BAR_WIDTH * score)
    mark = min(BAR_WIDTH - 1, round(BAR_WIDTH * threshold))
    cells = ["#" if i < filled else "." for i in range(BAR_WIDTH)]
    cells[mark] = "|"
    return "[" + "".join(cells) + f"] {score:4.2f}"


@dataclass
class Peaks:
    """The highest score of each model, and when."""

    scores: dict[str, tuple[float, float]] = field(default_factory=dict)  # name: (score, s)
    detections: int = 0

    def add(self, frame: Frame) -> None:
        for name, score in frame.scores.items():
            if score > self.scores.get(name, (-1.0, 0.0))[0]:
                self.scores[name] = (score, frame.end_s)
        self.detections += frame.detection is not None


class Display:
    """Scores as bars: redrawn in place on a terminal, else one line per LINE_EVERY_S with
    the highest scores since the last line. Detections always get their own line."""

    def __init__(self, wake: WakeConfig, out: TextIO) -> None:
        self.wake, self.out = wake, out
        self.live = out.isatty()
        self._window: dict[str, float] = {}
        self._next_line_s = LINE_EVERY_S

    def show(self, frame: Frame) -> None:
        for name, score in frame.scores.items():
            self._window[name] = max(score, self._window.get(name, 0.0))
        if frame.detection is not None:
            found = frame.detection
            self._write(f"DETECTED {found.model} score {found.score:.2f} at {found.end_s:.2f} s")
        if self.live:
            self.out.write("\r" + self._bars(frame.scores))
            self._window.clear()
        elif frame.end_s >= self._next_line_s:
            self.out.write(f"{frame.end_s:6.1f}s {self._bars(self._window)}\n")
            self._window.clear()
            self._next_line_s += LINE_EVERY_S
        self.out.flush()

    def _bars(self, scores: dict[str, float]) -> str:
        return "  ".join(
            f"{name} {bar(score, self.wake.threshold_of(name))}" for name, score in scores.items()
        )

    def _write(self, line: str) -> None:
        self.out.write(("\r" if self.live else "") + line + "\n")


async def test_wake(config: Config, wav: Path | None, seconds: float, out: TextIO) -> int:
    """Score the configured wake words on ``wav`` (any rate and channels) or, without it, on
    the microphone for ``seconds`` (0: until Ctrl-C); print the bars and a summary."""
    wake = config.wake
    if not wake.models:
        raise ConfigError("wake.models", ["wake.models: is empty: list a wake word to test"])
    detector = wake_detector(wake)
    display, peaks = Display(wake, out), Peaks()
    out.write(f"Scoring {', '.join(detector.scorer.names)} (| marks each threshold).\n")
    # A file is not a live microphone, which has listened for a while before the wake word
    # and goes on after it: it gets the warm-up as silence before it and WAV_TAIL_S after,
    # so that a clip of just the wake word detects it; times are the file's own.
    lead_s = wake.warmup_s if wav else 0.0
    audio = _wav_chunks(wav, lead_s) if wav else _microphone(config, seconds, out)
    async for chunk in audio:
        for frame in await asyncio.to_thread(detector.process, chunk):
            if frame.end_s > lead_s:
                frame = _later_by(frame, -lead_s)
                display.show(frame)
                peaks.add(frame)
    heard_s = detector.position_s - lead_s - (WAV_TAIL_S if wav else 0.0)
    out.write(("\n" if display.live else "") + _summary(peaks, heard_s, wake, lead_s == 0))
    return 0


def _later_by(frame: Frame, seconds: float) -> Frame:
    """``frame`` with its times (and its detection's) moved by ``seconds``."""
    found = frame.detection
    if found is not None:
        found = replace(found, start_s=found.start_s + seconds, end_s=found.end_s + seconds)
    return replace(frame, end_s=frame.end_s + seconds, detection=found)


async def _wav_chunks(path: Path, lead_s: float) -> AsyncIterator[bytes]:
    yield silence(lead_s, INPUT_RATE)
    pcm = read_wav(path, INPUT_RATE)
    step = byte_count(WAV_CHUNK_S, INPUT_RATE)
    for offset in range(0, len(pcm), step):
        yield pcm[offset : offset + step]
    yield silence(WAV_TAIL_S, INPUT_RATE)


async def _microphone(config: Config, seconds: float, out: TextIO) -> AsyncIterator[bytes]:
    from pispeaker.audio import alsa  # only with a sound card

    audio = config.audio
    source = alsa.AlsaSource(
        alsa.capture_request(audio), chunk_ms=100, channel=audio.capture_channel
    )
    await source.start()
    out.write(f"Listening on {audio.capture_device!r}: say the wake word. Ctrl-C stops.\n")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, stop.set)
    heard = 0
    try:
        while not stop.is_set() and (not seconds or heard < byte_count(seconds, INPUT_RATE)):
            chunk = await source.read()
            heard += len(chunk)
            yield chunk
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        await source.stop()


def _summary(peaks: Peaks, heard_s: float, wake: WakeConfig, warmed_up: bool) -> str:
    """The detections and each model's peak; ``warmed_up`` if the start was scored as the
    warm-up (a microphone: a peak there is not acted on)."""
    lines = [f"Heard {heard_s:.1f} s; {peaks.detections} detection(s)."]
    for name, (score, at_s) in peaks.scores.items():
        threshold = wake.threshold_of(name)
        verdict = "reaches" if score >= threshold else "stays below"
        lines.append(f"  {name}: peak {score:.2f} at {at_s:.2f} s; {verdict} threshold {threshold}")
        if warmed_up and at_s < wake.warmup_s:
            lines.append(f"    (in the first {wake.warmup_s} s, the warm-up: say it after that)")
    return "\n".join(lines) + "\n"
