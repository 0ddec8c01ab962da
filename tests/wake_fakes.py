"""In-memory stand-ins for openWakeWord, held to the same Scorer contract as the real one
(tests/test_wake_contract.py)."""

from collections.abc import Sequence

import numpy as np

from pispeaker.audio.pcm import INPUT_RATE
from pispeaker.wake.detector import Samples

#: The frequency of the "wake word" ToneScorer listens for.
WAKE_TONE_HZ = 1234.5  # no whole number of periods in a frame: its frames all differ


class ScriptedScorer:
    """Returns scripted scores, one dict per frame in order (then zeros); ``reset`` is
    recorded and restarts nothing (the script is the stream's, not the model's)."""

    def __init__(self, script: Sequence[dict[str, float]], names: tuple[str, ...] = ("a",)):
        self.names = names
        self._script = list(script)
        self.frames = 0
        self.resets = 0

    def score(self, frame: Samples) -> dict[str, float]:
        assert frame.shape == (1280,), frame.shape
        scores = self._script[self.frames] if self.frames < len(self._script) else {}
        self.frames += 1
        return {name: scores.get(name, 0.0) for name in self.names}

    def reset(self) -> None:
        self.resets += 1


class ToneScorer:
    """Hears a pure tone at WAKE_TONE_HZ as its wake word: score 1.0 for a frame that is
    mostly that tone, 0.0 otherwise. Stateless, so ``reset`` has nothing to forget."""

    names = ("tone",)

    def score(self, frame: Samples) -> dict[str, float]:
        assert frame.shape == (1280,), frame.shape
        spectrum = np.abs(np.fft.rfft(frame.astype(np.float64)))
        bins = np.fft.rfftfreq(len(frame), 1 / INPUT_RATE)
        near = np.abs(bins - WAKE_TONE_HZ) < 40
        total = float(np.sum(spectrum**2))
        share = float(np.sum(spectrum[near] ** 2)) / total if total > 1e3 else 0.0
        return {"tone": 1.0 if share > 0.8 else 0.0}

    def reset(self) -> None:
        """Nothing to forget."""
