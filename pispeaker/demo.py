"""``pispeaker demo``: the whole conversation engine offline, on the embedded emulator.

It needs no sound card, no Raspberry Pi, no API key and no network. A simulated button press
opens a conversation; the microphone says a WAV file (or a generated voice-like signal) in
real time; the emulator's model parrots it; the reply plays on an in-memory speaker and is
written to a WAV file; the follow-up window passes and the speaker goes idle again. The state
timeline is printed with the LED look of each state.
"""

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pispeaker.app import build_controller, started
from pispeaker.audio.memory import MemorySink, MemorySource
from pispeaker.audio.pcm import INPUT_RATE, OUTPUT_RATE, duration_s, silence
from pispeaker.audio.wavfile import read_wav, write_wav
from pispeaker.config import Config, parse_config
from pispeaker.emulator import EmulatorOptions, LiveEmulator
from pispeaker.panel.looks import LOOKS
from pispeaker.states import Event, State, Status

#: Longest the demo may take beyond the audio itself.
SLACK_S = 30.0


@dataclass(frozen=True)
class DemoOptions:
    """What to say, where to write the reply, and whether to skip the follow-up wait."""

    input_wav: Path | None
    output_wav: Path
    fast: bool = False


def spoken_like_utterance(seconds: float = 1.6) -> bytes:
    """A speech-like test signal: voiced syllables (harmonics of 140 Hz) with an envelope."""
    t = np.arange(round(seconds * INPUT_RATE)) / INPUT_RATE
    voice = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 8))
    syllables = np.clip(np.sin(2 * np.pi * 2.5 * t), 0.15, None)
    return bytes(np.round(0.25 * 32767 * voice / 2.6 * syllables).astype("<i2").tobytes())


def with_model(config: Config, model: str) -> Config:
    """``config`` talking to ``model``, checked against that model's rules like a file."""
    data = config.model_dump(mode="json", exclude_none=True)
    return parse_config(data | {"live": data["live"] | {"model": model}}, "--model")


def _demo_config(config: Config, emulator: LiveEmulator, fast: bool) -> Config:
    live = config.live.model_copy(
        update={"base_url": emulator.base_url, "ca_file": emulator.ca_file}
    )
    conversation = config.conversation.model_copy(
        # Its room has no echo, and its voice-like signal is no speech to a voice model:
        # the level gate hears it, as it hears a WAV file's voice.
        update={"earcons": False, "duplex": "off"} | ({"follow_up_s": 1.0} if fast else {})
    )
    return config.model_copy(update={"live": live, "conversation": conversation})


async def run_demo(config: Config, options: DemoOptions) -> int:
    """Run one conversation and print its timeline; 0 when a reply played and it ended."""
    started_at = time.monotonic()

    def report(source: str, text: str) -> None:
        print(f"{time.monotonic() - started_at:7.3f}s  {source:<9} {text}", flush=True)

    def show(status: Status) -> None:
        report("state", f"{status.state.name:<12} LED: {LOOKS[status.state]}")

    said = read_wav(options.input_wav, INPUT_RATE) if options.input_wav else spoken_like_utterance()
    async with LiveEmulator(EmulatorOptions()) as emulator:
        report("emulator", f"Live API emulator at {emulator.base_url}, {config.live.model}")
        config = _demo_config(config, emulator, options.fast)
        room = (
            silence(0.3, INPUT_RATE)
            + said
            + silence(config.conversation.follow_up_s + 2, INPUT_RATE)
        )
        sink = MemorySink(realtime=True)
        controller = build_controller(
            config, emulator.api_key, MemorySource(room, realtime=True), sink, show
        )
        async with started(controller):
            report("button", f"pressed (simulated); you say {duration_s(said, INPUT_RATE):.2f} s")
            controller.dispatch(Event.BUTTON_PRESS)
            async with asyncio.timeout(duration_s(room, INPUT_RATE) + SLACK_S):
                await controller.entered(State.IDLE, count=2)  # back to idle: it ended
    write_wav(options.output_wav, bytes(sink.played), OUTPUT_RATE)
    seconds = duration_s(bytes(sink.played), OUTPUT_RATE)
    report("speaker", f"played {seconds:.2f} s of reply; written to {options.output_wav}")
    return 0 if sink.played else 1
