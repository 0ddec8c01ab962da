"""Wake-word decisions: 80 ms framing, thresholds, refractory period and warm-up. Pure: the
scores come from a ``Scorer`` (openWakeWord on the device, a scripted one in unit tests).

Times are positions in the stream of audio fed to the detector, in seconds: the controller
keeps its pre-roll ring in the same units, so it can send exactly what was said after the
wake word.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from pispeaker.audio.pcm import INPUT_RATE

#: Samples per frame: openWakeWord scores one frame per 80 ms of 16 kHz audio.
FRAME_SAMPLES = 1280
FRAME_BYTES = FRAME_SAMPLES * 2

Samples = npt.NDArray[np.int16]


class Scorer(Protocol):
    """Scores frames of 16 kHz mono audio for each of its wake-word models."""

    #: The model names, as detections carry them.
    names: tuple[str, ...]

    def score(self, frame: Samples) -> dict[str, float]:
        """Each model's score (0-1) after ``frame``, exactly FRAME_SAMPLES samples."""

    def reset(self) -> None:
        """Forget all audio heard so far (the next frames start a new stream)."""


@dataclass(frozen=True)
class Detection:
    """A wake word heard: which model, how sure, and the 80 ms frame that crossed the
    threshold (``end_s``: what follows is what the user said next)."""

    model: str
    score: float
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Frame:
    """One scored frame: every model's score, and the detection it made, if any."""

    end_s: float
    scores: dict[str, float]
    detection: Detection | None = None


class WakeDetector:
    """Turns a stream of audio chunks into scored frames and detections.

    A detection needs a score at or above its model's threshold, outside the warm-up
    window that follows the start and every ``reset`` (scores spike while the models
    settle), outside the refractory period after the last detection, and a model that was
    armed (below its threshold) since it last fired. One detection per frame at most: the
    highest score wins.
    """

    def __init__(
        self,
        scorer: Scorer,
        thresholds: Mapping[str, float],
        refractory_s: float = 2.0,
        warmup_s: float = 1.5,
        rate: int = INPUT_RATE,
    ) -> None:
        missing = set(scorer.names) - set(thresholds)
        if missing:
            raise ValueError(f"no threshold for {', '.join(sorted(missing))}")
        self.scorer = scorer
        self.thresholds = dict(thresholds)
        self.refractory_s = refractory_s
        self.warmup_s = warmup_s
        self._rate = rate
        self._pending = bytearray()
        self._samples = 0  # fed so far: the stream clock
        self._warm_from = 0.0
        self._quiet_until = 0.0
        # Edge triggering: a model fires only once its score has been below its threshold
        # since it last fired, was reset, or scored high while it could not fire; so one
        # long utterance, or a spike in the warm-up, never fires twice.
        self._armed: set[str] = set()

    @property
    def position_s(self) -> float:
        """Seconds of audio fed so far (including audio skipped with ``skip``)."""
        return (self._samples + len(self._pending) // 2) / self._rate

    def process(self, chunk: bytes) -> list[Frame]:
        """Feed 16 kHz mono s16le audio of any length; return the frames it completed."""
        self._pending.extend(chunk)
        frames = []
        while len(self._pending) >= FRAME_BYTES:
            samples = np.frombuffer(bytes(self._pending[:FRAME_BYTES]), dtype="<i2")
            del self._pending[:FRAME_BYTES]
            self._samples += FRAME_SAMPLES
            frames.append(self._decide(self.scorer.score(samples)))
        return frames

    def reset(self) -> None:
        """Start afresh after a gap in the audio (unmute): the models forget what they
        heard, and a new warm-up begins. The stream clock keeps running."""
        self.scorer.reset()
        self._samples += len(self._pending) // 2
        self._pending.clear()
        self._warm_from = self.position_s
        self._armed.clear()

    def skip(self, byte_count: int) -> None:
        """Account for ``byte_count`` bytes of audio that were never fed (dropped because
        inference fell behind): the clock moves on, and the models start afresh."""
        self._samples += byte_count // 2
        self.reset()

    def _decide(self, scores: dict[str, float]) -> Frame:
        end_s = self._samples / self._rate
        high = {name for name, score in scores.items() if score >= self.thresholds[name]}
        can_fire = end_s - self._warm_from >= self.warmup_s and end_s >= self._quiet_until
        firing = high & self._armed if can_fire else set()
        self._armed = (self._armed | set(scores)) - high
        if not firing:
            return Frame(end_s, scores)
        name = max(firing, key=lambda model: scores[model])
        self._quiet_until = end_s + self.refractory_s
        self._armed.clear()
        start_s = end_s - FRAME_SAMPLES / self._rate
        return Frame(end_s, scores, Detection(name, scores[name], start_s, end_s))
