"""A simulated room between the bench speaker and the bench microphone: the echo path.

Pure numpy, streaming, driven by explicit times (``time.monotonic()`` on the bench; any
numbers in tests). :meth:`Room.played` takes the audio exactly as the speaker played it, with
the moment it was played; :meth:`Room.microphone` adds to the microphone's near-end (what it
hears without the loudspeaker) the echo of what was played, for the samples captured up to a
given moment. The echo path, after /work/shared/reference/aec.md section 2:

played (device rate, channels averaged) -> soft-clipping speaker, tanh(2.5x) -> 16 kHz
(a windowed-sinc decimator of known latency, compensated) -> room impulse response (a
direct path and an exponentially decaying noise tail, ``tail_db`` below it, energy 1) ->
bulk delay -> coupling gain -> the microphone's clock, ``drift_ppm`` fast (the delay grows by
``drift_ppm`` microseconds per second from the room's first moment).

A sample played at ``t`` reaches the microphone sample captured at ``t + delay_s`` (plus
the drift). The echo's RMS is ``coupling_db`` relative to the played audio's (its content
below 8 kHz, all a 16 kHz microphone can hear), before the soft clipping bites.
"""

import functools
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pispeaker.audio.pcm import INPUT_RATE

Array = npt.NDArray[np.float64]
#: Half-width (taps each side, in 16 kHz samples) of the fractional-delay interpolator.
_TAPS = 8
#: Half-width (ms) of the decimator's windowed sinc (its latency, compensated).
_DECIMATOR_MS = 1.0
#: A played chunk that starts this much after the end of the timeline follows a pause (the
#: speaker's reads jitter by a millisecond or two within continuous playback).
_GAP_S = 0.003
#: Full scale of s16le.
_FULL_SCALE = 32768.0


@dataclass(frozen=True)
class RoomSettings:
    """The echo path's parameters (see the module docstring)."""

    delay_s: float = 0.03
    coupling_db: float = -6.0
    drift_ppm: float = 100.0
    soft_clip: bool = True
    rt60_s: float = 0.2
    tail_s: float = 0.3
    tail_db: float = -3.0
    noise_dbfs: float = -50.0
    seed: int = 11

    @property
    def noise_rms(self) -> float:
        """The microphone's own noise, as an s16 RMS."""
        return _FULL_SCALE * 10 ** (self.noise_dbfs / 20)

    def describe(self) -> str:
        clip = ", soft clipping" if self.soft_clip else ""
        return (
            f"coupling {self.coupling_db:g} dB, delay {self.delay_s * 1000:g} ms, "
            f"drift {self.drift_ppm:g} ppm{clip}"
        )


def impulse_response(settings: RoomSettings, rate: int = INPUT_RATE) -> Array:
    """The room's impulse response at ``rate``: 1 at lag 0, then Gaussian noise decaying by
    60 dB over ``rt60_s`` with ``tail_db`` the energy of the direct path, scaled to energy 1
    (so that the room alone keeps a broadband signal's level)."""
    length = max(2, round(settings.tail_s * rate))
    lags = np.arange(1, length) / rate
    noise = np.random.default_rng(settings.seed).normal(0.0, 1.0, length - 1)
    tail = noise * np.exp(-3 * math.log(10) * lags / settings.rt60_s)
    tail *= math.sqrt(10 ** (settings.tail_db / 10) / float(np.sum(tail**2)))
    response = np.concatenate([[1.0], tail])
    return np.asarray(response / math.sqrt(float(np.sum(response**2))))


def soft_clip(samples: Array) -> Array:
    """A small loudspeaker driven hard: tanh(2.5x) / 2.5 (unity gain for quiet sound, never
    beyond 0.4 of full scale)."""
    return np.asarray(np.tanh(2.5 * samples) / 2.5)


