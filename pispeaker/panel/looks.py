"""How each state looks on the LEDs: one distinct look per state, at a glance. Pure: no GPIO.

A look is a colour (one level 0..1 per LED channel) times a pattern (a pure function of the
seconds since the state was entered, giving a brightness 0..1). ``frame`` turns a look and a
time into the levels to write; without PWM a level is on when it is at least 0.5, so the
fading patterns (pulse, breathe) become blinks of their own periods and stay distinct.

Channels: an RGB LED, or three separate LEDs taken as red, green and blue, has 3 channels and
shows colours; 1, 2 or 4+ LEDs are all lit alike and tell the states apart by pattern alone.
"""

import difflib
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from pispeaker.states import State

Pattern = Callable[[float], float]

#: A channel is on without PWM when its level is at least this.
ON_LEVEL = 0.5
#: Channels that make colours: red, green, blue.
RGB = 3


def _square(period_s: float, on_s: float) -> Pattern:
    """On for ``on_s`` at the start of every ``period_s``: it starts lit, so a change of
    state shows at once."""
    return lambda t: 1.0 if t % period_s < on_s else 0.0


def _pulse(t: float) -> float:
    """A linear fade out and back in once a second, starting lit."""
    return abs(2 * (t % 1.0) - 1)


def _breathe(t: float) -> float:
    """A smooth (raised cosine) fade out and back in every 3 s, starting lit."""
    return (1 + math.cos(2 * math.pi * t / 3.0)) / 2


def _double_blink(t: float) -> float:
    """Two quick blinks, then a pause, every 1.5 s."""
    phase = t % 1.5
    return 1.0 if phase < 0.15 or 0.3 <= phase < 0.45 else 0.0


@dataclass(frozen=True)
class PatternInfo:
    """A named pattern and how to say it in a sentence ("blue, blinking")."""

    function: Pattern
    words: str


PATTERNS: dict[str, PatternInfo] = {
    "off": PatternInfo(lambda t: 0.0, "off"),
    "solid": PatternInfo(lambda t: 1.0, "solid"),
    "dim": PatternInfo(lambda t: 0.25, "dim"),
    "blink": PatternInfo(_square(1.0, 0.5), "blinking"),
    "fast_blink": PatternInfo(_square(0.25, 0.125), "fast blinking"),
    "flash": PatternInfo(_square(0.1, 0.05), "quick flash"),
    "pulse": PatternInfo(_pulse, "pulsing"),
    "breathe": PatternInfo(_breathe, "breathing"),
    "double_blink": PatternInfo(_double_blink, "double blinking"),
    "beacon": PatternInfo(_square(2.0, 0.1), "beacon (a short blink every 2 s)"),
    "wink": PatternInfo(_square(1.0, 0.8), "winking (dark 0.2 s every second)"),
}

#: Named colours as (red, green, blue) levels. Amber has half green because an LED's green
#: looks much brighter than its red.
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (1.0, 0.0, 0.0),
    "green": (0.0, 1.0, 0.0),
    "blue": (0.0, 0.0, 1.0),
    "cyan": (0.0, 1.0, 1.0),
    "magenta": (1.0, 0.0, 1.0),
    "yellow": (1.0, 1.0, 0.0),
    "amber": (1.0, 0.5, 0.0),
    "orange": (1.0, 0.25, 0.0),
    "purple": (0.5, 0.0, 1.0),
    "white": (1.0, 1.0, 1.0),
}


@dataclass(frozen=True)
class Look:
    """Colour levels per channel (each 0..1) and a pattern name (a key of PATTERNS).

    ``colour`` is how the colour was written ("blue", "#ff8000", "1,0,0.5"), or "" when
    every LED is simply lit; it is only used to describe the look.
    """

    levels: tuple[float, ...]
    pattern: str
    colour: str = ""

    def describe(self) -> str:
        """The look in words, e.g. "blue, solid", "pulsing" or "off"."""
        if self.pattern == "off" or not any(self.levels):
            return "off"
        words = PATTERNS[self.pattern].words
        return f"{self.colour}, {words}" if self.colour else words


