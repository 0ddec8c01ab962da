"""A bounded record of what a conversation did, for the bench and the tests."""

from collections import deque

from pispeaker.conversation.core import Change
from pispeaker.states import Effect, Event, State
from pispeaker.wake.detector import Detection

#: Entries kept of each kind: enough for any one conversation, bounded for a daemon's life.
LIMIT = 4096


class History:
    """Subscribe with ``controller.observe(history)``; keeps the last ``limit`` of each kind."""

    def __init__(self, limit: int = LIMIT) -> None:
        self._states: deque[State] = deque([State.IDLE], maxlen=limit)
        self._effects: deque[Effect] = deque(maxlen=limit)
        self._wakes: deque[Detection] = deque(maxlen=limit)
        self._errors: deque[str] = deque(maxlen=limit)

    def __call__(self, change: Change) -> None:
        if change.moved:
            self._states.append(change.after.state)
        self._effects.extend(change.effects)
        acted_on = change.event is Event.WAKE_WORD and change.effects
        if acted_on and isinstance(change.cause, Detection):
            self._wakes.append(change.cause)

    def error(self, message: str) -> None:
        """A problem the conversation reported."""
        self._errors.append(message)

    @property
    def states(self) -> list[State]:
        """The states entered, oldest first (IDLE at start counts)."""
        return list(self._states)

    @property
    def effects(self) -> list[Effect]:
        """The effects carried out, oldest first."""
        return list(self._effects)

    @property
    def wakes(self) -> list[Detection]:
        """The wake words that were acted on."""
        return list(self._wakes)

    @property
    def errors(self) -> list[str]:
        """The problems reported (each names its fix)."""
        return list(self._errors)
