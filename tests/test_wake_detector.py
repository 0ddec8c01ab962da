"""The wake-word decisions, with scripted scores: thresholds, refractory, warm-up, edge
triggering, framing and the stream clock."""

import pytest

from pispeaker.wake.detector import FRAME_BYTES, Detection, WakeDetector
from tests.wake_fakes import ScriptedScorer

FRAME_S = 0.08
QUIET = b"\0" * FRAME_BYTES


def detect(
    script: list[dict[str, float]],
    names: tuple[str, ...] = ("a",),
    thresholds: dict[str, float] | None = None,
    refractory_s: float = 0.5,
    warmup_s: float = 0.0,
) -> list[Detection]:
    scorer = ScriptedScorer(script, names)
    detector = WakeDetector(scorer, thresholds or dict.fromkeys(names, 0.5), refractory_s, warmup_s)
    frames = detector.process(QUIET * len(script))
    return [frame.detection for frame in frames if frame.detection]


def fired_at(detections: list[Detection]) -> list[int]:
    """The frame numbers (from 1) of the detections."""
    return [round(d.end_s / FRAME_S) for d in detections]


def test_a_score_at_the_threshold_fires_with_name_score_and_frame_times() -> None:
    [detection] = detect([{"a": 0.1}, {"a": 0.5}, {"a": 0.2}])
    assert detection == Detection("a", 0.5, pytest.approx(0.08), pytest.approx(0.16))


def test_a_score_below_the_threshold_never_fires() -> None:
    assert detect([{"a": 0.1}, {"a": 0.49}, {"a": 0.2}]) == []


def test_one_long_utterance_fires_once_even_beyond_the_refractory_period() -> None:
    script = [{"a": 0.1}] + [{"a": 0.9}] * 20 + [{"a": 0.1}]  # 1.6 s above, refractory 0.5
    assert fired_at(detect(script)) == [2]


def test_a_second_utterance_fires_only_after_the_refractory_period() -> None:
    low, high = {"a": 0.1}, {"a": 0.9}
    script = [low, high, low, high, low, low, low, low, high, low]
    # frame 4 is 0.16 s after frame 2 (inside 0.5 s); frame 9 is 0.56 s after it
    assert fired_at(detect(script)) == [2, 9]


def test_each_model_has_its_own_threshold() -> None:
    script = [{"a": 0.0, "b": 0.0}, {"a": 0.65, "b": 0.65}]
    [detection] = detect(script, ("a", "b"), {"a": 0.7, "b": 0.6})
    assert detection.model == "b"


def test_the_highest_score_wins_and_one_detection_covers_all_models() -> None:
    script = [{"a": 0.0, "b": 0.0}, {"a": 0.8, "b": 0.95}, {"a": 0.0, "b": 0.0}]
    [detection] = detect(script, ("a", "b"))
    assert (detection.model, detection.score) == ("b", 0.95)


def test_the_warm_up_hides_a_spike_and_the_spike_must_end_before_a_detection() -> None:
    low, high = {"a": 0.1}, {"a": 0.9}
    # warm-up 0.4 s = 5 frames: a spike at frames 3-7 is not a detection, even where it
    # outlasts the warm-up; a later utterance is.
    script = [low, low, high, high, high, high, high, low, high, low]
    assert fired_at(detect(script, warmup_s=0.4)) == [9]


def test_reset_starts_a_new_warm_up_and_keeps_the_clock() -> None:
    scorer = ScriptedScorer([{"a": 0.1}, {"a": 0.9}, {"a": 0.1}, {"a": 0.9}, {"a": 0.1}])
    detector = WakeDetector(scorer, {"a": 0.5}, refractory_s=0.1, warmup_s=0.2)
    detector.process(QUIET * 3)  # scored 0.1, 0.9 (in warm-up), 0.1
    detector.reset()
    assert scorer.resets == 1
    frames = detector.process(QUIET * 2)  # 0.9 inside the new warm-up: ignored
    assert [frame.detection for frame in frames] == [None, None]
    assert detector.position_s == pytest.approx(0.40)


def test_chunks_of_any_size_are_cut_into_80_ms_frames() -> None:
    scorer = ScriptedScorer([{"a": 0.1}] * 10)
    detector = WakeDetector(scorer, {"a": 0.5}, warmup_s=0.0)
    chunks = [b"\0" * size for size in (640, 640, 3000, 1, 1839)]  # 6120 bytes: 2 frames
    frames = [frame for chunk in chunks for frame in detector.process(chunk)]
    assert [round(frame.end_s, 2) for frame in frames] == [0.08, 0.16]
    assert detector.position_s == pytest.approx(6120 / 2 / 16000)


def test_skipped_audio_moves_the_clock_and_restarts_the_models() -> None:
    scorer = ScriptedScorer([{"a": 0.1}, {"a": 0.9}])
    detector = WakeDetector(scorer, {"a": 0.5}, warmup_s=0.0)
    detector.process(QUIET)
    detector.skip(16000 * 2)  # a second that was never scored
    [frame] = detector.process(QUIET)
    assert frame.end_s == pytest.approx(1.16)
    assert frame.detection is None  # not armed since the restart
    assert scorer.resets == 1


def test_every_model_needs_a_threshold() -> None:
    with pytest.raises(ValueError, match="no threshold for b"):
        WakeDetector(ScriptedScorer([], ("a", "b")), {"a": 0.5})
