"""Shared fixtures: a running Live API emulator and real google-genai clients pointed at it."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pytest
from google import genai
from google.genai import types
from google.genai.live import AsyncSession

from pispeaker.audio.memory import MemorySink, MemorySource
from pispeaker.audio.pcm import (
    INPUT_RATE,
    OUTPUT_RATE,
    byte_count,
    duration_s,
    silence,
    to_samples,
    tone,
)
from pispeaker.audio.resample import resample
from pispeaker.backoff import Backoff
from pispeaker.config import LiveConfig
from pispeaker.controller import Controller, Policy
from pispeaker.conversation.history import History
from pispeaker.emulator import EmulatorOptions, LiveEmulator, client_context
from pispeaker.live.link import LiveLink
from pispeaker.live.port import LinkEvent, ModelAudio
from pispeaker.states import State
from pispeaker.tools import Tool

MODEL = "gemini-2.5-flash-native-audio-preview-12-2025"
#: Replies as fast as possible, no thinking time: tests wait on events, never on the clock.
FAST = EmulatorOptions(pace=0.0, playback_hold=0.0, response_latency_s=0.0, default_silence_ms=200)
CHUNK = 640  # 20 ms of 16 kHz s16le

StartEmulator = Callable[..., Awaitable[LiveEmulator]]


@pytest.fixture
async def start_emulator() -> AsyncIterator[StartEmulator]:
    """Start emulators with FAST options overridden by keyword; all stop after the test."""
    async with AsyncExitStack() as stack:

        async def start(**overrides: Any) -> LiveEmulator:
            emulator = LiveEmulator(replace(FAST, **overrides))
            return await stack.enter_async_context(emulator)

        yield start


@pytest.fixture
async def emulator(start_emulator: StartEmulator) -> LiveEmulator:
    """An emulator with FAST options."""
    return await start_emulator()


def sdk_client(
    emulator: LiveEmulator,
    api_key: str | None = None,
    api_version: str = "v1beta",
    base_url: str | None = None,
    **websocket_args: Any,
) -> genai.Client:
    """A real google-genai client that trusts the emulator's CA."""
    args = {"ssl": client_context(emulator.ca_file), "ping_interval": None} | websocket_args
    return genai.Client(
        api_key=api_key or emulator.api_key,
        http_options=types.HttpOptions(
            base_url=base_url or emulator.base_url,
            api_version=api_version,
            async_client_args=args,
        ),
    )


def audio_config(**fields: Any) -> types.LiveConnectConfig:
    """An AUDIO LiveConnectConfig with extra fields."""
    return types.LiveConnectConfig(response_modalities=[types.Modality.AUDIO], **fields)


def speech(seconds: float = 1.0, frequency_hz: float = 300.0, amplitude: float = 0.3) -> bytes:
    """A test 'utterance': a tone the energy VAD hears as speech."""
    return tone(frequency_hz, seconds, INPUT_RATE, amplitude)


def padded(pcm: bytes, lead_s: float = 0.2, tail_s: float = 0.5) -> bytes:
    """Surround audio with digital silence (frame-aligned for 20 ms frames)."""
    return silence(lead_s, INPUT_RATE) + pcm + silence(tail_s, INPUT_RATE)


async def send_audio(session: AsyncSession, pcm: bytes, chunk: int = CHUNK) -> None:
    """Stream 16 kHz audio in 20 ms messages, as fast as the socket takes them."""
    for offset in range(0, len(pcm), chunk):
        blob = types.Blob(data=pcm[offset : offset + chunk], mime_type="audio/pcm;rate=16000")
        await session.send_realtime_input(audio=blob)


@dataclass
class Turn:
    """Everything one ``session.receive()`` yielded (it ends after turnComplete)."""

    messages: list[types.LiveServerMessage] = field(default_factory=list)

    def contents(self) -> list[types.LiveServerContent]:
        return [m.server_content for m in self.messages if m.server_content]

    @property
    def chunks(self) -> list[bytes]:
        return [m.data for m in self.messages if m.data]

    @property
    def audio(self) -> bytes:
        return b"".join(self.chunks)

    @property
    def mime_types(self) -> set[str]:
        return {
            part.inline_data.mime_type or ""
            for content in self.contents()
            for part in (content.model_turn.parts or [] if content.model_turn else [])
            if part.inline_data
        }

    def flags(self, name: str) -> list[int]:
        """Indexes of the messages whose server_content has ``name`` set."""
        return [
            i
            for i, m in enumerate(self.messages)
            if m.server_content and getattr(m.server_content, name)
        ]

    def text(self, name: str) -> str:
        return "".join(
            getattr(content, name).text or ""
            for content in self.contents()
            if getattr(content, name)
        )

    def of(self, name: str) -> list[Any]:
        """The non-empty ``name`` attribute of every message (tool_call, go_away, ...)."""
        return [getattr(m, name) for m in self.messages if getattr(m, name)]


async def next_turn(session: AsyncSession) -> Turn:
    """Collect one ``receive()``: every message up to and including turnComplete."""
    turn = Turn()
    async for message in session.receive():
        turn.messages.append(message)
    return turn


