"""The panel on the real gpiozero with its MockFactory: gestures from the button (edges and
polling), LED histories per state, clean exits, and pins that cannot be used.

Times come from a FakeClock set by the test; LED frames are drawn with ``render()`` at chosen
times, so every assertion is exact. Nothing sleeps: waits are on events, with timeouts.
"""

import asyncio
import itertools
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from gpiozero import LED, Button, Device
from gpiozero.pins.mock import MockFactory, MockPin, MockPWMPin

from pispeaker.config import PanelConfig
from pispeaker.panel.gestures import Gesture
from pispeaker.panel.gpio import Panel, PanelError
from pispeaker.states import State
from tests.panel_rig import FakeClock, Recorder, mock_pins

PRESS, HOLD = Gesture.PRESS, Gesture.HOLD
BUTTON = 17
HOLD_S = 2.0


@pytest.fixture
def pins() -> Iterator[MockFactory]:
    """PWM-capable mock pins (PWMLED and RGBLED need them; Button takes them too)."""
    with mock_pins(MockPWMPin) as factory:
        yield factory


@pytest.fixture
def plain_pins() -> Iterator[MockFactory]:
    """On/off mock pins, like a pin library without PWM."""
    with mock_pins(MockPin) as factory:
        yield factory


@pytest.fixture
async def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def panel(clock: FakeClock, recorder: Recorder, **config: Any) -> Panel:
    return Panel(PanelConfig(**config), recorder.gesture, clock=clock, on_edge=recorder.edge)


@pytest.fixture
async def button_panel(
    pins: MockFactory, clock: FakeClock, recorder: Recorder
) -> AsyncIterator[Panel]:
    async with panel(clock, recorder, button_pin=BUTTON, hold_s=HOLD_S, debounce_ms=30) as opened:
        yield opened


async def press(pin: Any, clock: FakeClock, recorder: Recorder, at: float) -> None:
    """Press at clock time ``at`` and wait until the panel has seen it (edge or poll)."""
    clock.now = at
    pin.drive_low()
    await recorder.wait_for_edge(True, at)


async def release(pin: Any, clock: FakeClock, recorder: Recorder, at: float) -> None:
    clock.now = at
    pin.drive_high()
    await recorder.wait_for_edge(False, at)


async def before_a_final_hold(
    pin: Any, clock: FakeClock, recorder: Recorder, at: float
) -> list[Gesture]:
    """Hold the button from ``at`` as a sentinel and return the gestures reported before its
    HOLD: gestures arrive in order, so none that an earlier action caused can still come."""
    holds = recorder.gestures.count(HOLD)
    await press(pin, clock, recorder, at)
    clock.now = at + HOLD_S + 0.1  # the next poll sees the button held past hold_s
    await recorder.wait_until(lambda: recorder.gestures.count(HOLD) > holds)
    assert recorder.gestures[-1] is HOLD
    return recorder.gestures[:-1]


# -- the button ------------------------------------------------------------------------------


async def test_a_press_and_release_is_one_press(
    button_panel: Panel, pins: MockFactory, clock: FakeClock, recorder: Recorder
) -> None:
    pin = pins.pin(BUTTON)
    await press(pin, clock, recorder, 0.0)
    await release(pin, clock, recorder, 0.5)
    clock.now = 0.6  # the release is stable for the debounce time at the next poll
    await recorder.wait_until(lambda: PRESS in recorder.gestures)
    assert await before_a_final_hold(pin, clock, recorder, 1.0) == [PRESS]
    assert button_panel.button is not None
    assert button_panel.button.edge_events == 3


async def test_a_hold_fires_once_while_held_and_is_never_a_press(
    button_panel: Panel, pins: MockFactory, clock: FakeClock, recorder: Recorder
) -> None:
    pin = pins.pin(BUTTON)
    await press(pin, clock, recorder, 0.0)
    clock.now = HOLD_S + 0.5
    await recorder.wait_until(lambda: HOLD in recorder.gestures)
    assert not pin.state  # still held down when the HOLD arrived
    clock.now = HOLD_S + 3.0  # polls go on while it is held: no second HOLD
    await clock.read()
    await release(pin, clock, recorder, HOLD_S + 3.5)
    assert await before_a_final_hold(pin, clock, recorder, 10.0) == [HOLD]