def frame(look: Look, t: float, *, pwm: bool = True, brightness: float = 1.0) -> tuple[float, ...]:
    """The level of every channel ``t`` seconds after the look started.

    With ``pwm`` each level is colour x pattern x ``brightness``; without it each is 1.0 when
    colour x pattern reaches ON_LEVEL, else 0.0 (``brightness`` needs PWM and is ignored).
    """
    strength = PATTERNS[look.pattern].function(max(t, 0.0))
    if pwm:
        return tuple(level * strength * brightness for level in look.levels)
    return tuple(1.0 if level * strength >= ON_LEVEL else 0.0 for level in look.levels)


def lights_without_pwm(look: Look, seconds: float = 6.0, step_s: float = 0.01) -> bool:
    """Whether any channel of ``look`` is ever on without PWM within ``seconds`` (6 s spans
    every pattern's period)."""
    times = (i * step_s for i in range(round(seconds / step_s)))
    return any(any(frame(look, t, pwm=False)) for t in times)


# -- defaults --------------------------------------------------------------------------------

#: (colour, pattern) per state for an RGB LED or three LEDs as red, green and blue.
_COLOUR_LOOKS: dict[State, tuple[str, str]] = {
    State.IDLE: ("", "off"),
    State.CONNECTING: ("blue", "blink"),
    State.LISTENING: ("blue", "solid"),
    State.THINKING: ("cyan", "pulse"),
    State.SPEAKING: ("green", "breathe"),
    State.DUCKED: ("green", "wink"),  # the reply turned down: someone may be talking over it
    State.INTERRUPTED: ("amber", "flash"),
    State.MUTED: ("red", "solid"),
    State.ERROR: ("red", "blink"),
}

