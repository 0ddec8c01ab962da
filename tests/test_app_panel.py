"""The composed speaker with its panel: gpiozero's MockFactory button and RGB LED, memory
audio ports, the real Live link and the emulator. The button drives the conversation, the
LEDs follow every state, and they go dark however the speaker stops."""

import asyncio
from collections.abc import Iterator

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from pispeaker.app import build_controller, build_panel, started
from pispeaker.audio.memory import MemorySink, MemorySource
from pispeaker.audio.pcm import INPUT_RATE, silence
from pispeaker.config import Config, PanelConfig
from pispeaker.controller import Controller
from pispeaker.emulator import LiveEmulator
from pispeaker.panel.looks import frame, looks_for
from pispeaker.states import State
from tests.conftest import speech
from tests.panel_rig import mock_pins

BUTTON, RED, GREEN, BLUE = 17, 5, 6, 13
PANEL = PanelConfig(button_pin=BUTTON, led_pins=[RED, GREEN, BLUE], led_rgb=True, hold_s=0.5)


@pytest.fixture
def pins() -> Iterator[MockFactory]:
    with mock_pins(MockPWMPin) as factory:
        yield factory


def speaker(emulator: LiveEmulator, said: bytes) -> Controller:
    config = Config()
    live = config.live.model_copy(
        update={"base_url": emulator.base_url, "ca_file": emulator.ca_file}
    )
    config = config.model_copy(update={"live": live, "panel": PANEL})
    source = MemorySource(said, realtime=True)
    return build_controller(config, emulator.api_key, source, MemorySink(realtime=True))


def leds(pins: MockFactory) -> tuple[float, float, float]:
    return tuple(pins.pin(pin).state for pin in (RED, GREEN, BLUE))  # type: ignore[return-value]


async def press(pins: MockFactory, held_s: float = 0.1) -> None:
    button = pins.pin(BUTTON)
    button.drive_low()
    await asyncio.sleep(held_s)  # a person's press: the recogniser times it
    button.drive_high()


async def reach(controller: Controller, state: State, count: int = 1) -> None:
    async with asyncio.timeout(10):
        await controller.entered(state, count)


async def test_the_button_starts_and_ends_a_talk_and_the_leds_follow(
    emulator: LiveEmulator, pins: MockFactory
) -> None:
    controller = speaker(emulator, silence(8.0, INPUT_RATE))
    panel = build_panel(PANEL, controller)
    looks = looks_for(PANEL.led_pins, PANEL.looks, PANEL.led_pwm)
    async with started(controller, panel):
        assert leds(pins) == (0.0, 0.0, 0.0)  # IDLE: off
        await press(pins)
        await reach(controller, State.LISTENING)
        panel.render(0.0)  # the pattern's frame at its start, drawn now
        assert leds(pins) == pytest.approx(frame(looks[State.LISTENING], 0.0))
        assert leds(pins)[2] > 0.5  # listening is blue
        await press(pins)  # a press while listening ends the talk
        await reach(controller, State.IDLE, count=2)
    assert leds(pins) == (0.0, 0.0, 0.0)


async def test_holding_the_button_mutes_and_shows_red(
    emulator: LiveEmulator, pins: MockFactory
) -> None:
    controller = speaker(emulator, speech(0.4) + silence(4.0, INPUT_RATE))
    panel = build_panel(PANEL, controller)
    async with started(controller, panel):
        await press(pins, held_s=0.8)  # hold_s is 0.5
        await reach(controller, State.MUTED)
        panel.render(0.0)
        red, green, blue = leds(pins)
        assert red > 0.5
        assert green == blue == 0.0
        assert controller.link.sent_bytes == 0
    assert leds(pins) == (0.0, 0.0, 0.0)


async def test_the_leds_go_dark_when_the_speaker_crashes(
    emulator: LiveEmulator, pins: MockFactory
) -> None:
    controller = speaker(emulator, silence(4.0, INPUT_RATE))
    panel = build_panel(PANEL, controller)
    with pytest.raises(RuntimeError, match="a bug"):
        async with started(controller, panel):
            await press(pins)
            await reach(controller, State.LISTENING)
            panel.render(0.0)
            assert leds(pins) != (0.0, 0.0, 0.0)
            raise RuntimeError("a bug")
    assert leds(pins) == (0.0, 0.0, 0.0)
