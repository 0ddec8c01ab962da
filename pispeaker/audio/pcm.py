"""Signed 16-bit little-endian mono PCM: conversions, levels, test signals and resampling.

This module is the only importer of soxr. Every function takes and returns ``bytes`` of
s16le mono PCM unless it says otherwise.
"""

import math

import numpy as np
import numpy.typing as npt
import soxr

SAMPLE_WIDTH = 2
INPUT_RATE = 16_000
OUTPUT_RATE = 24_000
#: dBFS reported for digital silence, where the logarithm is undefined.
SILENCE_DBFS = -120.0

Samples = npt.NDArray[np.int16]


def to_samples(pcm: bytes) -> Samples:
    """View PCM bytes as int16 samples (an odd trailing byte is a caller bug)."""
    return np.frombuffer(pcm, dtype="<i2")


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


def resample(pcm: bytes, from_rate: int, to_rate: int) -> bytes:
    """Resample a whole clip with soxr's high-quality filter (not for streaming)."""
    if from_rate == to_rate or not pcm:
        return pcm
    out = soxr.resample(to_samples(pcm), from_rate, to_rate, quality="HQ")
    return bytes(np.asarray(out, dtype="<i2").tobytes())


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


def dominant_frequency(pcm: bytes, rate: int) -> float:
    """The frequency (Hz) of the strongest spectral peak, for checking test tones."""
    samples = to_samples(pcm).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(np.argmax(spectrum)) * rate / samples.size


Floats = npt.NDArray[np.float32]


class StreamResampler:
    """Resamples a stream of float32 mono samples piece by piece (soxr keeps the filter
    state between pieces, so there are no clicks at piece boundaries).

    Output pieces vary in length around ``len(piece) * out_rate / in_rate``.
    """

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self.in_rate, self.out_rate = in_rate, out_rate
        self._stream = self._new_stream()

    def process(self, samples: Floats) -> Floats:
        """The resampled samples that ``samples`` completes (soxr holds back a few)."""
        if self._stream is None:
            return samples
        return np.asarray(self._stream.resample_chunk(samples), dtype=np.float32)

    def finish(self) -> Floats:
        """The samples held back, at the end of a stream; then start afresh."""
        if self._stream is None:
            return np.zeros(0, dtype=np.float32)
        tail = np.asarray(
            self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True),
            dtype=np.float32,
        )
        self.reset()
        return tail

    def reset(self) -> None:
        """Forget the samples held back, e.g. after playback was flushed."""
        self._stream = self._new_stream()

    def _new_stream(self) -> "soxr.ResampleStream | None":  # None: nothing to resample
        if self.in_rate == self.out_rate:
            return None
        return soxr.ResampleStream(self.in_rate, self.out_rate, 1, dtype="float32", quality="HQ")
