"""Tests for pispeaker.audio.convert (sample formats, capture/playback converters, Rechunker)
and resample.StreamResampler."""

import math

import numpy as np
import numpy.typing as npt
import pytest

from pispeaker.audio.convert import (
    FORMATS,
    CaptureConverter,
    PlaybackConverter,
    Rechunker,
    frame_bytes,
)
from pispeaker.audio.pcm import INPUT_RATE, OUTPUT_RATE, Floats, rms_dbfs, silence, to_samples, tone
from pispeaker.audio.resample import StreamResampler
from tests.signals import dominant_frequency

#: Quantisation step of each format in float units (0: stored as float32 itself).
STEPS: dict[str, float] = {
    "S16_LE": 2.0**-15,
    "S32_LE": 2.0**-31,
    "S24_LE": 2.0**-23,
    "S24_3LE": 2.0**-23,
    "FLOAT_LE": 0.0,
}
WIDTHS: dict[str, int] = {"S16_LE": 2, "S32_LE": 4, "S24_LE": 4, "S24_3LE": 3, "FLOAT_LE": 4}


def floats(values: npt.ArrayLike) -> Floats:
    return np.asarray(values, dtype=np.float32)


def test_formats_under_test_are_all_the_formats() -> None:
    assert set(FORMATS) == set(STEPS) == set(WIDTHS)


def signal() -> Floats:
    """A ramp across almost the full scale followed by a sine, both inside -1..1."""
    ramp = np.linspace(-0.999, 0.999, 2001)
    sine = 0.9 * np.sin(2 * math.pi * np.arange(1000) / 37.0)
    return floats(np.concatenate([ramp, sine]))


@pytest.mark.parametrize("name", sorted(STEPS))
def test_round_trip_within_quantisation_step(name: str) -> None:
    fmt = FORMATS[name]
    samples = signal()
    decoded = fmt.decode(fmt.encode(samples))
    assert decoded.dtype == np.float32
    assert decoded.shape == samples.shape
    # Half a step for rounding plus float32 resolution near full scale.
    tolerance = STEPS[name] / 2 + 2.0**-24
    assert np.max(np.abs(decoded - samples)) <= tolerance
    if STEPS[name] >= 2.0**-23:  # coarse formats really quantise: not a lossless copy
        assert not np.array_equal(decoded, samples)


@pytest.mark.parametrize("name", sorted(WIDTHS))
def test_width_is_bytes_per_encoded_sample(name: str) -> None:
    fmt = FORMATS[name]
    samples = signal()
    assert fmt.width == WIDTHS[name]
    assert len(fmt.encode(samples)) == fmt.width * samples.size
    assert frame_bytes(name, 6) == WIDTHS[name] * 6


@pytest.mark.parametrize("name", sorted(STEPS))
def test_full_scale_clips_without_wrapping(name: str) -> None:
    fmt = FORMATS[name]
    decoded = fmt.decode(fmt.encode(floats([1.0, 1.5, 7.0, -1.0, -1.5, -7.0])))
    assert np.all(decoded[:3] >= 1.0 - STEPS[name] - 2.0**-24)
    assert np.all(decoded[:3] <= 1.0)
    assert np.all(decoded[3:] == -1.0)


def test_s24_le_ignores_the_top_byte() -> None:
    values = np.array([0, 1, -1, 123_456, -654_321, 8_388_607, -8_388_608], dtype=np.int64)
    sign_extended = values.astype("<i4").tobytes()
    garbage = ((values & 0xFFFFFF) | 0xAB000000).astype("<u4").tobytes()
    assert garbage != sign_extended
    decode = FORMATS["S24_LE"].decode
    expected = floats(values / 8_388_608.0)
    np.testing.assert_array_equal(decode(sign_extended), expected)
    np.testing.assert_array_equal(decode(garbage), expected)
    assert np.all(decode(garbage)[values < 0] < 0)


@pytest.mark.parametrize(
    ("triplet", "expected"),
    [
        (b"\xff\xff\x7f", 8_388_607 / 8_388_608),
        (b"\x00\x00\x80", -1.0),
        (b"\xff\xff\xff", -1 / 8_388_608),
        (b"\x01\x00\x00", 1 / 8_388_608),
        (b"\x00\x00\x00", 0.0),
        (b"\x56\x34\x12", 0x123456 / 8_388_608),
        (b"\x00\x00\xc0", -0.5),
    ],
)
def test_s24_3le_known_triplets(triplet: bytes, expected: float) -> None:
    fmt = FORMATS["S24_3LE"]
    decoded = fmt.decode(triplet)
    assert decoded.tolist() == [np.float32(expected)]
    assert fmt.encode(floats([expected])) == triplet


# --- CaptureConverter ---------------------------------------------------------------------

CAPTURE_RATE = 48_000


