"""The controller: turns what the ports report into state-machine events, and carries out
the effects the machine returns.

It owns the timers (follow-up window, interrupt flash, error retry, reconnect backoff,
session length), the capture pump (microphone audio goes where ``uplink(state)`` says),
playback (reply audio to the sink, dropped after a barge-in until the turn ends) and tool
calls. Everything runs on one event loop; the link reports from its own task.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pispeaker.audio.pcm import INPUT_RATE, OUTPUT_RATE, byte_count, rms_dbfs, tone
from pispeaker.audio.ports import AudioSink, AudioSource, DeviceLostError, PrerollRing
from pispeaker.audio.volume import Volume
from pispeaker.backoff import Backoff
from pispeaker.live.failures import Kind
from pispeaker.live.link import (
    Crashed,
    Interrupted,
    LinkEvent,
    LiveLink,
    Lost,
    ModelAudio,
    Ready,
    ToolRequest,
    ToolsCancelled,
    Transcript,
    TurnComplete,
)
from pispeaker.states import Effect, Event, State, Status, Uplink, transition, uplink
from pispeaker.tools import Tool, ToolBox, builtin_tools
from pispeaker.wake.detector import Detection, Frame
from pispeaker.wake.listener import WakeListener

log = logging.getLogger(__name__)

#: Microphone level (dBFS) that counts as the user talking, for the follow-up window.
SPEECH_DBFS = -40.0
#: Seconds of played audio kept as the echo canceller's reference signal.
REFERENCE_S = 2.0
#: A device that has worked this long since it came back starts its reopen backoff afresh;
#: one that fails sooner (hung, flaky cable) keeps backing off instead of flapping.
STABLE_S = 60.0
Sleep = Callable[[float], Awaitable[None]]
MakeWake = Callable[[Callable[[Frame], None]], WakeListener]


@dataclass(frozen=True)
class Policy:
    """Timings and choices of the conversation (seconds unless named otherwise)."""

    follow_up_s: float = 8.0
    flash_s: float = 0.4
    max_session_s: float = 600.0
    fatal_retry_s: float = 300.0
    max_reconnects: int = 8
    voice_barge_in: bool = False
    wake_barge_in: bool = True
    preroll_s: float = 2.0
    earcons: bool = False
    log_transcripts: bool = True


@dataclass
class Record:
    """What happened, for tests and the demo's timeline."""

    states: list[State] = field(default_factory=lambda: [State.IDLE])
    effects: list[Effect] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    reconnect_delays: list[float] = field(default_factory=list)
    wakes: list[Detection] = field(default_factory=list)  # wake words that were acted on


