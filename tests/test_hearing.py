"""The ear: voice activity in two stages, and when the microphone may be sent over a reply."""

import numpy as np
import pytest

from pispeaker.audio.pcm import INPUT_RATE, rms_dbfs, silence
from pispeaker.conversation.core import Duplex
from pispeaker.conversation.hearing import (
    CONVERGING,
    QUIET_S,
    UNVOICED_QUIET_S,
    Ear,
    VoiceActivity,
    louder_than,
)
from pispeaker.errors import EchoCancellerError
from pispeaker.states import Event

CHUNK_S = 0.02


def loud(seconds: float, amplitude: float = 3000.0) -> bytes:
    """A sound well above the gate (-20 dBFS), as a voice near the microphone."""
    rng = np.random.default_rng(1)
    samples = rng.normal(0.0, amplitude, round(seconds * INPUT_RATE))
    return bytes(np.clip(samples, -32768, 32767).astype("<i2").tobytes())


def feed(activity: VoiceActivity, audio: bytes) -> list[tuple[float, Event]]:
    """Every event, with the audio time (s) of the chunk that brought it."""
    step = round(CHUNK_S * INPUT_RATE) * 2
    return [
        (round(offset / 2 / INPUT_RATE + CHUNK_S, 3), event)
        for offset in range(0, len(audio), step)
        for event in activity.feed(audio[offset : offset + step])
    ]


class Scripted:
    """A voice model that says a sound is speech when it is loud and ``voiced``."""

    def __init__(self, voiced: bool) -> None:
        self.voiced = voiced
        self.resets = 0
        self.judged = 0  # chunks judged

    def probability(self, chunk: bytes) -> float:
        self.judged += 1
        samples = np.frombuffer(chunk, "<i2").astype(np.float64)
        return 0.9 if self.voiced and np.sqrt(np.mean(samples**2)) > 300 else 0.02

    def reset(self) -> None:
        self.resets += 1


def test_without_a_voice_model_every_sound_is_speech_at_once() -> None:
    activity = VoiceActivity(None)
    events = feed(activity, silence(0.1, INPUT_RATE) + loud(0.5) + silence(0.5, INPUT_RATE))
    assert events == [(0.12, Event.USER_SPEECH), (round(0.6 + QUIET_S, 3), Event.USER_SILENCE)]


def test_silence_alone_is_no_sound_and_a_short_pause_does_not_end_speech() -> None:
    activity = VoiceActivity(None, quiet_s=0.3)
    assert feed(activity, silence(3.0, INPUT_RATE)) == []
    events = feed(activity, loud(0.5) + silence(0.2, INPUT_RATE) + loud(0.5))
    assert [event for _, event in events] == [Event.USER_SPEECH]
    assert activity.talking


def test_speech_is_confirmed_after_enough_voiced_audio_and_ends_after_quiet() -> None:
    activity = VoiceActivity(Scripted(voiced=True), confirm_s=0.3, quiet_s=0.3)
    events = feed(activity, loud(1.0) + silence(0.6, INPUT_RATE))
    assert events == [
        (0.02, Event.SOUND_ONSET),
        (0.3, Event.USER_SPEECH),
        (1.3, Event.USER_SILENCE),
    ]


def test_a_short_sound_without_voice_is_gone_soon_after_it_ends() -> None:
    """A click or what is left of the echo: a reply it ducked comes back at once, not after
    the pause allowed between words."""
    activity = VoiceActivity(Scripted(voiced=False), quiet_s=0.3)
    events = feed(activity, loud(0.2) + silence(0.6, INPUT_RATE) + loud(0.1))
    gone = round(0.2 + UNVOICED_QUIET_S, 3)
    assert events == [
        (0.02, Event.SOUND_ONSET),
        (gone, Event.SOUND_GONE),
        (0.82, Event.SOUND_ONSET),
    ]


def test_a_voiced_sound_waits_the_pause_between_words_before_it_is_gone() -> None:
    model = Scripted(voiced=True)
    activity = VoiceActivity(model, confirm_s=0.3, quiet_s=0.3)
    events = feed(activity, loud(0.1) + silence(0.6, INPUT_RATE))
    assert events == [(0.02, Event.SOUND_ONSET), (0.4, Event.SOUND_GONE)]


