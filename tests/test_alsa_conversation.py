"""Whole conversations through real libasound: a FIFO-fed microphone PCM, the controller, the
Live API emulator (real SDK over TLS), and a speaker PCM drained in real time."""

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from pispeaker.app import build_controller, started
from pispeaker.audio.alsa import AlsaSink, AlsaSource
from pispeaker.audio.pcm import INPUT_RATE, OUTPUT_RATE, byte_count, silence
from pispeaker.audio.resample import resample
from pispeaker.config import Config
from pispeaker.controller import Controller
from pispeaker.emulator import LiveEmulator, Reply
from pispeaker.states import Event, State
from tests.alsa_rig import AlsaRig, PacedReader, PacedWriter, request
from tests.conftest import StartEmulator, speech


@dataclass
class Speaker:
    controller: Controller
    speaker: PacedReader

    async def reach(self, state: State, count: int = 1) -> None:
        async with asyncio.timeout(15):
            await self.controller.entered(state, count)


BuildSpeaker = Callable[[LiveEmulator, bytes], Awaitable[Speaker]]


def conversation_config(emulator: LiveEmulator) -> Config:
    defaults = Config()
    live = defaults.live.model_copy(
        update={
            "base_url": emulator.base_url,
            "ca_file": emulator.ca_file,
            "silence_duration_ms": 300,
        }
    )
    conversation = defaults.conversation.model_copy(update={"earcons": False})
    return defaults.model_copy(update={"live": live, "conversation": conversation})


@pytest.fixture
async def build_speaker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[BuildSpeaker]:
    """Builds a speaker whose microphone says ``said`` in real time (16 kHz mono) and whose
    speaker plays in real time (24 kHz mono), all through ALSA file PCMs."""
    rig = AlsaRig(tmp_path, monkeypatch)
    async with contextlib.AsyncExitStack() as stack:

        async def build(emulator: LiveEmulator, said: bytes) -> Speaker:
            os.mkfifo(tmp_path / "mic.fifo")
            os.mkfifo(tmp_path / "speaker.fifo")
            mic = PacedWriter(tmp_path / "mic.fifo", said, period=640, period_s=0.02)
            speaker = PacedReader(tmp_path / "speaker.fifo", bytes_per_s=2 * OUTPUT_RATE)
            mic.start()
            speaker.start()
            stack.callback(speaker.hang_up)
            stack.callback(mic.finish)
            source = AlsaSource(request(rig.capture("mic", tmp_path / "mic.fifo"), INPUT_RATE))
            sink = AlsaSink(request(rig.playback("spk", tmp_path / "speaker.fifo"), OUTPUT_RATE))
            controller = build_controller(
                conversation_config(emulator), emulator.api_key, source, sink
            )
            await stack.enter_async_context(started(controller))
            return Speaker(controller, speaker)

        yield build


async def test_a_turn_through_alsa_plays_the_reply_byte_exact(
    emulator: LiveEmulator, build_speaker: BuildSpeaker
) -> None:
    said = speech(0.6)
    rig = await build_speaker(emulator, silence(0.3, INPUT_RATE) + said + silence(3.0, INPUT_RATE))
    rig.controller.dispatch(Event.BUTTON_PRESS)
    await rig.reach(State.LISTENING, count=2)  # after setup, after the reply
    expected = resample(said, INPUT_RATE, OUTPUT_RATE)  # the emulator parrots what it heard
    assert rig.speaker.wait_for(len(expected)) == expected


async def test_a_button_press_through_alsa_stops_the_reply_at_once(
    start_emulator: StartEmulator, build_speaker: BuildSpeaker
) -> None:
    emulator = await start_emulator(pace=0.0)  # the reply arrives in a burst, as it does
    emulator.script.push(Reply(audio="tone", seconds=3.0))
    said = silence(0.3, INPUT_RATE) + speech(0.4) + silence(5.0, INPUT_RATE)
    rig = await build_speaker(emulator, said)
    rig.controller.dispatch(Event.BUTTON_PRESS)
    await rig.reach(State.SPEAKING)
    await asyncio.sleep(0.5)
    rig.controller.dispatch(Event.BUTTON_PRESS)  # barge-in
    played_at_press = len(rig.speaker.received)
    await rig.reach(State.LISTENING, count=2)
    await asyncio.sleep(0.5)
    after_press = len(rig.speaker.received) - played_at_press
    # Still to come out after the press: what the card held (4 x 20 ms), the period being
    # written (20 ms), the pipe's page and the test speaker's read (10 ms); nothing more.
    # (Without the flush, the rest of the 3 s reply plays: about 0.9 s by now.)
    assert played_at_press > byte_count(0.2, OUTPUT_RATE)
    assert after_press <= byte_count(0.08 + 0.02 + 0.01, OUTPUT_RATE) + 4096
