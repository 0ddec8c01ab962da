"""WebRTC AEC3 as an echo canceller: the ONLY module that imports pywebrtc_audio.

The speaker's own reply reaches the microphone. ``EchoCanceller`` removes it from each
capture chunk, given the exact audio written to the speaker (the reference), so that a voice
detector hears the person and not the reply. Settings, timing rules and the measurements
behind them: /work/shared/reference/aec.md (AEC3 in pywebrtc-audio 0.2.0 with echo
cancellation, high-pass filter, noise suppression level 1, no gain control, default delay).

Timing: AEC3 finds the echo path itself for a reference that LEADS its echo by 0 to about
450 ms; a reference that arrives AFTER its echo (or leads by 600 ms or more) makes it useless
(ERLE about 2-5 dB in aec.md §3.2), and a lead that changes from one reply to the next costs
20-30 dB at the next reply's start (measured on the echo bench: AEC3 keeps the echo path it
learnt, and finds it shifted). So the reference is placed by time, not by order: each piece
comes with the moment its first sample is heard (the sink knows it: when it went to the
card, plus what the card held before it), each capture chunk with the moment its last sample
was taken, and the capture sample taken at ``t`` is paired with the reference heard at
``t + lead_s``. The lead is then the acoustic delay plus ``lead_s``, the same for every
reply, whatever the playback buffer or the event loop's timing. The reference must come at
least ``lead_s`` before it is heard (a playback buffer of at least that: ALSA's holds 80 ms),
or the capture it belongs to is cleaned without it.

Threading: an ``EchoCanceller`` is not thread-safe (nor is the library's processor). It is
meant for one thread, the asyncio loop, which calls ``reference()``, ``drop()`` and
``clean()`` in turn, so it takes no lock.
"""

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from pispeaker.audio.pcm import (
    FULL_SCALE,
    INPUT_RATE,
    OUTPUT_RATE,
    SILENCE_DBFS,
    Samples,
    duration_s,
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
#: The reference leads its echo by the acoustic delay plus this, a margin for rounding: the
#: moments given can only make the lead longer (a sink cannot play a sample before it has it,
#: nor a card deliver one before it is captured), and AEC3 picks up the echo soonest at the
#: start of a reply when the lead is short (its first guess is about 20 ms).
LEAD_S = 0.01
#: AEC3 finds echoes up to about 450 ms after their reference (aec.md §3.2).
MAX_LEAD_S = 0.4
#: Reference pieces heard within this of the end of the previous one continue it (the
#: moments a sink gives jitter by a few ms within continuous playback).
JOIN_S = 0.005
#: Reference heard longer ago than this is forgotten (capture that late is never paired).
HISTORY_S = 2.0
#: The capture clock's offset is the least seen over this many chunks, and starts afresh
#: after a gap this long (see _CaptureClock).
CLOCK_CHUNKS, CLOCK_GAP_S = 50, 0.25
#: Errors pywebrtc-audio raises from its C++ code (pybind11 maps them to these).
_LIBRARY_ERRORS = (RuntimeError, ValueError)


class EchoCanceller:
    """Removes the speaker's reply from the microphone with WebRTC AEC3 (one thread only).

    Feed ``reference()`` with what is written to the speaker, and pass every capture chunk
    through ``clean()``, each with its moment (``time.monotonic()`` seconds). ``erle_db``,
    ``residual_dbfs`` and ``converged`` tell how well the echo of the current reply is
    removed.
    """

    def __init__(
        self,
        capture_rate: int = INPUT_RATE,
        reference_rate: int = OUTPUT_RATE,
        lead_s: float = LEAD_S,
    ) -> None:
        """Raises EchoCancellerError when pywebrtc-audio cannot be loaded or started."""
        if capture_rate % FRAMES_PER_SECOND or not 0 <= lead_s < MAX_LEAD_S:
            raise ValueError(
                f"capture rate {capture_rate} Hz, lead {lead_s} s: the rate must hold whole "
                f"10 ms frames and the lead be under {MAX_LEAD_S} s"
            )
        self._frame = capture_rate // FRAMES_PER_SECOND
        self._processor = _create_processor(capture_rate)
        self._clock = _CaptureClock(capture_rate)
        self._reference = _ReferenceTimeline(
            PcmStreamResampler(reference_rate, capture_rate), lead_s
        )
        self._meter = _EchoMeter(self._frame)
        self._converged = False
        self._chunker = _Rechunker(self._frame)
        #: 10 ms frames processed since construction (for cost accounting; reset() keeps it).
        self.frames = 0

    def reference(self, pcm: bytes, heard_at: float) -> None:
        """24 kHz mono s16le audio exactly as written to the speaker, whose first sample is
        heard at ``heard_at``."""
        self._reference.push(pcm, heard_at)

    def drop(self, at: float) -> None:
        """The speaker dropped its buffer at ``at`` (barge-in): what was due after that will
        not be heard."""
        self._reference.drop(at)

    def clean(self, mic: bytes, captured_at: float) -> bytes:
        """The echo-free version of one 16 kHz mono s16le capture chunk of any whole-sample
        length, as long as ``mic``; its last sample was taken at ``captured_at``.

        The library gets whole 10 ms frames; the samples short of one wait for the next
        chunk. Once a chunk is not a whole number of frames the output lags the input by
        a constant 159 samples (< 10 ms). Raises EchoCancellerError if the library fails.
        """
        samples = to_samples(mic)
        self._clock.count(len(samples), captured_at)
        near = self._chunker.take(samples)
        first = self._clock.index - self._chunker.waiting - len(near)
        far = self._reference.take(first, len(near), self._clock)
        out = self._process(near, far)
        self._meter.add(near, far, out)
        if not self._converged:
            residual = self._meter.residual_dbfs()
            self._converged = residual is not None and residual <= QUIET_RESIDUAL_DBFS
        self.frames += len(near) // self._frame
        return self._chunker.give(out, len(samples)).tobytes()

    def reset(self) -> None:
        """Forget everything learnt and queued, including convergence (a new device)."""
        self._processor.reset()
        self._reference.clear()
        self._clock.reset()
        self._meter.clear()
        self._converged = False
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
        """Whether, at some point since construction or ``reset()``, at least 0.5 s of
        playing reference was seen with what was left of the echo below
        ``QUIET_RESIDUAL_DBFS``, whatever the ERLE: a residual a voice detector (the
        server's hears from -45 dBFS) could take for speech would interrupt the reply.
        (Measured on the echo bench: ERLE of 10-13 dB still left the model interrupting
        itself in 7 of 8 replies at -6 dB coupling.)

        It stays true: the output is loud as well while the user talks over the reply,
        which is no sign of a worse canceller, and AEC3 follows a change of the echo path
        by itself within a second (aec.md §3.3)."""
        return self._converged

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


class _CaptureClock:
    """When each capture sample was taken: sample ``index`` at ``offset + index / rate``.

    A chunk's capture moment may come late (the reading thread was not scheduled at once),
    never early, so the offset is the least ``captured_at - index / rate`` of the last
    CLOCK_CHUNKS chunks: jitter drops out, and a jump (a chunk dropped, a card restarted) or
    the card's drift against the machine's clock is followed within that window. A chunk
    over CLOCK_GAP_S later than the clock says (capture was not counted for a while) starts
    the clock afresh.
    """

    def __init__(self, rate: int) -> None:
        self._rate = rate
        self._index = 0  # capture samples counted so far
        self._candidates: deque[float] = deque(maxlen=CLOCK_CHUNKS)

    @property
    def index(self) -> int:
        """Capture samples counted so far: the index of the next one."""
        return self._index

    def count(self, samples: int, captured_at: float) -> None:
        """``samples`` more were captured, the last of them at ``captured_at``."""
        self._index += samples
        offset = captured_at - self._index / self._rate
        if self._candidates and offset - min(self._candidates) > CLOCK_GAP_S:
            self._candidates.clear()
        self._candidates.append(offset)

    def index_at(self, moment: float) -> float:
        """The (fractional) capture sample index taken at ``moment``."""
        return (moment - min(self._candidates)) * self._rate if self._candidates else 0.0

    def reset(self) -> None:
        self._candidates.clear()


@dataclass
class _Run:
    """Reference heard without a break: its first sample is heard at ``start``; from the
    ``paired``-th capture sample on, capture sample ``paired + i`` gets ``samples[i]``."""

    start: float
    samples: Samples
    heard_s: float = 0.0  # the run's length in the played (device-rate) audio
    paired: int | None = None


class _ReferenceTimeline:
    """The reference at the capture rate, placed by when it is heard: capture sample taken
    at ``t`` gets the reference heard at ``t + lead``, zeros where nothing plays.

    Pieces that follow each other within ``JOIN_S`` form one run, resampled as one stream;
    a run is placed on the capture clock once, when first paired, and then advances sample
    by sample with the capture (no jitter inside a run). Runs heard over ``HISTORY_S`` ago
    are forgotten.
    """

    def __init__(self, resampler: PcmStreamResampler, lead_s: float) -> None:
        self._resampler = resampler
        self._rate, self._lead_s = resampler.out_rate, lead_s
        self._runs: list[_Run] = []

    def push(self, pcm: bytes, heard_at: float) -> None:
        """Queue ``pcm`` (s16le at the resampler's input rate) whose first sample is heard at
        ``heard_at``."""
        last = self._runs[-1] if self._runs else None
        if last is None or abs(last.start + last.heard_s - heard_at) > JOIN_S:
            self._resampler.reset()
            last = _Run(heard_at, np.zeros(0, np.int16))
            self._runs.append(last)
        last.samples = np.concatenate([last.samples, self._resampler.process(pcm)])
        last.heard_s += duration_s(pcm, self._resampler.in_rate)
        self._runs = [run for run in self._runs if run.start + run.heard_s > heard_at - HISTORY_S]

    def take(self, first: int, count: int, clock: _CaptureClock) -> Samples:
        """The reference for capture samples ``first`` to ``first + count``."""
        out = np.zeros(count, np.int16)
        for run in self._runs:
            if run.paired is None:
                run.paired = round(clock.index_at(run.start - self._lead_s))
            low, high = max(first, run.paired), min(first + count, run.paired + len(run.samples))
            if low < high:
                out[low - first : high - first] = run.samples[low - run.paired : high - run.paired]
            _forget_paired(run, first + count - run.paired, self._rate)
        return out

    def drop(self, at: float) -> None:
        """Nothing heard from ``at`` on will be played: forget it, and start a new run."""
        self._resampler.reset()
        self._runs = [run for run in self._runs if run.start < at]
        for run in self._runs:
            if run.start + run.heard_s > at:
                run.samples = run.samples[: max(0, round((at - run.start) * self._rate))]
                run.heard_s = at - run.start

    def clear(self) -> None:
        self._resampler.reset()
        self._runs = []


def _forget_paired(run: _Run, samples: int, rate: int) -> None:
    """Drop the first ``samples`` of ``run`` (paired already): it starts that much later."""
    samples = min(len(run.samples), max(0, samples))
    if samples and run.paired is not None:
        run.samples = run.samples[samples:]
        run.paired += samples
        run.start += samples / rate
        run.heard_s -= samples / rate


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
        if not len(self._pending) and not len(samples) % self._frame:
            return samples  # whole frames, as capture chunks of 10 ms multiples are
        pending = np.concatenate([self._pending, samples])
        whole = len(pending) - len(pending) % self._frame
        self._pending = pending[whole:]
        return pending[:whole]

    @property
    def waiting(self) -> int:
        """Samples taken but short of a whole frame (not yet processed)."""
        return len(self._pending)

    def give(self, processed: Samples, count: int) -> Samples:
        """The next ``count`` output samples.

        ``count`` minus what is processed is at most the samples waiting, fewer than a frame.
        The first time the output falls short it is delayed by that maximum (frame - 1, in
        zeros), once: a constant latency from then on.
        """
        if not len(self._ready) and len(processed) == count:
            return processed  # nothing held over: the frames are the chunk
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
    """Microphone and output energy of the last ``WINDOW_S`` of frames with playing reference.

    The window's sums are kept as frames come and go: a frame's energy is a sum of squares of
    int16 samples, a whole number far below 2**53, so the float sums are exact and never
    drift."""

    def __init__(self, frame: int) -> None:
        self._frame = frame
        self._floor = frame * (FULL_SCALE * 10 ** (ACTIVE_REFERENCE_DBFS / 20)) ** 2
        self._window: deque[tuple[float, float]] = deque()
        self._size = round(WINDOW_S * FRAMES_PER_SECOND)
        self._mic = self._out = 0.0  # the window's sums
        self._seen = 0

    def add(self, near: Samples, far: Samples, out: Samples) -> None:
        """Account the frames of one ``clean()`` call (whole frames, aligned)."""
        if not far.any():
            return  # nothing plays (the user's turn): no frame to account
        mic, ref, res = _frame_energies(np.stack([near, far, out]), self._frame)
        playing = ref > self._floor
        if not playing.any():
            return
        for energies in zip(mic[playing].tolist(), res[playing].tolist(), strict=True):
            if len(self._window) == self._size:
                gone_mic, gone_out = self._window.popleft()
                self._mic -= gone_mic
                self._out -= gone_out
            self._window.append(energies)
            self._mic += energies[0]
            self._out += energies[1]
            self._seen += 1

    def erle_db(self) -> float | None:
        if not self._measured():
            return None
        # One LSB² per sample as the floor: a silent output is a finite (huge) ERLE.
        return float(10 * np.log10(max(self._mic, 1.0) / max(self._out, self._samples())))

    def residual_dbfs(self) -> float | None:
        if not self._measured():
            return None
        if not self._out:
            return SILENCE_DBFS
        mean_square = self._out / self._samples() / FULL_SCALE**2
        return max(float(10 * np.log10(mean_square)), SILENCE_DBFS)

    def clear(self) -> None:
        self._window.clear()
        self._mic = self._out = 0.0
        self._seen = 0

    def _measured(self) -> bool:
        return self._seen >= MIN_ACTIVE_S * FRAMES_PER_SECOND

    def _samples(self) -> int:
        return len(self._window) * self._frame


def _frame_energies(signals: Samples, frame: int) -> npt.NDArray[np.float64]:
    """The sum of squares of each ``frame``-sample frame of each row of ``signals``."""
    frames = signals.astype(np.float64).reshape(len(signals), -1, frame)
    energies: npt.NDArray[np.float64] = np.einsum("kij,kij->ki", frames, frames)
    return energies
