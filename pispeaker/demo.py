"""``pispeaker demo``: the whole conversation engine offline, on the embedded emulator.

It needs no sound card, no Raspberry Pi, no API key and no network. A simulated button press
opens a conversation; the microphone says a WAV file (or a recorded spoken request) in
real time; the emulator's model parrots it; the reply plays on an in-memory speaker and is
written to a WAV file; the follow-up window passes and the speaker goes idle again. The state
timeline is printed with the LED look of each state.
"""

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

from pispeaker.app import build_controller, started
from pispeaker.audio.memory import MemorySink, MemorySource
from pispeaker.audio.pcm import INPUT_RATE, OUTPUT_RATE, duration_s, silence
from pispeaker.audio.wavfile import read_wav, write_wav
from pispeaker.bench.speech import request_utterance
from pispeaker.config import Config, parse_config
from pispeaker.emulator import EmulatorOptions, LiveEmulator
from pispeaker.panel.looks import LOOKS
from pispeaker.states import Event, State, Status

#: Seconds of the spoken request the demo's user says.
UTTERANCE_S = 2.5
#: Longest the demo may take beyond the audio itself.
SLACK_S = 30.0


@dataclass(frozen=True)
class DemoOptions:
    """What to say, where to write the reply, and whether to skip the follow-up wait."""

    input_wav: Path | None
    output_wav: Path
    fast: bool = False


def demo_utterance() -> bytes:
    """What the demo's user says unless given a WAV file: the start of a spoken request
    (espeak-ng, shipped with the bench), real speech to the on-device voice detector."""
    return request_utterance(UTTERANCE_S)


def with_model(config: Config, model: str) -> Config:
    """``config`` talking to ``model``, checked against that model's rules like a file."""
    data = config.model_dump(mode="json", exclude_none=True)
    return parse_config(data | {"live": data["live"] | {"model": model}}, "--model")


def _demo_config(config: Config, emulator: LiveEmulator, fast: bool) -> Config:
    live = config.live.model_copy(
        update={"base_url": emulator.base_url, "ca_file": emulator.ca_file}
    )
    conversation = config.conversation.model_copy(
        # Its room has no echo: the microphone need not be held while the reply plays.
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

    said = read_wav(options.input_wav, INPUT_RATE) if options.input_wav else demo_utterance()
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
