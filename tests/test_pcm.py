"""Tests for pispeaker.audio.pcm (conversions, levels, test tones), pispeaker.audio.resample
and the test helper signals.dominant_frequency."""

import math

import numpy as np
import pytest

from pispeaker.audio import pcm
from pispeaker.audio.resample import resample
from tests.signals import dominant_frequency


def test_to_samples_reads_signed_little_endian() -> None:
    samples = pcm.to_samples(b"\x01\x00\xff\xff\x00\x80\xff\x7f")
    assert samples.dtype == np.int16
    assert samples.tolist() == [1, -1, -32768, 32767]


def test_to_samples_of_empty_pcm_is_empty() -> None:
    assert pcm.to_samples(b"").size == 0


@pytest.mark.parametrize(
    ("n_bytes", "rate", "seconds"),
    [(32_000, 16_000, 1.0), (640, 16_000, 0.02), (9_600, 24_000, 0.2), (0, 24_000, 0.0)],
)
def test_duration_s_and_byte_count_agree(n_bytes: int, rate: int, seconds: float) -> None:
    assert pcm.duration_s(bytes(n_bytes), rate) == pytest.approx(seconds)
    assert pcm.byte_count(seconds, rate) == n_bytes


def test_byte_count_is_whole_samples() -> None:
    # 1/3 s at 16 kHz is 5333.33 samples: rounded to a whole sample, never an odd byte count.
    count = pcm.byte_count(1 / 3, 16_000)
    assert count % pcm.SAMPLE_WIDTH == 0
    assert count == 5_333 * 2
    assert pcm.byte_count(0.2, pcm.OUTPUT_RATE) == 9_600


def test_rms_dbfs_of_a_sine_is_peak_over_root_two() -> None:
    level = pcm.rms_dbfs(pcm.tone(1_000, 0.5, 16_000, amplitude=0.3))
    expected = 20 * math.log10(0.3 / math.sqrt(2))  # about -13.47 dBFS
    assert level == pytest.approx(expected, abs=0.2)
    assert -13.7 < level < -13.3


def test_rms_dbfs_follows_amplitude() -> None:
    loud = pcm.rms_dbfs(pcm.tone(500, 0.2, 16_000, amplitude=0.5))
    quiet = pcm.rms_dbfs(pcm.tone(500, 0.2, 16_000, amplitude=0.05))
    assert loud - quiet == pytest.approx(20.0, abs=0.1)


def test_rms_dbfs_of_full_scale_square_wave_is_about_zero() -> None:
    square = np.array([32767, -32767] * 400, dtype="<i2").tobytes()
    assert pcm.rms_dbfs(square) == pytest.approx(0.0, abs=0.01)


def test_rms_dbfs_of_silence_and_empty_audio() -> None:
    assert pcm.rms_dbfs(pcm.silence(0.1, 16_000)) == pcm.SILENCE_DBFS
    assert pcm.rms_dbfs(b"") == pcm.SILENCE_DBFS


def test_silence_is_zero_bytes_of_the_right_length() -> None:
    quiet = pcm.silence(0.25, 24_000)
    assert len(quiet) == pcm.byte_count(0.25, 24_000) == 12_000
    assert not any(quiet)


def test_tone_length_peak_and_frequency() -> None:
    clip = pcm.tone(440, 0.5, 16_000, amplitude=0.25)
    samples = pcm.to_samples(clip)
    assert len(clip) == pcm.byte_count(0.5, 16_000)
    assert int(np.max(np.abs(samples.astype(np.int32)))) == pytest.approx(0.25 * 32767, abs=2)
    assert dominant_frequency(clip, 16_000) == pytest.approx(440, abs=3)


def test_tone_starts_at_zero_phase() -> None:
    assert pcm.to_samples(pcm.tone(1_000, 0.01, 16_000))[0] == 0


@pytest.mark.parametrize("frequency", [300.0, 1_000.0, 3_000.0])
def test_resample_16k_to_24k_keeps_duration_and_frequency(frequency: float) -> None:
    clip = pcm.tone(frequency, 0.5, 16_000)
    out = resample(clip, 16_000, 24_000)
    n_in, n_out = len(clip) // 2, len(out) // 2
    assert len(out) % 2 == 0
    assert abs(n_out - n_in * 24_000 / 16_000) <= 1
    assert pcm.duration_s(out, 24_000) == pytest.approx(pcm.duration_s(clip, 16_000), abs=1e-4)
    assert dominant_frequency(out, 24_000) == pytest.approx(frequency, abs=4)
    # The output is still int16 PCM at the same level (not a float array cast to int).
    assert pcm.rms_dbfs(out) == pytest.approx(pcm.rms_dbfs(clip), abs=0.2)


def test_resample_24k_to_16k_keeps_frequency() -> None:
    clip = pcm.tone(700, 0.5, 24_000)
    out = resample(clip, 24_000, 16_000)
    assert abs(len(out) // 2 - len(clip) // 2 * 2 / 3) <= 1
    assert dominant_frequency(out, 16_000) == pytest.approx(700, abs=4)


def test_resample_identity_when_rates_equal() -> None:
    clip = pcm.tone(440, 0.1, 16_000)
    assert resample(clip, 16_000, 16_000) == clip


def test_resample_of_empty_audio_is_empty() -> None:
    assert resample(b"", 16_000, 24_000) == b""


def test_dominant_frequency_picks_the_stronger_tone() -> None:
    strong = pcm.to_samples(pcm.tone(600, 0.5, 16_000, amplitude=0.3)).astype(np.int32)
    weak = pcm.to_samples(pcm.tone(1_500, 0.5, 16_000, amplitude=0.1)).astype(np.int32)
    mixed = (strong + weak).astype("<i2").tobytes()
    assert dominant_frequency(mixed, 16_000) == pytest.approx(600, abs=3)
