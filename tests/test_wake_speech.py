"""The real openWakeWord models on synthesized speech, heard through real libasound: a
48 kHz stereo capture PCM fed through a FIFO (faster than real time where the audio is
long), the ALSA adapter's resampling, and the wake-word listener's worker thread.

Fixtures come from tests/speech.py (espeak-ng and sox, cached in tests/.cache/speech).
"""

import asyncio
import os
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from pispeaker.app import build_controller, started, wake_maker
from pispeaker.audio.alsa import AlsaSource
from pispeaker.audio.memory import MemorySink
from pispeaker.audio.pcm import INPUT_RATE, to_samples
from pispeaker.config import Config
from pispeaker.conversation.history import History
from pispeaker.emulator import LiveEmulator
from pispeaker.states import State
from pispeaker.wake.catalog import builtin_names, resolve
from pispeaker.wake.detector import Detection, Frame, WakeDetector
from pispeaker.wake.engine import OpenWakeWordScorer
from pispeaker.wake.listener import WakeListener
from tests import speech
from tests.alsa_rig import AlsaRig, PacedWriter, request
from tests.conftest import record_uplink

RATE, CHANNELS = 48000, 2  # what a USB microphone gives
PERIOD = RATE * CHANNELS * 2 // 50  # 20 ms

Hear = Callable[..., Awaitable[list[Frame]]]


def samples_s(path: Path) -> float:
    with wave.open(str(path)) as wav:
        return wav.getnframes() / wav.getframerate()


def joined(paths: list[Path], out: Path) -> Path:
    """One 16 kHz WAV of ``paths`` in order, after 1.5 s of silence (the warm-up)."""
    quiet = speech.silence(1.5).tobytes()
    return speech.write_wav(out, quiet + b"".join(speech.read_pcm(p) for p in paths) + quiet)


@pytest.fixture(scope="module")
def all_models() -> OpenWakeWordScorer:
    return OpenWakeWordScorer(resolve(builtin_names()))


@pytest.fixture
async def hear(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Hear]:
    """Plays a 16 kHz WAV into a 48 kHz stereo ALSA capture PCM ``speed`` times faster than
    real time and returns every frame the listener scored."""
    rig = AlsaRig(tmp_path, monkeypatch)
    writers: list[PacedWriter] = []

    async def run(
        wav: Path,
        scorer: OpenWakeWordScorer,
        thresholds: dict[str, float] | None = None,
        refractory_s: float = 2.0,
        speed: float = 1.0,
    ) -> list[Frame]:
        scorer.reset()
        said = speech.to_rate(wav, RATE, CHANNELS, raw=True).read_bytes()
        fifo = tmp_path / f"mic{len(writers)}.fifo"
        os.mkfifo(fifo)
        writers.append(PacedWriter(fifo, said, period=PERIOD * 5, period_s=0.1 / speed))
        writers[-1].start()
        # Faster than real time, a busy loop may lag the device by more than the service's
        # backlog: this one holds it all, like the listener's below.
        source = AlsaSource(request(rig.capture(fifo.stem, fifo), RATE, CHANNELS), backlog_s=900)
        chunks = int(samples_s(wav) * 50) - 2  # 20 ms each, all but the last
        collected = Collected(last_end_s=chunks // 4 * 0.08)  # 4 chunks to a frame
        detector = WakeDetector(
            scorer, thresholds or dict.fromkeys(scorer.names, 0.5), refractory_s, warmup_s=1.5
        )
        # The backlog holds it all: the test asserts on every frame, however slow the machine.
        listener = WakeListener(detector, lambda frame: None, collected.add, backlog_s=900)
        await source.start()
        await listener.start()
        try:
            for _ in range(chunks):
                listener.feed(await source.read())
            async with asyncio.timeout(120):
                await collected.all_in.wait()
        finally:
            await listener.stop()
            await source.stop()
        assert listener.dropped_bytes == 0
        assert source.dropped == 0
        return collected.frames

    yield run
    for writer in writers:
        writer.finish()


@dataclass
class Collected:
    """The frames scored so far; ``all_in`` is set once the last one has come."""

    last_end_s: float
    frames: list[Frame] = field(default_factory=list)
    all_in: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, frame: Frame) -> None:
        self.frames.append(frame)
        if frame.end_s >= self.last_end_s - 1e-6:
            self.all_in.set()


def detections(frames: list[Frame]) -> list[Detection]:
    return [frame.detection for frame in frames if frame.detection]


