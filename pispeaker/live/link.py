"""A Live session that keeps every word: one connection at a time, handed over on goAway.

Microphone audio goes into an outbox and leaves it only once a session is ready and the
send succeeded, so the same mechanism covers the pre-roll before the first session, a
reconnect after a failure and a goAway handover: nothing is lost, only delayed.

The link reports what happens as ``LinkEvent`` values through a callback and never retries
on its own: the controller owns the error policy (backoff, ERROR state). It knows the SDK
only through ``pispeaker.live.genai``.
"""

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from pispeaker.audio.pcm import INPUT_RATE, byte_count
from pispeaker.config import LiveConfig
from pispeaker.live import genai
from pispeaker.live.models import rules_of
from pispeaker.live.port import (
    Crashed,
    Grounded,
    Interrupted,
    Kind,
    Lost,
    Message,
    ModelAudio,
    Ready,
    Reasoning,
    Report,
    ToolRequest,
    ToolsCancelled,
    TurnComplete,
)
from pispeaker.marks import Mark
from pispeaker.tools import Tool

log = logging.getLogger(__name__)

#: Hand over this long before the server's deadline at the latest, or this share of the
#: time left when that is short (a goAway with 3 s left still lets a 1 s reply end first).
HANDOVER_MARGIN_S, HANDOVER_MARGIN_SHARE = 5.0, 0.25
#: Most uplink audio kept while no session is ready; older audio is dropped (and counted).
OUTBOX_LIMIT_S = 30.0
#: Most of the user's turn kept after it was sent, until the service has taken it: replayed
#: to a session that starts afresh (no resumption), which never heard it.
REPLAY_LIMIT_S = 30.0


#: Told to a resumed session whose answer the lost connection cut short.
CUT_NOTE = (
    "(The connection dropped while you were answering: the user did not hear the end of "
    "your last answer. If they ask you to go on, continue from where it was cut; do not "
    "start it again.)"
)


