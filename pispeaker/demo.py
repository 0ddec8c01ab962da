"""``pispeaker demo``: a whole conversation turn offline, on the embedded Live API emulator.

It needs no sound card, no Raspberry Pi, no API key and no network: the utterance comes
from a WAV file (or a generated one), the emulator parrots it back as the model's reply,
and the reply is written to a WAV file.
"""

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pispeaker.audio.pcm import INPUT_RATE, OUTPUT_RATE, duration_s, silence
from pispeaker.audio.wavfile import read_wav, write_wav
from pispeaker.config import Config
from pispeaker.emulator import EmulatorOptions, LiveEmulator
from pispeaker.live.smoke import exchange


@dataclass(frozen=True)
class DemoOptions:
    """What to say, where to write the reply, and whether to run in real time."""

    input_wav: Path | None
    output_wav: Path
    realtime: bool = True


def spoken_like_utterance(seconds: float = 1.6) -> bytes:
    """A speech-like test signal: voiced syllables (harmonics of 140 Hz) with an envelope."""
    t = np.arange(round(seconds * INPUT_RATE)) / INPUT_RATE
    voice = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 8))
    syllables = np.clip(np.sin(2 * np.pi * 2.5 * t), 0.15, None)
    pcm = bytes(np.round(0.25 * 32767 * voice / 2.6 * syllables).astype("<i2").tobytes())
    return silence(0.3, INPUT_RATE) + pcm + silence(0.3, INPUT_RATE)


async def run_demo(config: Config, options: DemoOptions) -> int:
    """Run the demo and print its timeline; 0 when a full reply came back."""
    started = time.monotonic()

    def report(source: str, text: str) -> None:
        print(f"{time.monotonic() - started:7.3f}s  {source:<9} {text}", flush=True)

    utterance = (
        read_wav(options.input_wav, INPUT_RATE) if options.input_wav else spoken_like_utterance()
    )
    emulator_options = EmulatorOptions(playback_hold=1.0 if options.realtime else 0.0)
    async with LiveEmulator(emulator_options) as emulator:
        report("emulator", f"Live API emulator at {emulator.base_url}")
        live = config.live.model_copy(
            update={"base_url": emulator.base_url, "ca_file": emulator.ca_file}
        )
        report("mic", f"speaking {duration_s(utterance, INPUT_RATE):.2f} s of audio")
        result = await exchange(live, emulator.api_key, utterance, report, options.realtime)
    write_wav(options.output_wav, bytes(result.reply), OUTPUT_RATE)
    if result.said:
        report("model", f"said: {''.join(result.said)}")
    if result.response_latency_s is not None:
        report("metrics", f"first reply audio {result.response_latency_s:.3f} s after speech end")
    seconds = duration_s(bytes(result.reply), OUTPUT_RATE)
    report("speaker", f"wrote {seconds:.2f} s of 24 kHz reply audio to {options.output_wav}")
    return 0 if result.turn_complete and result.reply else 1
