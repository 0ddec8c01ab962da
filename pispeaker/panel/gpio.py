"""The button and the status LEDs on GPIO: the only module that imports gpiozero.

``Panel`` is what the service uses: an async context manager that opens the configured pins,
reports button gestures and shows each state on the LEDs. ``ButtonInput`` and ``StatusLeds``
are its two halves, also used alone by ``pispeaker test-button`` and ``test-leds``.

Everything runs on the asyncio loop except gpiozero's edge callbacks, which arrive on its own
thread and are handed to the loop with ``call_soon_threadsafe``. The button is also polled,
because on Raspberry Pi OS bookworm and the Pi 5 edge callbacks have been seen to never fire
(gpiozero issues #1090, #1137, #1138): both feed the same debouncing recogniser, so an edge
seen twice does no harm.

Failure policy: a pin that cannot be opened raises PanelError (exit code 78, EX_CONFIG). A
failure inside a running panel task is logged with its traceback and ends that task only: the
speaker keeps working without that button or those LEDs.
"""

import asyncio
import contextlib
import logging
import os
import time
import warnings
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self

from gpiozero import LED, PWMLED, RGBLED, Button

from pispeaker.config import PanelConfig
from pispeaker.errors import PispeakerError
from pispeaker.panel.gestures import Gesture, GestureRecognizer
from pispeaker.panel.looks import Look, frame, looks_for
from pispeaker.states import State

log = logging.getLogger(__name__)

Clock = Callable[[], float]
#: Longest wait for a panel task to end once cancelled, in seconds.
STOP_TIMEOUT_S = 2.0


class PanelError(PispeakerError, OSError):
    """A GPIO pin of the panel cannot be used; the message names the config key, the pin and
    what to do next."""

    exit_code = os.EX_CONFIG


@dataclass(frozen=True)
class Edge:
    """A raw change of the button's level, before debouncing: ``pressed`` at ``at`` (clock
    seconds), reported by a gpiozero edge callback or noticed by polling."""

    pressed: bool
    at: float
    source: Literal["edge", "poll"]


@contextlib.contextmanager
def _opening(what: str, pins: list[int], stop: str) -> Iterator[None]:
    """Turn any failure to open ``pins`` into a PanelError naming ``what`` (the config key)
    and saying how to get on; ``stop`` is the setting that does without them."""
    with warnings.catch_warnings(record=True) as fallbacks:
        # gpiozero warns once per pin library it fails to load before giving up: the
        # reasons ("No module named 'lgpio'") belong in the error, not scattered on stderr.
        warnings.simplefilter("always")
        try:
            yield
        # Broad on purpose: each pin library raises its own types (lgpio.error, RuntimeError,
        # OSError, gpiozero's GPIOZeroError family); all mean "this pin is unusable here".
        except Exception as error:
            reasons = [f"{type(error).__name__}: {error}" if str(error) else type(error).__name__]
            reasons += [str(warning.message) for warning in fallbacks]
            names = ", ".join(f"GPIO{pin}" for pin in pins)
            raise PanelError(
                f"cannot use {names} for {what} ({'; '.join(reasons)}): run on a Raspberry Pi "
                "with the lgpio package, stop any other program using the pin, add the "
                f"service user to the gpio group, or set {stop}"
            ) from error
    for warning in fallbacks:
        log.debug("gpiozero: %s", warning.message)


async def _stop(task: asyncio.Task[None] | None) -> None:
    """Cancel ``task`` and wait for it, at most STOP_TIMEOUT_S."""
    if task is not None:
        task.cancel()
        await asyncio.wait([task], timeout=STOP_TIMEOUT_S)


