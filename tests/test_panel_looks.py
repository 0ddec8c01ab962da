"""LED looks: patterns as functions of time, parsing, defaults per LED kind, and the [panel]
looks setting."""

import itertools
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import pispeaker
from pispeaker.config import PanelConfig, parse_config
from pispeaker.errors import ConfigError
from pispeaker.panel.looks import (
    LOOKS,
    PATTERNS,
    Look,
    default_looks,
    frame,
    looks_for,
    parse_look,
)
from pispeaker.states import State

# -- patterns --------------------------------------------------------------------------------

# Times are mid-phase, away from the edges where float remainders could round either way.
PATTERN_TABLE = [
    ("off", [(0.0, 0.0), (0.3, 0.0), (5.0, 0.0)]),
    ("solid", [(0.0, 1.0), (0.3, 1.0), (5.0, 1.0)]),
    ("dim", [(0.0, 0.25), (2.7, 0.25)]),
    ("blink", [(0.0, 1.0), (0.25, 1.0), (0.75, 0.0), (1.25, 1.0), (1.75, 0.0)]),
    ("fast_blink", [(0.06, 1.0), (0.19, 0.0), (0.31, 1.0), (0.44, 0.0)]),
    ("flash", [(0.025, 1.0), (0.075, 0.0), (0.125, 1.0), (0.175, 0.0), (0.325, 1.0)]),
    ("pulse", [(0.0, 1.0), (0.25, 0.5), (0.5, 0.0), (0.75, 0.5), (1.0, 1.0)]),
    ("breathe", [(0.0, 1.0), (1.5, 0.0), (3.0, 1.0), (0.75, 0.5), (2.25, 0.5)]),
    ("double_blink", [(0.07, 1.0), (0.22, 0.0), (0.37, 1.0), (0.6, 0.0), (1.4, 0.0), (1.57, 1.0)]),
    ("beacon", [(0.05, 1.0), (0.15, 0.0), (1.0, 0.0), (1.9, 0.0), (2.05, 1.0), (4.05, 1.0)]),
    ("wink", [(0.0, 1.0), (0.75, 1.0), (0.85, 0.0), (1.05, 1.0)]),
]


@pytest.mark.parametrize(("name", "samples"), PATTERN_TABLE)
def test_each_pattern_is_a_function_of_time(name: str, samples: list[tuple[float, float]]) -> None:
    pattern = PATTERNS[name].function
    assert [pattern(t) for t, _ in samples] == pytest.approx([v for _, v in samples], abs=1e-9)


def test_every_pattern_is_tabled() -> None:
    assert {name for name, _ in PATTERN_TABLE} == set(PATTERNS)


def test_pwm_scales_by_colour_and_brightness_and_on_off_thresholds_at_half() -> None:
    amber_pulse = Look((1.0, 0.5, 0.0), "pulse", "amber")
    assert frame(amber_pulse, 0.0, brightness=0.5) == (0.5, 0.25, 0.0)
    assert frame(amber_pulse, 0.25) == (0.5, 0.25, 0.0)
    assert frame(amber_pulse, 0.0, pwm=False, brightness=0.1) == (1.0, 1.0, 0.0)
    assert frame(amber_pulse, 0.25, pwm=False) == (1.0, 0.0, 0.0)
    assert frame(amber_pulse, 0.5, pwm=False) == (0.0, 0.0, 0.0)


# -- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "channels", "look"),
    [
        ("blue solid", 3, Look((0.0, 0.0, 1.0), "solid", "blue")),
        ("Blue Fast-Blink", 3, Look((0.0, 0.0, 1.0), "fast_blink", "Blue")),
        ("blue, solid", 3, Look((0.0, 0.0, 1.0), "solid", "blue")),
        ("red", 3, Look((1.0, 0.0, 0.0), "solid", "red")),
        ("#ff0033 breathe", 3, Look((1.0, 0.0, 0.2), "breathe", "#ff0033")),
        ("1,0,0.5 pulse", 3, Look((1.0, 0.0, 0.5), "pulse", "1,0,0.5")),
        ("pulse", 1, Look((1.0,), "pulse")),
        ("beacon", 4, Look((1.0,) * 4, "beacon")),
        ("0.5 dim", 2, Look((0.5, 0.5), "dim", "0.5")),
        ("1,.3 blink", 2, Look((1.0, 0.3), "blink", "1,.3")),
        ("off", 3, Look((1.0, 1.0, 1.0), "off")),
    ],
)
def test_looks_parse(spec: str, channels: int, look: Look) -> None:
    assert parse_look(spec, channels) == look


