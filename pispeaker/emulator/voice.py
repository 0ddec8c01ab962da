"""The model's voice on the wire: how one model turn is sent, framed as the model frames it.

:class:`Voice` sends audio chunks paced ``options.pace`` times real time with their output
transcription (in one event on multi-part models, in separate events on 2.5), then
``generationComplete``, then, once the client's real-time playback would end,
``turnComplete`` with usage metadata. It also sends the turns that carry no answer: an
interruption, a declined utterance, and search grounding ahead of a reply.

On a background-reasoning model every ``serverContent`` carries ``interactionStatus``:
IN_PROGRESS, except the turnComplete that ends the interaction, which carries IDLE (the SDK's
``receive()`` ends only there). A turn spoken with ``final=False`` (the acknowledgment before
the reasoning) keeps IN_PROGRESS on its turnComplete too.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote_plus

from pispeaker.audio.pcm import INPUT_RATE, OUTPUT_RATE, duration_s
from pispeaker.emulator import wire
from pispeaker.emulator.channel import Channel
from pispeaker.emulator.handshake import SessionConfig
from pispeaker.emulator.script import UserTurn, split_chunks, split_words
from pispeaker.emulator.store import Session

#: Audio tokens per second, as the service bills them.
TOKENS_PER_SECOND = 25
#: The SDK's TurnCompleteReason for "the response is rejected by the model".
RESPONSE_REJECTED = "RESPONSE_REJECTED"


class Voice:
    """Send one connection's model turns; ``sent`` counts the current turn's audio bytes."""

    def __init__(self, channel: Channel, config: SessionConfig, session: Session) -> None:
        self.channel = channel
        self.config = config
        self.session = session
        self.options = channel.shared.options
        self.sent = 0

    async def content(self, body: dict[str, Any], final: bool = True, **extra: Any) -> None:
        """Send one serverContent, with the interaction status if the model reports one."""
        if self.config.profile.background_reasoning:
            idle = final and body.get("turnComplete")
            body = body | {"interactionStatus": "IDLE" if idle else "IN_PROGRESS"}
        await self.channel.send("serverContent", body, **extra)

    async def speak(self, pcm: bytes, text: str, prompt: UserTurn, final: bool = True) -> None:
        """Say ``pcm`` (transcript ``text``) as one whole model turn answering ``prompt``."""
        self.sent = 0
        start = asyncio.get_running_loop().time()
        seconds = await self._stream(pcm, text, start)
        await self.content({"generationComplete": True}, final)
        self.channel.record("generation.complete", audio_bytes=len(pcm))
        # The server assumes real-time playback from the first chunk and holds turnComplete
        # until that playback would end; a barge-in until then still interrupts.
        await _sleep_until(start + seconds * max(self.options.pace, self.options.playback_hold))
        self.channel.remember("model", text, len(pcm))
        await self._complete({"turnComplete": True}, prompt, pcm, final)

    async def interrupted(self) -> None:
        """End the turn in flight: ``interrupted``, then turnComplete (never generationComplete)."""
        await self.content({"interrupted": True})
        await self.content({"turnComplete": True})

    async def decline(self, prompt: UserTurn) -> None:
        """End the turn answering ``prompt`` with no model content: the model chose silence."""
        self.sent = 0
        body = {"turnComplete": True, "turnCompleteReason": RESPONSE_REJECTED}
        await self._complete(body, prompt, b"", final=True)

    async def ground(self, queries: tuple[str, ...]) -> None:
        """Send the Google Search grounding of the reply about to be spoken."""
        chunks = [{"web": {"uri": search_uri(query), "title": query}} for query in queries]
        grounding = {"webSearchQueries": list(queries), "groundingChunks": chunks}
        await self.content({"groundingMetadata": grounding})
        self.channel.record("search.grounding", queries=list(queries))

    async def _stream(self, pcm: bytes, text: str, start: float) -> float:
        """Send ``pcm`` in chunks paced from loop time ``start``; the seconds of audio sent."""
        chunks = split_chunks(pcm)
        pieces = split_words(text, len(chunks)) if self.config.output_transcription else []
        offset = 0.0
        for index, chunk in enumerate(chunks):
            await _sleep_until(start + offset * self.options.pace)
            await self._send_audio(chunk, pieces[index] if index < len(pieces) else "")
            offset += duration_s(chunk, OUTPUT_RATE)
        return offset

    async def _send_audio(self, chunk: bytes, transcript: str) -> None:
        content: dict[str, Any] = {"modelTurn": {"parts": [wire.audio_part(chunk)]}}
        transcription = {"outputTranscription": {"text": transcript}} if transcript else {}
        if self.config.profile.multi_part:
            await self.content(content | transcription)
        else:  # 2.5 models: one part per event
            await self.content(content)
            if transcription:
                await self.content(transcription)
        self.session.downloaded_audio_bytes += len(chunk)
        self.sent += len(chunk)
        self.channel.record("audio.out", bytes=len(chunk))

    async def _complete(
        self, body: dict[str, Any], prompt: UserTurn, pcm: bytes, final: bool
    ) -> None:
        """Send a turnComplete ``body`` with usage; a final one is followed by a new handle."""
        await self.content(body, final, usageMetadata=usage_metadata(prompt, pcm))
        self.channel.record("turn.complete", turn=self.session.turns, audio_bytes=len(pcm))
        if final and self.config.resumable:
            await self.channel.send_handle()


def search_uri(query: str) -> str:
    """Where a grounding chunk for ``query`` points (the real service sends redirect links)."""
    return f"https://www.google.com/search?q={quote_plus(query)}"


async def _sleep_until(when: float) -> None:
    """Sleep until event-loop time ``when`` (yielding once even if it has passed)."""
    await asyncio.sleep(max(0.0, when - asyncio.get_running_loop().time()))


def usage_metadata(turn: UserTurn, reply_pcm: bytes) -> dict[str, Any]:
    """The ``usageMetadata`` of a turn: audio tokens in and out (words for a text turn)."""
    prompt = round(duration_s(turn.audio, INPUT_RATE) * TOKENS_PER_SECOND) or len(
        (turn.text or "").split()
    )
    response = round(duration_s(reply_pcm, OUTPUT_RATE) * TOKENS_PER_SECOND)
    return {
        "promptTokenCount": prompt,
        "responseTokenCount": response,
        "totalTokenCount": prompt + response,
        "promptTokensDetails": [{"modality": "AUDIO", "tokenCount": prompt}],
        "responseTokensDetails": [{"modality": "AUDIO", "tokenCount": response}],
    }