def _start(work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
    """Start a named panel task whose failure is logged at once (see the failure policy)."""
    task: asyncio.Task[None] = asyncio.create_task(work, name=name)
    task.add_done_callback(_log_failure)
    return task


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("%s stopped: %s", task.get_name(), error, exc_info=error)


class ButtonInput:
    """The button: edge callbacks plus polling, debounced into gestures.

    ``async with`` opens ``config.button_pin`` (gpiozero's own bounce_time is not used: the
    recogniser debounces) and polls it every ``poll_s``. ``on_gesture`` is called on the
    loop; ``on_edge`` (diagnostics) is called on the loop for every edge callback and for every
    change that polling notices first. ``clock`` times both; inject one to test without waits.
    """

    def __init__(
        self,
        config: PanelConfig,
        on_gesture: Callable[[Gesture], None],
        *,
        poll_s: float = 0.02,
        clock: Clock = time.monotonic,
        on_edge: Callable[[Edge], None] | None = None,
    ) -> None:
        self.config = config
        self.recognizer = GestureRecognizer(config.hold_s, config.debounce_ms / 1000)
        self.edge_events = 0  # edge callbacks received: 0 with a working button = broken edges
        self._on_gesture = on_gesture
        self._on_edge = on_edge
        self._poll_s = poll_s
        self._clock = clock
        self._seen = False  # the last raw level seen by either source
        self._button: Any = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        loop = asyncio.get_running_loop()
        pin = self.config.button_pin
        with _opening("panel.button_pin", [pin], "panel.button_pin = 0"):
            # hold_time=0: gpiozero's hold thread is unused (the recogniser times holds), and
            # with its default of 1 s, close() would block that long while the button is down.
            self._button = Button(
                pin, pull_up=self.config.button_pull_up, bounce_time=None, hold_time=0
            )
        # gpiozero calls these on its own thread; the clock is read there, at the edge.
        self._button.when_pressed = lambda: self._from_thread(loop, True)
        self._button.when_released = lambda: self._from_thread(loop, False)
        self._task = _start(self._poll_forever(), f"panel-button-GPIO{pin}")
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await _stop(self._task)
        if self._button is not None:
            # Also detaches the edge callbacks. Off the loop: stopping gpiozero's hold thread
            # can take up to 0.1 s (it polls for a stop every 0.1 s).
            await asyncio.to_thread(self._button.close)

    def _from_thread(self, loop: asyncio.AbstractEventLoop, pressed: bool) -> None:
        loop.call_soon_threadsafe(self._observe, pressed, self._clock(), "edge")

    async def _poll_forever(self) -> None:
        while True:
            self._observe(bool(self._button.is_pressed), self._clock(), "poll")
            await asyncio.sleep(self._poll_s)

    def _observe(self, pressed: bool, now: float, source: Literal["edge", "poll"]) -> None:
        """One raw level from either source: report it, then let the recogniser judge it."""
        if source == "edge":
            self.edge_events += 1
        if self._on_edge is not None and (source == "edge" or pressed != self._seen):
            self._on_edge(Edge(pressed, now, source))
        self._seen = pressed
        for gesture in self.recognizer.level(pressed, now):
            self._on_gesture(gesture)


class StatusLeds:
    """The status LEDs: the current state's look, animated every ``frame_s``.

    ``async with`` opens ``config.led_pins`` (one RGBLED when ``led_rgb``, else a PWMLED or an
    LED per pin, per ``led_pwm``) and starts the animation; leaving turns every LED off and
    closes it, however the body ends. ``show`` switches the look; ``render`` draws one frame.
    """

    def __init__(
        self, config: PanelConfig, *, frame_s: float = 0.02, clock: Clock = time.monotonic
    ) -> None:
        self.config = config
        self.looks = looks_for(config.led_pins, config.looks, config.led_pwm)
        self.state = State.IDLE
        self._frame_s = frame_s
        self._clock = clock
        self._since = clock()
        self._devices: list[Any] = []
        self._written: tuple[float, ...] | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def look(self) -> Look:
        """The look being shown."""
        return self.looks[self.state]

    async def __aenter__(self) -> Self:
        no_pwm = "panel.led_pwm = false (pins without PWM) or " if self.config.led_pwm else ""
        with _opening("panel.led_pins", self.config.led_pins, f"{no_pwm}panel.led_pins = []"):
            self._open()
        try:
            self.render()
        except BaseException:
            self._close()
            raise
        self._task = _start(self._animate_forever(), "panel-leds")
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await _stop(self._task)
        self._close()

    def _open(self) -> None:
        config, pins = self.config, self.config.led_pins
        try:
            if config.led_rgb:
                red, green, blue = pins
                rgb = RGBLED(
                    red, green, blue, active_high=config.led_active_high, pwm=config.led_pwm
                )
                self._devices.append(rgb)
            for pin in [] if config.led_rgb else pins:
                kind = PWMLED if config.led_pwm else LED
                self._devices.append(kind(pin, active_high=config.led_active_high))
        except BaseException:
            self._close()  # the pins already opened
            raise

    def _close(self) -> None:
        """Turn every LED off and close it, even if one of them fails; safe to repeat."""
        with contextlib.ExitStack() as stack:
            for device in self._devices:
                stack.callback(device.close)
                stack.callback(device.off)  # runs first: callbacks run last in, first out
            self._devices.clear()
            self._written = None

    def show(self, state: State) -> None:
        """Show ``state``'s look from its start (the pattern clock restarts), at once."""
        self.state, self._since = state, self._clock()
        self.render()

    def render(self, now: float | None = None) -> None:
        """Draw the frame for ``now`` (default: the clock), scaled by the brightness.
        Unchanged levels are not rewritten."""
        elapsed = (self._clock() if now is None else now) - self._since
        levels = frame(
            self.look, elapsed, pwm=self.config.led_pwm, brightness=self.config.brightness
        )
        if levels == self._written or not self._devices:
            return
        if self.config.led_rgb:
            self._devices[0].value = levels
        else:
            for device, level in zip(self._devices, levels, strict=True):
                device.value = level
        self._written = levels

    async def _animate_forever(self) -> None:
        while True:
            await asyncio.sleep(self._frame_s)
            self.render()


class Panel:
    """The button and the status LEDs, as configured; either or both may be absent.

    ``async with panel:`` opens the pins (PanelError if one cannot be used) and runs the
    button polling and the LED animation as tasks on the loop; ``on_gesture`` (and
    ``on_edge``, for diagnostics: see ButtonInput) is called on the loop. ``show(state)`` is
    called at every change of state. On leaving, however the body ends, the tasks stop, every
    LED is off and every device is closed. With no button and no LEDs configured it does
    nothing and never touches gpiozero's pin factory. ``clock`` times gestures and patterns.
    """

    def __init__(
        self,
        config: PanelConfig,
        on_gesture: Callable[[Gesture], None],
        *,
        poll_s: float = 0.02,
        frame_s: float = 0.02,
        clock: Clock = time.monotonic,
        on_edge: Callable[[Edge], None] | None = None,
    ) -> None:
        self.button = (
            ButtonInput(config, on_gesture, poll_s=poll_s, clock=clock, on_edge=on_edge)
            if config.button_pin
            else None
        )
        self.leds = StatusLeds(config, frame_s=frame_s, clock=clock) if config.led_pins else None
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> Self:
        async with contextlib.AsyncExitStack() as stack:
            for part in (self.button, self.leds):
                if part is not None:
                    await stack.enter_async_context(part)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.aclose()

    def show(self, state: State) -> None:
        """Show ``state`` on the LEDs, its pattern starting now (no-op without LEDs)."""
        if self.leds is not None:
            self.leds.show(state)

    def render(self, now: float | None = None) -> None:
        """Draw the LEDs' frame for ``now`` (default: the clock); for deterministic tests."""
        if self.leds is not None:
            self.leds.render(now)