@pytest.mark.parametrize(
    ("spec", "channels", "fragments"),
    [
        ("blue blinky", 3, ["'blinky' is not a pattern (did you mean 'blink'?)", "beacon"]),
        ("bleu solid", 3, ["'bleu' is not a colour (did you mean 'blue'?)", "amber", "#rrggbb"]),
        ("breath", 1, ["'breath' is not a colour or pattern (did you mean 'breathe'?)"]),
        ("red solid", 1, ["'red': colours need 3 LEDs (red, green, blue), not 1", "pulse"]),
        ("#ff0000", 2, ["colours need 3 LEDs", "one per LED like '1,0'"]),
        ("1,0 blink", 3, ["'1,0' gives 2 levels for 3 LEDs"]),
        ("1,0 blink", 1, ["'1,0' gives 2 levels for 1 LED"]),
        ("2 solid", 1, ["levels in '2' must be between 0 and 1"]),
        ("red slow blink", 3, ["is not '<colour> <pattern>'", "colours: red, green", "patterns:"]),
        ("", 1, ["is not '<colour> <pattern>'", "levels: one like '0.5'"]),
    ],
)
def test_bad_looks_say_what_is_wrong_and_what_is_valid(
    spec: str, channels: int, fragments: list[str]
) -> None:
    with pytest.raises(ValueError, match=re.escape(fragments[0])) as caught:
        parse_look(spec, channels)
    for fragment in fragments[1:]:
        assert fragment in str(caught.value)


# -- defaults --------------------------------------------------------------------------------


def test_rgb_defaults_are_the_documented_colours_and_the_demo_text() -> None:
    described = {state: look.describe() for state, look in default_looks(3).items()}
    assert described == {
        State.IDLE: "off",
        State.CONNECTING: "blue, blinking",
        State.LISTENING: "blue, solid",
        State.THINKING: "cyan, pulsing",
        State.SPEAKING: "green, breathing",
        State.DUCKED: "green, winking (dark 0.2 s every second)",
        State.INTERRUPTED: "amber, quick flash",
        State.MUTED: "red, solid",
        State.ERROR: "red, blinking",
    }
    assert described == LOOKS


@pytest.mark.parametrize("channels", [1, 2, 4])
def test_plain_leds_tell_states_apart_by_pattern(channels: int) -> None:
    patterns = {state: look.pattern for state, look in default_looks(channels).items()}
    assert patterns == {
        State.IDLE: "off",
        State.CONNECTING: "fast_blink",
        State.LISTENING: "solid",
        State.THINKING: "pulse",
        State.SPEAKING: "breathe",
        State.DUCKED: "wink",
        State.INTERRUPTED: "flash",
        State.MUTED: "beacon",
        State.ERROR: "double_blink",
    }
    assert all(look.levels == (1.0,) * channels for look in default_looks(channels).values())


STEP_S = 0.01
SPAN_S = 6.0  # a whole number of every pattern's period


def signature(look: Look, pwm: bool) -> tuple[tuple[float | int | bool, ...], ...]:
    """What an eye can tell about each channel over SPAN_S, whatever the phase: its range,
    average, how often it switches on (rises through half) and whether it jumps or fades."""
    frames = [frame(look, i * STEP_S, pwm=pwm) for i in range(round(SPAN_S / STEP_S))]
    features = []
    for channel in zip(*frames, strict=True):
        steps = list(itertools.pairwise(channel + channel[:1]))  # periodic: wrap around
        rises = sum(a < 0.5 <= b for a, b in steps)
        jumps = any(abs(b - a) > 0.3 for a, b in steps)
        mean = round(sum(channel) / len(channel) / 0.05) * 0.05
        features.append((max(channel), min(channel), mean, rises, jumps))
    return tuple(features)


LED_KINDS = [
    pytest.param(1, True, id="1 LED, PWM"),
    pytest.param(1, False, id="1 LED, on/off"),
    pytest.param(2, False, id="2 LEDs, on/off"),
    pytest.param(4, True, id="4 LEDs, PWM"),
    pytest.param(3, False, id="3 LEDs as red, green, blue, on/off"),
    pytest.param(3, True, id="RGB LED, PWM"),
]


