"""Client messages after setup, read as the service reads them.

Each frame must hold exactly one known kind with an object body (realtimeInput,
clientContent, toolResponse, contextUpdate), or the socket closes with 1007. Audio feeds the
VAD, or, with automatic detection disabled, the activity the client marks with
activityStart/activityEnd. The start of speech, marked activity, text and complete client
content barge in; an utterance, text or complete client content becomes a user turn.
Answers to NON_BLOCKING tool calls go to the responder, which decides what follows them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pispeaker.audio.pcm import INPUT_RATE
from pispeaker.audio.resample import resample
from pispeaker.emulator import wire
from pispeaker.emulator.calls import ToolCalls
from pispeaker.emulator.channel import Channel
from pispeaker.emulator.handshake import SessionConfig
from pispeaker.emulator.script import UserTurn
from pispeaker.emulator.store import HistoryEntry, Session
from pispeaker.emulator.turns import Responder
from pispeaker.emulator.vad import EnergyVad, VadEvent

Handler = Callable[[dict[str, Any]], Awaitable[None]]


class ClientInput:
    """Dispatch one connection's client messages to its VAD, responder and tool calls."""

    def __init__(
        self,
        channel: Channel,
        config: SessionConfig,
        session: Session,
        responder: Responder,
        tools: ToolCalls,
    ) -> None:
        self.channel = channel
        self.config = config
        self.session = session
        self.responder = responder
        self.tools = tools
        if session.vad is None or session.vad.settings != config.vad:
            session.vad = EnergyVad(config.vad)
        self.vad = session.vad
        self._activity: list[bytes] | None = None  # audio since activityStart, if marked
        self._handlers: dict[str, Handler] = {
            "realtimeInput": self._on_realtime_input,
            "clientContent": self._on_client_content,
            "toolResponse": self._on_tool_response,
            "contextUpdate": self._on_context_update,
        }

    async def dispatch(self, raw: str | bytes) -> None:
        """Handle one client frame; close with 1007 if the service would not accept it."""
        try:
            message = wire.parse_client_message(raw)
            if len(message) != 1:
                raise wire.WireError(f"expected one message kind, got {sorted(message)}")
            [(kind, body)] = message.items()
            handler = self._handlers.get(kind)
            if handler is None or not isinstance(body, dict):
                raise wire.WireError(f"unexpected client message {kind!r}")
            await handler(body)
        except wire.WireError as error:
            self.channel.record("client.error", error=str(error))
            await self.channel.close(wire.INVALID_ARGUMENT)

    async def _on_realtime_input(self, body: dict[str, Any]) -> None:
        if "mediaChunks" in body and self.channel.shared.options.reject_media_chunks:
            await self.channel.close(wire.MEDIA_CHUNKS)
        elif "audio" in body or "mediaChunks" in body:
            await self._on_audio(body["audio"] if "audio" in body else body["mediaChunks"][0])
        elif "audioStreamEnd" in body:
            await self._on_vad_events(self.vad.flush())
        elif "activityStart" in body or "activityEnd" in body:
            await self._on_manual_activity(start="activityStart" in body)
        elif "text" in body:
            await self.responder.barge_in()
            self.responder.queue(UserTurn(text=str(body["text"])))
        elif "video" in body:
            video = wire.decode_bytes(body["video"].get("data", ""))
            self.channel.record("video.in", bytes=len(video))
        else:
            raise wire.WireError(f"empty realtimeInput {sorted(body)}")

    async def _on_audio(self, blob: dict[str, Any]) -> None:
        data = wire.decode_bytes(str(blob.get("data", "")))
        mime = str(blob.get("mimeType", ""))
        if not mime.startswith("audio/pcm"):
            raise wire.WireError(f"unsupported audio mime type {mime!r}")
        rate = int(mime.partition("rate=")[2] or INPUT_RATE)
        self.session.uploaded_audio_bytes += len(data)
        self.channel.record("audio.in", bytes=len(data), rate=rate)
        pcm = resample(data, rate, INPUT_RATE)
        if self.config.manual_activity:
            if self._activity is not None:
                self._activity.append(pcm)
        else:
            await self._on_vad_events(self.vad.feed(pcm))

    async def _on_vad_events(self, events: list[VadEvent]) -> None:
        for event in events:
            self.channel.record(f"vad.{event.kind}", offset_s=event.offset_s)
            if event.kind == "start":
                await self.responder.barge_in()
            else:
                self.responder.queue(UserTurn(audio=event.audio))

    async def _on_manual_activity(self, start: bool) -> None:
        if not self.config.manual_activity:
            raise wire.WireError("activityStart/activityEnd need automatic detection disabled")
        self.channel.record("activity.start" if start else "activity.end")
        if start:
            self._activity = []
            await self.responder.barge_in()
        elif self._activity is not None:
            self.responder.queue(UserTurn(audio=b"".join(self._activity)))
            self._activity = None

    async def _on_client_content(self, body: dict[str, Any]) -> None:
        texts = [
            str(part.get("text", ""))
            for turn in body.get("turns", [])
            for part in turn.get("parts", [])
        ]
        self.session.history.extend(HistoryEntry("user", text) for text in texts if text)
        self.channel.record(
            "client.content", texts=texts, turn_complete=bool(body.get("turnComplete"))
        )
        if body.get("turnComplete"):
            await self.responder.barge_in()
            self.responder.queue(UserTurn(text=" ".join(texts)))

    async def _on_tool_response(self, body: dict[str, Any]) -> None:
        answers = await self.tools.answer(body)
        if answers:
            await self.responder.follow_up(answers)

    async def _on_context_update(self, body: dict[str, Any]) -> None:
        self.channel.record("context.update", keys=sorted(body))
