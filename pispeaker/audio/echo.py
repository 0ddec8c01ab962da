"""WebRTC AEC3 as an echo canceller: the ONLY module that imports pywebrtc_audio.

The speaker's own reply reaches the microphone. ``EchoCanceller`` removes it from each
capture chunk, given the exact audio written to the speaker (the reference), so that a voice
detector hears the person and not the reply. Settings, timing rules and the measurements
behind them: /work/shared/reference/aec.md (AEC3 in pywebrtc-audio 0.2.0 with echo
cancellation, high-pass filter, noise suppression level 1, no gain control, default delay).

Timing: AEC3 finds the echo path itself for a reference that LEADS its echo by 0 to about
450 ms. Tap the reference at the sound-card write, keep the playback buffer short (≤ ~200 ms)
and call ``drop()`` when the card's buffer is flushed. A reference that arrives AFTER its echo
(or leads by ≥ 600 ms) makes AEC3 useless (ERLE about 2-5 dB in aec.md §3.2): nothing here can
repair that, so the caller must feed ``reference()`` no later than the card write.
The queue itself holds the reference back by about ``margin_s`` (plus a few ms inside soxr), so
the lead that AEC3 sees is playback buffer + acoustic delay - margin: a playback buffer of at
least the margin keeps it positive (tested with 100 ms; aec.md's 40-300 ms all worked).

Threading: an ``EchoCanceller`` is not thread-safe (nor is the library's processor). It is
meant for one thread, the asyncio loop, which calls ``reference()``, ``drop()`` and
``clean()`` in turn, so it takes no lock.
"""

from collections import deque
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from pispeaker.audio.pcm import (
    FULL_SCALE,
    INPUT_RATE,
    OUTPUT_RATE,
    SILENCE_DBFS,
    Samples,
    to_samples,
)
from pispeaker.audio.resample import PcmStreamResampler
from pispeaker.errors import EchoCancellerError

if TYPE_CHECKING:
    from pywebrtc_audio import AudioProcessor

#: The library processes 10 ms frames; it zero-pads a partial one, which would put zeros into
#: the echo path's timeline, so it only ever gets whole frames.
FRAMES_PER_SECOND = 100
#: A 10 ms reference frame above this level counts as playing (the reply, not its pauses):
#: only such frames tell how well the echo is cancelled.
ACTIVE_REFERENCE_DBFS = -50.0
#: ERLE and residual are measured over the last second of playing-reference frames: long
#: enough to span syllables and pauses, short enough to follow a change of the echo path.
WINDOW_S = 1.0
#: Less playing reference than this gives no measurement: AEC3 converged within the first
#: second in aec.md, and half a second of speech is the least that says anything about it.
MIN_ACTIVE_S = 0.5
#: Converged when what is left of the echo is this quiet, 10 dB under the -45 dBFS at which
#: a voice detector (the server's, or the local level gate) starts hearing speech.
QUIET_RESIDUAL_DBFS = -55.0
#: Errors pywebrtc-audio raises from its C++ code (pybind11 maps them to these).
_LIBRARY_ERRORS = (RuntimeError, ValueError)


