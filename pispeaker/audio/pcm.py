"""Signed 16-bit little-endian mono PCM: conversions, levels and test signals.

Every function takes and returns ``bytes`` of s16le mono PCM unless it says otherwise.
Resampling is in resample.py, which alone imports soxr.
"""

import math

import numpy as np
import numpy.typing as npt

SAMPLE_WIDTH = 2
INPUT_RATE = 16_000
OUTPUT_RATE = 24_000
#: dBFS reported for digital silence, where the logarithm is undefined.
SILENCE_DBFS = -120.0
#: The magnitude of the most negative s16 sample: floats in -1..1 are samples / FULL_SCALE.
FULL_SCALE = 32768.0

Samples = npt.NDArray[np.int16]
Floats = npt.NDArray[np.float32]


def to_samples(pcm: bytes) -> Samples:
    """View PCM bytes as int16 samples (an odd trailing byte is a caller bug)."""
    return np.frombuffer(pcm, dtype="<i2")


def to_floats(pcm: bytes) -> Floats:
    """PCM bytes as float32 samples in -1..1."""
    return (to_samples(pcm) / FULL_SCALE).astype(np.float32)


def from_floats(samples: Floats) -> Samples:
    """Float samples in -1..1 as int16, rounded and clipped at full scale."""
    scaled = np.round(samples.astype(np.float64) * FULL_SCALE)
    clipped: Samples = np.clip(scaled, -FULL_SCALE, FULL_SCALE - 1).astype(np.int16)
    return clipped


def duration_s(pcm: bytes, rate: int) -> float:
    """Seconds of audio in ``pcm`` at ``rate`` Hz."""
    return len(pcm) / (SAMPLE_WIDTH * rate)


def byte_count(seconds: float, rate: int) -> int:
    """Whole-sample byte length of ``seconds`` of audio at ``rate`` Hz."""
    return round(seconds * rate) * SAMPLE_WIDTH


def rms_dbfs(pcm: bytes) -> float:
    """Root-mean-square level relative to full scale (0 dBFS = a full-scale square wave)."""
    samples = to_samples(pcm).astype(np.float64)
    if samples.size == 0:
        return SILENCE_DBFS
    rms = math.sqrt(float(np.mean(samples * samples))) / 32768.0
    return 20.0 * math.log10(rms) if rms > 0 else SILENCE_DBFS


def scale(pcm: bytes, gain: float) -> bytes:
    """Multiply the level by ``gain`` (0..1), e.g. for software volume."""
    if gain >= 1.0:
        return pcm
    return bytes(np.round(to_samples(pcm) * gain).astype("<i2").tobytes())


def tone(frequency_hz: float, seconds: float, rate: int, amplitude: float = 0.3) -> bytes:
    """A sine tone; ``amplitude`` is the peak as a fraction of full scale."""
    t = np.arange(round(seconds * rate)) / rate
    wave = amplitude * 32767.0 * np.sin(2.0 * math.pi * frequency_hz * t)
    return bytes(np.round(wave).astype("<i2").tobytes())


def silence(seconds: float, rate: int) -> bytes:
    """Digital silence."""
    return bytes(byte_count(seconds, rate))