#: Pattern per state for LEDs all lit alike: distinct even on/off, without PWM.
_PLAIN_LOOKS: dict[State, str] = {
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


def default_looks(channels: int) -> dict[State, Look]:
    """The built-in look of every state for ``channels`` LED channels (at least 1)."""
    if channels == RGB:
        return {
            state: Look(COLOURS.get(colour, (0.0,) * RGB), pattern, colour)
            for state, (colour, pattern) in _COLOUR_LOOKS.items()
        }
    return {state: Look((1.0,) * channels, pattern) for state, pattern in _PLAIN_LOOKS.items()}


def channels_of(led_pins: Sequence[int]) -> int:
    """LED channels for the configured pins: one per pin (an RGB LED's three legs are three
    channels). With no LEDs, looks are checked as for an RGB LED, so they can be written
    before the LEDs are wired."""
    return len(led_pins) or RGB


def looks_for(
    led_pins: Sequence[int], overrides: Mapping[str, str], pwm: bool = True
) -> dict[State, Look]:
    """Every state's look on the LEDs at ``led_pins``: the defaults for their channels with
    ``overrides`` (state name -> look spec) applied. ``pwm`` says whether the LEDs can dim;
    without it, a look that never reaches ON_LEVEL is refused.

    Raises ValueError listing every bad state name and look at once, one to a line.
    """
    channels = channels_of(led_pins)
    looks = default_looks(channels)
    problems: list[str] = []
    for name, spec in overrides.items():
        try:
            state = state_named(name)
            looks[state] = _override(name, spec, channels, pwm)
        except ValueError as error:
            problems.append(str(error))
    if problems:
        raise ValueError("\n".join(problems))
    return looks


def state_named(name: str) -> State:
    """The State called ``name`` ("listening"); ValueError naming the nearest otherwise."""
    try:
        return State(name)
    except ValueError:
        names = [state.value for state in State]
        raise ValueError(_unknown(name, "a state", names, "states: " + ", ".join(names))) from None


def _override(name: str, spec: str, channels: int, pwm: bool) -> Look:
    try:
        look = parse_look(spec, channels)
    except ValueError as error:
        raise ValueError(f"{name}: {error}") from None
    if not pwm and look.pattern != "off" and not lights_without_pwm(look):
        raise ValueError(
            f"{name}: {spec!r} never lights without PWM (led_pwm = false): use levels of at "
            "least 0.5 and a pattern other than dim"
        )
    return look


# -- parsing ---------------------------------------------------------------------------------

_LEVELS = re.compile(r"^(\d*\.)?\d+(,(\d*\.)?\d+)*$")
_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")


def parse_look(spec: str, channels: int) -> Look:
    """Parse "<colour> <pattern>" for ``channels`` LED channels.

    The colour is a name of COLOURS or "#rrggbb" (both need 3 channels), or levels 0..1:
    one for every LED ("0.5") or one per LED ("1,0,0.5"). Without a colour every LED is
    fully lit; without a pattern the look is solid. A comma after the colour is allowed, so
    a described look ("blue, solid") parses back. Raises ValueError saying what is wrong,
    the nearest valid word and the valid choices.
    """
    words = spec.split()
    if len(words) == 2:
        colour = words[0].removesuffix(",")
        return Look(_levels(colour, channels), _pattern(words[1], channels), colour)
    if len(words) == 1 and _pattern_key(words[0]) in PATTERNS:
        return Look((1.0,) * channels, _pattern_key(words[0]))
    if len(words) == 1:
        return Look(_levels(words[0], channels, or_pattern=True), "solid", words[0])
    raise ValueError(f"{spec!r} is not '<colour> <pattern>'; {_choices(channels)}")


def _pattern_key(word: str) -> str:
    return word.lower().replace("-", "_")


def _pattern(word: str, channels: int) -> str:
    key = _pattern_key(word)
    if key not in PATTERNS:
        raise ValueError(_unknown(word, "a pattern", list(PATTERNS), _choices(channels)))
    return key


def _levels(colour: str, channels: int, or_pattern: bool = False) -> tuple[float, ...]:
    """The channel levels of a colour word (see parse_look); ``or_pattern``: the word may
    also have been meant as a pattern, so suggest those too."""
    if _LEVELS.match(colour):
        return _explicit_levels(colour, channels)
    if channels == RGB and _HEX.match(colour):
        return tuple(int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    if channels == RGB and colour.lower() in COLOURS:
        return COLOURS[colour.lower()]
    if channels != RGB and (colour.lower() in COLOURS or _HEX.match(colour)):
        raise ValueError(
            f"{colour!r}: colours need 3 LEDs (red, green, blue), not {channels}; "
            f"{_choices(channels)}"
        )
    known = (list(COLOURS) if channels == RGB else []) + (list(PATTERNS) if or_pattern else [])
    what = "a colour or pattern" if or_pattern else "a colour"
    raise ValueError(_unknown(colour, what, known, _choices(channels)))


def _explicit_levels(colour: str, channels: int) -> tuple[float, ...]:
    values = tuple(float(part) for part in colour.split(","))
    if any(value > 1 for value in values):
        raise ValueError(f"levels in {colour!r} must be between 0 and 1")
    if len(values) == 1:
        return values * channels
    if len(values) != channels:
        leds = f"{channels} LED{'s' if channels != 1 else ''}"
        raise ValueError(f"{colour!r} gives {len(values)} levels for {leds}")
    return values


def _unknown(word: str, what: str, known: list[str], choices: str) -> str:
    """The message "'x' is not <what> (did you mean 'y'?); <choices>", hint only if close."""
    close = difflib.get_close_matches(_pattern_key(word), known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{word!r} is not {what}{hint}; {choices}"


def _choices(channels: int) -> str:
    """The valid colours and patterns for ``channels`` LED channels, as one clause."""
    patterns = f"patterns: {', '.join(PATTERNS)}"
    if channels == RGB:
        return f"colours: {', '.join(COLOURS)}, '#rrggbb' or levels like '1,0,0.5'; {patterns}"
    if channels == 1:
        return f"levels: one like '0.5'; {patterns}"
    example = ",".join(["1"] + ["0"] * (channels - 1))
    return f"levels: one for every LED like '0.5', or one per LED like '{example}'; {patterns}"


#: Each state's default look in words, as an RGB LED shows it (used by ``pispeaker demo``).
LOOKS: dict[State, str] = {state: look.describe() for state, look in default_looks(RGB).items()}