async def test_contact_bounce_is_one_press(
    button_panel: Panel, pins: MockFactory, clock: FakeClock, recorder: Recorder
) -> None:
    pin = pins.pin(BUTTON)
    bounces = [(0.000, False), (0.002, True), (0.004, False), (0.006, True), (0.008, False)]
    bounces += [(0.5, True), (0.502, False), (0.504, True)]
    for at, high in bounces:  # no await in between: the burst is faster than any poll
        clock.now = at
        pin.drive_high() if high else pin.drive_low()
    clock.now = 0.6
    await recorder.wait_until(lambda: PRESS in recorder.gestures)
    assert await before_a_final_hold(pin, clock, recorder, 1.0) == [PRESS]
    assert button_panel.button is not None
    assert button_panel.button.edge_events == len(bounces) + 1  # every bounce was seen


async def test_edges_from_gpiozeros_thread_are_handled_on_the_loop(
    pins: MockFactory, clock: FakeClock, recorder: Recorder
) -> None:
    threads: list[int] = []

    def on_gesture(gesture: Gesture) -> None:
        threads.append(threading.get_ident())
        recorder.gesture(gesture)

    config = PanelConfig(button_pin=BUTTON, hold_s=HOLD_S)
    async with Panel(config, on_gesture, clock=clock, on_edge=recorder.edge):
        pin = pins.pin(BUTTON)
        await asyncio.to_thread(pin.drive_low)  # the edge callback runs on that worker thread
        await recorder.wait_for_edge(True, 0.0)
        clock.now = 0.5
        await asyncio.to_thread(pin.drive_high)
        await recorder.wait_for_edge(False, 0.5)
        clock.now = 0.6
        await recorder.wait_until(lambda: PRESS in recorder.gestures)
    # Polling may notice a change first (the loop runs while the thread drives the pin);
    # both edge callbacks still arrive, and the gesture is reported on the loop's thread.
    assert [edge.source for edge in recorder.edges].count("edge") == 2
    assert threads == [threading.get_ident()]


