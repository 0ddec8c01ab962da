"""EchoCanceller (pispeaker.audio.echo) with the real WebRTC AEC3 on espeak-ng speech.

The room: the reply is written to the speaker (and to ``reference()``, with the moment it is
heard) ``BUFFER_S`` before it is played, as an ALSA playback buffer would hold it; the
microphone hears it ``delay`` later, 6 dB down, with -50 dBFS pink noise. Capture comes in
20 ms chunks, each with the moment its last sample was taken, unless a test says otherwise.
Moments are seconds from the reply's start.
"""

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import pytest

from pispeaker.audio.echo import (
    FRAMES_PER_SECOND,
    MIN_ACTIVE_S,
    WINDOW_S,
    EchoCanceller,
    _CaptureClock,
    _EchoMeter,
    _ReferenceTimeline,
)
from pispeaker.audio.pcm import INPUT_RATE, OUTPUT_RATE, rms_dbfs, scale, to_samples, tone
from pispeaker.audio.resample import PcmStreamResampler, resample
from pispeaker.errors import EchoCancellerError, PispeakerError
from tests import speech

REPLY_VOICE = speech.Voice("en-us", 160)
NEAR_VOICE = speech.Voice("en+f3", 150, 70)
BUFFER_S = 0.1
#: The reply goes to the speaker in 20 ms pieces.
PIECE = OUTPUT_RATE // 50 * 2
COUPLING_DB = -6.0
NOISE_DBFS = -50.0
#: The energy gate the microphone used to need: 20 ms frames, voiced above -40 dBFS.
GATE_DBFS = -40.0
GATE_FRAME = 320
#: Where the near-end voice starts in the double-talk test, and its level.
NEAR_START_S = 3.0
NEAR_DBFS = -26.0
#: The playback buffer of pispeaker's ALSA speaker (4 periods of 20 ms).
ALSA_BUFFER_S = 0.08


@cache
def reply() -> bytes:
    """About 16 s of espeak-ng speech at 24 kHz: the device's reply."""
    text = f"{speech.PARAGRAPHS[0]} {speech.PARAGRAPHS[1]}"
    path = speech.to_rate(speech.say(text, REPLY_VOICE), OUTPUT_RATE, 1)
    return speech.read_pcm(path, OUTPUT_RATE)


@cache
def near_end() -> bytes:
    """A person talking over the reply (16 kHz), at ``NEAR_DBFS``."""
    said = speech.say("Hey, stop. What time is it in Tokyo right now?", NEAR_VOICE)
    return _at_level(to_samples(speech.read_pcm(said)), NEAR_DBFS)


def _at_level(samples: np.ndarray, dbfs: float) -> bytes:
    gain = 32768 * 10 ** (dbfs / 20) / np.sqrt(np.mean(samples.astype(np.float64) ** 2))
    return _s16(samples * gain)


def _s16(samples: np.ndarray) -> bytes:
    return bytes(np.clip(np.round(samples), -32768, 32767).astype("<i2").tobytes())


def microphone(delay_s: float, with_near_end: bool = False) -> bytes:
    """What the microphone hears while ``reply()`` plays (16 kHz, as long as the reply)."""
    echo = to_samples(resample(reply(), OUTPUT_RATE, INPUT_RATE)).astype(np.float64)
    echo = np.concatenate([np.zeros(round(delay_s * INPUT_RATE)), echo])[: len(echo)]
    mic = echo * 10 ** (COUPLING_DB / 20)
    mic += to_samples(_at_level(speech.noise(len(mic) / INPUT_RATE), NOISE_DBFS))
    if with_near_end:
        start, voice = round(NEAR_START_S * INPUT_RATE), to_samples(near_end())
        mic[start : start + len(voice)] += voice
    return _s16(mic)


@dataclass
class Run:
    """The cleaned microphone and the canceller's measurements after each chunk."""

    cleaned: bytearray = field(default_factory=bytearray)
    erle_db: list[float | None] = field(default_factory=list)
    converged: list[bool] = field(default_factory=list)

    def at(self, seconds: float, chunk: int) -> int:
        """The index of the chunk that ends at ``seconds``."""
        return round(seconds * INPUT_RATE / chunk) - 1