class LiveLink:
    """Owns the Live connection, the uplink outbox and the resumption handle (a ``Link``).

    Audio is sent in the pieces it was queued in (the capture already cut it into uplink
    chunks); only a longer piece, such as the pre-roll, is cut to ``live.uplink_chunk_ms``.
    """

    def __init__(
        self,
        live: LiveConfig,
        api_key: str,
        report: Report,
        tools: list[Tool] | Callable[[], list[Tool]] | None = None,
        client: genai.Client | None = None,
        instruction: Callable[[], str] | None = None,
    ) -> None:
        self._live = live
        self._report = report
        # Each session declares the tools on offer when it opens (MCP servers come and go).
        self._tools_now = tools if callable(tools) else lambda: list(tools or [])
        self._tools: dict[str, Tool] = {}  # those the current session declared
        self._rules = rules_of(live.model)
        self._instruction = instruction or (lambda: live.system_instruction)
        self._client = client or genai.make_client(live, api_key)
        self._chunk = byte_count(live.uplink_chunk_ms / 1000, INPUT_RATE)
        self._limit = byte_count(OUTBOX_LIMIT_S, INPUT_RATE)
        self._outbox: deque[bytes] = deque()
        self._queued = 0  # bytes in the outbox
        self._replay: deque[bytes] = deque()  # sent since the service last took a turn
        self._replay_bytes = 0
        self._replay_limit = byte_count(REPLAY_LIMIT_S, INPUT_RATE)
        self._outbox_changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()  # cancelled, still closing their socket
        self._session: genai.Session | None = None
        self._deadline: asyncio.Timeout | None = None
        self._in_turn = False
        self._cut = False  # a turn was cut by a lost session, and the next one is not told yet
        self._handover_now = False
        self._started = False  # the current connection's setup was accepted
        self._odd = b""  # a reply chunk's last byte, when it split a sample
        self.handle: str | None = None
        self.sent_bytes = 0
        self.dropped_bytes = 0
        self._counted = (0, 0)  # sent and dropped bytes when the last conversation ended
        #: Marks "uplink.sent" (the chunk) once a chunk is handed to the websocket,
        #: "downlink.audio" (the audio) and "downlink.interrupted" as they come out of the SDK.
        self.mark: Mark | None = None

    def open(self, resume: bool = False) -> None:
        """Connect in the background (resuming with the last handle if asked and known).

        Reports Ready, then the session's events, or Lost.
        """
        self._cancel_connection()
        handle = self.handle if resume else None
        self._task = asyncio.create_task(self._run(handle), name="live-link")
        self._task.add_done_callback(self._check_crash)

    def stop(self) -> None:
        """End the conversation at once: cancel the connection, forget unsent audio and the
        handle. The connection finishes closing in the background; ``close`` waits for it."""
        self._cancel_connection()
        self._log_uplink()
        self._outbox.clear()
        self._forget_replay()
        self._queued = 0
        self.handle = None
        self._cut = False

    async def close(self) -> None:
        """``stop()``, and wait until every socket it opened is closed."""
        self.stop()
        if self._closing:
            await asyncio.wait(self._closing)

    def _log_uplink(self) -> None:
        """Account for the conversation's microphone audio: sent, dropped, never sent."""
        sent, dropped = self.sent_bytes - self._counted[0], self.dropped_bytes - self._counted[1]
        if sent or dropped or self._queued:
            log.info(
                "uplink: %d bytes sent, %d dropped, %d unsent at the end",
                sent,
                dropped,
                self._queued,
            )
        self._counted = (self.sent_bytes, self.dropped_bytes)

    def send_audio(self, pcm: bytes) -> None:
        """Queue 16 kHz s16le microphone audio; it is sent once a session is ready."""
        for start in range(0, len(pcm), self._chunk):
            self._outbox.append(pcm[start : start + self._chunk])
        self._queued += len(pcm)
        while self._queued > self._limit:
            self._queued -= len(dropped := self._outbox.popleft())
            self.dropped_bytes += len(dropped)
        self._outbox_changed.set()

    async def respond(self, request: ToolRequest, response: dict[str, Any]) -> None:
        """Answer a tool call (``{"output": ...}`` or ``{"error": ...}``)."""
        if self._session is None:
            log.warning("tool %s answered after its session ended; dropped", request.name)
            return
        try:
            await self._session.respond(request, response, self._scheduling(request.name))
        except Exception as error:  # noqa: BLE001 - classified; bugs are re-raised by classify
            # The receiver meets the same loss and reconnects; the model asks again if it must.
            failure = genai.classify(error, started=True)
            log.warning(
                "tool %s answered as its session failed (%s); dropped",
                request.name,
                failure.message,
            )

    def _scheduling(self, name: str) -> str | None:
        """What the model does with the answer: only NON_BLOCKING calls are scheduled."""
        tool = self._tools.get(name)
        if tool is None or not self._rules.runs_async(tool):
            return None
        return tool.scheduling

    def _check_crash(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and (error := task.exception()) is not None:
            self._report(Crashed(error))

    # -- the connection --------------------------------------------------------------------

    def _cancel_connection(self) -> None:
        """Cancel the connection task; it runs on until it has closed its socket (a normal
        close), kept in ``_closing`` until then so that ``close`` can wait for it."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def _run(self, handle: str | None) -> None:
        """Connect, and keep handing over to a resumed session for as long as goAway asks;
        when the service refuses to resume, start afresh (the new session hears the user's
        turn again)."""
        while True:
            try:
                await self._connect_once(handle)
            except Exception as error:  # noqa: BLE001 - classified; bugs are re-raised by classify
                failure = genai.classify(error, started=self._started)
                if handle is None or self._started or failure.kind is Kind.TRANSIENT:
                    self._report(Lost(failure))
                    return
                log.warning(
                    "the Live API refused to resume the session (close %s); starting afresh, "
                    "and the new session hears the user's turn again",
                    failure.code,
                )
                self.handle = None
            handle = self.handle  # a handover: goAway asked for a resumed session

    async def _connect_once(self, handle: str | None) -> bool:
        """Serve one session; True when it ended for a handover."""
        self._cut = self._cut or self._in_turn  # the last session's turn never ended
        self._in_turn = self._handover_now = self._started = False
        self._odd = b""  # a sample split by a lost session's last chunk is no sound at all
        self._tools = {tool.name: tool for tool in self._tools_now()}
        tools, instruction = list(self._tools.values()), self._instruction()
        async with genai.connect(self._client, self._live, handle, tools, instruction) as session:
            self._session, self._started = session, True
            if handle is None:
                self._replay_turn()
            elif self._cut:
                await self._tell_of_cut(session)
            self._cut = False
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

    async def _tell_of_cut(self, session: genai.Session) -> None:
        """Tell a resumed session that its last answer was cut short, where the model takes
        notes: it knows what it said, not what reached the user."""
        if self._rules.notes:
            log.info("telling the resumed session that its answer was cut short")
            await session.note(CUT_NOTE)

    async def _send_forever(self, session: genai.Session) -> None:
        while True:
            while self._outbox:
                chunk = self._outbox[0]
                await session.send_audio(chunk)
                self._outbox.popleft()  # only once sent: a failed send loses nothing
                self._queued -= len(chunk)
                self.sent_bytes += len(chunk)
                self._keep_for_replay(chunk)
                if self.mark:
                    self.mark("uplink.sent", chunk)
            self._outbox_changed.clear()
            await self._outbox_changed.wait()

    async def _receive_until_handover(self, session: genai.Session) -> bool:
        """Dispatch messages until a goAway's handover point: the end of the turn in
        progress (at once when none is), or shortly before the server's deadline."""
        try:
            async with asyncio.timeout(None) as self._deadline:
                async for message in session.receive():
                    self._dispatch(message)
                    if self._handover_now:
                        return True
        except TimeoutError:
            return True  # the deadline came first: hand over mid-turn rather than be cut
        finally:
            self._deadline = None
        # The SDK raises when a session ends; should its messages ever just stop, that is
        # a lost connection too (transient), not a silent end.
        raise ConnectionError("the Live API's messages ended without a close")

    def _keep_for_replay(self, chunk: bytes) -> None:
        self._replay.append(chunk)
        self._replay_bytes += len(chunk)
        while self._replay_bytes > self._replay_limit:
            self._replay_bytes -= len(self._replay.popleft())

    def _forget_replay(self) -> None:
        self._replay.clear()
        self._replay_bytes = 0

    def _replay_turn(self) -> None:
        """A session that starts afresh first hears what the user said since the last turn
        the service took (a resumed one has heard it: nothing is sent twice)."""
        if self._replay_bytes:
            log.info("a new session hears the user's turn again (%d bytes)", self._replay_bytes)
        self._queued += self._replay_bytes
        self._outbox.extendleft(reversed(self._replay))
        self._forget_replay()

    def _dispatch(self, message: Message) -> None:
        if message.model_turn or message.turn_complete or _transcribes_the_user(message):
            self._forget_replay()  # the service took the user's turn
        self._track_turn(message)
        if message.handle:
            self.handle = message.handle
        if message.go_away_s is not None:
            self._plan_handover(message.go_away_s)
        for request in message.tool_calls:
            self._report(request)
        if message.cancelled_calls:
            self._report(ToolsCancelled(message.cancelled_calls))
        if message.reasoning is not None:  # before the turn ends: the turn is not the last
            self._report(Reasoning(message.reasoning))
        if message.interrupted:
            if self.mark:
                self.mark("downlink.interrupted", None)
            self._report(Interrupted())
        for pcm in message.audio:
            if self.mark:
                self.mark("downlink.audio", pcm)
            if whole := self._whole_samples(pcm):
                self._report(ModelAudio(whole))
        for transcript in message.transcripts:
            self._report(transcript)
        if message.search_queries is not None:
            self._report(Grounded(message.search_queries))
        if message.usage is not None:
            self._report(message.usage)
        if message.turn_complete:
            self._report(TurnComplete())

    def _whole_samples(self, pcm: bytes) -> bytes:
        """``pcm`` in whole 16-bit samples: a byte that splits one waits for the next chunk
        (the server's chunks need not end on a sample; the speaker's writes must)."""
        pcm, self._odd = self._odd + pcm, b""
        if len(pcm) % 2:
            pcm, self._odd = pcm[:-1], pcm[-1:]
        return pcm

    def _track_turn(self, message: Message) -> None:
        if message.model_turn:
            self._in_turn = True
        if message.turn_complete or message.interrupted:
            self._in_turn = False
            self._odd = b""  # half a sample at the end of a turn is no sound at all
            self._handover_now = self._deadline is not None and self._deadline.when() is not None

    def _plan_handover(self, seconds: float) -> None:
        """Hand over now if no turn is in progress, else at its end or before the deadline."""
        log.info("goAway: handing over to a resumed session within %.1f s", seconds)
        if not self._in_turn:
            self._handover_now = True
        elif self._deadline is not None:
            loop = asyncio.get_running_loop()
            margin = min(HANDOVER_MARGIN_S, HANDOVER_MARGIN_SHARE * seconds)
            self._deadline.reschedule(loop.time() + seconds - margin)


def _transcribes_the_user(message: Message) -> bool:
    return any(transcript.speaker == "user" for transcript in message.transcripts)


async def _first_of(main: Coroutine[Any, Any, bool], helper: Coroutine[Any, Any, None]) -> bool:
    """Run both; return ``main``'s result when it finishes, raise whichever fails first."""
    main_task = asyncio.create_task(main, name="live-receive")
    helper_task = asyncio.create_task(helper, name="live-send")
    try:
        await asyncio.wait({main_task, helper_task}, return_when=asyncio.FIRST_COMPLETED)
        if helper_task.done():
            helper_task.result()  # the uplink failed (e.g. the socket closed): raise that
        return await main_task
    finally:
        for task in (main_task, helper_task):
            task.cancel()
        await asyncio.wait({main_task, helper_task})