class EchoCanceller:
    """Removes the speaker's reply from the microphone with WebRTC AEC3 (one thread only).

    Feed ``reference()`` with what is written to the speaker, and pass every capture chunk
    through ``clean()``. ``erle_db``, ``residual_dbfs`` and ``converged`` tell how well the
    echo of the current reply is removed.
    """

    def __init__(
        self,
        capture_rate: int = INPUT_RATE,
        reference_rate: int = OUTPUT_RATE,
        max_lead_s: float = 0.4,
        margin_s: float = 0.04,
    ) -> None:
        """Raises EchoCancellerError when pywebrtc-audio cannot be loaded or started."""
        if capture_rate % FRAMES_PER_SECOND or not 0 <= margin_s < max_lead_s:
            raise ValueError(
                f"capture rate {capture_rate} Hz, margin {margin_s} s, lead {max_lead_s} s: "
                "the rate must hold whole 10 ms frames and the margin be below the lead"
            )
        self._frame = capture_rate // FRAMES_PER_SECOND
        self._processor = _create_processor(capture_rate)
        self._reference = _ReferenceQueue(
            PcmStreamResampler(reference_rate, capture_rate),
            frame=self._frame,
            limit=round(max_lead_s * capture_rate),
            margin=round(margin_s * capture_rate),
        )
        self._meter = _EchoMeter(self._frame)
        self._chunker = _Rechunker(self._frame)
        #: 10 ms frames processed since construction (for cost accounting; reset() keeps it).
        self.frames = 0

    def reference(self, pcm: bytes) -> None:
        """Queue 24 kHz mono s16le audio exactly as written to the speaker, in write order."""
        self._reference.push(pcm)

    def drop(self) -> None:
        """The speaker dropped its buffer (barge-in): forget the queued reference."""
        self._reference.clear()

    def clean(self, mic: bytes) -> bytes:
        """The echo-free version of one 16 kHz mono s16le capture chunk of any whole-sample
        length, as long as ``mic``.

        The library gets whole 10 ms frames; the samples short of one wait for the next
        chunk. Once a chunk is not a whole number of frames the output lags the input by
        a constant 159 samples (< 10 ms). Raises EchoCancellerError if the library fails.
        """
        near = self._chunker.take(to_samples(mic))
        far = self._reference.take(len(near) // self._frame)
        out = self._process(near, far)
        self._meter.add(near, far, out)
        self.frames += len(near) // self._frame
        return self._chunker.give(out, len(mic) // 2).tobytes()

    def reset(self) -> None:
        """Forget everything learnt and queued, including convergence (a new device)."""
        self._processor.reset()
        self._reference.clear()
        self._meter.clear()
        self._chunker.clear()

    @property
    def erle_db(self) -> float | None:
        """Echo return loss enhancement over the last ~1 s of playing reference (dB), or None
        before 0.5 s of it."""
        return self._meter.erle_db()

    @property
    def residual_dbfs(self) -> float | None:
        """The output level over the same window (dBFS), or None before 0.5 s of it."""
        return self._meter.residual_dbfs()

    @property
    def converged(self) -> bool:
        """At least 0.5 s of playing reference seen, and what is left of the echo below
        ``QUIET_RESIDUAL_DBFS``, whatever the ERLE: a residual a voice detector (the
        server's hears from -45 dBFS) could take for speech would interrupt the reply.
        (Measured on the echo bench: ERLE of 10-13 dB still left the model interrupting
        itself in 7 of 8 replies at -6 dB coupling.)"""
        residual = self.residual_dbfs
        return residual is not None and residual <= QUIET_RESIDUAL_DBFS

    def _process(self, near: Samples, far: Samples) -> Samples:
        if not len(near):
            return near
        try:
            return self._processor.process(near, far)
        except _LIBRARY_ERRORS as error:
            raise EchoCancellerError(
                f"the echo canceller (pywebrtc-audio) failed: {error}"
            ) from error


def _create_processor(rate: int) -> "AudioProcessor":
    try:
        from pywebrtc_audio import AudioProcessor

        return AudioProcessor(
            sample_rate=rate,
            num_channels=1,
            echo_cancellation=True,
            high_pass_filter=True,
            noise_suppression=True,
            ns_level=1,
            auto_gain_control=False,
        )
    # ImportError for a missing package or one whose .so does not load (wrong architecture,
    # old glibc or libstdc++); OSError and the library's own errors for anything else.
    except (ImportError, OSError, *_LIBRARY_ERRORS) as error:
        raise EchoCancellerError(
            f"cannot start the echo canceller from the package pywebrtc-audio: {error}. "
            "Install it into pispeaker's environment with `pip install pywebrtc-audio==0.2.0` "
            "(it needs a 64-bit OS: there is no 32-bit ARM build)"
        ) from error


class _ReferenceQueue:
    """The reference at the capture rate, paired with capture frames as in aec.md §5.

    Pairing starts (primes) only once ``margin`` samples more than a frame are queued, because
    soxr's output comes in irregular pieces and an underrun would shift the reference; until
    then, and when idle, the reference is zeros. When the queue runs dry (playback ended) the
    last frame is zero-padded and pairing waits for the margin again.
    """

    def __init__(self, resampler: PcmStreamResampler, frame: int, limit: int, margin: int) -> None:
        self._resampler = resampler
        self._frame, self._limit, self._margin = frame, limit, margin
        self._queue: Samples = np.zeros(0, np.int16)
        self._primed = False

    def push(self, pcm: bytes) -> None:
        """Resample and queue ``pcm``; beyond ``limit`` samples the oldest are dropped (a
        lead that long is beyond what AEC3 can use anyway)."""
        resampled = self._resampler.process(pcm)
        self._queue = np.concatenate([self._queue, resampled])[-self._limit :]

    def take(self, count: int) -> Samples:
        """The reference for the next ``count`` capture frames."""
        frames = [self._next_frame() for _ in range(count)]
        return np.concatenate(frames) if frames else np.zeros(0, np.int16)

    def clear(self) -> None:
        """Empty the queue, forget soxr's held-back samples and wait for the margin again."""
        self._queue = np.zeros(0, np.int16)
        self._resampler.reset()
        self._primed = False

    def _next_frame(self) -> Samples:
        if not self._primed and len(self._queue) >= self._margin + self._frame:
            self._primed = True
        if not self._primed:
            return np.zeros(self._frame, np.int16)
        frame, self._queue = self._queue[: self._frame], self._queue[self._frame :]
        if len(frame) < self._frame:  # ran dry: playback ended
            self._primed = False
            frame = np.concatenate([frame, np.zeros(self._frame - len(frame), np.int16)])
        return frame


class _Rechunker:
    """Turns capture chunks of any length into whole frames and the output back into
    chunks of the input's lengths."""

    def __init__(self, frame: int) -> None:
        self._frame = frame
        self._pending: Samples = np.zeros(0, np.int16)  # short of a whole frame
        self._ready: Samples = np.zeros(0, np.int16)  # processed, not yet given out
        self._delay = 0  # zeros put in front of the output so far

    def take(self, samples: Samples) -> Samples:
        """The whole frames now available; the rest waits for the next chunk."""
        pending = np.concatenate([self._pending, samples])
        whole = len(pending) - len(pending) % self._frame
        self._pending = pending[whole:]
        return pending[:whole]

    def give(self, processed: Samples, count: int) -> Samples:
        """The next ``count`` output samples.

        ``count`` minus what is processed is at most the samples waiting, fewer than a frame.
        The first time the output falls short it is delayed by that maximum (frame - 1, in
        zeros), once: a constant latency from then on.
        """
        ready = np.concatenate([self._ready, processed])
        if len(ready) < count:
            ready = np.concatenate([np.zeros(self._frame - 1 - self._delay, np.int16), ready])
            self._delay = self._frame - 1
        self._ready = ready[count:]
        return ready[:count]

    def clear(self) -> None:
        self._pending = self._ready = np.zeros(0, np.int16)
        self._delay = 0


class _EchoMeter:
    """Microphone and output energy of the last ``WINDOW_S`` of frames with playing reference."""

    def __init__(self, frame: int) -> None:
        self._frame = frame
        self._floor = frame * (FULL_SCALE * 10 ** (ACTIVE_REFERENCE_DBFS / 20)) ** 2
        self._window: deque[tuple[float, float]] = deque(maxlen=round(WINDOW_S * FRAMES_PER_SECOND))
        self._seen = 0

    def add(self, near: Samples, far: Samples, out: Samples) -> None:
        """Account the frames of one ``clean()`` call (whole frames, aligned)."""
        mic, ref, res = (_frame_energies(x, self._frame) for x in (near, far, out))
        playing = ref > self._floor
        self._window.extend(zip(mic[playing].tolist(), res[playing].tolist(), strict=True))
        self._seen += int(playing.sum())

    def erle_db(self) -> float | None:
        if not self._measured():
            return None
        mic, out = (sum(column) for column in zip(*self._window, strict=True))
        # One LSB² per sample as the floor: a silent output is a finite (huge) ERLE.
        return float(10 * np.log10(max(mic, 1.0) / max(out, self._samples())))

    def residual_dbfs(self) -> float | None:
        if not self._measured():
            return None
        out = sum(energy for _, energy in self._window)
        mean_square = out / self._samples() / FULL_SCALE**2
        return max(float(10 * np.log10(mean_square)), SILENCE_DBFS) if out else SILENCE_DBFS

    def clear(self) -> None:
        self._window.clear()
        self._seen = 0

    def _measured(self) -> bool:
        return self._seen >= MIN_ACTIVE_S * FRAMES_PER_SECOND

    def _samples(self) -> int:
        return len(self._window) * self._frame


def _frame_energies(samples: Samples, frame: int) -> npt.NDArray[np.float64]:
    """The sum of squares of each ``frame``-sample frame of ``samples``."""
    frames = samples.astype(np.float64).reshape(-1, frame)
    energies: npt.NDArray[np.float64] = np.einsum("ij,ij->i", frames, frames)
    return energies
