"""Resampling with soxr: the only importer of soxr.

``resample`` converts a whole clip of s16le mono PCM; ``StreamResampler`` converts a stream
of float32 samples piece by piece, for the sound-card converters (convert.py);
``PcmStreamResampler`` converts a stream of s16le PCM, for the echo canceller's reference
(echo.py).
"""

import numpy as np
import soxr

from pispeaker.audio.pcm import Floats, Samples, from_floats, to_floats, to_samples


def resample(pcm: bytes, from_rate: int, to_rate: int) -> bytes:
    """Resample a whole clip with soxr's high-quality filter (not for streaming)."""
    if from_rate == to_rate or not pcm:
        return pcm
    out = soxr.resample(to_samples(pcm), from_rate, to_rate, quality="HQ")
    return bytes(np.asarray(out, dtype="<i2").tobytes())


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


class PcmStreamResampler:
    """Resamples a stream of s16le mono PCM piece by piece: a ``StreamResampler`` with the
    conversions to and from float around it. Output lengths vary as that one's do."""

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self.in_rate, self.out_rate = in_rate, out_rate
        self._floats = StreamResampler(in_rate, out_rate)

    def process(self, pcm: bytes) -> Samples:
        """The int16 samples that ``pcm`` completes (soxr holds back a few)."""
        return from_floats(self._floats.process(to_floats(pcm)))

    def reset(self) -> None:
        """Forget the samples held back, e.g. after playback was flushed."""
        self._floats.reset()
