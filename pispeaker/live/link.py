"""A Live session that keeps every word: one connection at a time, handed over on goAway.

Microphone audio goes into an outbox and leaves it only once a session is ready and the
send succeeded, so the same mechanism covers the pre-roll before the first session, a
reconnect after a failure and a goAway handover: nothing is lost, only delayed.

The link reports what happens as ``LinkEvent`` values through a callback and never retries
on its own: the controller owns the error policy (backoff, ERROR state).
"""

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal

from google import genai
from google.genai import types
from google.genai.live import AsyncSession

from pispeaker.audio.pcm import INPUT_RATE, byte_count
from pispeaker.config import LiveConfig
from pispeaker.live.client import INPUT_MIME, connect_config, make_client
from pispeaker.live.failures import Failure, classify
from pispeaker.marks import Mark

log = logging.getLogger(__name__)

#: Hand over this long before the server's deadline at the latest.
HANDOVER_MARGIN_S = 5.0
#: Most uplink audio kept while no session is ready; older audio is dropped (and counted).
OUTBOX_LIMIT_S = 30.0


@dataclass(frozen=True)
class Ready:
    """A session is open; ``resumed`` when it continues the previous one."""

    resumed: bool


@dataclass(frozen=True)
class ModelAudio:
    """24 kHz s16le reply audio."""

    pcm: bytes


@dataclass(frozen=True)
class Transcript:
    """What the user said (``user``) or the model said (``model``), as transcribed."""

    speaker: Literal["user", "model"]
    text: str


@dataclass(frozen=True)
class TurnComplete:
    """The model's turn is over (its audio may still be playing)."""


@dataclass(frozen=True)
class Interrupted:
    """The server cut the model's reply: the user spoke over it."""


@dataclass(frozen=True)
class ToolRequest:
    """One function call the model wants answered."""

    id: str
    name: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ToolsCancelled:
    """The server withdrew these calls (the user interrupted)."""

    ids: tuple[str, ...]


@dataclass(frozen=True)
class Crashed:
    """A bug in pispeaker (not a network or service failure) ended the link."""

    error: BaseException


@dataclass(frozen=True)
class Lost:
    """The session ended by failure; ``failure.kind`` says whether to retry soon."""

    failure: Failure


LinkEvent = (
    Ready
    | ModelAudio
    | Transcript
    | TurnComplete
    | Interrupted
    | ToolRequest
    | ToolsCancelled
    | Lost
    | Crashed
)


