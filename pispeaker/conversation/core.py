"""The conversation: feeds events to the pure state machine, carries out the effects it
returns, and only then tells the observers (LEDs, sd_notify, logs), so that control never
waits behind them. It owns the timers the effects start: those of a state end with it."""

import asyncio
import enum
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pispeaker.conversation.tasks import TaskOwner, Work
from pispeaker.states import CONVERSATION, Effect, Event, Options, State, Status, transition

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


class Duplex(enum.Enum):
    """Whether the user is heard over the reply (conversation.duplex): the microphone is
    then held on the device while it plays, and sent once they are heard talking."""

    AUTO = "auto"  # once the echo canceller has converged; withheld without one
    AEC = "aec"  # the same, but a canceller that cannot load is a configuration error
    HARDWARE = "hardware"  # always: the microphone cancels the echo itself
    OFF = "off"  # never: only the wake word and the button interrupt

    @property
    def cancels_echo(self) -> bool:
        """Whether pispeaker runs its own echo canceller."""
        return self in (Duplex.AUTO, Duplex.AEC)


@dataclass(frozen=True)
class Policy:
    """Timings and choices of the conversation (seconds unless named otherwise)."""

    follow_up_s: float = 8.0
    max_unanswered_s: float = 30.0
    flash_s: float = 0.4
    max_session_s: float = 600.0
    fatal_retry_s: float = 300.0
    max_reconnects: int = 8
    duplex: Duplex = Duplex.OFF
    wake_barge_in: bool = True
    voice_interrupts: bool = True
    preroll_s: float = 2.0
    earcons: bool = False
    log_transcripts: bool = True

    @property
    def options(self) -> Options:
        """What the state machine decides with."""
        return Options(
            wake_barge_in=self.wake_barge_in,
            voice_interrupts=self.voice_interrupts,
            max_reconnects=self.max_reconnects,
        )


@dataclass(frozen=True)
class Change:
    """One event fed to the machine: the status before and after, the effects carried out,
    and what caused the event (reply audio, a wake-word detection, the ``Failure`` that lost
    the session, a lost device's message)."""

    before: Status
    event: Event
    after: Status
    effects: tuple[Effect, ...]
    cause: object = None

    @property
    def moved(self) -> bool:
        """True when the State changed."""
        return self.after.state is not self.before.state


Handler = Callable[[Change], None]
Observer = Callable[[Change], None]


class Conversation:
    """The machine's driver. ``handlers`` carry out each effect (the controller wires them);
    ``observers`` hear every change after its effects; ``last_error`` is the latest problem
    reported, for a person."""

    def __init__(self, policy: Policy, tasks: TaskOwner, sleep: Sleep) -> None:
        self.policy = policy
        self.status = Status()
        self.handlers: dict[Effect, Handler] = {}
        self.observers: list[Observer] = []
        self.error_observers: list[Callable[[str], None]] = []
        self.last_error: str | None = None
        self._options = policy.options
        self._tasks = tasks
        self.sleep = sleep  # the clock timers wait on (a fake one in tests)
        self._state_timers: set[str] = set()
        self._conversation_timers: set[str] = set()
        self._entries = Counter({State.IDLE: 1})
        self._changed = asyncio.Event()
        self._crashed: BaseException | None = None

    def dispatch(self, event: Event, cause: object = None) -> Change:
        """Feed one event to the machine, carry out its effects, then tell the observers."""
        before = self.status
        self.status, effects = transition(before, event, self._options)
        change = Change(before, event, self.status, effects, cause)
        if change.moved:
            self._tasks.cancel(*self._state_timers)
            self._state_timers.clear()
            if self.status.state not in CONVERSATION:
                self._tasks.cancel(*self._conversation_timers)
                self._conversation_timers.clear()
            self._entries[self.status.state] += 1
            self._changed.set()
        for effect in effects:
            self.handlers[effect](change)
        for observer in self.observers:
            observer(change)
        if change.moved:
            log.info(
                "%s -> %s (%s)",
                before.state.value,
                self.status.state.value,
                event.value,
                extra={"event": event.value},  # a journal field under systemd
            )
        return change

    def report_error(self, message: str) -> None:
        """Keep ``message`` as the last error (it names the fix) and tell whoever listens."""
        self.last_error = message
        for observer in self.error_observers:
            observer(message)

    def after(self, name: str, seconds: float, event: Event) -> None:
        """Dispatch ``event`` in ``seconds`` unless the state changes first (timer ``name``
        replaces a running one of that name)."""
        self.in_state(name, self._after(seconds, event))

    def stop_timer(self, name: str) -> None:
        """Stop timer ``name`` if it runs."""
        self._tasks.cancel(name)
        self._state_timers.discard(name)
        self._conversation_timers.discard(name)

    def in_conversation(self, name: str, work: Work) -> None:
        """Run ``work`` as task ``name`` until it ends or the conversation does (whatever
        the states it goes through meanwhile)."""
        self._tasks.start(name, work)
        self._conversation_timers.add(name)

    def in_state(self, name: str, work: Work) -> None:
        """Run ``work`` as task ``name`` until it ends or the state changes."""
        self._tasks.start(name, work)
        self._state_timers.add(name)

    async def _after(self, seconds: float, event: Event) -> None:
        await self.sleep(seconds)
        self.dispatch(event)

    def entries(self, state: State) -> int:
        """How often ``state`` has been entered (IDLE at start counts)."""
        return self._entries[state]

    async def entered(self, state: State, count: int = 1) -> None:
        """Return once ``state`` has been entered ``count`` times (IDLE at start counts);
        raise what crashed the conversation if that happens first."""
        while self._entries[state] < count:
            if self._crashed is not None:
                raise self._crashed
            self._changed.clear()
            await self._changed.wait()

    def crashed(self, error: BaseException) -> None:
        """A bug ended part of the conversation: whoever waits on it hears of it."""
        if self._crashed is None:
            self._crashed = error
            self._changed.set()
