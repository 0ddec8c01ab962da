"""Conversions between what a sound card speaks and what pispeaker speaks.

A card may capture at 44.1 or 48 kHz, in stereo or with a microphone array's many channels,
in 16, 24 or 32-bit samples; pispeaker wants 16 kHz mono s16le in. A card may refuse 24 kHz
mono; pispeaker's replies are 24 kHz mono s16le. Everything in between happens here, on
float32 samples in -1..1, with soxr resampling streams (resample.StreamResampler).
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pispeaker.audio.pcm import INPUT_RATE, OUTPUT_RATE, SAMPLE_WIDTH, Floats, to_samples
from pispeaker.audio.resample import StreamResampler


@dataclass(frozen=True)
class SampleFormat:
    """One ALSA sample format: its bytes per sample and the codecs to and from floats."""

    name: str
    width: int
    decode: Callable[[bytes], Floats]
    encode: Callable[[Floats], bytes]


def _int_format(name: str, dtype: str, bits: int) -> SampleFormat:
    full_scale = float(2 ** (bits - 1))

    def decode(data: bytes) -> Floats:
        return (np.frombuffer(data, dtype=dtype) / full_scale).astype(np.float32)

    def encode(samples: Floats) -> bytes:
        # float64: float32 cannot hold 2**31 - 1, and its rounding up would wrap to -2**31
        scaled = np.clip(
            np.round(samples.astype(np.float64) * full_scale), -full_scale, full_scale - 1
        )
        return bytes(scaled.astype(dtype).tobytes())

    return SampleFormat(name, np.dtype(dtype).itemsize, decode, encode)


def _decode_s24_in_32(data: bytes) -> Floats:
    # 24 significant bits in the low three bytes of each 32-bit word: shift the top byte
    # out, whatever it holds, and let the arithmetic shift back extend the sign.
    words = np.frombuffer(data, dtype="<i4")
    return (((words << 8) >> 8) / 8388608.0).astype(np.float32)


def _decode_s24_packed(data: bytes) -> Floats:
    triplets = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
    words = triplets[:, 0] | (triplets[:, 1] << 8) | (triplets[:, 2] << 16)
    return (((words << 8) >> 8) / 8388608.0).astype(np.float32)


def _encode_s24_packed(samples: Floats) -> bytes:
    words = np.clip(np.round(samples * 8388608.0), -8388608, 8388607).astype("<i4")
    return bytes(words.view(np.uint8).reshape(-1, 4)[:, :3].tobytes())


def _decode_float(data: bytes) -> Floats:
    return np.frombuffer(data, dtype="<f4").astype(np.float32)


def _encode_float(samples: Floats) -> bytes:
    return bytes(np.clip(samples, -1.0, 1.0).astype("<f4").tobytes())


#: The formats pispeaker can read and write, by ALSA name (the names `arecord --dump-hw-params`
#: and `pispeaker devices` show).
FORMATS: dict[str, SampleFormat] = {
    spec.name: spec
    for spec in (
        _int_format("S16_LE", "<i2", 16),
        _int_format("S32_LE", "<i4", 32),
        SampleFormat("S24_LE", 4, _decode_s24_in_32, _int_format("S24_LE", "<i4", 24).encode),
        SampleFormat("S24_3LE", 3, _decode_s24_packed, _encode_s24_packed),
        SampleFormat("FLOAT_LE", 4, _decode_float, _encode_float),
    )
}


def frame_bytes(format_name: str, channels: int) -> int:
    """Bytes in one frame (one sample per channel)."""
    return FORMATS[format_name].width * channels


def to_s16(samples: Floats) -> bytes:
    """Float samples as s16le bytes (clipped at full scale)."""
    return FORMATS["S16_LE"].encode(samples)


class CaptureConverter:
    """Turns what a capture device delivers into 16 kHz mono s16le.

    ``channel`` 0 mixes every channel; N (1-based) keeps only channel N, e.g. the one
    microphone of an array that faces the room.
    """

    def __init__(self, rate: int, channels: int, format_name: str, channel: int = 0) -> None:
        if not 0 <= channel <= channels:
            raise ValueError(f"channel {channel} of a {channels}-channel device")
        self._format = FORMATS[format_name]
        self._channels = channels
        self._channel = channel
        self._resampler = StreamResampler(rate, INPUT_RATE)

    def convert(self, data: bytes) -> bytes:
        """The 16 kHz mono s16le audio that ``data`` (whole frames) completes."""
        frames = self._format.decode(data).reshape(-1, self._channels)
        mono = frames[:, self._channel - 1] if self._channel else self._mix(frames)
        return to_s16(self._resampler.process(np.ascontiguousarray(mono, dtype=np.float32)))

    def _mix(self, frames: Floats) -> Floats:
        # add.reduce, not mean(): the same sum without mean's Python-level checks, which
        # cost more than the arithmetic on a 20 ms period
        mixed: Floats = np.add.reduce(frames, axis=1)
        mixed *= 1.0 / self._channels
        return mixed


class PlaybackConverter:
    """Turns pispeaker's 24 kHz mono s16le into what a playback device accepts: resampled,
    copied to every channel, in the device's sample format."""

    def __init__(self, rate: int, channels: int, format_name: str) -> None:
        self._format = FORMATS[format_name]
        self._channels = channels
        self._resampler = StreamResampler(OUTPUT_RATE, rate)
        self.passthrough = rate == OUTPUT_RATE and channels == 1 and format_name == "S16_LE"

    def convert(self, pcm: bytes) -> bytes:
        """Device frames for ``pcm`` (soxr may hold a few samples back until the next call)."""
        if self.passthrough:
            return pcm
        mono = self._resampler.process((to_samples(pcm) / 32768.0).astype(np.float32))
        return self._format.encode(np.repeat(mono, self._channels))

    def finish(self) -> bytes:
        """Device frames for the samples held back, at the end of a reply."""
        return self._format.encode(np.repeat(self._resampler.finish(), self._channels))

    def reset(self) -> None:
        """Forget held-back samples, so nothing of a flushed reply leaks into the next one."""
        self._resampler.reset()


class Rechunker:
    """Cuts a byte stream into pieces of exactly ``size`` bytes."""

    def __init__(self, size: int) -> None:
        if size <= 0 or size % SAMPLE_WIDTH:
            raise ValueError(f"chunk size {size} is not a whole number of samples")
        self.size = size
        self._pending = bytearray()

    def push(self, data: bytes) -> list[bytes]:
        """Every whole chunk now available, oldest first; the remainder waits."""
        self._pending += data
        whole = len(self._pending) - len(self._pending) % self.size
        chunks = [bytes(self._pending[i : i + self.size]) for i in range(0, whole, self.size)]
        del self._pending[:whole]
        return chunks

    @property
    def waiting(self) -> int:
        """Bytes pushed but short of a whole chunk."""
        return len(self._pending)
