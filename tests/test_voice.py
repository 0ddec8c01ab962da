"""VoiceDetector (pispeaker.audio.voice): the real Silero VAD v6 model on espeak-ng speech."""

import re
from pathlib import Path

import numpy as np
import pytest

from pispeaker.audio.pcm import INPUT_RATE, rms_dbfs
from pispeaker.audio.voice import MODEL, WINDOW, VoiceDetector
from pispeaker.errors import PispeakerError, VoiceDetectorError
from tests import speech

CHUNK_20MS = 320


def feed(detector: VoiceDetector, pcm: bytes, chunk: int = CHUNK_20MS) -> list[float]:
    """``probability()`` of each ``chunk``-sample chunk of ``pcm``."""
    step = chunk * 2
    return [detector.probability(pcm[i : i + step]) for i in range(0, len(pcm), step)]


def noise_at(dbfs: float, seconds: float = 5.0) -> bytes:
    bed = speech.noise(seconds, 0.05).astype(np.float64)
    gain = 32768 * 10 ** (dbfs / 20) / np.sqrt(np.mean(bed**2))
    return bytes(np.round(bed * gain).astype("<i2").tobytes())


@pytest.fixture(scope="module")
def detector() -> VoiceDetector:
    return VoiceDetector()


@pytest.fixture
def fresh(detector: VoiceDetector) -> VoiceDetector:
    detector.reset()
    return detector


@pytest.mark.parametrize("voice", speech.OTHER_VOICES[:3], ids=lambda voice: voice.label)
def test_speech_is_speech(fresh: VoiceDetector, voice: speech.Voice) -> None:
    said = speech.read_pcm(speech.say(speech.PARAGRAPHS[5], voice))
    probabilities = np.array(feed(fresh, said))
    # espeak's output is trimmed to its sound, but holds pauses between words and sentences:
    # about 92 % of the 20 ms chunks score above 0.5 (measured).
    assert np.mean(probabilities > 0.5) > 0.8


def test_quiet_noise_is_not_speech(fresh: VoiceDetector) -> None:
    noise = noise_at(-50.0)
    assert rms_dbfs(noise) == pytest.approx(-50.0, abs=0.1)
    assert max(feed(fresh, noise)) < 0.2


def test_silence_is_not_speech(fresh: VoiceDetector) -> None:
    assert max(feed(fresh, bytes(5 * INPUT_RATE * 2))) < 0.2


def test_nothing_judged_yet_is_zero(fresh: VoiceDetector) -> None:
    assert fresh.probability(bytes((WINDOW - 1) * 2)) == 0.0


@pytest.mark.parametrize("chunk", [CHUNK_20MS, 333, 1100])
def test_chunk_sizes_judge_the_same_windows(detector: VoiceDetector, chunk: int) -> None:
    said = speech.read_pcm(speech.say(speech.REQUEST_TEXT, speech.REQUEST_VOICE))
    detector.reset()
    windows = feed(detector, said, WINDOW)[: len(said) // 2 // WINDOW]  # one window a chunk
    detector.reset()
    got = feed(detector, said, chunk)
    assert got == pytest.approx(_expected(windows, chunk, len(got)), abs=1e-6)


def _expected(windows: list[float], chunk: int, count: int) -> list[float]:
    """What ``probability()`` returns for each ``chunk``-sample chunk, given the probability
    of each window: the highest of the windows it completes, else the last one judged."""
    out, last = [], 0.0
    for index in range(count):
        done = windows[index * chunk // WINDOW : (index + 1) * chunk // WINDOW]
        if done:
            last = done[-1]
        out.append(max(done) if done else last)
    return out


def test_reset_forgets_what_was_heard(detector: VoiceDetector) -> None:
    said = speech.read_pcm(speech.say(speech.WAKE_TEXT, speech.REQUEST_VOICE))
    detector.reset()
    first = feed(detector, said)
    feed(detector, said)
    detector.reset()
    assert feed(detector, said) == first


def test_the_model_is_packaged() -> None:
    assert MODEL.is_file()
    assert (MODEL.parent / "README").read_text().count("MIT") >= 2


def test_a_missing_model_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "silero_vad.onnx"
    with pytest.raises(VoiceDetectorError) as raised:
        VoiceDetector(missing)
    assert str(missing) in str(raised.value)
    assert "reinstall pispeaker" in str(raised.value)
    assert isinstance(raised.value, PispeakerError)


def test_a_corrupt_model_is_named(tmp_path: Path) -> None:
    corrupt = tmp_path / "vad.onnx"
    corrupt.write_bytes(MODEL.read_bytes()[:1000])
    with pytest.raises(VoiceDetectorError, match=re.escape(str(corrupt))):
        VoiceDetector(corrupt)