def play(
    aec: EchoCanceller,
    mic: bytes,
    chunk: int = 320,
    start_s: float = 0.0,
    buffer_s: float = BUFFER_S,
    late_s: Callable[[], float] = lambda: 0.0,
) -> Run:
    """Write the reply ``buffer_s`` ahead in 20 ms pieces and clean ``chunk``-sample chunks,
    the reply starting at ``start_s``; each capture moment comes ``late_s()`` late."""
    run, written = Run(), 0
    ref = reply()[: len(mic) // 2 * OUTPUT_RATE // INPUT_RATE * 2]  # heard while the mic hears
    for start in range(0, len(mic), chunk * 2):
        played_s = (start // 2 + chunk) / INPUT_RATE
        while written < min(len(ref), round((played_s + buffer_s) * OUTPUT_RATE) * 2):
            aec.reference(ref[written : written + PIECE], start_s + written / 2 / OUTPUT_RATE)
            written += PIECE
        out = aec.clean(mic[start : start + chunk * 2], start_s + played_s + late_s())
        assert len(out) == len(mic[start : start + chunk * 2])
        run.cleaned += out
        run.erle_db.append(aec.erle_db)
        run.converged.append(aec.converged)
    return run


def gate_frames(pcm: bytes, from_s: float = 0.0, to_s: float | None = None) -> int:
    """How many 20 ms frames between ``from_s`` and ``to_s`` the energy gate calls voiced."""
    part = pcm[
        round(from_s * INPUT_RATE) * 2 : None if to_s is None else round(to_s * INPUT_RATE) * 2
    ]
    frames = range(0, len(part) - GATE_FRAME * 2 + 1, GATE_FRAME * 2)
    return sum(rms_dbfs(part[i : i + GATE_FRAME * 2]) > GATE_DBFS for i in frames)


@pytest.mark.parametrize("delay_s", [0.03, 0.2])
def test_the_reply_is_cancelled_within_two_seconds(delay_s: float) -> None:
    mic = microphone(delay_s)
    run = play(EchoCanceller(), mic)
    two_s = run.at(2.0, 320)
    assert run.erle_db[two_s] is not None
    assert run.erle_db[two_s] > 20
    assert run.converged[two_s]
    assert gate_frames(mic, from_s=1.0) > 100
    assert gate_frames(bytes(run.cleaned), from_s=1.0) == 0


def test_no_measurement_before_half_a_second_of_reply() -> None:
    run = play(EchoCanceller(), microphone(0.03))
    assert run.erle_db[run.at(0.2, 320)] is None
    assert not run.converged[run.at(0.2, 320)]


def test_a_voice_over_the_reply_survives() -> None:
    run = play(EchoCanceller(), microphone(0.03, with_near_end=True))
    during = slice(NEAR_START_S, NEAR_START_S + len(near_end()) / 2 / INPUT_RATE)
    cleaned = bytes(run.cleaned)[
        round(during.start * INPUT_RATE) * 2 : round(during.stop * INPUT_RATE) * 2
    ]
    assert rms_dbfs(cleaned) > NEAR_DBFS - 10
    assert gate_frames(bytes(run.cleaned), during.start, during.stop) > 20
    assert gate_frames(bytes(run.cleaned), 1.0, during.start) == 0
    # the voice makes the output loud, not the canceller worse: it stays converged
    assert all(run.converged[run.at(2.0, 320) :])


@pytest.mark.parametrize("chunk", [240, 112, 1])
def test_chunks_of_any_length_come_back_as_long_and_clean(chunk: int) -> None:
    mic = microphone(0.03)
    run = play(EchoCanceller(), mic, chunk)
    assert len(run.cleaned) == len(mic)
    assert run.converged[run.at(2.0, chunk)]
    assert gate_frames(bytes(run.cleaned), from_s=1.0) == 0


def test_drop_forgets_what_was_due_after_it() -> None:
    aec = EchoCanceller()
    aec.reference(reply()[: OUTPUT_RATE * 2], 0.0)  # a second
    aec.drop(0.4)
    aec.clean(bytes(INPUT_RATE * 2), 1.0)
    assert aec.erle_db is None  # only 0.4 s was heard: too little to measure


def test_without_drop_the_queued_reply_is_paired() -> None:
    aec = EchoCanceller()
    aec.reference(reply()[: OUTPUT_RATE * 2], 0.0)
    aec.clean(bytes(INPUT_RATE * 2), 1.0)
    assert aec.erle_db is not None


def test_a_barge_in_drop_keeps_what_was_learnt() -> None:
    aec, mic = EchoCanceller(), microphone(0.03)
    play(aec, mic[: 3 * INPUT_RATE * 2])  # interrupted 3 s into the reply
    aec.drop(3.0)
    aec.clean(bytes(INPUT_RATE), 3.5)  # a pause: the user's turn
    again = play(aec, mic, start_s=3.5)  # the next reply
    assert again.converged[0]
    assert gate_frames(bytes(again.cleaned)) == 0


@pytest.mark.parametrize(("delay_s", "onset_frames"), [(0.03, 0), (0.3, 2)])
def test_the_next_reply_is_cancelled_from_its_first_word_whatever_the_buffer(
    delay_s: float, onset_frames: int
) -> None:
    """Placed by time, the reference leads its echo by the same for every reply: the echo
    path learnt holds from the next reply's first word, though the playback buffer (how
    long before it is heard a piece is written) changed. (With a 300 ms delay AEC3 lets the
    first 40 ms of the echo's onset through after a pause, about 15 dB down.)"""
    aec, mic = EchoCanceller(), microphone(delay_s)
    play(aec, mic[: 4 * INPUT_RATE * 2], buffer_s=0.3)
    aec.clean(bytes(INPUT_RATE * 2), 5.0)  # a pause between the replies
    again = play(aec, mic[: 2 * INPUT_RATE * 2], start_s=5.0, buffer_s=ALSA_BUFFER_S)
    assert gate_frames(mic[: 2 * INPUT_RATE * 2]) > 50
    assert gate_frames(bytes(again.cleaned)) <= onset_frames
    assert all(erle > 25 for erle in again.erle_db if erle is not None)


def test_capture_moments_that_come_late_do_not_spoil_it() -> None:
    """A chunk's moment is when its reading thread got it: up to 15 ms late, at random."""
    jitter = np.random.default_rng(3)
    mic = microphone(0.03)
    run = play(EchoCanceller(), mic, late_s=lambda: float(jitter.uniform(0.0, 0.015)))
    assert run.converged[run.at(2.0, 320)]
    assert gate_frames(bytes(run.cleaned), from_s=1.0) == 0


def test_reset_forgets_convergence() -> None:
    aec = EchoCanceller()
    play(aec, microphone(0.03))
    assert aec.converged
    aec.reset()
    assert (aec.converged, aec.erle_db, aec.residual_dbfs) == (False, None, None)


def test_frames_counts_the_10ms_frames_cleaned() -> None:
    aec = EchoCanceller()
    for k in range(7):
        aec.clean(bytes(240 * 2), k * 0.015)
    assert aec.frames == 7 * 240 // 160


def test_a_missing_library_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pywebrtc_audio", None)  # what `import` does when absent
    with pytest.raises(EchoCancellerError, match="pywebrtc-audio") as raised:
        EchoCanceller()
    assert isinstance(raised.value, PispeakerError)
    assert "pip install pywebrtc-audio==0.2.0" in str(raised.value)


def test_the_meter_keeps_the_sums_of_its_window() -> None:
    # The window's sums are kept as frames come and go; they are what summing it anew gives.
    frame, rng = 160, np.random.default_rng(5)
    meter, kept = _EchoMeter(frame), []
    for call in range(400):
        frames = int(rng.integers(0, 4))
        near, far, out = (
            rng.normal(0, level, frames * frame).clip(-32768, 32767).astype(np.int16)
            for level in (3000.0, 300.0 if call % 7 else 1.0, 800.0)
        )
        meter.add(near, far, out)
        for index in range(frames):
            part = slice(index * frame, (index + 1) * frame)
            if np.sum(far[part].astype(np.float64) ** 2) > meter._floor:
                kept.append((near[part], out[part]))
        window = kept[-round(WINDOW_S * FRAMES_PER_SECOND) :]
        if len(kept) < MIN_ACTIVE_S * FRAMES_PER_SECOND:
            assert meter.erle_db() is None
            continue
        mic = sum(float(np.sum(n.astype(np.float64) ** 2)) for n, _ in window)
        res = sum(float(np.sum(o.astype(np.float64) ** 2)) for _, o in window)
        samples = len(window) * frame
        assert meter.erle_db() == 10 * np.log10(max(mic, 1.0) / max(res, samples))
        assert meter.residual_dbfs() == 10 * np.log10(res / samples / 32768.0**2)


def test_audio_told_again_for_a_moment_replaces_what_was_told_of_it() -> None:
    """A duck plays what the speaker held again at a new gain: from that moment on the
    reference is the ducked audio, not the loud one it had been told first."""
    timeline = _ReferenceTimeline(PcmStreamResampler(OUTPUT_RATE, INPUT_RATE), lead_s=0.0)
    clock = _CaptureClock(INPUT_RATE)
    clock.count(2 * INPUT_RATE, 2.0)  # capture sample i was taken at i / 16000 s
    loud = tone(300, 1.0, OUTPUT_RATE, 0.5)
    timeline.push(loud, 0.0)
    timeline.push(scale(loud[len(loud) // 2 :], 0.1), 0.5)
    heard = timeline.take(0, INPUT_RATE, clock).tobytes()
    half = len(heard) // 2
    assert rms_dbfs(heard[: half - 200]) == pytest.approx(rms_dbfs(loud), abs=0.5)
    assert rms_dbfs(heard[half + 200 :]) == pytest.approx(rms_dbfs(loud) - 20, abs=0.5)