async def test_hey_jarvis_fires_exactly_once_per_utterance(
    hear: Hear, all_models: OpenWakeWordScorer, tmp_path: Path
) -> None:
    phrases = speech.wake_phrases()
    frames = await hear(joined(phrases, tmp_path / "all.wav"), all_models, speed=4.0)
    found = detections(frames)
    assert [d.model for d in found] == ["hey_jarvis"] * len(phrases)
    starts = [1.5]
    for phrase in phrases:
        starts.append(starts[-1] + samples_s(phrase))
    for detection, begin, end in zip(found, starts[:-1], starts[1:], strict=True):
        assert begin < detection.end_s <= end  # each inside its own utterance
        assert detection.score >= 0.5


async def test_ten_minutes_of_other_speech_and_noise_fire_no_model(
    hear: Hear, all_models: OpenWakeWordScorer
) -> None:
    frames = await hear(speech.other_speech(minutes=10.0), all_models, speed=40.0)
    assert frames[-1].end_s > 599.0  # all of it was heard
    assert detections(frames) == []
    peak = max(score for frame in frames for score in frame.scores.values())
    assert peak < 0.5


async def test_each_model_keeps_its_own_threshold(
    hear: Hear, all_models: OpenWakeWordScorer, tmp_path: Path
) -> None:
    wav = joined(speech.wake_phrases()[:2], tmp_path / "two.wav")
    frames = await hear(wav, all_models, speed=4.0)
    peak = max(frame.scores["hey_jarvis"] for frame in frames)
    strict = dict.fromkeys(all_models.names, 0.5) | {"hey_jarvis": peak + 0.002}
    assert detections(await hear(wav, all_models, strict, speed=4.0)) == []
    lenient = dict.fromkeys(all_models.names, 0.5) | {"hey_jarvis": peak - 0.1}
    assert len(detections(await hear(wav, all_models, lenient, speed=4.0))) == 2


async def test_the_refractory_period_swallows_a_quick_repeat(
    hear: Hear, all_models: OpenWakeWordScorer, tmp_path: Path
) -> None:
    phrases = speech.wake_phrases()[:2]  # about 2.8 s apart
    wav = joined(phrases, tmp_path / "repeat.wav")
    assert len(detections(await hear(wav, all_models, refractory_s=1.0, speed=4.0))) == 2
    assert len(detections(await hear(wav, all_models, refractory_s=10.0, speed=4.0))) == 1


async def test_the_words_after_hey_jarvis_reach_the_session_and_nothing_before(
    emulator: LiveEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole daemon minus the speaker: real-time ALSA capture, the real models with the
    default [wake] settings, the pre-roll and the Live link to the emulator."""
    said = speech.wake_then_request()
    fifo = tmp_path / "mic.fifo"
    os.mkfifo(fifo)
    audio = speech.to_rate(said.path, RATE, CHANNELS, raw=True).read_bytes()
    writer = PacedWriter(fifo, audio + bytes(PERIOD * 100), period=PERIOD, period_s=0.02)
    writer.start()
    rig = AlsaRig(tmp_path, monkeypatch)
    source = AlsaSource(request(rig.capture("mic", fifo), RATE, CHANNELS))
    config = Config()
    live = config.live.model_copy(
        update={"base_url": emulator.base_url, "ca_file": emulator.ca_file}
    )
    config = config.model_copy(update={"live": live})
    make_wake = wake_maker(config.wake)
    controller = build_controller(
        config, emulator.api_key, source, MemorySink(), make_wake=make_wake
    )
    sent = record_uplink(controller)
    history = History()
    controller.observe(history)
    request_end = said.request_end * 2  # bytes
    try:
        async with started(controller), asyncio.timeout(20):
            await controller.entered(State.LISTENING)
            [wake] = history.wakes
            start = round(wake.end_s * INPUT_RATE) * 2
            # The uplink has no event to wait on: poll it.
            while len(sent) < request_end - start:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    finally:
        writer.finish()
    assert wake.model == "hey_jarvis"
    # Fired after the wake word and before the request: nothing said before it is sent,
    # and all of the request is.
    assert said.wake_start * 2 < start <= said.request_start * 2
    original = speech.read_pcm(said.path)[start:request_end]
    assert similarity(bytes(sent[: len(original)]), original) > 0.95


def similarity(a: bytes, b: bytes) -> float:
    """Normalized correlation at lag 0: 1.0 for the same audio, about 0 for unrelated."""
    x, y = to_samples(a).astype(np.float64), to_samples(b).astype(np.float64)
    return float(np.dot(x, y) / np.sqrt(np.dot(x, x) * np.dot(y, y)))
