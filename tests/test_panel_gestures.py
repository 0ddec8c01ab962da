"""Button gestures from raw levels and synthetic times: debounce, press, hold."""

import pytest

from pispeaker.panel.gestures import Gesture, GestureRecognizer

PRESS, HOLD = Gesture.PRESS, Gesture.HOLD
T, F = True, False

#: A step is (time, level): True/False a raw level seen, None a tick.
Step = tuple[float, bool | None]

CASES: list[tuple[str, list[Step], list[tuple[float, Gesture]]]] = [
    ("a clean press", [(0.0, T), (0.5, F), (0.6, None)], [(0.6, PRESS)]),
    ("a glitch shorter than the debounce", [(0.0, T), (0.01, F), (1.0, None)], []),
    (
        "bounce on press and on release",
        [
            *[(0.0, T), (0.002, F), (0.004, T), (0.006, F), (0.008, T), (0.2, None)],
            *[(0.5, F), (0.502, T), (0.504, F), (0.6, None)],
        ],
        [(0.6, PRESS)],
    ),
    (
        "a hold fires once, while still held, and its release is no press",
        [(0.0, T), (1.0, None), (2.0, None), (3.0, None), (4.0, F), (4.1, None)],
        [(2.0, HOLD)],
    ),
    (
        "the hold is timed from the first stable contact",
        [(0.0, T), (0.01, F), (0.02, T), (2.015, None), (2.03, None)],
        [(2.03, HOLD)],
    ),
    ("released just before hold_s", [(0.0, T), (1.9, F), (1.95, None)], [(1.95, PRESS)]),
    (
        "a release still settling at hold_s is no hold",
        [(0.0, T), (1.99, F), (2.01, None), (2.03, None)],
        [(2.03, PRESS)],
    ),
    (
        "a hold seen only at its release, without ticks",
        [(0.0, T), (3.0, F), (3.1, None)],
        [(3.0, HOLD)],
    ),
    (
        "a bounce in the middle of a hold does not split it",
        [(0.0, T), (1.0, F), (1.005, T), (2.1, None), (3.0, F), (3.1, None)],
        [(2.1, HOLD)],
    ),
    (
        "the same level from edges and polls counts once",
        [(0.0, T), (0.02, T), (0.04, T), (0.5, F), (0.51, F), (0.535, F), (0.6, None)],
        [(0.535, PRESS)],
    ),
    (
        "an edge delivered after a later poll",
        [(0.02, T), (0.01, T), (0.5, F), (0.49, F), (0.6, None)],
        [(0.6, PRESS)],
    ),
    (
        "after a hold, a short press is a press again",
        [(0.0, T), (2.5, None), (3.0, F), (4.0, T), (4.2, F), (4.3, None)],
        [(2.5, HOLD), (4.3, PRESS)],
    ),
    (
        "two presses",
        [(0, T), (0.2, F), (0.4, T), (0.6, F), (0.7, None)],
        [(0.4, PRESS), (0.7, PRESS)],
    ),
]


@pytest.mark.parametrize(("steps", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_gestures(steps: list[Step], expected: list[tuple[float, Gesture]]) -> None:
    recognizer = GestureRecognizer(hold_s=2.0, debounce_s=0.03)
    seen: list[tuple[float, Gesture]] = []
    for now, level in steps:
        gestures = recognizer.tick(now) if level is None else recognizer.level(level, now)
        seen += [(now, gesture) for gesture in gestures]
    assert seen == expected


def test_without_debounce_a_change_counts_at_once() -> None:
    recognizer = GestureRecognizer(hold_s=0.5, debounce_s=0.0)
    assert recognizer.level(True, 0.0) == []
    assert recognizer.pressed
    assert recognizer.level(False, 0.001) == [PRESS]
    assert not recognizer.pressed
    assert recognizer.level(True, 1.0) == []
    assert recognizer.level(True, 1.5) == [HOLD]


def test_pressed_is_the_debounced_level() -> None:
    recognizer = GestureRecognizer(hold_s=2.0, debounce_s=0.03)
    recognizer.level(True, 0.0)
    assert not recognizer.pressed  # not stable for 30 ms yet
    recognizer.tick(0.029)
    assert not recognizer.pressed
    recognizer.tick(0.031)
    assert recognizer.pressed