async def test_polling_alone_works_when_edge_callbacks_never_fire(
    pins: MockFactory, clock: FakeClock, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Simulates Raspberry Pi OS bookworm / the Pi 5 (gpiozero #1090, #1137, #1138): the pin
    # library accepts the edge callback but never calls it. Only the pin changes.
    monkeypatch.setattr(MockPin, "_call_when_changed", lambda self: None)
    async with panel(clock, recorder, button_pin=BUTTON, hold_s=HOLD_S) as opened:
        pin = pins.pin(BUTTON)
        await press(pin, clock, recorder, 0.0)
        await release(pin, clock, recorder, 0.5)
        clock.now = 0.6
        await recorder.wait_until(lambda: PRESS in recorder.gestures)
        assert await before_a_final_hold(pin, clock, recorder, 1.0) == [PRESS]
        assert opened.button is not None
        assert opened.button.edge_events == 0
    assert {edge.source for edge in recorder.edges} == {"poll"}


# -- the LEDs --------------------------------------------------------------------------------


def history(pin: Any) -> list[float]:
    return [float(entry.state) for entry in pin.states]


def draw(opened: Panel, clock: FakeClock, state: State, times: list[float]) -> None:
    """Show ``state`` from dark at clock 100 and draw frames ``times`` seconds into it."""
    opened.show(State.IDLE)
    clock.now = 100.0
    opened.show(state)
    for t in times:
        clock.now = 100.0 + t
        opened.render()


PWM_HISTORIES = [
    (State.IDLE, [0.5, 1.0, 2.0], [0.0]),
    (State.CONNECTING, [0.06, 0.19, 0.31], [0.0, 1.0, 0.0, 1.0]),
    (State.LISTENING, [0.5, 1.0, 2.0], [0.0, 1.0]),
    (State.THINKING, [0.25, 0.5, 0.75, 1.0], [0.0, 1.0, 0.5, 0.0, 0.5, 1.0]),
    (State.SPEAKING, [0.75, 1.5, 2.25, 3.0], [0.0, 1.0, 0.5, 0.0, 0.5, 1.0]),
    (State.INTERRUPTED, [0.025, 0.075, 0.125, 0.175], [0.0, 1.0, 0.0, 1.0, 0.0]),
    (State.MUTED, [0.05, 0.15, 1.0, 2.05], [0.0, 1.0, 0.0, 1.0]),
    (State.ERROR, [0.07, 0.22, 0.37, 0.6, 1.57], [0.0, 1.0, 0.0, 1.0, 0.0, 1.0]),
]


@pytest.mark.parametrize(("state", "times", "expected"), PWM_HISTORIES)
async def test_one_pwm_led_history_per_state(
    pins: MockFactory, clock: FakeClock, state: State, times: list[float], expected: list[float]
) -> None:
    async with Panel(PanelConfig(led_pins=[5]), Recorder().gesture, clock=clock) as opened:
        led = pins.pin(5)
        led.clear_states()
        draw(opened, clock, state, times)
        assert history(led) == pytest.approx(expected)


ON_OFF_HISTORIES = [
    (State.THINKING, [0.25, 0.3, 0.5, 0.8], [0.0, 1.0, 0.0, 1.0]),  # pulse: 1 s blink
    (State.SPEAKING, [0.7, 0.8, 2.2, 2.3], [0.0, 1.0, 0.0, 1.0]),  # breathe: 3 s blink
    (State.MUTED, [0.05, 0.15, 2.05], [0.0, 1.0, 0.0, 1.0]),  # beacon
]


@pytest.mark.parametrize(("state", "times", "expected"), ON_OFF_HISTORIES)
async def test_on_off_leds_turn_fades_into_blinks(
    plain_pins: MockFactory,
    clock: FakeClock,
    state: State,
    times: list[float],
    expected: list[float],
) -> None:
    async with Panel(
        PanelConfig(led_pins=[5, 6], led_pwm=False), Recorder().gesture, clock=clock
    ) as opened:
        for pin in (5, 6):
            plain_pins.pin(pin).clear_states()
        draw(opened, clock, state, times)
        assert history(plain_pins.pin(5)) == expected
        assert history(plain_pins.pin(6)) == expected  # every LED alike


async def test_interrupted_flashes_visibly_then_listening_is_solid(
    pins: MockFactory, clock: FakeClock
) -> None:
    async with Panel(PanelConfig(led_pins=[5]), Recorder().gesture, clock=clock) as opened:
        led = pins.pin(5)
        led.clear_states()
        frames = [0.01 + 0.02 * i for i in range(20)]  # 50 frames a second for the 0.4 s flash
        draw(opened, clock, State.INTERRUPTED, frames)
        flashes = history(led)
        assert sum(a < b for a, b in itertools.pairwise(flashes)) == 4
        clock.now = 100.4
        opened.show(State.LISTENING)
        assert history(led) == [*flashes, 1.0]


RGB_COLOURS = [
    (State.IDLE, 0.0, (0.0, 0.0, 0.0)),
    (State.CONNECTING, 0.0, (0.0, 0.0, 1.0)),
    (State.CONNECTING, 0.75, (0.0, 0.0, 0.0)),
    (State.LISTENING, 0.75, (0.0, 0.0, 1.0)),
    (State.THINKING, 0.0, (0.0, 1.0, 1.0)),
    (State.THINKING, 0.25, (0.0, 0.5, 0.5)),
    (State.SPEAKING, 0.0, (0.0, 1.0, 0.0)),
    (State.INTERRUPTED, 0.0, (1.0, 0.5, 0.0)),
    (State.MUTED, 0.75, (1.0, 0.0, 0.0)),
    (State.ERROR, 0.0, (1.0, 0.0, 0.0)),
    (State.ERROR, 0.75, (0.0, 0.0, 0.0)),
]


@pytest.mark.parametrize(("state", "t", "rgb"), RGB_COLOURS)
async def test_rgb_led_colour_per_state(
    pins: MockFactory, clock: FakeClock, state: State, t: float, rgb: tuple[float, ...]
) -> None:
    config = PanelConfig(led_pins=[5, 6, 13], led_rgb=True, brightness=0.5)
    async with Panel(config, Recorder().gesture, clock=clock) as opened:
        draw(opened, clock, state, [t])
        assert tuple(pins.pin(pin).state for pin in (5, 6, 13)) == pytest.approx(
            tuple(0.5 * level for level in rgb)
        )


async def test_on_off_rgb_led_and_active_low_wiring(
    plain_pins: MockFactory, clock: FakeClock
) -> None:
    config = PanelConfig(led_pins=[5, 6, 13], led_rgb=True, led_pwm=False, led_active_high=False)
    async with Panel(config, Recorder().gesture, clock=clock) as opened:
        draw(opened, clock, State.INTERRUPTED, [0.0])
        # amber's half green shows as full green without PWM; active low: 0 lights the LED
        assert [plain_pins.pin(pin).state for pin in (5, 6, 13)] == [False, False, True]
    assert [plain_pins.pin(pin).state for pin in (5, 6, 13)] == [True, True, True]


async def test_the_animation_draws_frames_on_its_own(pins: MockFactory, clock: FakeClock) -> None:
    async with Panel(
        PanelConfig(led_pins=[5]), Recorder().gesture, clock=clock, frame_s=0.001
    ) as opened:
        opened.show(State.CONNECTING)
        assert pins.pin(5).state == 1.0
        clock.now = 0.19  # fast blink: off
        await clock.read()  # possibly show()'s own read, reported late
        await clock.read()  # an animation frame at 0.19: read and drawn in one step
        assert pins.pin(5).state == 0.0


# -- leaving ---------------------------------------------------------------------------------


def assert_released(pins: list[int]) -> None:
    """Every pin is free again: gpiozero lets a new device open each (else GPIOPinInUse)."""
    for pin in pins:
        LED(pin).close()


LIT = {"led_pins": [5, 6], "button_pin": BUTTON}


async def test_leds_are_off_and_pins_free_after_a_normal_exit(
    pins: MockFactory, clock: FakeClock, recorder: Recorder
) -> None:
    async with panel(clock, recorder, **LIT) as opened:
        opened.show(State.LISTENING)
        assert [pins.pin(pin).state for pin in (5, 6)] == [1.0, 1.0]
    assert [pins.pin(pin).state for pin in (5, 6)] == [0.0, 0.0]
    assert_released([5, 6, BUTTON])


async def test_leds_are_off_and_pins_free_after_an_exception(
    pins: MockFactory, clock: FakeClock, recorder: Recorder
) -> None:
    with pytest.raises(RuntimeError, match="controller bug"):
        async with panel(clock, recorder, **LIT) as opened:
            opened.show(State.ERROR)
            raise RuntimeError("controller bug")
    assert [pins.pin(pin).state for pin in (5, 6)] == [0.0, 0.0]
    assert_released([5, 6, BUTTON])


async def test_leds_are_off_and_pins_free_after_cancellation(
    pins: MockFactory, clock: FakeClock, recorder: Recorder
) -> None:
    lit = asyncio.Event()

    async def run() -> None:
        async with panel(clock, recorder, **LIT) as opened:
            opened.show(State.SPEAKING)
            lit.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(run())
    async with asyncio.timeout(5):
        await lit.wait()
    assert pins.pin(5).state == 1.0
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [pins.pin(pin).state for pin in (5, 6)] == [0.0, 0.0]
    assert_released([5, 6, BUTTON])


# -- no panel, and pins that cannot be used --------------------------------------------------


@pytest.fixture
def no_gpio(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No pin factory at all, as on a machine without GPIO: any use of one fails."""
    previous = Device.pin_factory
    Device.pin_factory = None
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "no-such-factory")
    yield
    Device.pin_factory = previous


async def test_without_button_or_leds_the_panel_needs_no_gpio(
    no_gpio: None, recorder: Recorder
) -> None:
    async with Panel(PanelConfig(), recorder.gesture) as opened:
        for state in State:
            opened.show(state)
        opened.render()
    assert Device.pin_factory is None


async def test_no_pin_factory_is_a_panel_error_naming_the_pin_and_the_way_out(
    no_gpio: None, recorder: Recorder
) -> None:
    with pytest.raises(PanelError) as caught:
        async with Panel(PanelConfig(button_pin=BUTTON), recorder.gesture):
            pytest.fail("the panel opened without GPIO")
    message = str(caught.value)
    assert message.startswith("cannot use GPIO17 for panel.button_pin (")
    assert "no-such-factory" in message
    assert "lgpio" in message
    assert message.endswith("or set panel.button_pin = 0")
    assert caught.value.exit_code == 78
    assert isinstance(caught.value, OSError)


async def test_a_busy_pin_is_refused_and_the_pins_already_opened_are_freed(
    pins: MockFactory, recorder: Recorder
) -> None:
    busy = LED(13)
    config = PanelConfig(button_pin=BUTTON, led_pins=[5, 6, 13], led_rgb=True)
    with pytest.raises(PanelError) as caught:
        async with Panel(config, recorder.gesture):
            pytest.fail("the panel opened a busy pin")
    busy.close()
    message = str(caught.value)
    assert message.startswith("cannot use GPIO5, GPIO6, GPIO13 for panel.led_pins (")
    assert "GPIOPinInUse: pin GPIO13 is already in use" in message
    assert message.endswith(
        "or set panel.led_pwm = false (pins without PWM) or panel.led_pins = []"
    )
    assert caught.value.exit_code == 78
    assert_released([5, 6, 13, BUTTON])


async def test_an_opened_button_is_not_left_behind_by_a_led_failure(
    pins: MockFactory, recorder: Recorder
) -> None:
    busy = Button(6)
    with pytest.raises(PanelError, match=r"GPIO6 for panel\.led_pins"):
        async with Panel(PanelConfig(button_pin=BUTTON, led_pins=[6]), recorder.gesture):
            pytest.fail("the panel opened a busy pin")
    busy.close()
    assert_released([BUTTON, 6])
