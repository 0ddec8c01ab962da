"""The synthetic speech generator itself: format, determinism, real silence, offsets, caching."""

import wave
from pathlib import Path

import numpy as np
import pytest

from tests import speech

SHORT = 0.1  # minutes of other_speech: 6 s, enough for speech, noise and silence segments


def wav_format(path: Path) -> tuple[int, int, int, str]:
    """(rate, channels, sample width, compression) of a WAV file."""
    with wave.open(str(path), "rb") as wav:
        return wav.getframerate(), wav.getnchannels(), wav.getsampwidth(), wav.getcomptype()


def test_every_fixture_is_16k_mono_s16(tmp_path: Path) -> None:
    wake = speech.wake_phrase(speech.WAKE_VOICES[0], tmp_path)
    request = speech.wake_then_request(tmp_path).path
    other = speech.other_speech(tmp_path, SHORT)
    for path in (wake, request, other):
        assert wav_format(path) == (16000, 1, 2, "NONE")
    assert len(speech.read_samples(other)) == round(SHORT * 60 * 16000)


def test_same_inputs_give_the_same_bytes(tmp_path: Path) -> None:
    made = []
    for name in ("a", "b"):
        cache = tmp_path / name
        made.append(
            [
                speech.wake_phrase(speech.WAKE_VOICES[2], cache),
                speech.wake_then_request(cache).path,
                speech.other_speech(cache, SHORT),
            ]
        )
    for first, second in zip(*made, strict=True):
        assert first.name == second.name
        assert first.read_bytes() == second.read_bytes()


def test_wake_phrase_is_padded_with_real_silence(tmp_path: Path) -> None:
    samples = speech.read_samples(speech.wake_phrase(speech.WAKE_VOICES[0], tmp_path))
    second = speech.RATE
    assert not samples[:second].any()
    assert not samples[-second:].any()
    spoken = samples[second:-second]
    assert np.abs(spoken).max() > 3000  # the phrase itself is audible
    assert 0.4 < len(spoken) / speech.RATE < 1.5


def test_wake_then_request_offsets_are_inside_the_file(tmp_path: Path) -> None:
    fixture = speech.wake_then_request(tmp_path)
    samples = speech.read_samples(fixture.path)
    assert fixture.total == len(samples)
    assert fixture.wake_start == round(1.5 * speech.RATE)
    assert fixture.wake_start < fixture.wake_end < fixture.request_start < fixture.request_end
    assert fixture.request_start - fixture.wake_end == round(0.2 * speech.RATE)
    assert fixture.total - fixture.request_end == round(1.5 * speech.RATE)
    # Silences are zero samples; the words are audible.
    assert not samples[: fixture.wake_start].any()
    assert not samples[fixture.wake_end : fixture.request_start].any()
    assert not samples[fixture.request_end :].any()
    assert np.abs(samples[fixture.wake_start : fixture.wake_end]).max() > 3000
    assert np.abs(samples[fixture.request_start : fixture.request_end]).max() > 3000
    assert fixture.request_end - fixture.request_start > fixture.wake_end - fixture.wake_start


def test_other_speech_mixes_speech_with_silence_and_never_says_the_wake_word(
    tmp_path: Path,
) -> None:
    samples = speech.read_samples(speech.other_speech(tmp_path, SHORT))
    frames = samples[: len(samples) // speech.FRAME * speech.FRAME].reshape(-1, speech.FRAME)
    peaks = np.abs(frames.astype(np.int32)).max(axis=1)
    assert (peaks == 0).any()  # real silence somewhere
    assert (peaks > 3000).sum() > len(peaks) // 4  # and plenty of speech
    plan = speech._plan(900)  # what other_speech plans for 10 minutes
    assert not any("jarvis" in segment.text.lower() for segment in plan)
    assert {s.text for s in plan} >= {text for text, _ in speech.NEAR_MISSES}


def test_cache_is_reused_and_keyed_by_the_espeak_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = speech.wake_then_request(tmp_path).path
    stamp = path.stat().st_mtime_ns
    assert speech.wake_then_request(tmp_path).path == path
    assert path.stat().st_mtime_ns == stamp
    versions = {**speech.tool_versions(), "espeak-ng": "eSpeak NG text-to-speech: 99.0"}
    monkeypatch.setattr(speech, "tool_versions", lambda: versions)
    assert speech.wake_then_request(tmp_path).path != path


def test_to_rate_makes_a_48k_stereo_copy(tmp_path: Path) -> None:
    fixture = speech.wake_then_request(tmp_path)
    stereo = speech.to_rate(fixture.path, 48000, 2, cache=tmp_path)
    assert wav_format(stereo) == (48000, 2, 2, "NONE")
    pcm = np.frombuffer(speech.read_pcm(stereo, 48000, 2), "<i2").reshape(-1, 2)
    assert abs(len(pcm) - 3 * fixture.total) <= 3
    assert (pcm[:, 0] == pcm[:, 1]).all()  # mono duplicated into both channels
    raw = speech.to_rate(fixture.path, 48000, 2, raw=True, cache=tmp_path)
    assert raw.read_bytes() == pcm.tobytes()
