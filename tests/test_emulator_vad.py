"""Tests for pispeaker.emulator.vad: the emulator's energy VAD and its settings."""

import math
from collections.abc import Iterable

import pytest

from pispeaker.audio import pcm
from pispeaker.emulator.vad import (
    FRAME_BYTES,
    FRAME_MS,
    EnergyVad,
    VadEvent,
    VadSettings,
)

RATE = pcm.INPUT_RATE
#: 500 Hz fits exactly ten cycles in a 20 ms frame, so every frame has the same level.
FREQ = 500.0


def amplitude_for(dbfs: float) -> float:
    """Sine peak amplitude (fraction of full scale) whose RMS is ``dbfs``."""
    return 10 ** (dbfs / 20) * math.sqrt(2)


def tone_ms(ms: int, dbfs: float = -13.5) -> bytes:
    return pcm.tone(FREQ, ms / 1000, RATE, amplitude=amplitude_for(dbfs))


def silence_ms(ms: int) -> bytes:
    return pcm.silence(ms / 1000, RATE)


def feed_all(vad: EnergyVad, audio: bytes, piece: int | None = None) -> list[VadEvent]:
    if piece is None:
        return vad.feed(audio)
    events: list[VadEvent] = []
    for offset in range(0, len(audio), piece):
        events += vad.feed(audio[offset : offset + piece])
    return events


def run(audio: bytes, piece: int | None = None, **settings: object) -> list[VadEvent]:
    return feed_all(EnergyVad(VadSettings(**settings)), audio, piece)  # type: ignore[arg-type]


def kinds(events: Iterable[VadEvent]) -> list[str]:
    return [event.kind for event in events]


def test_frame_is_20_ms_at_16_khz() -> None:
    assert FRAME_MS == 20
    assert FRAME_BYTES == 640
    assert pcm.duration_s(bytes(FRAME_BYTES), RATE) == pytest.approx(0.020)


def test_test_signals_have_the_intended_levels() -> None:
    frame = tone_ms(20, -40.0)
    assert len(frame) == FRAME_BYTES
    assert pcm.rms_dbfs(frame) == pytest.approx(-40.0, abs=0.1)
    assert pcm.rms_dbfs(tone_ms(20, -44.0)) == pytest.approx(-44.0, abs=0.1)


def test_tone_in_silence_gives_one_start_and_one_end() -> None:
    speech = tone_ms(400)
    events = run(silence_ms(200) + speech + silence_ms(700))
    assert kinds(events) == ["start", "end"]
    start, end = events
    assert start.offset_s == pytest.approx(0.2)
    assert start.audio == b""
    assert end.offset_s == pytest.approx(0.6)
    assert end.audio == speech


def test_onset_offset_follows_the_tone_position() -> None:
    for lead_ms in (0, 20, 340, 1000):
        events = run(silence_ms(lead_ms) + tone_ms(200) + silence_ms(600))
        assert kinds(events) == ["start", "end"]
        assert events[0].offset_s == pytest.approx(lead_ms / 1000)
        assert events[1].offset_s == pytest.approx((lead_ms + 200) / 1000)


def test_silence_alone_gives_no_events() -> None:
    vad = EnergyVad(VadSettings())
    assert vad.feed(silence_ms(2000)) == []
    assert not vad.in_speech
    assert vad.flush() == []


def test_in_speech_between_start_and_end() -> None:
    vad = EnergyVad(VadSettings())
    assert not vad.in_speech
    assert kinds(vad.feed(silence_ms(100) + tone_ms(100))) == ["start"]
    assert vad.in_speech
    assert kinds(vad.feed(silence_ms(600))) == ["end"]
    assert not vad.in_speech


def test_end_is_reported_only_after_the_silence_duration() -> None:
    vad = EnergyVad(VadSettings(silence_duration_ms=500))
    vad.feed(tone_ms(200))
    assert vad.feed(silence_ms(480)) == []
    assert vad.in_speech
    (end,) = vad.feed(silence_ms(20))
    assert end.kind == "end"
    # The end is where speech stopped, not where the silence was confirmed.
    assert end.offset_s == pytest.approx(0.2)


@pytest.mark.parametrize("piece", [100, FRAME_BYTES, 7, 1, 3 * FRAME_BYTES + 1])
def test_events_do_not_depend_on_chunk_size(piece: int) -> None:
    audio = silence_ms(140) + tone_ms(300) + silence_ms(300) + tone_ms(160) + silence_ms(600)
    whole = run(audio, silence_duration_ms=200)
    assert kinds(whole) == ["start", "end", "start", "end"]
    assert run(audio, piece, silence_duration_ms=200) == whole


def test_partial_frames_wait_for_the_rest() -> None:
    vad = EnergyVad(VadSettings())
    frame = tone_ms(20)
    assert vad.feed(frame[:639]) == []
    assert kinds(vad.feed(frame[639:])) == ["start"]


