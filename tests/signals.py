"""Measurements of test signals, for assertions on what was heard or played."""

import numpy as np

from pispeaker.audio.pcm import to_samples


def dominant_frequency(pcm: bytes, rate: int) -> float:
    """The frequency (Hz) of the strongest spectral peak of s16le mono ``pcm``."""
    samples = to_samples(pcm).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(np.argmax(spectrum)) * rate / samples.size