@pytest.mark.parametrize(("channels", "pwm"), LED_KINDS)
def test_all_eight_states_are_visibly_distinct(channels: int, pwm: bool) -> None:
    signatures = {state: signature(look, pwm) for state, look in default_looks(channels).items()}
    assert len(set(signatures.values())) == len(State), signatures
    brightest = {state: max(channel[0] for channel in signatures[state]) for state in State}
    assert brightest.pop(State.IDLE) == 0
    assert all(level >= 0.5 for level in brightest.values()), brightest


def test_a_phase_shift_alone_does_not_count_as_distinct() -> None:
    """The signature must not tell a blink from the same blink started later (a pulse on
    on/off LEDs is exactly that), or the test above would pass on looks an eye confuses."""
    blink = signature(Look((1.0,), "blink"), pwm=False)
    assert blink == signature(Look((1.0,), "pulse"), pwm=False)
    assert blink != signature(Look((1.0,), "breathe"), pwm=False)


# -- the [panel] looks setting ---------------------------------------------------------------


def panel_looks(config: PanelConfig) -> dict[State, Look]:
    return looks_for(config.led_pins, config.looks, config.led_pwm)


def panel_problems(**panel: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config({"panel": panel}, "test.toml")
    return caught.value.problems


def test_looks_override_the_defaults_for_the_configured_leds() -> None:
    config = PanelConfig(led_pins=[5, 6, 13], led_rgb=True, looks={"muted": "magenta breathe"})
    looks = panel_looks(config)
    assert looks[State.MUTED] == Look((1.0, 0.0, 1.0), "breathe", "magenta")
    assert looks[State.LISTENING] == default_looks(3)[State.LISTENING]
    single = panel_looks(PanelConfig(led_pins=[17], looks={"listening": "0.5 pulse"}))
    assert single[State.LISTENING] == Look((0.5,), "pulse", "0.5")
    assert single[State.ERROR].pattern == "double_blink"


def test_a_misspelt_state_is_named_with_the_nearest() -> None:
    problems = panel_problems(looks={"listning": "blue solid"})
    assert len(problems) == 1
    assert problems[0].startswith(
        "panel.looks: 'listning' is not a state (did you mean 'listening'?)"
    )


def test_every_bad_look_is_reported_at_once_against_the_configured_leds() -> None:
    problems = panel_problems(
        led_pins=[17], looks={"muted": "red solid", "thinking": "pulsing", "idel": "off"}
    )
    assert len(problems) == 3  # one line each
    muted, thinking, idel = problems
    assert muted.startswith("panel.looks: muted: 'red': colours need 3 LEDs")
    assert thinking.startswith(
        "panel.looks: thinking: 'pulsing' is not a colour or pattern (did you mean 'pulse'?)"
    )
    assert idel.startswith("panel.looks: 'idel' is not a state (did you mean 'idle'?)")


def test_a_look_that_never_lights_without_pwm_is_refused() -> None:
    problems = panel_problems(led_pins=[17], led_pwm=False, looks={"muted": "dim"})
    assert problems[0].startswith("panel.looks: muted: 'dim' never lights without PWM")
    accepted = PanelConfig(led_pins=[17], led_pwm=True, looks={"muted": "dim"})
    assert panel_looks(accepted)[State.MUTED].pattern == "dim"


def test_with_no_leds_looks_are_checked_as_for_an_rgb_led() -> None:
    config = PanelConfig(looks={"listening": "purple solid", "error": "1,0,0 double-blink"})
    assert panel_looks(config)[State.ERROR] == Look((1.0, 0.0, 0.0), "double_blink", "1,0,0")
    assert panel_problems(looks={"error": "1,0 blink"})[0].startswith(
        "panel.looks: error: '1,0' gives 2 levels for 3 LEDs"
    )


def test_looks_do_not_import_the_configuration() -> None:
    """The dependency is one-way: the configuration validates looks with this module, so this
    module must not need the configuration (a fresh interpreter shows what an import pulls in)."""
    source = str(Path(pispeaker.__file__).parents[1])
    check = "import pispeaker.panel.looks, sys; assert 'pispeaker.config' not in sys.modules"
    env = {**os.environ, "PYTHONPATH": source}
    subprocess.run([sys.executable, "-c", check], env=env, check=True, timeout=30)