class Controller:
    """Runs conversations on the given ports until cancelled.

    ``make_link(report, tools)`` builds the Live link that reports to the controller and
    declares the controller's tools (end_conversation, set_volume, get_local_time);
    ``make_wake(report)``, if given, the wake-word listener that reports detections.
    """

    def __init__(
        self,
        source: AudioSource,
        sink: AudioSink,
        make_link: Callable[[Callable[[LinkEvent], None], list[Tool]], LiveLink],
        policy: Policy | None = None,
        backoff: Backoff | None = None,
        sleep: Sleep = asyncio.sleep,
        on_state: Callable[[Status], None] = lambda status: None,
        volume: Volume | None = None,
        make_wake: MakeWake | None = None,
    ) -> None:
        self.source, self.sink = source, sink
        self.policy = policy or Policy()
        self.tools = ToolBox(builtin_tools(self.end_conversation, self.set_volume))
        self.link = make_link(self._on_link_event, list(self.tools.tools.values()))
        self.backoff = backoff or Backoff()
        self.status = Status()
        self.record = Record()
        self.volume = volume or Volume(initial=100)
        self._sleep = sleep
        self.on_state = on_state  # told of every change of state (LEDs, the demo)
        self._dropping = False  # after a flush: the rest of that turn's audio is not played
        self._state_timers: dict[str, asyncio.Task[None]] = {}
        self._session_timer: asyncio.Task[None] | None = None
        self._tool_calls: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._state_changed = asyncio.Event()
        self._crashed: BaseException | None = None
        self._run_task: asyncio.Task[None] | None = None
        self._lost_ports: set[str] = set()  # which of "microphone", "speaker" are missing
        self.chunks_heard = 0  # microphone chunks read: capture is alive while this grows
        self._missing: dict[str, str] = {}  # ports that failed to open, and why
        self._reopen_backoffs: dict[str, Backoff] = {}
        self._back_at: dict[str, float] = {}  # loop time each port last came back
        self.reference = PrerollRing(REFERENCE_S, OUTPUT_RATE)
        sink.tap = self.reference.append  # what was played: the echo canceller's reference
        # What the microphone heard lately, on the same clock as the wake-word detector.
        self.preroll = PrerollRing(self.policy.preroll_s)
        self.wake = make_wake(self._on_wake) if make_wake else None
        self._wake_end = 0  # stream byte where the last accepted wake word ended

    # -- events in ---------------------------------------------------------------------------

    def dispatch(self, event: Event) -> None:
        """Feed one event to the state machine and carry out its effects."""
        before = self.status.state
        self.status, effects = transition(self.status, event)
        if self.status.state is not before:
            self._cancel(set(self._state_timers.values()))
            self._state_timers.clear()
            self._mic_privacy(before, self.status.state)
            self.record.states.append(self.status.state)
            self._state_changed.set()
            self.on_state(self.status)  # first, so that the line below has the new state
            log.info(
                "%s -> %s (%s)",
                before.value,
                self.status.state.value,
                event.value,
                extra={"event": event.value},  # a journal field under systemd
            )
        for effect in effects:
            self.record.effects.append(effect)
            self._EFFECTS[effect](self)

    async def entered(self, state: State, count: int = 1) -> None:
        """Return once ``state`` has been entered ``count`` times (IDLE at start counts);
        raise what crashed the controller if that happens first."""
        while self.record.states.count(state) < count:
            if self._crashed is not None:
                raise self._crashed
            self._state_changed.clear()
            await self._state_changed.wait()

    def _mic_privacy(self, before: State, after: State) -> None:
        """Nothing heard while MUTED may be used: the pre-roll is emptied on the way in,
        and the wake word starts afresh on the way out (its audio has a gap)."""
        if after is State.MUTED:
            self.preroll.clear()
        elif before is State.MUTED and self.wake is not None:
            self.wake.reset()

    def _on_wake(self, frame: Frame) -> None:
        detection = frame.detection
        assert detection is not None  # the listener reports detections only
        state = self.status.state
        wanted = state is State.IDLE or (state is State.SPEAKING and self.policy.wake_barge_in)
        log.info(
            "wake word %s (score %.2f) at %.2f s%s",
            detection.model,
            detection.score,
            detection.end_s,
            "" if wanted else f"; ignored while {state.value}",
        )
        if wanted:
            self.record.wakes.append(detection)
            self._wake_end = byte_count(detection.end_s, INPUT_RATE)
            self.dispatch(Event.WAKE_WORD)

    def _on_link_event(self, event: LinkEvent) -> None:
        match event:
            case Ready():
                self.backoff.reset()
                self._dropping = False  # a turn cut off with the old connection never ends
                self.dispatch(Event.SESSION_READY)
            case ModelAudio(pcm=pcm):
                self._play(pcm)
            case Transcript(speaker=speaker, text=text):
                self._transcript(speaker, text)
            case TurnComplete():
                self._turn_complete()
            case Interrupted():
                self._cancel_tools()
                self.dispatch(Event.SERVER_INTERRUPTED)
            case ToolRequest():
                self._start_tool(event)
            case ToolsCancelled(ids=ids):
                self._cancel_tools(ids)
            case Lost(failure=failure):
                self._lost(failure.kind, failure.message)
            case Crashed(error=error):
                self._crash(error)

    def _play(self, pcm: bytes) -> None:
        if self._dropping:
            return
        self.dispatch(Event.MODEL_AUDIO)
        if self.status.state is State.SPEAKING:  # the machine decides whether audio plays
            self.sink.write(self.volume.apply(pcm))

    def _transcript(self, speaker: str, text: str) -> None:
        if self.policy.log_transcripts:
            log.info("%s said: %s", speaker, text)
        if speaker == "user" and not self._dropping:
            self.dispatch(Event.USER_TURN_ENDED)

    def _turn_complete(self) -> None:
        if self._dropping:
            self._dropping = False  # the interrupted turn is over: the next one plays
            return
        self._spawn(self._reply_done())

    async def _reply_done(self) -> None:
        await self.sink.drain()
        self.dispatch(Event.REPLY_DONE)

    def _lost(self, kind: Kind, message: str) -> None:
        log.warning("Live session lost: %s", message)
        if kind is Kind.FATAL:
            self.record.errors.append(message)
            self.dispatch(Event.FATAL_ERROR)
        else:
            self.dispatch(Event.CONNECTION_LOST)

    # -- tools -------------------------------------------------------------------------------

    def _start_tool(self, request: ToolRequest) -> None:
        async def run() -> None:
            answer = await self.tools.call(request.name, request.args)
            await self.link.respond(request, answer)
            self._tool_calls.pop(request.id, None)

        self._tool_calls[request.id] = self._spawn(run())

    def _cancel_tools(self, ids: tuple[str, ...] | None = None) -> None:
        for call_id in list(self._tool_calls) if ids is None else ids:
            task = self._tool_calls.pop(call_id, None)
            if task:
                task.cancel()

    def end_conversation(self) -> None:
        """The end_conversation tool's action."""
        self.dispatch(Event.END_CONVERSATION)

    def set_volume(self, level: int) -> None:
        """The set_volume tool's action (0-100, remembered)."""
        self.volume.set(level)

    # -- effects -----------------------------------------------------------------------------

    def _open_session(self) -> None:
        self.link.open()
        self._session_timer = self._spawn(
            self._after(self.policy.max_session_s, Event.SESSION_LIMIT)
        )

    def _close_session(self) -> None:
        self._cancel_tools()
        if self._session_timer:
            self._session_timer.cancel()
        self.link.stop()

    def _reconnect(self) -> None:
        if self.backoff.attempts >= self.policy.max_reconnects:
            self._lost(Kind.FATAL, f"offline: {self.backoff.attempts} reconnects failed")
            return
        delay = self.backoff.next_delay()
        self.record.reconnect_delays.append(delay)
        self._state_timer("reconnect", self._reopen(delay))

    async def _reopen(self, delay: float) -> None:
        await self._sleep(delay)
        self.link.open(resume=True)

    def _send_preroll(self) -> None:
        """What the user said between the end of the wake word and now (inference lags
        behind the audio): the session must hear it too, and nothing said before."""
        self.link.send_audio(self.preroll.since(self._wake_end))

    def _flush(self) -> None:
        self._dropping = True
        self.sink.flush()

    def _earcon(self, frequency_hz: float) -> None:
        if self.policy.earcons:
            self.sink.write(self.volume.apply(tone(frequency_hz, 0.12, OUTPUT_RATE, 0.15)))

    _EFFECTS: ClassVar[dict[Effect, Callable[["Controller"], None]]] = {
        Effect.OPEN_SESSION: lambda c: c._open_session(),
        Effect.CLOSE_SESSION: lambda c: c._close_session(),
        Effect.RECONNECT: lambda c: c._reconnect(),
        Effect.SEND_PREROLL: lambda c: c._send_preroll(),
        Effect.FLUSH_PLAYBACK: lambda c: c._flush(),
        Effect.START_FOLLOW_UP: lambda c: c._state_timer(
            "follow-up", c._after(c.policy.follow_up_s, Event.FOLLOW_UP_EXPIRED)
        ),
        Effect.START_FLASH: lambda c: c._state_timer(
            "flash", c._after(c.policy.flash_s, Event.FLASH_DONE)
        ),
        Effect.SCHEDULE_RETRY: lambda c: c._state_timer(
            "retry", c._after(c.policy.fatal_retry_s, Event.RETRY)
        ),
        Effect.EARCON_START: lambda c: c._earcon(880.0),
        Effect.EARCON_END: lambda c: c._earcon(660.0),
        Effect.EARCON_ERROR: lambda c: c._earcon(220.0),
    }

    # -- audio devices ---------------------------------------------------------------------

    async def open_ports(self) -> None:
        """Open the speaker and the microphone. One that is missing (not plugged in at
        boot) does not stop the speaker: ``run`` shows ERROR and retries it."""
        for port, start in (("speaker", self.sink.start), ("microphone", self.source.start)):
            try:
                await start()
            except DeviceLostError as error:
                self._missing[port] = str(error)

    async def run(self) -> None:
        """Pump microphone audio and watch the speaker until cancelled, or until a bug
        crashes one of the controller's tasks (then raise it, for the supervisor); stop
        every task it started."""
        self._run_task = asyncio.current_task()
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._pump_forever(), name="capture-pump")
                group.create_task(self._watch_speaker_forever(), name="speaker-watch")
                if self.wake is not None:
                    await self.wake.start()
                    group.create_task(self.wake.wait_failed(), name="wake-watch")
        except asyncio.CancelledError:
            if self._crashed is not None:
                raise self._crashed from None
            raise
        finally:
            self._cancel(self._tasks)
            if self.wake is not None:
                await self.wake.stop()
            await self.link.close()

    @property
    def lost_ports(self) -> frozenset[str]:
        """The ports ("microphone", "speaker") that are gone and being reopened."""
        return frozenset(self._lost_ports)

    async def _pump_forever(self) -> None:
        lost = self._missing.pop("microphone", None)
        while True:
            if lost is not None:
                await self._recover("microphone", self._reopen_source, lost)
                self._heard_gap()
            try:
                await self._pump()
            except DeviceLostError as error:
                lost = str(error)

    async def _watch_speaker_forever(self) -> None:
        lost = self._missing.pop("speaker", None)
        while True:
            if lost is not None:
                await self._recover("speaker", self.sink.start, lost)
            lost = await self.sink.wait_lost()

    def _crash(self, error: BaseException) -> None:
        log.error("controller crashed", exc_info=error)
        if self._crashed is None:
            self._crashed = error
            self._state_changed.set()
            if self._run_task is not None:
                self._run_task.cancel()

    async def _pump(self) -> None:
        while True:
            chunk = await self.source.read()
            self.chunks_heard += 1
            mode = uplink(self.status.state, self.policy.voice_barge_in)
            if mode is not Uplink.DISCARD:
                self._hear(chunk)
            if mode in (Uplink.BUFFER, Uplink.LIVE):
                self.link.send_audio(chunk)
            if self.status.state is State.LISTENING and rms_dbfs(chunk) > SPEECH_DBFS:
                self.dispatch(Event.USER_SPEECH)

    def _hear(self, chunk: bytes) -> None:
        """Keep ``chunk`` for the pre-roll and the wake word, on one clock. The detector
        hears every state but MUTED, so it never needs a warm-up after a conversation."""
        self.preroll.append(chunk)
        if self.wake is not None:
            self.wake.feed(chunk)

    def _heard_gap(self) -> None:
        """The microphone was away: what came before does not join what comes next."""
        self.preroll.clear()
        if self.wake is not None:
            self.wake.reset()

    async def _reopen_source(self) -> None:
        """Open the microphone and read one chunk: a hung device opens but delivers
        nothing, and must not count as back."""
        await self.source.start()
        await self.source.read()

    async def _recover(self, port: str, start: Callable[[], Awaitable[None]], message: str) -> None:
        """Show ERROR while ``port`` is missing and reopen it with backoff (never a busy
        loop) until it is back; IDLE again once no port is missing. The backoff carries on
        from the last loss unless the port then worked for STABLE_S."""
        log.error("%s; retrying until it is back", message)
        self.record.errors.append(message)
        self._lost_ports.add(port)
        backoff = self._reopen_backoffs.setdefault(port, Backoff(initial_s=1.0, cap_s=30.0))
        now = asyncio.get_running_loop().time()
        if now - self._back_at.get(port, now - STABLE_S) >= STABLE_S:
            backoff.reset()
        while True:
            if self.status.state is not State.ERROR:  # e.g. a button press dismissed it
                self.dispatch(Event.DEVICE_LOST)
            await self._sleep(backoff.next_delay())
            try:
                await start()
            except DeviceLostError as error:
                log.warning("%s", error)
                continue
            log.info("the %s is back", port)
            self._back_at[port] = asyncio.get_running_loop().time()
            self._lost_ports.discard(port)
            if not self._lost_ports:
                self.dispatch(Event.DEVICE_BACK)
            return

    # -- task helpers ------------------------------------------------------------------------

    async def _after(self, seconds: float, event: Event) -> None:
        await self._sleep(seconds)
        self.dispatch(event)

    def _state_timer(self, name: str, work: Coroutine[Any, Any, None]) -> None:
        """Start timer ``name``, replacing one of that name; a change of state cancels it."""
        previous = self._state_timers.pop(name, None)
        if previous:
            previous.cancel()
        self._state_timers[name] = self._spawn(work)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._crash(task.exception())  # type: ignore[arg-type]

    @staticmethod
    def _cancel(tasks: set[asyncio.Task[None]]) -> None:
        for task in list(tasks):
            task.cancel()
