"""A rig for panel tests: gpiozero's real MockFactory, a hand-set clock, and a recorder of
gestures and edges that tests wait on (with timeouts) instead of sleeping."""

import asyncio
import contextlib
from collections.abc import Callable, Iterator

from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockPin

from pispeaker.panel.gestures import Gesture
from pispeaker.panel.gpio import Edge

WAIT_S = 5.0  # generous: every wait ends on an event long before this


@contextlib.contextmanager
def mock_pins(pin_class: type[MockPin] = MockPin) -> Iterator[MockFactory]:
    """Make a MockFactory gpiozero's pin factory for the duration; reset it afterwards."""
    previous = Device.pin_factory
    factory = MockFactory(pin_class=pin_class)
    Device.pin_factory = factory
    try:
        yield factory
    finally:
        factory.reset()
        Device.pin_factory = previous


class FakeClock:
    """A clock the test sets by hand; ``read()`` waits until the code under test reads it
    (from any thread), e.g. until the LED animation has drawn a frame at the new time."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now
        self._loop = asyncio.get_running_loop()
        self._read = asyncio.Event()

    def __call__(self) -> float:
        self._loop.call_soon_threadsafe(self._read.set)
        return self.now

    async def read(self) -> None:
        self._read.clear()
        async with asyncio.timeout(WAIT_S):
            await self._read.wait()


class Recorder:
    """Collects gestures and edges, in order, and lets a test wait for a condition on them."""

    def __init__(self) -> None:
        self.gestures: list[Gesture] = []
        self.edges: list[Edge] = []
        self._changed = asyncio.Event()

    def gesture(self, gesture: Gesture) -> None:
        self.gestures.append(gesture)
        self._changed.set()

    def edge(self, edge: Edge) -> None:
        self.edges.append(edge)
        self._changed.set()

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT_S):
            while not condition():
                self._changed.clear()
                await self._changed.wait()

    async def wait_for_edge(self, pressed: bool, at: float) -> None:
        """Until the panel has seen the button's level ``pressed`` at clock time ``at``."""
        await self.wait_until(lambda: any(e.pressed is pressed and e.at == at for e in self.edges))