def stereo_left_tone(seconds: float = 0.5, amplitude: float = 0.5) -> bytes:
    """48 kHz stereo S16: a 1 kHz tone on the left, silence on the right."""
    left = to_samples(tone(1_000, seconds, CAPTURE_RATE, amplitude))
    frames = np.zeros((left.size, 2), dtype="<i2")
    frames[:, 0] = left
    return frames.tobytes()


def settled(pcm: bytes) -> bytes:
    """``pcm`` without its first and last 20 ms of resampler transients (16 kHz s16)."""
    edge = 320 * 2
    return pcm[edge:-edge]


def capture(data: bytes, channel: int) -> bytes:
    converter = CaptureConverter(CAPTURE_RATE, 2, "S16_LE", channel)
    return converter.convert(data)


def test_capture_mix_halves_the_level_and_keeps_the_frequency() -> None:
    data = stereo_left_tone()
    mixed = capture(data, 0)
    left = capture(data, 1)
    assert dominant_frequency(mixed, INPUT_RATE) == pytest.approx(1_000, abs=2)
    assert rms_dbfs(settled(left)) - rms_dbfs(settled(mixed)) == pytest.approx(
        20 * math.log10(2), abs=0.1
    )


def test_capture_channel_one_is_the_left_at_full_level() -> None:
    left = capture(stereo_left_tone(amplitude=0.5), 1)
    assert dominant_frequency(left, INPUT_RATE) == pytest.approx(1_000, abs=2)
    assert rms_dbfs(settled(left)) == pytest.approx(20 * math.log10(0.5 / math.sqrt(2)), abs=0.2)


def test_capture_channel_two_is_the_silent_right() -> None:
    right = capture(stereo_left_tone(), 2)
    assert len(right) > 0
    assert not np.any(to_samples(right))


def test_capture_output_length_is_resampled_to_16k() -> None:
    converter = CaptureConverter(CAPTURE_RATE, 2, "S16_LE")
    data = stereo_left_tone(seconds=0.5)
    out = converter.convert(data)
    # soxr holds back a little at the end of a stream, but nearly all 8000 samples are out.
    assert 7_500 <= len(out) // 2 <= 8_000


def test_capture_in_odd_pieces_matches_one_shot() -> None:
    data = stereo_left_tone(seconds=0.5)
    one_shot = to_samples(capture(data, 0)).astype(np.float64)

    converter = CaptureConverter(CAPTURE_RATE, 2, "S16_LE", 0)
    frame = frame_bytes("S16_LE", 2)
    pieces: list[bytes] = []
    position, sizes = 0, [1, 7, 33, 101, 479, 3]
    while position < len(data):
        size = sizes[len(pieces) % len(sizes)] * frame
        pieces.append(converter.convert(data[position : position + size]))
        position += size
    chunked = to_samples(b"".join(pieces)).astype(np.float64)

    assert abs(chunked.size - one_shot.size) <= 4
    n = min(chunked.size, one_shot.size)
    assert n > 7_000
    assert np.corrcoef(chunked[:n], one_shot[:n])[0, 1] > 0.9999


@pytest.mark.parametrize(("channels", "channel"), [(2, 3), (2, -1), (1, 2), (4, 5)])
def test_capture_channel_out_of_range(channels: int, channel: int) -> None:
    with pytest.raises(ValueError, match="channel"):
        CaptureConverter(CAPTURE_RATE, channels, "S16_LE", channel)


@pytest.mark.parametrize("channel", [0, 1])
def test_capture_16k_mono_s16_passes_through(channel: int) -> None:
    data = tone(440, 0.2, INPUT_RATE, amplitude=0.9) + bytes([0x00, 0x80, 0xFF, 0x7F])
    converter = CaptureConverter(INPUT_RATE, 1, "S16_LE", channel)
    assert converter.convert(data) == data


def test_capture_decodes_other_formats() -> None:
    left = to_samples(tone(1_000, 0.5, CAPTURE_RATE, 0.5)) / 32768.0
    frames = np.zeros((left.size, 2), dtype=np.float32)
    frames[:, 1] = left
    data = FORMATS["S24_3LE"].encode(frames.reshape(-1))
    out = CaptureConverter(CAPTURE_RATE, 2, "S24_3LE", 2).convert(data)
    assert dominant_frequency(out, INPUT_RATE) == pytest.approx(1_000, abs=2)
    assert rms_dbfs(settled(out)) == pytest.approx(20 * math.log10(0.5 / math.sqrt(2)), abs=0.2)


# --- PlaybackConverter --------------------------------------------------------------------


def test_playback_passthrough_is_byte_exact() -> None:
    converter = PlaybackConverter(OUTPUT_RATE, 1, "S16_LE")
    data = tone(700, 0.1, OUTPUT_RATE) + bytes([0x00, 0x80, 0xFF, 0x7F])
    assert converter.passthrough is True
    assert converter.convert(data) == data
    assert converter.finish() == b""


