"""One scripted exchange over a real Live session: speak an utterance, collect the reply.

``pispeaker demo`` runs it against the embedded emulator; it is the smallest end-to-end
proof that config, credentials, TLS, the SDK and the server agree.
"""

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from google.genai import types
from google.genai.live import AsyncSession

from pispeaker.audio.pcm import INPUT_RATE, byte_count
from pispeaker.config import LiveConfig
from pispeaker.live.client import INPUT_MIME, connect_config, make_client

#: Called with (source, text) for each thing worth showing a person.
Report = Callable[[str, str], None]


@dataclass
class Exchange:
    """What came back for one utterance."""

    reply: bytearray = field(default_factory=bytearray)
    heard: list[str] = field(default_factory=list)
    said: list[str] = field(default_factory=list)
    upload_done_at: float | None = None
    first_audio_at: float | None = None
    turn_complete: bool = False

    @property
    def response_latency_s(self) -> float | None:
        """Seconds from the end of the upload to the first reply audio."""
        if self.upload_done_at is None or self.first_audio_at is None:
            return None
        return self.first_audio_at - self.upload_done_at


async def exchange(
    live: LiveConfig, api_key: str, utterance: bytes, report: Report, realtime: bool = True
) -> Exchange:
    """Open a session, stream ``utterance`` (16 kHz s16le) and return the model's reply."""
    client = make_client(live, api_key)
    result = Exchange()
    async with client.aio.live.connect(model=live.model, config=connect_config(live)) as session:
        report("live", f"session open: {live.model} at {live.base_url} ({live.api_version})")
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(_upload(session, utterance, live.uplink_chunk_ms, realtime, result))
            tasks.create_task(_collect_turn(session, result, report))
    return result


async def _upload(
    session: AsyncSession, pcm: bytes, chunk_ms: int, realtime: bool, result: Exchange
) -> None:
    size = byte_count(chunk_ms / 1000, INPUT_RATE)
    for offset in range(0, len(pcm), size):
        blob = types.Blob(data=pcm[offset : offset + size], mime_type=INPUT_MIME)
        await session.send_realtime_input(audio=blob)
        if realtime:  # a microphone delivers audio no faster than real time
            await asyncio.sleep(chunk_ms / 1000)
    await session.send_realtime_input(audio_stream_end=True)
    result.upload_done_at = time.monotonic()


async def _collect_turn(session: AsyncSession, result: Exchange, report: Report) -> None:
    async for message in session.receive():  # ends after turnComplete
        content = message.server_content
        if message.data:
            if result.first_audio_at is None:
                result.first_audio_at = time.monotonic()
                report("speaker", "first reply audio")
            result.reply.extend(message.data)
        if content and content.input_transcription and content.input_transcription.text:
            result.heard.append(content.input_transcription.text)
            report("user", f"heard: {content.input_transcription.text}")
        if content and content.output_transcription and content.output_transcription.text:
            result.said.append(content.output_transcription.text)
        if content and content.turn_complete:
            result.turn_complete = True
            report("live", "turn complete")