def test_a_long_noise_is_given_up_on_once_and_ends_without_another_event() -> None:
    activity = VoiceActivity(Scripted(voiced=False), give_up_s=1.2, quiet_s=0.3)
    events = feed(activity, loud(3.0) + silence(1.0, INPUT_RATE))
    assert events == [(0.02, Event.SOUND_ONSET), (1.2, Event.SOUND_GONE)]


def test_speech_within_a_long_noise_is_still_heard() -> None:
    model = Scripted(voiced=False)
    activity = VoiceActivity(model, confirm_s=0.3, give_up_s=1.2)
    events = feed(activity, loud(2.0))
    model.voiced = True
    events += feed(activity, loud(0.5))
    # the first voiced chunk is a new sound (a reply ducks again), confirmed as speech
    assert events[2:] == [(0.02, Event.SOUND_ONSET), (0.3, Event.USER_SPEECH)]
    assert [event for _, event in events[:2]] == [Event.SOUND_ONSET, Event.SOUND_GONE]


def test_reset_forgets_the_sound_and_the_model_state() -> None:
    model = Scripted(voiced=True)
    activity = VoiceActivity(model)
    feed(activity, loud(0.1))
    resets = model.resets
    activity.reset()
    assert (activity.sound, activity.talking, model.resets) == (False, False, resets + 1)
    assert feed(activity, loud(0.02))[0][1] is Event.SOUND_ONSET


def test_the_model_judges_sounds_only_each_from_its_own_start() -> None:
    model = Scripted(voiced=False)
    activity = VoiceActivity(model)
    feed(activity, silence(1.0, INPUT_RATE))
    assert (model.judged, model.resets) == (0, 0)  # quiet: the model is not run
    feed(activity, loud(0.1) + silence(QUIET_S, INPUT_RATE))  # a sound, over once quiet
    judged = 5 + round(UNVOICED_QUIET_S / CHUNK_S)  # its chunks, and the quiet ending it
    assert (model.judged, model.resets) == (judged, 1)
    feed(activity, silence(0.2, INPUT_RATE) + loud(0.04))
    assert (model.judged, model.resets) == (judged + 2, 2)


def test_the_words_of_one_utterance_are_one_sound_across_their_pause() -> None:
    # "no, stop": neither word alone is voiced long enough to be sure; together they are.
    activity = VoiceActivity(Scripted(voiced=True), confirm_s=0.3)
    events = feed(activity, loud(0.2) + silence(0.3, INPUT_RATE) + loud(0.2))
    assert events == [(0.02, Event.SOUND_ONSET), (0.6, Event.USER_SPEECH)]


class Converging:
    """A canceller that converges when told, and fails when told."""

    def __init__(self) -> None:
        self.converged = False
        self.fail = False
        self.references: list[tuple[bytes, float]] = []
        self.drops: list[float] = []
        self.cleaned: list[float] = []  # the capture moment of each chunk cleaned

    def reference(self, pcm: bytes, heard_at: float) -> None:
        self.references.append((pcm, heard_at))

    def drop(self, at: float) -> None:
        self.drops.append(at)

    def clean(self, mic: bytes, captured_at: float) -> bytes:
        if self.fail:
            raise EchoCancellerError("pywebrtc-audio: processing failed")
        self.cleaned.append(captured_at)
        return bytes(len(mic))

    def reset(self) -> None:
        self.converged = False
        self.references.clear()


@pytest.mark.parametrize(
    ("duplex", "converged", "hears"),
    [
        (Duplex.OFF, True, False),
        (Duplex.HARDWARE, False, True),
        (Duplex.AUTO, False, False),
        (Duplex.AUTO, True, True),
        (Duplex.AEC, True, True),
    ],
)
def test_the_microphone_is_sent_over_a_reply_by_duplex_and_convergence(
    duplex: Duplex, converged: bool, hears: bool
) -> None:
    canceller = Converging()
    canceller.converged = converged
    assert Ear(duplex, canceller).hears_over_reply is hears