def test_prefix_padding_ignores_a_click_shorter_than_it() -> None:
    audio = silence_ms(200) + tone_ms(60) + silence_ms(700)
    assert run(audio, prefix_padding_ms=100) == []
    assert run(audio, prefix_padding_ms=80) == []


def test_prefix_padding_commits_a_click_as_long_as_it() -> None:
    click = tone_ms(60)
    audio = silence_ms(200) + click + silence_ms(700)
    for padding in (20, 60):
        events = run(audio, prefix_padding_ms=padding)
        assert kinds(events) == ["start", "end"]
        assert events[0].offset_s == pytest.approx(0.2)
        assert events[1].audio == click


def test_prefix_padding_delays_the_start_but_not_its_offset() -> None:
    vad = EnergyVad(VadSettings(prefix_padding_ms=100))
    assert vad.feed(silence_ms(200) + tone_ms(80)) == []
    assert not vad.in_speech
    (start,) = vad.feed(tone_ms(20))
    assert start.kind == "start"
    assert start.offset_s == pytest.approx(0.2)
    speech_rest = tone_ms(200)
    (end,) = vad.feed(speech_rest + silence_ms(600))
    # The utterance includes the padding frames that preceded the start decision.
    assert end.audio == tone_ms(80) + tone_ms(20) + speech_rest


def test_prefix_padding_needs_consecutive_speech_frames() -> None:
    # Three 40 ms bursts separated by 20 ms of silence never reach 100 ms in a row.
    burst = tone_ms(40) + silence_ms(20)
    assert run(silence_ms(100) + burst * 3 + silence_ms(600), prefix_padding_ms=100) == []


def test_short_gap_does_not_split_with_long_silence_duration() -> None:
    first, second = tone_ms(300), tone_ms(300)
    gap = silence_ms(300)
    audio = silence_ms(100) + first + gap + second + silence_ms(700)
    events = run(audio, silence_duration_ms=500)
    assert kinds(events) == ["start", "end"]
    assert events[0].offset_s == pytest.approx(0.1)
    assert events[1].offset_s == pytest.approx(1.0)
    assert events[1].audio == first + gap + second


def test_gap_longer_than_silence_duration_splits_the_utterance() -> None:
    first, second = tone_ms(300), tone_ms(300)
    audio = silence_ms(100) + first + silence_ms(300) + second + silence_ms(700)
    events = run(audio, silence_duration_ms=200)
    assert kinds(events) == ["start", "end", "start", "end"]
    assert [event.offset_s for event in events] == pytest.approx([0.1, 0.4, 0.7, 1.0])
    assert events[1].audio == first
    assert events[3].audio == second


def test_quiet_tone_starts_speech_only_with_high_start_sensitivity() -> None:
    quiet = tone_ms(300, -40.0)
    audio = silence_ms(100) + quiet + silence_ms(700)
    high = run(
        audio, start_sensitivity="START_SENSITIVITY_HIGH", end_sensitivity="END_SENSITIVITY_LOW"
    )
    low = run(
        audio, start_sensitivity="START_SENSITIVITY_LOW", end_sensitivity="END_SENSITIVITY_LOW"
    )
    assert kinds(high) == ["start", "end"]
    assert high[0].offset_s == pytest.approx(0.1)
    assert high[1].audio == quiet
    assert low == []


def test_loud_tone_starts_speech_with_either_start_sensitivity() -> None:
    audio = silence_ms(100) + tone_ms(300, -20.0) + silence_ms(700)
    for sensitivity in ("START_SENSITIVITY_HIGH", "START_SENSITIVITY_LOW"):
        assert kinds(run(audio, start_sensitivity=sensitivity)) == ["start", "end"]


def test_high_end_sensitivity_ends_on_a_quiet_tail() -> None:
    speech = tone_ms(300)
    tail = tone_ms(800, -38.0)  # below LOW start - 3 dB (HIGH end), above it - 12 dB (LOW)
    # LOW start sensitivity so that the tail (above the HIGH start threshold) cannot restart.
    vad = EnergyVad(
        VadSettings(
            start_sensitivity="START_SENSITIVITY_LOW",
            end_sensitivity="END_SENSITIVITY_HIGH",
            silence_duration_ms=500,
        )
    )
    events = vad.feed(silence_ms(100) + speech + tail)
    assert kinds(events) == ["start", "end"]
    assert events[1].offset_s == pytest.approx(0.4)
    assert events[1].audio == speech
    assert not vad.in_speech


def test_low_end_sensitivity_keeps_speech_through_a_quiet_tail() -> None:
    speech = tone_ms(300)
    tail = tone_ms(800, -38.0)  # below LOW start - 3 dB (HIGH end), above it - 12 dB (LOW)
    vad = EnergyVad(
        VadSettings(
            start_sensitivity="START_SENSITIVITY_LOW",
            end_sensitivity="END_SENSITIVITY_LOW",
            silence_duration_ms=500,
        )
    )
    assert kinds(vad.feed(silence_ms(100) + speech + tail)) == ["start"]
    assert vad.in_speech
    (end,) = vad.feed(silence_ms(600))
    assert end.kind == "end"
    assert end.offset_s == pytest.approx(1.2)
    assert end.audio == speech + tail


