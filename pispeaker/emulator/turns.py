"""Turn generation: user turns answered one at a time, with model audio paced as real.

User turns queue (from the VAD, marked activity, text, or complete client content) and are
answered in order, each with the script's next reply: its input transcription, the response
latency, its tool calls, then audio chunks sent ``options.pace`` times real time with their
output transcription, ``generationComplete``, and ``turnComplete`` with usage metadata.
User activity during a reply barges in (``interrupted``, then ``turnComplete``) unless the
setup chose NO_INTERRUPTION; then the next turn just waits its place in the queue.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pispeaker.audio.pcm import INPUT_RATE, OUTPUT_RATE, duration_s
from pispeaker.emulator import wire
from pispeaker.emulator.calls import ToolCalls
from pispeaker.emulator.channel import Channel
from pispeaker.emulator.handshake import SessionConfig
from pispeaker.emulator.script import Reply, UserTurn, render_audio, split_chunks, split_words
from pispeaker.emulator.store import Session

#: Audio tokens per second, as the service bills them.
TOKENS_PER_SECOND = 25


class Responder:
    """Answer one session's user turns on one connection, one at a time."""

    def __init__(
        self, channel: Channel, config: SessionConfig, session: Session, tools: ToolCalls
    ) -> None:
        self.channel = channel
        self.config = config
        self.session = session
        self.tools = tools
        self.options = channel.shared.options
        self._turns: asyncio.Queue[UserTurn] = asyncio.Queue()
        self._reply_task: asyncio.Task[None] | None = None
        self._sent_audio = 0

    def queue(self, turn: UserTurn) -> None:
        """Have ``turn`` answered after the turns queued before it."""
        self.channel.record("turn.queued", audio_bytes=len(turn.audio), text=turn.text)
        self._turns.put_nowait(turn)

    async def barge_in(self) -> None:
        """The user started speaking: interrupt a reply in flight, if the setup allows.

        The interrupted reply ends its turn, cancels its pending tool calls, and stays in
        the history as far as its audio was sent.
        """
        task = self._reply_task
        if task is None or task.done() or not self.config.interrupts:
            return
        task.cancel()
        await asyncio.wait([task])
        await self.channel.send("serverContent", {"interrupted": True})
        await self.channel.send("serverContent", {"turnComplete": True})
        cancelled = await self.tools.cancel()
        self.channel.record("interrupted", cancelled_calls=cancelled, sent=self._sent_audio)
        self.channel.remember("model", "(interrupted)", self._sent_audio)

    async def run(self) -> None:
        """Answer queued turns until cancelled; a reply's failure is raised here."""
        while True:
            turn = await self._turns.get()
            self._reply_task = asyncio.create_task(
                self._reply(turn), name=f"reply-{self.channel.number}"
            )
            try:
                await asyncio.wait([self._reply_task])
            finally:
                self._reply_task.cancel()
            if not self._reply_task.cancelled():  # cancelled means interrupted: next turn
                self._reply_task.result()  # re-raises a failure of the reply

    async def _reply(self, turn: UserTurn) -> None:
        reply = self.channel.shared.script.next_reply()
        self.session.turns += 1
        self._sent_audio = 0
        self.channel.remember("user", turn.describe(), len(turn.audio))
        self.channel.record("turn.start", turn=self.session.turns)
        if self.config.input_transcription:
            heard = {"inputTranscription": {"text": reply.heard or turn.describe()}}
            await self.channel.send("serverContent", heard)
        await asyncio.sleep(self.options.response_latency_s)
        if reply.tool_calls:
            await self.tools.call(reply.tool_calls)
        await self._speak(reply, turn)

    async def _speak(self, reply: Reply, turn: UserTurn) -> None:
        pcm = render_audio(reply, turn)
        text = reply.text or f"Reply {self.session.turns}."
        start = asyncio.get_running_loop().time()
        seconds = await self._stream(pcm, text, start)
        await self.channel.send("serverContent", {"generationComplete": True})
        self.channel.record("generation.complete", audio_bytes=len(pcm))
        # The server assumes real-time playback from the first chunk and holds turnComplete
        # until that playback would end; a barge-in until then still interrupts.
        await _sleep_until(start + seconds * max(self.options.pace, self.options.playback_hold))
        await self._complete(turn, pcm, text)

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
        if self.config.multi_part:
            await self.channel.send("serverContent", content | transcription)
        else:  # 2.5 models: one part per event
            await self.channel.send("serverContent", content)
            if transcription:
                await self.channel.send("serverContent", transcription)
        self.session.downloaded_audio_bytes += len(chunk)
        self._sent_audio += len(chunk)
        self.channel.record("audio.out", bytes=len(chunk))

    async def _complete(self, turn: UserTurn, pcm: bytes, text: str) -> None:
        usage = usage_metadata(turn, pcm)
        await self.channel.send("serverContent", {"turnComplete": True}, usageMetadata=usage)
        self.channel.remember("model", text, len(pcm))
        self.channel.record("turn.complete", turn=self.session.turns, audio_bytes=len(pcm))
        if self.config.resumable:
            await self.channel.send_handle()


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