@pytest.mark.parametrize(
    ("rate", "channels", "name"),
    [(48_000, 1, "S16_LE"), (OUTPUT_RATE, 2, "S16_LE"), (OUTPUT_RATE, 1, "S32_LE")],
)
def test_playback_not_passthrough_otherwise(rate: int, channels: int, name: str) -> None:
    assert PlaybackConverter(rate, channels, name).passthrough is False


def test_playback_48k_stereo_s32_has_identical_channels_and_keeps_the_tone() -> None:
    converter = PlaybackConverter(48_000, 2, "S32_LE")
    data = tone(700, 0.5, OUTPUT_RATE, amplitude=0.5)
    out = converter.convert(data) + converter.finish()
    assert len(out) % frame_bytes("S32_LE", 2) == 0
    frames = FORMATS["S32_LE"].decode(out).reshape(-1, 2)
    np.testing.assert_array_equal(frames[:, 0], frames[:, 1])
    left = FORMATS["S16_LE"].encode(frames[:, 0])
    assert dominant_frequency(left, 48_000) == pytest.approx(700, abs=2)
    assert rms_dbfs(left) == pytest.approx(rms_dbfs(data), abs=0.2)


def test_playback_finish_returns_the_held_back_tail() -> None:
    converter = PlaybackConverter(48_000, 1, "S16_LE")
    data = tone(700, 0.3, OUTPUT_RATE, amplitude=0.5)
    body = converter.convert(data)
    tail = converter.finish()
    assert len(tail) > 0
    total_samples = (len(body) + len(tail)) // 2
    assert abs(total_samples - 2 * len(data) // 2) <= 2


def leftover_after_tone(reset: bool) -> int:
    """The peak (s16) of what silence fed after a loud tone comes out as."""
    converter = PlaybackConverter(48_000, 1, "S16_LE")
    converter.convert(tone(700, 0.2, OUTPUT_RATE, amplitude=0.9))
    if reset:
        converter.reset()
    quiet = silence(0.2, OUTPUT_RATE)
    return int(np.max(np.abs(to_samples(converter.convert(quiet) + converter.finish()))))


def test_playback_reset_forgets_the_previous_reply() -> None:
    # Without a reset the held-back tone comes out with the silence (so this test can fail)...
    assert leftover_after_tone(reset=False) > 1_000
    # ...with one, nothing of it does.
    assert leftover_after_tone(reset=True) <= 1


# --- Rechunker ----------------------------------------------------------------------------


def test_rechunker_cuts_exact_chunks_in_order_and_keeps_the_remainder() -> None:
    rechunker = Rechunker(4)
    assert rechunker.size == 4
    assert rechunker.push(b"abc") == []
    assert rechunker.push(b"defghij") == [b"abcd", b"efgh"]
    assert rechunker.push(b"") == []
    assert rechunker.push(b"klmnopqrstu") == [b"ijkl", b"mnop", b"qrst"]
    assert rechunker.push(b"vw") == []
    assert rechunker.push(b"x") == [b"uvwx"]


def test_rechunker_reassembles_the_stream() -> None:
    rechunker = Rechunker(640)
    stream = bytes(range(256)) * 40
    chunks: list[bytes] = []
    for start in range(0, len(stream), 333):
        chunks += rechunker.push(stream[start : start + 333])
    assert all(len(chunk) == 640 for chunk in chunks)
    assert b"".join(chunks) == stream[: len(chunks) * 640]
    assert len(chunks) == len(stream) // 640


@pytest.mark.parametrize("size", [3, 1, 641, 0, -2])
def test_rechunker_rejects_partial_samples(size: int) -> None:
    with pytest.raises(ValueError, match="whole number of samples"):
        Rechunker(size)


# --- StreamResampler ----------------------------------------------------------------------


def test_stream_resampler_same_rate_is_identity() -> None:
    resampler = StreamResampler(INPUT_RATE, INPUT_RATE)
    samples = signal()
    np.testing.assert_array_equal(resampler.process(samples), samples)
    assert resampler.finish().size == 0


@pytest.mark.parametrize("piece", [48_000, 960, 1_001])
def test_stream_resampler_48k_to_16k_keeps_the_duration(piece: int) -> None:
    resampler = StreamResampler(48_000, INPUT_RATE)
    one_second = floats(0.5 * np.sin(2 * math.pi * 440 * np.arange(48_000) / 48_000))
    total = sum(resampler.process(one_second[i : i + piece]).size for i in range(0, 48_000, piece))
    total += resampler.finish().size
    assert abs(total - 16_000) <= 1


def test_stream_resampler_starts_afresh_after_finish() -> None:
    resampler = StreamResampler(48_000, INPUT_RATE)
    second = floats(np.full(48_000, 0.5))
    for _ in range(2):
        total = resampler.process(second).size + resampler.finish().size
        assert abs(total - 16_000) <= 1