class LiveLink:
    """Owns the Live connection, the uplink outbox and the resumption handle."""

    def __init__(
        self,
        live: LiveConfig,
        api_key: str,
        report: Callable[[LinkEvent], None],
        tools: list[types.Tool] | None = None,
        client: genai.Client | None = None,
    ) -> None:
        self._live = live
        self._report = report
        self._tools = tools or []
        self._client = client or make_client(live, api_key)
        self._chunk = byte_count(live.uplink_chunk_ms / 1000, INPUT_RATE)
        self._limit = byte_count(OUTBOX_LIMIT_S, INPUT_RATE)
        self._outbox = bytearray()
        self._outbox_changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._session: AsyncSession | None = None
        self._deadline: asyncio.Timeout | None = None
        self._in_turn = False
        self._handover_now = False
        self.handle: str | None = None
        self.sent_bytes = 0
        self.dropped_bytes = 0
        #: Marks "uplink.sent" (the chunk) once a chunk is handed to the websocket,
        #: "downlink.audio" (the audio) and "downlink.interrupted" as they come out of the SDK.
        self.mark: Mark | None = None

    @property
    def connected(self) -> bool:
        """True while a session is ready to take audio."""
        return self._session is not None

    def open(self, resume: bool = False) -> None:
        """Connect in the background (resuming with the last handle if asked and known).

        Reports Ready, then the session's events, or Lost.
        """
        self._cancel_connection()
        handle = self.handle if resume else None
        self._task = asyncio.create_task(self._run(handle), name="live-link")
        self._task.add_done_callback(self._check_crash)

    def stop(self) -> asyncio.Task[None] | None:
        """End the conversation at once: cancel the connection, forget unsent audio and the
        handle. Returns the connection task, which finishes closing in the background."""
        task = self._cancel_connection()
        self._outbox.clear()
        self.handle = None
        return task

    async def close(self) -> None:
        """``stop()``, and wait until the socket is closed."""
        task = self.stop()
        if task is not None:
            await asyncio.wait([task])

    def send_audio(self, pcm: bytes) -> None:
        """Queue 16 kHz s16le microphone audio; it is sent once a session is ready."""
        self._outbox.extend(pcm)
        overflow = len(self._outbox) - self._limit
        if overflow > 0:
            del self._outbox[:overflow]
            self.dropped_bytes += overflow
        self._outbox_changed.set()

    async def respond(self, request: ToolRequest, response: dict[str, Any]) -> None:
        """Answer a tool call (``{"output": ...}`` or ``{"error": ...}``)."""
        if self._session is None:
            log.warning("tool %s answered after its session ended; dropped", request.name)
            return
        answer = types.FunctionResponse(id=request.id, name=request.name, response=response)
        await self._session.send_tool_response(function_responses=[answer])

    def _check_crash(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._report(Crashed(task.exception()))  # type: ignore[arg-type]

    # -- the connection --------------------------------------------------------------------

    def _cancel_connection(self) -> asyncio.Task[None] | None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
        return task

    async def _run(self, handle: str | None) -> None:
        """Connect, and keep handing over to a resumed session for as long as goAway asks."""
        try:
            while await self._connect_once(handle):
                handle = self.handle
        except Exception as error:  # noqa: BLE001 - classified; bugs are re-raised by classify
            self._report(Lost(classify(error)))

    async def _connect_once(self, handle: str | None) -> bool:
        """Serve one session; True when it ended for a handover."""
        self._in_turn = self._handover_now = False
        config = connect_config(self._live, handle, self._tools)
        async with self._client.aio.live.connect(model=self._live.model, config=config) as session:
            self._session = session
            self._report(Ready(resumed=handle is not None))
            try:
                return await _first_of(
                    self._receive_until_handover(session), self._send_forever(session)
                )
            except asyncio.CancelledError:
                # Stopped on purpose: a normal close (1000), where leaving the context on
                # an exception would close with 1011, an internal error.
                await session.close()
                raise
            finally:
                self._session = None

    async def _send_forever(self, session: AsyncSession) -> None:
        while True:
            while len(self._outbox) >= self._chunk:
                chunk = bytes(self._outbox[: self._chunk])
                blob = types.Blob(data=chunk, mime_type=INPUT_MIME)
                await session.send_realtime_input(audio=blob)
                del self._outbox[: self._chunk]  # only once sent: a failed send loses nothing
                self.sent_bytes += len(chunk)
                if self.mark:
                    self.mark("uplink.sent", chunk)
            self._outbox_changed.clear()
            await self._outbox_changed.wait()

    async def _receive_until_handover(self, session: AsyncSession) -> bool:
        """Dispatch messages until a goAway's handover point: the end of the turn in
        progress (at once when none is), or shortly before the server's deadline."""
        try:
            async with asyncio.timeout(None) as self._deadline:
                while True:  # receive() ends after every turnComplete
                    async for message in session.receive():
                        self._dispatch(message)
                        if self._handover_now:
                            return True
        except TimeoutError:
            return True  # the deadline came first: hand over mid-turn rather than be cut
        finally:
            self._deadline = None

    def _dispatch(self, message: types.LiveServerMessage) -> None:
        self._track_turn(message)
        update = message.session_resumption_update
        if update and update.resumable and update.new_handle:
            self.handle = update.new_handle
        if message.go_away:
            self._plan_handover(message.go_away.time_left)
        if message.tool_call:
            for call in message.tool_call.function_calls or []:
                self._report(ToolRequest(call.id or "", call.name or "", dict(call.args or {})))
        if message.tool_call_cancellation:
            self._report(ToolsCancelled(tuple(message.tool_call_cancellation.ids or ())))
        if message.server_content:
            self._dispatch_content(message.server_content)

    def _dispatch_content(self, content: types.LiveServerContent) -> None:
        if content.interrupted:
            if self.mark:
                self.mark("downlink.interrupted", None)
            self._report(Interrupted())
        for part in content.model_turn.parts or [] if content.model_turn else []:
            if part.inline_data and part.inline_data.data:
                if self.mark:
                    self.mark("downlink.audio", part.inline_data.data)
                self._report(ModelAudio(part.inline_data.data))
        for speaker, transcription in (
            ("user", content.input_transcription),
            ("model", content.output_transcription),
        ):
            if transcription and transcription.text:
                self._report(Transcript(speaker, transcription.text))  # type: ignore[arg-type]
        if content.turn_complete:
            self._report(TurnComplete())

    def _track_turn(self, message: types.LiveServerMessage) -> None:
        content = message.server_content
        if message.tool_call or (content and content.model_turn):
            self._in_turn = True
        if content and (content.turn_complete or content.interrupted):
            self._in_turn = False
            self._handover_now = self._deadline is not None and self._deadline.when() is not None

    def _plan_handover(self, time_left: str | None) -> None:
        """Hand over now if no turn is in progress, else at its end or before the deadline."""
        seconds = float((time_left or "0s").removesuffix("s"))
        log.info("goAway: handing over to a resumed session within %.1f s", seconds)
        if not self._in_turn:
            self._handover_now = True
        elif self._deadline is not None:
            loop = asyncio.get_running_loop()
            self._deadline.reschedule(loop.time() + max(0.0, seconds - HANDOVER_MARGIN_S))


async def _first_of(main: Coroutine[Any, Any, bool], helper: Coroutine[Any, Any, None]) -> bool:
    """Run both; return ``main``'s result when it finishes, raise whichever fails first."""
    main_task = asyncio.ensure_future(main)
    helper_task = asyncio.ensure_future(helper)
    try:
        await asyncio.wait({main_task, helper_task}, return_when=asyncio.FIRST_COMPLETED)
        if helper_task.done():
            helper_task.result()  # the uplink failed (e.g. the socket closed): raise that
        return await main_task
    finally:
        for task in (main_task, helper_task):
            task.cancel()
        await asyncio.wait({main_task, helper_task})
