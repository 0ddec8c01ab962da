"""Tests for pispeaker.audio.volume: the remembered level, software gain, mixer and state_dir."""

import itertools
import logging
import math
from pathlib import Path

import numpy as np
import pytest

from pispeaker.audio.pcm import SILENCE_DBFS, rms_dbfs, to_samples, tone
from pispeaker.audio.volume import RANGE_DB, Volume, state_dir

LOGGER = "pispeaker.audio.volume"


def test_no_file_uses_initial(tmp_path: Path) -> None:
    path = tmp_path / "volume"
    assert Volume(37, path).level == 37
    assert not path.exists()  # reading creates nothing
    assert Volume(64).level == 64


@pytest.mark.parametrize(("requested", "stored"), [(55, 55), (150, 100), (-20, 0), (0, 0)])
def test_set_clamps_and_saves_atomically(tmp_path: Path, requested: int, stored: int) -> None:
    path = tmp_path / "state" / "volume"  # the directory is created on demand
    volume = Volume(30, path)
    volume.set(requested)
    assert volume.level == stored
    assert int(path.read_text(encoding="ascii").strip()) == stored
    assert list(path.parent.glob("*.new")) == []


def test_a_new_volume_picks_up_the_saved_level(tmp_path: Path) -> None:
    path = tmp_path / "volume"
    Volume(30, path).set(83)
    assert Volume(30, path).level == 83
    Volume(30, path).set(0)
    assert Volume(90, path).level == 0  # a saved 0 is a level, not "nothing saved"


@pytest.mark.parametrize("text", ["loud", "150", "", "-5", "4.5", "\xff\xfe"])
def test_corrupt_file_is_ignored_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, text: str
) -> None:
    path = tmp_path / "volume"
    path.write_bytes(text.encode("latin-1"))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        volume = Volume(42, path)
    assert volume.level == 42
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == LOGGER]
    assert len(warnings) == 1
    assert str(path) in warnings[0].getMessage()


def test_saved_level_tolerates_whitespace(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "volume"
    path.write_text(" 77\n", encoding="ascii")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert Volume(10, path).level == 77
    assert not caplog.records


def test_unwritable_location_keeps_the_level_in_memory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a regular file\n", encoding="ascii")
    path = blocker / "volume"
    volume = Volume(20, path)
    assert volume.level == 20
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        volume.set(65)
    assert volume.level == 65
    assert blocker.read_text(encoding="ascii") == "a regular file\n"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == LOGGER]
    assert len(warnings) == 1
    assert "cannot remember" in warnings[0].getMessage()


@pytest.mark.parametrize(
    ("level", "gain"),
    [(100, 1.0), (0, 0.0), (50, 10 ** (-20 / 20)), (75, 10 ** (-10 / 20)), (1, 10 ** (-39.6 / 20))],
)
def test_gain_is_linear_in_decibels(level: int, gain: float) -> None:
    assert RANGE_DB == 40.0
    volume = Volume(level)
    assert volume.gain == pytest.approx(gain, rel=1e-9, abs=1e-12)


def test_gain_increases_with_the_level() -> None:
    volume = Volume(0)
    gains = []
    for level in range(101):
        volume.set(level)
        gains.append(volume.gain)
    assert all(a < b for a, b in itertools.pairwise(gains))
    assert gains[0] == 0.0
    assert gains[-1] == 1.0


@pytest.mark.parametrize("level", [75, 50, 10])
def test_apply_scales_the_rms_level(level: int) -> None:
    pcm = tone(440, 0.2, 24_000, amplitude=0.8)
    expected_db = RANGE_DB * (level / 100 - 1)
    scaled = Volume(level).apply(pcm)
    assert len(scaled) == len(pcm)
    assert rms_dbfs(scaled) - rms_dbfs(pcm) == pytest.approx(expected_db, abs=0.1)


def test_apply_at_the_extremes() -> None:
    pcm = tone(440, 0.2, 24_000, amplitude=0.8)
    assert Volume(100).apply(pcm) == pcm
    muted = Volume(0).apply(pcm)
    assert len(muted) == len(pcm)
    assert not np.any(to_samples(muted))
    assert rms_dbfs(muted) == SILENCE_DBFS


def test_mixer_gets_the_initial_and_every_set_level() -> None:
    calls: list[int] = []
    volume = Volume(30, None, calls.append)
    assert calls == [30]
    volume.set(70)
    volume.set(150)
    volume.set(-3)
    assert calls == [30, 70, 100, 0]


def test_mixer_gets_the_saved_level_at_construction(tmp_path: Path) -> None:
    path = tmp_path / "volume"
    path.write_text("42\n", encoding="ascii")
    calls: list[int] = []
    volume = Volume(90, path, calls.append)
    assert calls == [42]
    volume.set(12)
    assert calls == [42, 12]
    assert path.read_text(encoding="ascii").strip() == "12"


@pytest.mark.parametrize("level", [0, 20, 50, 100])
def test_with_a_mixer_audio_passes_unchanged(level: int) -> None:
    calls: list[int] = []
    volume = Volume(level, None, calls.append)
    pcm = tone(440, 0.1, 24_000, amplitude=0.5)
    assert volume.gain == 1.0
    assert volume.apply(pcm) == pcm
    assert math.isclose(rms_dbfs(volume.apply(pcm)), rms_dbfs(pcm))


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"STATE_DIRECTORY": "/var/lib/pispeaker", "XDG_STATE_HOME": "/x"}, "/var/lib/pispeaker"),
        ({"STATE_DIRECTORY": "/var/lib/a:/var/lib/b"}, "/var/lib/a"),
        ({"XDG_STATE_HOME": "/home/pi/state"}, "/home/pi/state/pispeaker"),
    ],
)
def test_state_dir_from_the_environment(environ: dict[str, str], expected: str) -> None:
    assert state_dir(environ) == Path(expected)


@pytest.mark.parametrize("environ", [{}, {"XDG_STATE_HOME": ""}])
def test_state_dir_defaults_to_the_home_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, environ: dict[str, str]
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert state_dir(environ) == tmp_path / ".local" / "state" / "pispeaker"
