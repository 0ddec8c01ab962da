"""``pispeaker test-button`` and ``test-leds``: in-process on gpiozero's MockFactory (a thread
works the mock button as a finger would), and as a real subprocess choosing the mock pin
factory and pin class from the environment, as a person would on a machine without GPIO."""

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory, MockPin, MockPWMPin

from pispeaker.cli import main
from pispeaker.panel.gpio import ButtonInput
from pispeaker.states import State
from tests.panel_rig import WAIT_S, mock_pins
from tests.test_cli import pispeaker

BUTTON = 17
RGB = (5, 6, 13)


def config_file(tmp_path: Path, **panel: object) -> str:
    lines = "".join(
        f"{key} = {value!r}\n".lower().replace("'", '"') for key, value in panel.items()
    )
    path = tmp_path / "pispeaker.toml"
    path.write_text(f"[panel]\n{lines}")
    return str(path)


@pytest.fixture
def pins() -> Iterator[MockFactory]:
    with mock_pins(MockPWMPin) as factory:
        yield factory


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Set once the command has opened the button. (The pin's edge handler is attached in the
    middle of gpiozero's Button constructor, before its hold thread exists: an edge driven
    as soon as the handler appears can crash that constructor's half-made Button.)"""
    event = threading.Event()
    enter = ButtonInput.__aenter__

    async def entered(self: ButtonInput) -> ButtonInput:
        result = await enter(self)
        event.set()
        return result

    monkeypatch.setattr(ButtonInput, "__aenter__", entered)
    return event


def finger(pin: Any, opened: threading.Event, actions: Callable[[Any], None]) -> threading.Thread:
    """A thread that waits until the command has opened the button, then does ``actions``
    with its pin (gpiozero's edge callbacks run on this thread, as on its own threads)."""

    def work() -> None:
        assert opened.wait(WAIT_S), "the command never opened the button"
        actions(pin)

    thread = threading.Thread(target=work, name="finger")
    thread.start()
    return thread


def press_then_hold_then_ctrl_c(pin: Any) -> None:
    pin.drive_low()
    pin.drive_high()  # a press: with debounce_ms = 0 it counts at once
    pin.drive_low()
    time.sleep(0.8)  # hold_s is 0.5: the hold needs real time to pass (a lower bound)
    pin.drive_high()
    os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C: test-button ends with its summary


def output_lines(text: str) -> list[str]:
    return [line.split("s  ", 1)[1] for line in text.splitlines() if "s  " in line]


def test_test_button_prints_edges_and_gestures_until_ctrl_c(
    pins: MockFactory, opened: threading.Event, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_file(tmp_path, button_pin=BUTTON, hold_s=0.5, debounce_ms=0)
    thread = finger(pins.pin(BUTTON), opened, press_then_hold_then_ctrl_c)
    code = main(["--config", config, "test-button", "--seconds", "10"])  # 10 s: a safety net
    thread.join()
    out = capsys.readouterr().out
    assert code == 0
    assert "Watching the button on GPIO17 (pull-up; hold 0.5 s to toggle mute)" in out
    # A poll can, rarely, notice a change in the instant before its edge callback is queued;
    # it then adds a "seen only by polling" line. Every edge callback still gets its line.
    edge_lines = [line for line in output_lines(out) if "polling" not in line]
    assert edge_lines == [
        "down  (edge event)",
        "up    (edge event)",
        "PRESS",
        "down  (edge event)",
        "HOLD (mute toggle)",
        "up    (edge event)",
    ]
    assert out.endswith("Edge events arrive (4); polling is the backup. The button works.\n")


def test_test_button_says_when_only_polling_sees_the_button(
    pins: MockFactory,
    opened: threading.Event,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The Pi 5 / bookworm problem: edge callbacks accepted but never called.
    monkeypatch.setattr(MockPin, "_call_when_changed", lambda self: None)

    def press_slowly(pin: Any) -> None:
        pin.drive_low()
        time.sleep(0.2)  # long enough for the 20 ms polling to see it (a lower bound)
        pin.drive_high()

    config = config_file(tmp_path, button_pin=BUTTON, debounce_ms=0)
    thread = finger(pins.pin(BUTTON), opened, press_slowly)
    code = main(["--config", config, "test-button", "--seconds", "1"])
    thread.join()
    out = capsys.readouterr().out
    assert code == 0
    assert output_lines(out) == [
        "down  (seen only by polling)",
        "up    (seen only by polling)",
        "PRESS",
    ]
    assert "No edge events arrived: only polling saw GPIO17 change (2 times)" in out


def test_test_button_without_a_button_says_what_to_set(
    pins: MockFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--config", config_file(tmp_path, button_pin=0), "test-button"])
    assert code == 78
    assert "no button configured: set panel.button_pin" in capsys.readouterr().err


def test_test_leds_cycles_every_state_and_ends_dark(
    pins: MockFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_file(tmp_path, led_pins=list(RGB), led_rgb=True)
    code = main(["--config", config, "test-leds", "--seconds-per-state", "0.01"])
    out = capsys.readouterr().out
    assert code == 0
    shown = [line.split()[0] for line in out.splitlines() if line.startswith("  ")]
    assert shown == [state.value for state in State]
    assert "  listening    blue, solid\n" in out
    assert "  interrupted  amber, quick flash\n" in out
    red, green, blue = ([entry.state for entry in pins.pin(pin).states] for pin in RGB)
    assert max(red) == max(blue) == 1.0  # each state's look is drawn the moment it is shown
    assert 0.5 in green  # amber
    assert (red[-1], green[-1], blue[-1]) == (0.0, 0.0, 0.0)
    assert out.endswith("Done; the LEDs are off.\n")


def test_test_leds_without_leds_says_what_to_set(
    pins: MockFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--config", config_file(tmp_path, led_pins=[]), "test-leds"])
    assert code == 78
    assert "no LEDs configured: set panel.led_pins" in capsys.readouterr().err


MOCK_PWM = {"GPIOZERO_PIN_FACTORY": "mock", "GPIOZERO_MOCK_PIN_CLASS": "mockpwmpin"}


def test_test_leds_runs_as_a_command_on_the_mock_pin_factory(tmp_path: Path) -> None:
    config = config_file(tmp_path, led_pins=[BUTTON])
    result = pispeaker("--config", config, "test-leds", "--seconds-per-state", "0.02", env=MOCK_PWM)
    assert result.returncode == 0, result.stderr
    assert "Showing each state on 1 LED on GPIO17 (PWM), 0.02 s each:" in result.stdout
    assert "  muted        beacon (a short blink every 2 s)\n" in result.stdout
    assert "  error        double blinking\n" in result.stdout
    assert result.stdout.endswith("Done; the LEDs are off.\n")


def test_pwm_leds_on_pins_without_pwm_are_a_config_error(tmp_path: Path) -> None:
    config = config_file(tmp_path, led_pins=[BUTTON])
    result = pispeaker("--config", config, "test-leds", env={"GPIOZERO_PIN_FACTORY": "mock"})
    assert result.returncode == 78
    assert result.stderr.startswith("pispeaker: cannot use GPIO17 for panel.led_pins (")
    assert "PinPWMUnsupported" in result.stderr
    assert "set panel.led_pwm = false (pins without PWM) or panel.led_pins = []" in result.stderr
