"""What the speaker is doing, in one line for ``systemctl status`` and in journal fields.

Pure: the narrator follows the states the controller enters and counts conversations and
the user's turns; it knows nothing of systemd.
"""

import uuid
from dataclasses import dataclass, field
from pathlib import Path

from pispeaker.config import Config
from pispeaker.states import CONVERSATION, State

#: States that begin a new turn of the user's when LISTENING follows them.
_TURN_ENDS = frozenset({State.THINKING, State.SPEAKING, State.DUCKED, State.INTERRUPTED})


def wake_phrase(model: str) -> str:
    """How a person would say a wake-word model: "hey_jarvis" or "/x/hey_pi.tflite" -> "hey
    jarvis", "hey pi"."""
    return Path(model).stem.replace("_", " ")


@dataclass
class Narrator:
    """Follows the states and describes them; ``session`` identifies the conversation in the
    journal (unique across restarts), ``conversation`` and ``turn`` count for people."""

    wake_phrases: tuple[str, ...] = ()
    has_button: bool = False
    state: State = State.IDLE
    conversation: int = 0
    turn: int = 0
    reconnecting: bool = False  # CONNECTING again within a conversation
    session: str = field(default="", repr=False)

    def configure(self, config: Config) -> None:
        """Take the wake words and button from ``config`` (at start and on every reload)."""
        self.wake_phrases = tuple(wake_phrase(model) for model in config.wake.models)
        self.has_button = bool(config.panel.button_pin)

    def follow(self, state: State) -> None:
        """Note that the speaker entered ``state``."""
        before, self.state = self.state, state
        self.reconnecting = state is State.CONNECTING and before in CONVERSATION
        if state in CONVERSATION and before not in CONVERSATION:
            self.conversation += 1
            self.turn = 1
            self.session = uuid.uuid4().hex[:12]
        elif state is State.LISTENING and before in _TURN_ENDS:
            self.turn += 1

    def line(self, error: str | None = None) -> str:
        """The status line for the current state; ``error`` is why it is in ERROR."""
        state = self.state
        if state is State.IDLE:
            return self._waiting()
        if state is State.CONNECTING:
            again = "Reconnecting" if self.reconnecting else "Connecting"
            return f"{again} to the Live API, conversation {self.conversation}"
        if state in CONVERSATION:
            return f"In conversation, turn {self.turn} ({state.value})"
        if state is State.MUTED:
            return "Muted: the microphone is off; hold the button to turn it back on"
        return f"Error: {error or 'see the journal'}"

    def fields(self) -> dict[str, str]:
        """Journal fields for a log record made now."""
        fields = {"STATE": self.state.value}
        if self.session:
            fields["SESSION"] = self.session
        return fields

    def _waiting(self) -> str:
        if self.wake_phrases:
            phrases = " or ".join(f"'{phrase}'" for phrase in self.wake_phrases)
            button = " or a button press" if self.has_button else ""
            return f"Listening for {phrases}{button}"
        if self.has_button:
            return "Waiting for a button press"
        return "Idle: no wake word or button is configured; see the [wake] and [panel] sections"
