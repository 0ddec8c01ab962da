"""``pispeaker test-wake`` on WAV files, as CI runs it: real models, real subprocess."""

import subprocess
import sys
from pathlib import Path

from pispeaker.wakecheck import WAV_TAIL_S, bar
from tests import speech


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pispeaker", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def test_a_wav_with_hey_jarvis_shows_one_detection_and_the_scores() -> None:
    said = speech.wake_then_request()
    done = run_cli("test-wake", "--wav", str(said.path))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    [detected] = [line for line in lines if line.startswith("DETECTED")]
    assert detected.startswith("DETECTED hey_jarvis score ")
    at_s = float(detected.split(" at ")[1].removesuffix(" s"))
    assert said.wake_start / 16000 < at_s <= said.request_start / 16000
    assert any(bar(1.0, 0.5) in line for line in lines)  # a full bar
    assert "1 detection(s)." in done.stdout
    assert "reaches threshold 0.5" in done.stdout


def test_a_short_clip_that_is_only_the_wake_word_detects_it() -> None:
    """A file is scored as if the microphone had listened in silence before it: a one-second
    clip of "hey jarvis" (no silence around it) detects it, at a time of the file's own."""
    clip = speech.wake_phrase(speech.WAKE_VOICES[0], pad=0.0)
    done = run_cli("test-wake", "--wav", str(clip))
    assert done.returncode == 0, done.stderr
    [detected] = [line for line in done.stdout.splitlines() if line.startswith("DETECTED")]
    at_s = float(detected.split(" at ")[1].removesuffix(" s"))
    clip_s = clip.stat().st_size / 32000  # 16-bit samples at 16 kHz
    assert clip_s / 2 < at_s <= clip_s + WAV_TAIL_S  # the score peaks just after the word
    assert "warm-up" not in done.stdout


def test_a_wav_without_it_stays_below_every_threshold(tmp_path: Path) -> None:
    config = tmp_path / "pispeaker.toml"
    config.write_text('[wake]\nmodels = ["hey_jarvis", "alexa"]\nthresholds = { alexa = 0.6 }\n')
    other = speech.other_speech(minutes=0.5)
    done = run_cli("--config", str(config), "test-wake", "--wav", str(other))
    assert done.returncode == 0, done.stderr
    assert "DETECTED" not in done.stdout
    assert "Heard 30.0 s; 0 detection(s)." in done.stdout
    assert "stays below threshold 0.6" in done.stdout  # alexa's own threshold
    assert "stays below threshold 0.5" in done.stdout


def test_no_wake_word_configured_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "pispeaker.toml"
    config.write_text("[wake]\nmodels = []\n")
    unused = tmp_path / "unused.wav"
    unused.touch()
    done = run_cli("--config", str(config), "test-wake", "--wav", str(unused))
    assert done.returncode == 78
    assert "wake.models: is empty: list a wake word to test" in done.stderr


def test_the_bar_marks_the_threshold() -> None:
    assert bar(0.0, 0.5) == "[..........|.........] 0.00"
    assert bar(0.62, 0.5) == "[##########|#........] 0.62"
    assert bar(1.0, 0.99) == "[###################|] 1.00"