def test_steady_sound_near_the_threshold_does_not_flap() -> None:
    vad = EnergyVad(VadSettings(silence_duration_ms=200))
    events = vad.feed(silence_ms(100) + tone_ms(2000, -44.0))  # just above -45 dBFS onset
    assert kinds(events) == ["start"]
    assert vad.in_speech


def test_flush_ends_speech_in_progress_with_the_audio_so_far() -> None:
    speech = tone_ms(300)
    vad = EnergyVad(VadSettings())
    assert kinds(vad.feed(silence_ms(100) + speech)) == ["start"]
    (end,) = vad.flush()
    assert end.kind == "end"
    assert end.offset_s == pytest.approx(0.4)
    assert end.audio == speech
    assert not vad.in_speech
    assert vad.flush() == []


def test_flush_trims_trailing_silence_not_yet_long_enough_to_end() -> None:
    speech = tone_ms(300)
    vad = EnergyVad(VadSettings(silence_duration_ms=500))
    vad.feed(silence_ms(100) + speech + silence_ms(200))
    assert vad.in_speech
    (end,) = vad.flush()
    assert end.audio == speech
    assert end.offset_s == pytest.approx(0.4)


def test_flush_forgets_an_uncommitted_onset() -> None:
    settings = VadSettings(prefix_padding_ms=100)
    # Control: 60 ms + 60 ms of tone in a row commits a start.
    control = EnergyVad(settings)
    assert control.feed(tone_ms(60)) == []
    assert kinds(control.feed(tone_ms(60))) == ["start"]
    # With a flush in between, the first 60 ms no longer count.
    vad = EnergyVad(settings)
    assert vad.feed(tone_ms(60)) == []
    assert vad.flush() == []
    assert vad.feed(tone_ms(60)) == []
    assert not vad.in_speech


def test_speech_after_flush_starts_a_new_utterance() -> None:
    vad = EnergyVad(VadSettings())
    first = tone_ms(200)
    vad.feed(first)
    assert vad.flush()[0].audio == first
    second = tone_ms(100, -20.0)
    events = vad.feed(silence_ms(100) + second + silence_ms(600))
    assert kinds(events) == ["start", "end"]
    assert events[1].audio == second


def test_defaults() -> None:
    settings = VadSettings()
    assert settings.start_sensitivity == "START_SENSITIVITY_HIGH"
    assert settings.end_sensitivity == "END_SENSITIVITY_HIGH"
    assert settings.prefix_padding_ms == 20
    assert settings.silence_duration_ms == 500


def test_from_setup_reads_camel_case_keys() -> None:
    detection = {
        "startOfSpeechSensitivity": "START_SENSITIVITY_LOW",
        "endOfSpeechSensitivity": "END_SENSITIVITY_LOW",
        "prefixPaddingMs": 100,
        "silenceDurationMs": 300,
    }
    assert VadSettings.from_setup(detection, default_silence_ms=800) == VadSettings(
        start_sensitivity="START_SENSITIVITY_LOW",
        end_sensitivity="END_SENSITIVITY_LOW",
        prefix_padding_ms=100,
        silence_duration_ms=300,
    )


def test_from_setup_accepts_int_fields_as_strings() -> None:
    # proto3 JSON allows integers as strings.
    settings = VadSettings.from_setup(
        {"prefixPaddingMs": "40", "silenceDurationMs": "250"}, default_silence_ms=800
    )
    assert settings.prefix_padding_ms == 40
    assert settings.silence_duration_ms == 250


def test_from_setup_unspecified_means_default() -> None:
    settings = VadSettings.from_setup(
        {
            "startOfSpeechSensitivity": "START_SENSITIVITY_UNSPECIFIED",
            "endOfSpeechSensitivity": "END_SENSITIVITY_UNSPECIFIED",
        },
        default_silence_ms=500,
    )
    assert settings == VadSettings()


def test_from_setup_absent_fields_use_defaults_and_the_given_silence() -> None:
    settings = VadSettings.from_setup({}, default_silence_ms=800)
    assert settings == VadSettings(silence_duration_ms=800)
    assert VadSettings.from_setup({"prefixPaddingMs": 60}, 123).silence_duration_ms == 123


def test_from_setup_settings_drive_the_detector() -> None:
    settings = VadSettings.from_setup({"silenceDurationMs": 200}, default_silence_ms=2000)
    audio = silence_ms(100) + tone_ms(300) + silence_ms(300) + tone_ms(300) + silence_ms(400)
    assert kinds(feed_all(EnergyVad(settings), audio)) == ["start", "end", "start", "end"]
