"""The controller: puts the conversation's parts together on one event loop.

- the conversation (``conversation.core``) drives the state machine and its timers;
- the router (``conversation.routing``) sends microphone audio where the state says and plays
  the reply;
- the device supervisor (``conversation.devices``) keeps the microphone and speaker open;
- the Live session (``conversation.session``) opens and closes the link, turns its reports
  into events, and runs the model's function calls (``conversation.toolrunner``).

Here each effect of the machine is wired to the part that carries it out, and wake-word
detections become events. Every task belongs to one ``TaskOwner``; a bug in any of them
ends ``run`` with that error, for the supervisor.
"""

import asyncio
import logging
from collections.abc import Callable

from pispeaker.audio.ports import AudioSink, AudioSource, Canceller, PrerollRing, VoiceModel
from pispeaker.audio.volume import Volume
from pispeaker.backoff import Backoff
from pispeaker.conversation.core import Change, Conversation, Handler, Policy, Sleep
from pispeaker.conversation.devices import DeviceSupervisor
from pispeaker.conversation.hearing import Ear, VoiceActivity
from pispeaker.conversation.history import History
from pispeaker.conversation.routing import AudioRouter
from pispeaker.conversation.session import LiveSession, MakeLink
from pispeaker.conversation.tasks import TaskOwner
from pispeaker.states import Effect, Event, State, Status
from pispeaker.tools import ToolBox, ToolSource, builtin_tools
from pispeaker.wake.detector import Frame
from pispeaker.wake.listener import WakeListener

__all__ = ["Controller", "MakeLink", "MakeWake", "Policy"]

log = logging.getLogger(__name__)

MakeWake = Callable[[Callable[[Frame], None]], WakeListener]


class Controller:
    """Runs conversations on the given ports until cancelled.

    ``make_link(report, tools)`` builds the Live link that reports to the controller and
    declares the tools ``tools()`` returns as each session opens (end_conversation,
    set_volume, get_local_time, and those of ``tool_source``);
    ``make_wake(report)``, if given, the wake-word listener that reports detections.
    ``canceller`` and ``voice_model``, if given, take the speaker's echo out of the
    microphone and tell the user's voice from other sounds (``policy.duplex`` says when the
    microphone is sent while the reply plays). ``tool_source``, if given, offers more tools
    (MCP servers'), looked at again as each conversation opens.
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
        canceller: Canceller | None = None,
        voice_model: VoiceModel | None = None,
        tool_source: ToolSource | None = None,
    ) -> None:
        self.source, self.sink = source, sink
        self.volume = volume or Volume(initial=100)
        self.on_state = on_state
        self._tasks = TaskOwner(self._crash)
        self._sleep = sleep
        self.conversation = Conversation(policy or Policy(), self._tasks, sleep)
        box = ToolBox(builtin_tools(self._end_conversation, self.volume.set), tool_source)
        self.session = LiveSession(
            self.conversation, self._tasks, make_link, box, sleep, self._crash
        )
        self.link, self.tools = self.session.link, self.session.tools
        self.wake = make_wake(self._on_wake) if make_wake else None
        self.ear = Ear(self.policy.duplex, canceller)
        self.router = AudioRouter(
            self.conversation,
            self._tasks,
            self.link,
            sink,
            self.volume,
            self.wake,
            self.ear,
            VoiceActivity(voice_model),
        )
        self.devices = DeviceSupervisor(
            self.conversation,
            source,
            sink,
            lambda: self.router.pump(source),
            self.router.heard_gap,
            self.ear.new_device,
            sleep,
        )
        if backoff is not None:
            self.session.backoff = backoff
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
    def backoff(self) -> Backoff:
        """The delays between reconnects."""
        return self.session.backoff

    @backoff.setter
    def backoff(self, backoff: Backoff) -> None:
        self.session.backoff = backoff

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

    async def _unanswered(self) -> None:
        """The clock since the last answer: overdue after the follow-up window's length
        (a declined turn then ends the conversation), and the end at max_unanswered_s
        whoever talks (speech the model never answers keeps nothing open for long)."""
        policy = self.policy
        await self._sleep(policy.follow_up_s)
        self.dispatch(Event.ANSWER_OVERDUE)
        await self._sleep(policy.max_unanswered_s - policy.follow_up_s)
        self.dispatch(Event.UNANSWERED_LIMIT)

    def _tell_state(self, change: Change) -> None:
        if change.moved:
            self.on_state(change.after)

    # -- effects out ------------------------------------------------------------------------

    def _handlers(self) -> dict[Effect, Handler]:
        policy, conversation = self.policy, self.conversation
        router, session = self.router, self.session
        return {
            Effect.OPEN_SESSION: session.open,
            Effect.CLOSE_SESSION: session.close,
            Effect.RECONNECT: session.reconnect,
            Effect.REPORT_OFFLINE: session.report_offline,
            Effect.SEND_PREROLL: router.send_preroll,
            Effect.PLAY_AUDIO: router.play,
            Effect.AWAIT_PLAYBACK: router.await_playback,
            Effect.FLUSH_PLAYBACK: router.flush,
            Effect.SEND_HELD: router.send_held,
            Effect.START_FOLLOW_UP: lambda _: conversation.after(
                "follow-up", policy.follow_up_s, Event.FOLLOW_UP_EXPIRED
            ),
            Effect.HOLD_FOLLOW_UP: lambda _: conversation.stop_timer("follow-up"),
            Effect.START_UNANSWERED: lambda _: conversation.in_conversation(
                "unanswered", self._unanswered()
            ),
            Effect.STOP_UNANSWERED: lambda _: conversation.stop_timer("unanswered"),
            Effect.START_FLASH: lambda _: conversation.after(
                "flash", policy.flash_s, Event.FLASH_DONE
            ),
            Effect.SCHEDULE_RETRY: lambda _: conversation.after(
                "retry", policy.fatal_retry_s, Event.RETRY
            ),
            Effect.EARCON_START: lambda _: router.earcon(880.0),
            Effect.EARCON_END: lambda _: router.earcon(660.0),
            Effect.EARCON_ERROR: lambda _: router.earcon(220.0),
            Effect.EARCON_CUT: lambda _: router.earcon(330.0),
        }
