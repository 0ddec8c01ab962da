"""The controller: puts the conversation's parts together on one event loop.

- the conversation (``conversation.core``) drives the state machine and its timers;
- the router (``conversation.routing``) sends microphone audio where the state says and plays
  the reply;
- the device supervisor (``conversation.devices``) keeps the microphone and speaker open;
- the tool runner (``conversation.toolrunner``) answers the model's function calls.

Here the Live link's reports become events, and each effect of the machine is wired to the
part that carries it out. Every task belongs to one ``TaskOwner``; a bug in any of them ends
``run`` with that error, for the supervisor.
"""

import asyncio
import logging
from collections.abc import Callable

from pispeaker.audio.ports import AudioSink, AudioSource, PrerollRing
from pispeaker.audio.volume import Volume
from pispeaker.backoff import Backoff
from pispeaker.conversation.core import Change, Conversation, Handler, Policy, Sleep
from pispeaker.conversation.devices import DeviceSupervisor
from pispeaker.conversation.history import History
from pispeaker.conversation.routing import AudioRouter
from pispeaker.conversation.tasks import TaskOwner
from pispeaker.conversation.toolrunner import ToolRunner
from pispeaker.live.port import (
    Crashed,
    Interrupted,
    Kind,
    Link,
    LinkEvent,
    Lost,
    ModelAudio,
    Ready,
    Report,
    ToolRequest,
    ToolsCancelled,
    Transcript,
    TurnComplete,
)
from pispeaker.states import Effect, Event, State, Status
from pispeaker.tools import Tool, ToolBox, builtin_tools
from pispeaker.wake.detector import Frame
from pispeaker.wake.listener import WakeListener

__all__ = ["Controller", "MakeLink", "MakeWake", "Policy"]

log = logging.getLogger(__name__)

MakeLink = Callable[[Report, list[Tool]], Link]
MakeWake = Callable[[Callable[[Frame], None]], WakeListener]


