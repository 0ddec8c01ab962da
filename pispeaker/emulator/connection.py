"""One Live API connection as the real service runs it: setup, input, turns, tools, lifetime.

The flow per socket: the first client message must be ``setup``; the server validates the
credential, model and modalities (closing with the real codes and reasons), answers
``setupComplete`` first, then runs three things at once: a reader that feeds audio to the
VAD and dispatches client messages, a responder that answers user turns one at a time, and
timers (connection lifetime, scheduled faults).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.exceptions import ConnectionClosed

from pispeaker.audio.pcm import INPUT_RATE, OUTPUT_RATE, duration_s
from pispeaker.audio.resample import resample
from pispeaker.emulator import wire
from pispeaker.emulator.channel import Channel, Shared
from pispeaker.emulator.handshake import Handshake, SessionConfig, SetupGate
from pispeaker.emulator.options import Fault, ScheduledFault
from pispeaker.emulator.script import (
    Reply,
    ToolCall,
    UserTurn,
    render_audio,
    split_chunks,
    split_words,
)
from pispeaker.emulator.store import HistoryEntry
from pispeaker.emulator.vad import EnergyVad, VadEvent, VadSettings
from pispeaker.emulator.websocket import ControlledConnection

log = logging.getLogger(__name__)

#: Audio tokens per second, as the service bills them.
TOKENS_PER_SECOND = 25


FAULT_CLOSES = {
    Fault.INTERNAL_ERROR: wire.INTERNAL,
    Fault.UNAVAILABLE: wire.UNAVAILABLE,
    Fault.QUOTA: wire.QUOTA,
    Fault.NORMAL_CLOSE: wire.NORMAL,
}


class LiveConnection:
    """Serve one client socket until it closes."""

    def __init__(self, ws: ControlledConnection, handshake: Handshake, shared: Shared) -> None:
        self.ws = ws
        self.handshake = handshake
        self.shared = shared
        self.number = handshake.number
        self.channel = Channel(ws, handshake.number, shared)
        self.config: SessionConfig | None = None
        self.vad = EnergyVad(VadSettings())
        self._activity: list[bytes] | None = None
        self._turns: asyncio.Queue[UserTurn] = asyncio.Queue()
        self._reply_task: asyncio.Task[None] | None = None
        self._pending_calls: dict[str, str] = {}
        self._tool_waiter: asyncio.Future[list[dict[str, Any]]] | None = None
        self._tool_answers: list[dict[str, Any]] = []
        self._sent_audio = 0
        self._background: set[asyncio.Task[None]] = set()

    @property
    def cfg(self) -> SessionConfig:
        assert self.config is not None
        return self.config

    # -- lifecycle -----------------------------------------------------------------------

    async def serve(self) -> None:
        """Run the connection; return when the socket is closed."""
        self.channel.record(
            "connect", api_version=self.handshake.api_version, method=self.handshake.method
        )
        try:
            self.config = await SetupGate(self.channel, self.handshake).admit()
            if self.config:
                self.vad = EnergyVad(self.config.vad)
                await self._run_session()
        except ConnectionClosed:
            pass  # the client went away; the close is recorded below
        finally:
            self.channel.record("disconnect", code=self.ws.close_code, reason=self.ws.close_reason)
            if self.channel.session:
                self.shared.store.detach(self.channel.session, self.shared.timeline.now())

    async def _run_session(self) -> None:
        self._spawn(self._responder(), "responder")
        self._spawn(self._lifetime(), "lifetime")
        for fault in self.shared.options.faults:
            if fault.connection in (None, self.number):
                self._spawn(self._scheduled(fault), "fault")
        try:
            async for raw in self.ws:
                await self._dispatch(raw)
        finally:
            for task in self._background:
                task.cancel()
            await asyncio.wait(self._background)

    def _spawn(self, work: Awaitable[None], name: str) -> None:
        """Run work in the background of this connection; it ends with the connection."""
        task = asyncio.create_task(self._guard(work), name=f"{name}-{self.number}")
        self._background.add(task)

    async def _guard(self, work: Awaitable[None]) -> None:
        """Run background work; a bug in it closes the socket with 1011 instead of hanging."""
        try:
            await work
        except ConnectionClosed:
            return
        except Exception:
            log.exception("emulator connection %d failed", self.number)
            await self.channel.close(wire.INTERNAL)

    # -- client messages -----------------------------------------------------------------

    async def _dispatch(self, raw: str | bytes) -> None:
        try:
            message = wire.parse_client_message(raw)
            if len(message) != 1:
                raise wire.WireError(f"expected one message kind, got {sorted(message)}")
            [(kind, body)] = message.items()
            handler = self._handlers().get(kind)
            if handler is None or not isinstance(body, dict):
                raise wire.WireError(f"unexpected client message {kind!r}")
            await handler(body)
        except wire.WireError as error:
            self.channel.record("client.error", error=str(error))
            await self.channel.close(wire.INVALID_ARGUMENT)

    def _handlers(self) -> dict[str, Callable[[dict[str, Any]], Awaitable[None]]]:
        return {
            "realtimeInput": self._on_realtime_input,
            "clientContent": self._on_client_content,
            "toolResponse": self._on_tool_response,
            "contextUpdate": self._on_context_update,
        }

    async def _on_realtime_input(self, body: dict[str, Any]) -> None:
        if "mediaChunks" in body and self.shared.options.reject_media_chunks:
            await self.channel.close(wire.MEDIA_CHUNKS)
        elif "audio" in body or "mediaChunks" in body:
            await self._on_audio(body["audio"] if "audio" in body else body["mediaChunks"][0])
        elif "audioStreamEnd" in body:
            await self._on_vad_events(self.vad.flush())
        elif "activityStart" in body or "activityEnd" in body:
            await self._on_manual_activity(start="activityStart" in body)
        elif "text" in body:
            await self._on_user_activity()
            self._queue_turn(UserTurn(text=str(body["text"])))
        elif "video" in body:
            self.channel.record(
                "video.in", bytes=len(wire.decode_bytes(body["video"].get("data", "")))
            )
        else:
            raise wire.WireError(f"empty realtimeInput {sorted(body)}")

    async def _on_audio(self, blob: dict[str, Any]) -> None:
        data = wire.decode_bytes(str(blob.get("data", "")))
        mime = str(blob.get("mimeType", ""))
        if not mime.startswith("audio/pcm"):
            raise wire.WireError(f"unsupported audio mime type {mime!r}")
        rate = int(mime.partition("rate=")[2] or INPUT_RATE)
        assert self.channel.session is not None
        self.channel.session.uploaded_audio_bytes += len(data)
        self.channel.record("audio.in", bytes=len(data), rate=rate)
        pcm = resample(data, rate, INPUT_RATE)
        if self.cfg.manual_activity:
            if self._activity is not None:
                self._activity.append(pcm)
        else:
            await self._on_vad_events(self.vad.feed(pcm))

    async def _on_vad_events(self, events: list[VadEvent]) -> None:
        for event in events:
            self.channel.record(f"vad.{event.kind}", offset_s=event.offset_s)
            if event.kind == "start":
                await self._on_user_activity()
            else:
                self._queue_turn(UserTurn(audio=event.audio))

    async def _on_manual_activity(self, start: bool) -> None:
        if not self.cfg.manual_activity:
            raise wire.WireError("activityStart/activityEnd need automatic detection disabled")
        self.channel.record("activity.start" if start else "activity.end")
        if start:
            self._activity = []
            await self._on_user_activity()
        elif self._activity is not None:
            self._queue_turn(UserTurn(audio=b"".join(self._activity)))
            self._activity = None

    async def _on_client_content(self, body: dict[str, Any]) -> None:
        texts = [
            str(part.get("text", ""))
            for turn in body.get("turns", [])
            for part in turn.get("parts", [])
        ]
        assert self.channel.session is not None
        self.channel.session.history.extend(HistoryEntry("user", text) for text in texts if text)
        if body.get("turnComplete"):
            await self._on_user_activity()
            self._queue_turn(UserTurn(text=" ".join(texts)))

    async def _on_context_update(self, body: dict[str, Any]) -> None:
        self.channel.record("context.update", keys=sorted(body))

    async def _on_tool_response(self, body: dict[str, Any]) -> None:
        responses = body.get("functionResponses", [])
        ids = [str(response.get("id", "")) for response in responses]
        self.channel.record("tool.response", ids=ids, responses=responses)
        if not ids or any(call_id not in self._pending_calls for call_id in ids):
            await self.channel.close(wire.NOT_FOUND)  # the real service's answer to unknown ids
            return
        for call_id in ids:
            del self._pending_calls[call_id]
        if self._tool_waiter and not self._tool_waiter.done():
            self._tool_answers.extend(responses)
            if not self._pending_calls:
                self._tool_waiter.set_result(self._tool_answers)

    # -- turns ---------------------------------------------------------------------------

    def _queue_turn(self, turn: UserTurn) -> None:
        self.channel.record("turn.queued", audio_bytes=len(turn.audio), text=turn.text)
        self._turns.put_nowait(turn)

    async def _on_user_activity(self) -> None:
        """The user started speaking: barge in on a reply in flight, if the setup allows."""
        task = self._reply_task
        if task is None or task.done() or not self.cfg.interrupts:
            return
        task.cancel()
        await asyncio.wait([task])
        await self.channel.send("serverContent", {"interrupted": True})
        await self.channel.send("serverContent", {"turnComplete": True})
        if self._pending_calls:
            await self.channel.send("toolCallCancellation", {"ids": list(self._pending_calls)})
        self.channel.record(
            "interrupted", cancelled_calls=list(self._pending_calls), sent=self._sent_audio
        )
        self.channel.remember("model", "(interrupted)", self._sent_audio)
        self._pending_calls.clear()

    async def _responder(self) -> None:
        """Answer queued user turns one at a time (NO_INTERRUPTION queues barge-ins)."""
        while True:
            turn = await self._turns.get()
            self._reply_task = asyncio.create_task(self._reply(turn), name=f"reply-{self.number}")
            try:
                await asyncio.wait([self._reply_task])
            finally:
                self._reply_task.cancel()
            if not self._reply_task.cancelled():  # cancelled means interrupted: next turn
                self._reply_task.result()  # re-raises a failure of the reply

    async def _reply(self, turn: UserTurn) -> None:
        reply = self.shared.script.next_reply()
        assert self.channel.session is not None
        self.channel.session.turns += 1
        self._sent_audio = 0
        self.channel.remember("user", turn.describe(), len(turn.audio))
        self.channel.record("turn.start", turn=self.channel.session.turns)
        if self.cfg.input_transcription:
            await self.channel.send(
                "serverContent", {"inputTranscription": {"text": reply.heard or turn.describe()}}
            )
        await asyncio.sleep(self.shared.options.response_latency_s)
        if reply.tool_calls:
            await self._call_tools(reply.tool_calls)
        await self._speak(reply, turn)

    async def _speak(self, reply: Reply, turn: UserTurn) -> None:
        assert self.channel.session is not None
        pcm = render_audio(reply, turn)
        chunks = split_chunks(pcm)
        text = reply.text or f"Reply {self.channel.session.turns}."
        pieces = split_words(text, len(chunks)) if self.cfg.output_transcription else []
        clock = asyncio.get_running_loop().time
        start, offset = clock(), 0.0
        for index, chunk in enumerate(chunks):
            await asyncio.sleep(max(0.0, start + offset * self.shared.options.pace - clock()))
            await self._send_audio(chunk, pieces[index] if index < len(pieces) else "")
            offset += duration_s(chunk, OUTPUT_RATE)
        await self.channel.send("serverContent", {"generationComplete": True})
        self.channel.record("generation.complete", audio_bytes=len(pcm))
        # The server assumes real-time playback from the first chunk and holds turnComplete
        # until that playback would end; a barge-in until then still interrupts.
        hold = max(self.shared.options.pace, self.shared.options.playback_hold)
        await asyncio.sleep(max(0.0, start + offset * hold - clock()))
        await self.channel.send(
            "serverContent", {"turnComplete": True}, usageMetadata=_usage(turn, pcm)
        )
        self.channel.remember("model", text, len(pcm))
        self.channel.record("turn.complete", turn=self.channel.session.turns, audio_bytes=len(pcm))
        if self.cfg.resumable:
            await self.channel.send_handle()

    async def _send_audio(self, chunk: bytes, transcript: str) -> None:
        assert self.channel.session is not None
        content: dict[str, Any] = {"modelTurn": {"parts": [wire.audio_part(chunk)]}}
        transcription = {"outputTranscription": {"text": transcript}} if transcript else {}
        if self.cfg.multi_part:
            await self.channel.send("serverContent", content | transcription)
        else:  # 2.5 models: one part per event
            await self.channel.send("serverContent", content)
            if transcription:
                await self.channel.send("serverContent", transcription)
        self.channel.session.downloaded_audio_bytes += len(chunk)
        self._sent_audio += len(chunk)
        self.channel.record("audio.out", bytes=len(chunk))

    async def _call_tools(self, calls: tuple[ToolCall, ...]) -> None:
        ids = [f"function-call-{next(self.shared.call_ids)}" for _ in calls]
        self._pending_calls = {call_id: call.name for call_id, call in zip(ids, calls, strict=True)}
        self._tool_answers = []
        self._tool_waiter = asyncio.get_running_loop().create_future()
        if self.cfg.resumable:  # not resumable while a call is pending
            await self.channel.send("sessionResumptionUpdate", {})
        function_calls = [
            {"id": call_id, "name": call.name, "args": call.args}
            for call_id, call in zip(ids, calls, strict=True)
        ]
        await self.channel.send("toolCall", {"functionCalls": function_calls})
        self.channel.record("tool.call", ids=ids, names=[call.name for call in calls])
        answers = await self._tool_waiter
        for answer in answers:
            self.channel.remember("tool", f"{answer.get('name', '')}: {answer.get('response')}")

    # -- timers and faults ---------------------------------------------------------------

    async def _lifetime(self) -> None:
        options = self.shared.options
        if options.connection_lifetime_s is None:
            return
        lead = min(options.go_away_lead_s, options.connection_lifetime_s)
        await asyncio.sleep(options.connection_lifetime_s - lead)
        await self._go_away(lead)

    async def _go_away(self, lead: float) -> None:
        """Announce the end of the connection; close it ``lead`` seconds later."""
        await self.channel.send("goAway", {"timeLeft": wire.duration_text(lead)})
        self.channel.record("go_away", time_left_s=lead)
        self._spawn(self._close_later(lead, wire.DEADLINE), "deadline")

    async def _close_later(self, delay: float, close: wire.Close) -> None:
        await asyncio.sleep(delay)
        await self.channel.close(close)

    async def _scheduled(self, scheduled: ScheduledFault) -> None:
        await asyncio.sleep(scheduled.at_s)
        await self.apply(scheduled.fault)

    async def apply(self, fault: Fault) -> None:
        """Produce ``fault`` on this connection now."""
        self.channel.record("fault", fault=fault.value)
        if fault in FAULT_CLOSES:
            await self.channel.close(FAULT_CLOSES[fault])
        elif fault is Fault.DROP:
            self.ws.transport.abort()
        elif fault is Fault.MALFORMED:
            await self.ws.send(b"{this is not json")
        elif fault is Fault.UNKNOWN_ONLY:
            await self.ws.send(b'{"someFutureMessage": {}}')
        elif fault is Fault.GO_AWAY:
            await self._go_away(self.shared.options.go_away_lead_s)
        elif fault is Fault.SLOW_PONGS:
            self.ws.pong_delay = self.shared.options.slow_pong_s
        elif fault is Fault.NO_PONGS:
            self.ws.pong_delay = None


def _usage(turn: UserTurn, reply_pcm: bytes) -> dict[str, Any]:
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
