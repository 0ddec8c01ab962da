"""``pispeaker test-button`` and ``test-leds``: check the panel's wiring with the same adapter
and settings the service uses."""

import asyncio
import contextlib
import signal
import time
from collections import Counter
from typing import TextIO

from pispeaker.config import PanelConfig
from pispeaker.panel.gestures import Gesture
from pispeaker.panel.gpio import ButtonInput, Edge, PanelError, StatusLeds
from pispeaker.states import State

GESTURE_WORDS = {Gesture.PRESS: "PRESS", Gesture.HOLD: "HOLD (mute toggle)"}
SOURCE_WORDS = {"edge": "edge event", "poll": "seen only by polling"}

# -- test-button -----------------------------------------------------------------------------


async def test_button(panel: PanelConfig, seconds: float, out: TextIO) -> int:
    """Print every raw edge and every gesture of the configured button for ``seconds``
    (0: until Ctrl-C), then whether edge events arrive or only polling sees the button."""
    if not panel.button_pin:
        raise PanelError(
            "no button configured: set panel.button_pin to the button's BCM GPIO number "
            "(e.g. 17) in the config file"
        )
    started = time.monotonic()
    seen: Counter[str] = Counter()

    def line(at: float, text: str) -> None:
        out.write(f"{at - started:8.3f}s  {text}\n")
        out.flush()

    def on_edge(edge: Edge) -> None:
        seen[edge.source] += 1
        line(edge.at, f"{'down' if edge.pressed else 'up':<5} ({SOURCE_WORDS[edge.source]})")

    def on_gesture(gesture: Gesture) -> None:
        line(time.monotonic(), GESTURE_WORDS[gesture])

    async with ButtonInput(panel, on_gesture, on_edge=on_edge):
        out.write(
            f"Watching the button on GPIO{panel.button_pin} "
            f"({'pull-up' if panel.button_pull_up else 'pull-down'}; hold {panel.hold_s:g} s "
            f"to toggle mute). Press it; Ctrl-C stops.\n"
        )
        out.flush()
        await _until_interrupted(seconds)
    out.write(_button_summary(panel, seen))
    return 0


async def _until_interrupted(seconds: float) -> None:
    """Return after ``seconds`` (0: never) or at Ctrl-C, whichever comes first."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, stop.set)
    try:
        with contextlib.suppress(TimeoutError):  # --seconds passed: a normal end
            async with asyncio.timeout(seconds or None):
                await stop.wait()
    finally:
        loop.remove_signal_handler(signal.SIGINT)


def _button_summary(panel: PanelConfig, seen: Counter[str]) -> str:
    pin = f"GPIO{panel.button_pin}"
    if not seen:
        other = "GND" if panel.button_pull_up else "3V3"
        return (
            f"No press seen. Check the wiring: the button joins {pin} and {other} "
            f"(panel.button_pull_up = {str(panel.button_pull_up).lower()}).\n"
        )
    if seen["edge"]:
        return f"Edge events arrive ({seen['edge']}); polling is the backup. The button works.\n"
    return (
        f"No edge events arrived: only polling saw {pin} change ({seen['poll']} times), a "
        "known problem of some pin libraries on Raspberry Pi OS bookworm and the Pi 5. "
        "The button still works: pispeaker polls it every 20 ms.\n"
    )


# -- test-leds -------------------------------------------------------------------------------


async def test_leds(panel: PanelConfig, seconds_per_state: float, out: TextIO) -> int:
    """Show every state's look on the configured LEDs in turn, naming each, then turn the
    LEDs off."""
    if not panel.led_pins:
        raise PanelError(
            "no LEDs configured: set panel.led_pins to the LEDs' BCM GPIO numbers "
            "(e.g. [17], or [5, 6, 13] with led_rgb = true) in the config file"
        )
    async with StatusLeds(panel) as leds:
        out.write(f"Showing each state on {_describe_leds(panel)}, {seconds_per_state:g} s each:\n")
        for state in State:
            leds.show(state)
            out.write(f"  {state.value:<12} {leds.look.describe()}\n")
            out.flush()
            await asyncio.sleep(seconds_per_state)
    out.write("Done; the LEDs are off.\n")
    return 0


def _describe_leds(panel: PanelConfig) -> str:
    pins = ", ".join(f"GPIO{pin}" for pin in panel.led_pins)
    mode = "PWM" if panel.led_pwm else "on/off"
    if panel.led_rgb:
        return f"the RGB LED on {pins} ({mode})"
    count = len(panel.led_pins)
    return f"{count} LED{'s' if count != 1 else ''} on {pins} ({mode})"