class Controller:
    """Runs conversations on the given ports until cancelled.

    ``make_link(report, tools)`` builds the Live link that reports to the controller and
    declares the controller's tools (end_conversation, set_volume, get_local_time);
    ``make_wake(report)``, if given, the wake-word listener that reports detections.
    ``on_state`` is told of every change of state, after its effects.
    """

    def __init__(
        self,
        source: AudioSource,
        sink: AudioSink,
        make_link: MakeLink,
        policy: Policy | None = None,
        backoff: Backoff | None = None,
        sleep: Sleep = asyncio.sleep,
        on_state: Callable[[Status], None] = lambda status: None,
        volume: Volume | None = None,
        make_wake: MakeWake | None = None,
    ) -> None:
        self.source, self.sink = source, sink
        self.volume = volume or Volume(initial=100)
        self.backoff = backoff or Backoff()  # between reconnects
        self.on_state = on_state
        self._sleep = sleep
        self._tasks = TaskOwner(self._crash)
        self.conversation = Conversation(policy or Policy(), self._tasks, sleep)
        box = ToolBox(builtin_tools(self._end_conversation, self.volume.set))
        self.link = make_link(self._on_link_event, list(box.tools.values()))
        self.tools = ToolRunner(box, self.link, self._tasks)
        self.wake = make_wake(self._on_wake) if make_wake else None
        self.router = AudioRouter(
            self.conversation, self._tasks, self.link, sink, self.volume, self.wake
        )
        self.devices = DeviceSupervisor(
            self.conversation,
            source,
            sink,
            lambda: self.router.pump(source),
            self.router.heard_gap,
            sleep,
        )
        self.conversation.handlers = self._handlers()
        self.conversation.observers += [self.router.on_change, self._tell_state]
        self._run_task: asyncio.Task[None] | None = None
        self._crashed: BaseException | None = None

    # -- what the rest of pispeaker sees ----------------------------------------------------

    @property
    def status(self) -> Status:
        """The state machine's current status."""
        return self.conversation.status

    @property
    def policy(self) -> Policy:
        """The conversation's timings and choices."""
        return self.conversation.policy

    @property
    def last_error(self) -> str | None:
        """The latest problem, in words that name the fix (None if there was none)."""
        return self.conversation.last_error

    @property
    def chunks_heard(self) -> int:
        """Microphone chunks read: capture is alive while this grows."""
        return self.router.chunks_heard

    @property
    def lost_ports(self) -> frozenset[str]:
        """The ports ("microphone", "speaker") that are gone and being reopened."""
        return self.devices.lost_ports

    @property
    def reference(self) -> PrerollRing:
        """What the speaker played lately: the echo canceller's reference."""
        return self.router.reference

    def dispatch(self, event: Event, cause: object = None) -> Change:
        """Feed one event to the state machine and carry out its effects."""
        return self.conversation.dispatch(event, cause)

    def observe(self, history: History) -> None:
        """Keep ``history`` of every change and every error from now on."""
        self.conversation.observers.append(history)
        self.conversation.error_observers.append(history.error)

    async def entered(self, state: State, count: int = 1) -> None:
        """Return once ``state`` has been entered ``count`` times (IDLE at start counts);
        raise what crashed the controller if that happens first."""
        await self.conversation.entered(state, count)

    def entries(self, state: State) -> int:
        """How often ``state`` has been entered (IDLE at start counts)."""
        return self.conversation.entries(state)

    async def open_ports(self) -> None:
        """Open the speaker and the microphone (a missing one is retried by ``run``)."""
        await self.devices.open_ports()

    async def run(self) -> None:
        """Pump microphone audio and watch the devices until cancelled, or until a bug
        crashes one of the controller's tasks (then raise it, for the supervisor); stop
        every task it started, and the link."""
        self._run_task = asyncio.current_task()
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self.devices.run(), name="devices")
                if self.wake is not None:
                    await self.wake.start()
                    group.create_task(self.wake.wait_failed(), name="wake-watch")
        except asyncio.CancelledError:
            if self._crashed is not None:
                raise self._crashed from None
            raise
        finally:
            await self._tasks.close()
            if self.wake is not None:
                await self.wake.stop()
            await self.link.close()

    # -- events in --------------------------------------------------------------------------

    def _on_wake(self, frame: Frame) -> None:
        detection = frame.detection
        assert detection is not None  # the listener reports detections only
        state = self.status.state
        change = self.dispatch(Event.WAKE_WORD, detection)
        log.info(
            "wake word %s (score %.2f) at %.2f s%s",
            detection.model,
            detection.score,
            detection.end_s,
            "" if change.effects else f"; ignored while {state.value}",
        )

    def _on_link_event(self, event: LinkEvent) -> None:
        match event:
            case Ready():
                self.dispatch(Event.SESSION_READY)
            case ModelAudio(pcm=pcm):
                self.dispatch(Event.MODEL_AUDIO, pcm)
            case Transcript(speaker=speaker, text=text):
                self._transcript(speaker, text)
            case TurnComplete():
                self.dispatch(Event.TURN_COMPLETE)
            case Interrupted():
                self.tools.cancel_all()
                self.dispatch(Event.SERVER_INTERRUPTED)
            case ToolRequest():
                self.tools.start(event)
            case ToolsCancelled(ids=ids):
                self.tools.cancel(ids)
            case Lost(failure=failure):
                log.warning("Live session lost: %s", failure.message)
                if failure.kind is Kind.FATAL:
                    self.conversation.report_error(failure.message)
                    self.dispatch(Event.FATAL_ERROR, failure.message)
                else:
                    self.dispatch(Event.CONNECTION_LOST, failure.message)
            case Crashed(error=error):
                self._crash(error)

    def _transcript(self, speaker: str, text: str) -> None:
        if self.policy.log_transcripts:
            log.info("%s said: %s", speaker, text)
        if speaker == "user":
            self.dispatch(Event.USER_TURN_ENDED)

    def _end_conversation(self) -> None:
        """The end_conversation tool's action."""
        self.dispatch(Event.END_CONVERSATION)

    def _crash(self, error: BaseException) -> None:
        log.error("controller crashed", exc_info=error)
        if self._crashed is None:
            self._crashed = error
            self.conversation.crashed(error)
            if self._run_task is not None:
                self._run_task.cancel()

    def _tell_state(self, change: Change) -> None:
        if change.moved:
            self.on_state(change.after)

    # -- effects out ------------------------------------------------------------------------

    def _handlers(self) -> dict[Effect, Handler]:
        policy, conversation, router = self.policy, self.conversation, self.router
        return {
            Effect.OPEN_SESSION: self._open_session,
            Effect.CLOSE_SESSION: self._close_session,
            Effect.RECONNECT: self._reconnect,
            Effect.REPORT_OFFLINE: self._report_offline,
            Effect.SEND_PREROLL: router.send_preroll,
            Effect.PLAY_AUDIO: router.play,
            Effect.AWAIT_PLAYBACK: router.await_playback,
            Effect.FLUSH_PLAYBACK: router.flush,
            Effect.START_FOLLOW_UP: lambda _: conversation.after(
                "follow-up", policy.follow_up_s, Event.FOLLOW_UP_EXPIRED
            ),
            Effect.HOLD_FOLLOW_UP: lambda _: conversation.stop_timer("follow-up"),
            Effect.START_FLASH: lambda _: conversation.after(
                "flash", policy.flash_s, Event.FLASH_DONE
            ),
            Effect.SCHEDULE_RETRY: lambda _: conversation.after(
                "retry", policy.fatal_retry_s, Event.RETRY
            ),
            Effect.EARCON_START: lambda _: router.earcon(880.0),
            Effect.EARCON_END: lambda _: router.earcon(660.0),
            Effect.EARCON_ERROR: lambda _: router.earcon(220.0),
        }

    def _open_session(self, _change: Change) -> None:
        self.link.open()
        self._tasks.start("session-limit", self._session_limit())

    async def _session_limit(self) -> None:
        await self._sleep(self.policy.max_session_s)
        self.dispatch(Event.SESSION_LIMIT)

    def _close_session(self, _change: Change) -> None:
        self.tools.cancel_all()
        self._tasks.cancel("session-limit")
        self.link.stop()

    def _reconnect(self, change: Change) -> None:
        if change.after.reconnects == 1:
            self.backoff.reset()  # the first of a run: the last session was ready
        self.conversation.in_state("reconnect", self._reopen(self.backoff.next_delay()))

    async def _reopen(self, delay: float) -> None:
        await self._sleep(delay)
        self.link.open(resume=True)

    def _report_offline(self, change: Change) -> None:
        message = f"offline: {change.before.reconnects} reconnects failed"
        log.warning("Live session lost: %s", message)
        self.conversation.report_error(message)