class Recorder:
    """Collects link events and lets a test wait for one."""

    def __init__(self) -> None:
        self.events: list[LinkEvent] = []
        self._changed = asyncio.Event()

    def __call__(self, event: LinkEvent) -> None:
        self.events.append(event)
        self._changed.set()

    async def wait_for(
        self, kind: type, where: Callable[[LinkEvent], bool] = lambda e: True, count: int = 1
    ) -> LinkEvent:
        async with asyncio.timeout(10):
            while True:
                matching = [e for e in self.events if isinstance(e, kind) and where(e)]
                if len(matching) >= count:
                    return matching[count - 1]
                self._changed.clear()
                await self._changed.wait()

    def audio(self) -> bytes:
        return b"".join(e.pcm for e in self.events if isinstance(e, ModelAudio))


@dataclass
class RecordingBackoff(Backoff):
    """A Backoff that keeps every delay it gave."""

    delays: list[float] = field(default_factory=list)

    def next_delay(self) -> float:
        self.delays.append(delay := super().next_delay())
        return delay


class RecordedController(Controller):
    """A controller that keeps a History of everything it did, as ``record``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.record = History()
        self.observe(self.record)


@dataclass
class Rig:
    controller: RecordedController
    source: MemorySource
    sink: MemorySink

    async def reach(self, state: State, count: int = 1, within_s: float = 10.0) -> None:
        async with asyncio.timeout(within_s):
            await self.controller.entered(state, count)


class EchoingSource(MemorySource):
    """A microphone in a room: it says ``audio`` (in real time) and hears what ``sink``
    plays ``delay_s`` later, ``gain_db`` down, as a loudspeaker's echo."""

    def __init__(self, audio: bytes, sink: MemorySink, delay_s: float, gain_db: float) -> None:
        super().__init__(audio, realtime=True)
        self.sink, self.delay_s, self.gain = sink, delay_s, 10 ** (gain_db / 20)

    async def read(self) -> bytes:
        chunk = await super().read()
        end = self.captured_at - self.delay_s
        start = end - duration_s(chunk, INPUT_RATE)
        # 10 ms either side: the resampler's edges fall outside the chunk
        echo = resample(self.sink.heard_between(start - 0.01, end + 0.01), OUTPUT_RATE, INPUT_RATE)
        echo = echo[byte_count(0.01, INPUT_RATE) :][: len(chunk)]
        mixed = to_samples(chunk).astype(np.float64) + to_samples(echo) * self.gain
        return bytes(np.clip(np.round(mixed), -32768, 32767).astype("<i2").tobytes())


@pytest.fixture
async def rig_factory() -> AsyncIterator[Callable[..., "asyncio.Future[Rig]"]]:
    tasks: list[asyncio.Task[None]] = []

    async def build(
        emulator: LiveEmulator,
        audio: bytes,
        policy: Policy | None = None,
        api_key: str | None = None,
        live_settings: dict[str, object] | None = None,
        echo: tuple[float, float] | None = None,
        **sleep: object,
    ) -> Rig:
        """``echo``: (delay s, gain dB) of the speaker heard by the microphone."""
        live = LiveConfig().model_copy(
            update={
                "base_url": emulator.base_url,
                "ca_file": emulator.ca_file,
                "silence_duration_ms": 300,
            }
            | (live_settings or {})
        )

        def make_link(
            report: Callable[[LinkEvent], None], tools: Callable[[], list[Tool]]
        ) -> LiveLink:
            return LiveLink(live, api_key or emulator.api_key, report, tools)

        sink = MemorySink(realtime=True)
        source = EchoingSource(audio, sink, *echo) if echo else MemorySource(audio, realtime=True)
        controller = RecordedController(
            source,
            sink,
            make_link,
            policy or Policy(follow_up_s=3.0),
            **sleep,
        )  # type: ignore[arg-type]
        await source.start()
        await sink.start()
        tasks.append(asyncio.create_task(controller.run()))
        return Rig(controller, source, sink)

    yield build  # type: ignore[misc]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def record_uplink(controller: Controller) -> bytearray:
    """Everything ``controller`` hands to its Live link from now on (still sent)."""
    sent = bytearray()
    send = controller.link.send_audio

    def recording(pcm: bytes) -> None:
        sent.extend(pcm)
        send(pcm)

    controller.link.send_audio = recording  # type: ignore[method-assign]
    return sent


class SlowTool:
    """A tool that never finishes: ``started`` once called, ``cancelled`` once cancelled."""

    def __init__(self, name: str) -> None:
        self.started, self.cancelled = asyncio.Event(), asyncio.Event()
        self.tool = Tool(name, "a slow lookup", {"type": "object"}, self._run)

    async def _run(self, _args: dict[str, Any]) -> str:
        self.started.set()
        try:
            await asyncio.sleep(60)
        finally:
            self.cancelled.set()
        return "never"


_REPORT: list[str] = []


@pytest.fixture
def report() -> list[str]:
    """Lines a test measured (e.g. the unit's exposure score), printed after the summary."""
    return _REPORT


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in _REPORT:
        terminalreporter.write_line(line)
