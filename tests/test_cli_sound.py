"""``pispeaker devices``, ``test-mic`` and ``test-speaker`` as subprocesses on real libasound,
with file-backed PCMs standing in for a USB microphone and speaker."""

import os
import wave
from pathlib import Path

import numpy as np
import pytest

from pispeaker.audio import alsa
from pispeaker.audio.pcm import OUTPUT_RATE, rms_dbfs, silence, tone
from pispeaker.soundcheck import chime, meter, suggested_config
from tests.alsa_rig import AlsaRig, PacedWriter
from tests.signals import dominant_frequency
from tests.test_cli import pispeaker


@pytest.fixture
def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AlsaRig:
    return AlsaRig(tmp_path, monkeypatch)


def config_file(tmp_path: Path, **audio: object) -> str:
    lines = "".join(f"{key} = {value!r}\n".replace("'", '"') for key, value in audio.items())
    path = tmp_path / "pispeaker.toml"
    path.write_text(f"[audio]\n{lines}")
    return str(path)


def environment(rig: AlsaRig, tmp_path: Path) -> dict[str, str]:
    return {"ALSA_CONFIG_PATH": str(rig.path), "STATE_DIRECTORY": str(tmp_path / "state")}


def test_devices_lists_each_pcm_with_what_it_accepts(rig: AlsaRig, tmp_path: Path) -> None:
    (tmp_path / "in.raw").write_bytes(bytes(100))
    rig.capture("usbmic", tmp_path / "in.raw")
    rig.playback("usbspk", tmp_path / "out.raw")
    result = pispeaker("devices", env=environment(rig, tmp_path))
    assert result.returncode == 0, result.stderr
    capture = result.stdout.split("Capture devices:")[1].split("Playback devices:")[0]
    assert "usbmic" in capture
    line = next(line for line in capture.splitlines() if "usbmic" in line)
    assert "channels 1, 2" in line
    assert "S16_LE" in line
    assert "S32_LE" in line
    assert "none found" in result.stdout  # no cards on this machine, and it says so
    assert "ALSA lib" not in result.stderr


def test_suggested_config_prefers_a_usb_card_by_name() -> None:
    cards = [
        alsa.Card(0, "vc4hdmi0", "vc4-hdmi-0"),
        alsa.Card(1, "Headphones", "bcm2835 Headphones"),
        alsa.Card(2, "Device", "USB Audio Device"),
    ]
    text = suggested_config(cards)
    assert 'capture_device = "plughw:CARD=Device,DEV=0"' in text
    assert 'playback_device = "plughw:CARD=Device,DEV=0"' in text
    assert "again" in suggested_config([])


def test_test_mic_measures_and_records_what_the_microphone_hears(
    rig: AlsaRig, tmp_path: Path
) -> None:
    fifo = tmp_path / "mic.fifo"
    os.mkfifo(fifo)
    said = tone(1000, 3.0, 48_000, amplitude=0.1)
    stereo = np.repeat(np.frombuffer(said, "<i2"), 2).tobytes()
    writer = PacedWriter(fifo, stereo, period=3840, period_s=0.002)  # 10x real time
    writer.start()
    rig.capture("usbmic", fifo)
    config = config_file(tmp_path, capture_device="usbmic", capture_rate=48_000, capture_channels=2)
    record = tmp_path / "heard.wav"
    result = pispeaker(
        "--config",
        config,
        "test-mic",
        "--seconds",
        "1",
        "--record",
        str(record),
        env=environment(rig, tmp_path),
    )
    writer.finish()
    assert result.returncode == 0, result.stderr
    assert "48000 Hz, 2 ch, S16_LE" in result.stdout
    expected = rms_dbfs(said)  # about -23 dBFS
    assert f"average {expected:.1f} dBFS" in result.stdout
    with wave.open(str(record)) as wav:
        assert (wav.getframerate(), wav.getnchannels()) == (16_000, 1)
        assert wav.getnframes() == 16_000
        assert dominant_frequency(wav.readframes(16_000), 16_000) == pytest.approx(1000, abs=2)


def test_test_speaker_plays_at_the_remembered_volume(rig: AlsaRig, tmp_path: Path) -> None:
    rig.playback("usbspk", tmp_path / "out.raw")
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "volume").write_text("100\n")
    config = config_file(tmp_path, playback_device="usbspk", playback_rate=OUTPUT_RATE)
    result = pispeaker(
        "--config",
        config,
        "test-speaker",
        "--frequency",
        "523",
        "--seconds",
        "0.5",
        env=environment(rig, tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert "at volume 100" in result.stdout
    assert (tmp_path / "out.raw").read_bytes() == tone(523, 0.5, OUTPUT_RATE)


def test_test_speaker_chime(rig: AlsaRig, tmp_path: Path) -> None:
    rig.playback("usbspk", tmp_path / "out.raw")
    config = config_file(tmp_path, playback_device="usbspk", playback_rate=OUTPUT_RATE, volume=50)
    result = pispeaker(
        "--config", config, "test-speaker", "--chime", env=environment(rig, tmp_path)
    )
    assert result.returncode == 0, result.stderr
    played = (tmp_path / "out.raw").read_bytes()
    assert len(played) == len(chime())
    assert rms_dbfs(played) == pytest.approx(rms_dbfs(chime()) - 20, abs=0.1)  # 50 is -20 dB


@pytest.mark.parametrize("command", ["test-mic", "test-speaker"])
def test_a_missing_device_says_what_to_do(rig: AlsaRig, tmp_path: Path, command: str) -> None:
    config = config_file(tmp_path, capture_device="plughw:CARD=Mic", playback_device="nope")
    result = pispeaker("--config", config, command, env=environment(rig, tmp_path))
    assert result.returncode == os.EX_UNAVAILABLE
    assert "cannot be opened" in result.stderr
    assert "run `pispeaker devices`" in result.stderr
    assert "ALSA lib" not in result.stderr  # libasound's own noise is silenced


def test_meter_spans_the_floor_to_full_scale() -> None:
    assert meter(-120.0).count("#") == 0
    assert meter(0.0).count("#") == 40
    assert meter(-35.0).count("#") == 20
    assert "-35.0 dBFS" in meter(-35.0)
    assert silence(0.1, OUTPUT_RATE) == bytes(4800)