def test_only_a_cancelling_mode_runs_the_canceller() -> None:
    canceller = Converging()
    for duplex in (Duplex.OFF, Duplex.HARDWARE):
        ear = Ear(duplex, canceller)
        ear.played(b"\x01\x00", 1.0)
        assert ear.clean(b"\x05\x00", 1.0) == b"\x05\x00"
    assert canceller.references == canceller.cleaned == []


def test_until_it_converges_the_ear_says_why_the_microphone_is_withheld() -> None:
    canceller = Converging()
    ear = Ear(Duplex.AUTO, canceller)
    assert ear.withheld_because == CONVERGING
    canceller.converged = True
    assert ear.withheld_because is None


def test_a_missing_canceller_withholds_the_microphone_and_says_so() -> None:
    notes: list[str] = []
    ear = Ear(Duplex.AUTO, None, notes.append)
    assert not ear.hears_over_reply
    assert notes == [ear.withheld_because]
    assert "no echo canceller could be loaded" in notes[0]


def test_a_failing_canceller_is_dropped_once_and_audio_passes_through() -> None:
    canceller = Converging()
    canceller.converged = True
    notes: list[str] = []
    ear = Ear(Duplex.AUTO, canceller, notes.append)
    ear.played(b"\x01\x00", 1.0)
    canceller.fail = True
    assert ear.clean(b"\x05\x00", 1.0) == b"\x05\x00"
    assert ear.clean(b"\x06\x00", 1.1) == b"\x06\x00"
    assert not ear.hears_over_reply
    assert len(notes) == 1
    assert "the echo canceller failed (pywebrtc-audio: processing failed)" in notes[0]


def test_the_cleaned_audio_is_used_only_while_the_speaker_may_be_heard() -> None:
    """The canceller hears every chunk with its moment (one timeline), but the user's voice
    alone goes out as captured."""
    canceller = Converging()
    ear = Ear(Duplex.AUTO, canceller)
    chunk = b"\x05\x00" * 320  # 20 ms
    assert ear.clean(chunk, 0.02) == chunk  # nothing played: the voice goes out as captured
    ear.played(b"\x01\x00", 0.05)
    out = [ear.clean(chunk, 0.04 + k * 0.02) for k in range(40)]  # 0.8 s
    assert out[:30] == [bytes(len(chunk))] * 30  # ECHO_TAIL_S after the last play
    assert out[30:] == [chunk] * 10
    assert canceller.cleaned == [0.02] + [0.04 + k * 0.02 for k in range(40)]
    assert canceller.references == [(b"\x01\x00", 0.05)]


def test_a_device_that_comes_back_is_learnt_afresh_before_the_microphone_is_sent() -> None:
    canceller = Converging()
    canceller.converged = True
    ear = Ear(Duplex.AUTO, canceller)
    ear.played(b"\x01\x00", 1.0)
    ear.new_device()
    assert not ear.hears_over_reply
    assert ear.withheld_because == CONVERGING
    assert canceller.references == []
    chunk = b"\x05\x00" * 320
    assert ear.clean(chunk, 1.02) == chunk  # what played before is nobody's echo now


def test_dropped_audio_is_told_with_its_moment() -> None:
    canceller = Converging()
    Ear(Duplex.AEC, canceller).dropped(3.5)
    assert canceller.drops == [3.5]


@pytest.mark.parametrize("amplitude", [0.0, 1.0, 20.0, 180.0, 3000.0, 40000.0])
@pytest.mark.parametrize("gate_dbfs", [-130.0, -60.0, -45.0, -40.0, -3.0])
def test_the_level_gate_is_rms_dbfs(amplitude: float, gate_dbfs: float) -> None:
    for chunk in (loud(CHUNK_S, amplitude), loud(0.0), loud(0.5, amplitude)):
        assert louder_than(chunk, gate_dbfs) == (rms_dbfs(chunk) > gate_dbfs)


def test_the_level_gate_at_its_edge() -> None:
    # A square wave of amplitude 184 is -45.01 dBFS, of 185 -44.96 dBFS.
    for amplitude, expected in ((184, False), (185, True)):
        chunk = np.full(320, amplitude, "<i2").tobytes()
        assert louder_than(chunk, -45.0) is expected