class Room:
    """The echo path, streaming (see the module docstring). Times are seconds on one clock;
    the first time given (to either method) is the room's origin."""

    def __init__(self, settings: RoomSettings) -> None:
        self.settings = settings
        self._response = impulse_response(settings)
        self._gain = 10 ** (settings.coupling_db / 20)
        self._origin: float | None = None
        self._device_rate = 0
        self._device = np.zeros(0)  # played, soft-clipped, from device index _device_start
        self._device_start = 0
        self._played_end: int | None = None  # device index where the last chunk ended
        self._source = np.zeros(0)  # the same at 16 kHz, from index _source_start
        self._source_start = 0
        self._echo = np.zeros(0)  # after the room response, from index _echo_start
        self._echo_start = 0

    @property
    def noise_rms(self) -> float:
        return self.settings.noise_rms

    def played(self, pcm: bytes, rate: int, channels: int, at: float) -> None:
        """The speaker played s16le ``pcm`` (``rate``, ``channels``) from ``at`` on."""
        self._start(at)
        if self._device_rate == 0:
            self._device_rate = rate
            self._device_start = self._source_end * self._factor - self._half
        if rate != self._device_rate or rate % INPUT_RATE:
            raise ValueError(f"the room takes one device rate, a multiple of {INPUT_RATE} Hz")
        frames = np.frombuffer(pcm, "<i2").reshape(-1, channels).mean(axis=1) / _FULL_SCALE
        if self.settings.soft_clip:
            frames = soft_clip(frames)
        index = round((at - self._origin_s) * rate)
        if self._played_end is not None and index - self._played_end <= _GAP_S * rate:
            index = self._played_end  # continuous playback: the reads jitter, the audio not
        end = self._device_start + len(self._device)
        index = max(index, end)  # what the microphone heard already stays as it was
        self._device = np.concatenate([self._device, np.zeros(index - end), frames])
        self._played_end = index + len(frames)

    def microphone(self, near: npt.NDArray[np.int16], end: float) -> npt.NDArray[np.int16]:
        """``near`` (16 kHz mono s16, the last sample captured at ``end``) with the echo."""
        self._start(end)
        capture = end - (len(near) - 1 - np.arange(len(near))) / INPUT_RATE
        source = self._source_time(capture)
        echo = self._echo_at((source - self._origin_s) * INPUT_RATE) * self._gain * _FULL_SCALE
        return np.clip(np.round(near + echo), -32768, 32767).astype(np.int16)

    @property
    def _factor(self) -> int:
        return self._device_rate // INPUT_RATE

    @property
    def _half(self) -> int:
        return len(_decimator(self._factor)) // 2

    @property
    def _source_end(self) -> int:
        return self._source_start + len(self._source)

    @property
    def _origin_s(self) -> float:
        assert self._origin is not None
        return self._origin

    def _start(self, moment: float) -> None:
        if self._origin is None:
            self._origin = moment

    def _source_time(self, capture: Array) -> Array:
        """When what the microphone captured at ``capture`` was played: a bulk delay earlier,
        on a clock ``drift_ppm`` slow against the microphone's."""
        since = capture - self._origin_s
        return self._origin_s + since * (1 - self.settings.drift_ppm * 1e-6) - self.settings.delay_s

    def _echo_at(self, positions: Array) -> Array:
        """The echo (full scale 1, before the gain) at fractional 16 kHz ``positions``."""
        last = math.ceil(float(positions.max())) + _TAPS
        self._extend_echo(last + 1)
        low = np.floor(positions).astype(np.int64)
        offsets = np.arange(-_TAPS + 1, _TAPS + 1)
        taps = low[:, None] + offsets[None, :]
        weights = _lanczos(positions[:, None] - taps)
        index = taps - self._echo_start
        inside = (index >= 0) & (index < len(self._echo))
        echo = np.concatenate([self._echo, [0.0]])  # index -1: before anything was played
        values = echo[np.where(inside, index, -1)]
        self._forget(int(low.min()) - _TAPS)
        return np.asarray(np.sum(values * weights, axis=1))

    def _extend_echo(self, end: int) -> None:
        """Compute the echo up to 16 kHz index ``end`` (what was not played is silence)."""
        have = self._echo_start + len(self._echo)
        if end <= have:
            return
        self._extend_source(end)
        history = len(self._response) - 1
        first = have - history - self._source_start  # index into _source of the first input
        block = self._source[max(0, first) : end - self._source_start]
        block = np.concatenate([np.zeros(max(0, -first)), block])
        self._echo = np.concatenate([self._echo, _convolve_valid(block, self._response)])

    def _extend_source(self, end: int) -> None:
        """Decimate played audio to 16 kHz up to index ``end`` (silence where none was)."""
        have = self._source_end
        if end <= have:
            return
        if self._device_rate == 0:  # nothing played yet: silence
            self._source = np.concatenate([self._source, np.zeros(end - have)])
            return
        factor, half = self._factor, self._half
        need = end * factor + half  # device samples up to the last output's taps
        device_end = self._device_start + len(self._device)
        if need > device_end:
            self._device = np.concatenate([self._device, np.zeros(need - device_end)])
        first = have * factor - half - self._device_start
        window = self._device[first : first + (end - have - 1) * factor + 2 * half + 1]
        filtered = _convolve_valid(window, _decimator(factor))[::factor]
        self._source = np.concatenate([self._source, filtered])

    def _forget(self, before: int) -> None:
        """Drop what no later microphone sample needs (positions only move on)."""
        drop = before - self._echo_start
        if drop > 0:
            self._echo, self._echo_start = self._echo[drop:], before
        keep = self._echo_start + len(self._echo) - (len(self._response) - 1)
        drop = keep - self._source_start
        if drop > 0:
            self._source, self._source_start = self._source[drop:], keep
        if self._device_rate:
            drop = self._source_end * self._factor - self._half - self._device_start
            if drop > 0:
                self._device, self._device_start = self._device[drop:], self._device_start + drop


def _convolve_valid(signal: Array, kernel: Array) -> Array:
    """The outputs of ``signal * kernel`` that need no sample outside ``signal`` (FFT)."""
    count = len(signal) - len(kernel) + 1
    if count <= 0:
        return np.zeros(0)
    size = 1 << (len(signal) - 1).bit_length()
    full = np.fft.irfft(np.fft.rfft(signal, size) * np.fft.rfft(kernel, size), size)
    return np.asarray(full[len(kernel) - 1 : len(signal)])


@functools.cache
def _decimator(factor: int) -> Array:
    """A low-pass windowed sinc for ``factor``:1 decimation to 16 kHz (cut-off 7.6 kHz),
    odd length, linear phase: its centre tap is the output's moment."""
    half = round(_DECIMATOR_MS / 1000 * INPUT_RATE * factor)
    lags = np.arange(-half, half + 1)
    cutoff = 7600 / (INPUT_RATE * factor)  # in cycles per device sample
    kernel = 2 * cutoff * np.sinc(2 * cutoff * lags) * np.blackman(len(lags))
    return np.asarray(kernel / np.sum(kernel))


def _lanczos(offsets: Array) -> Array:
    """Lanczos interpolation weights for samples ``offsets`` away from the point read."""
    inside = np.abs(offsets) < _TAPS
    return np.asarray(np.where(inside, np.sinc(offsets) * np.sinc(offsets / _TAPS), 0.0))
