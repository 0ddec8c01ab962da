"""The conversation state machine: pure, synchronous, no I/O.

``transition(status, event)`` returns the next status and the effects the controller must
carry out, as data. Two things are derived from the state instead of being effects, so that
they can never drift out of step with it:

- ``uplink(state, voice_barge_in)``: what happens to microphone audio (privacy lives here:
  nothing is sent in IDLE, MUTED or ERROR);
- state-scoped timers: a timer started by an effect (follow-up window, interrupt flash,
  retry backoff) is cancelled by the controller whenever the state changes.
"""

import enum
from collections.abc import Callable
from dataclasses import dataclass, replace


class State(enum.Enum):
    """What the speaker is doing, as its LEDs show it."""

    IDLE = "idle"  # wake word and button armed; nothing sent
    CONNECTING = "connecting"  # session opening (or reopening); mic audio buffered
    LISTENING = "listening"  # the user's turn; mic audio sent live
    THINKING = "thinking"  # the user's turn ended; waiting for the model
    SPEAKING = "speaking"  # the reply is playing
    INTERRUPTED = "interrupted"  # barge-in: playback flushed; a short flash, then LISTENING
    MUTED = "muted"  # the user turned the microphone off (button hold)
    ERROR = "error"  # key rejected, model unavailable or device lost; waiting to retry


class Event(enum.Enum):
    """Something that happened, from a port or a timer."""

    WAKE_WORD = "wake word"
    BUTTON_PRESS = "button press"
    BUTTON_HOLD = "button hold"  # the mute toggle
    SESSION_READY = "session ready"  # setupComplete on a new or resumed session
    USER_SPEECH = "user speech"  # the user is audibly talking (restarts the follow-up window)
    USER_TURN_ENDED = "user turn ended"  # the server heard the end of the user's turn
    MODEL_AUDIO = "model audio"  # reply audio arrived
    REPLY_DONE = "reply done"  # turnComplete arrived and the reply has finished playing
    SERVER_INTERRUPTED = "server interrupted"  # the server cut its reply (voice barge-in)
    FLASH_DONE = "flash done"  # the INTERRUPTED flash has been shown
    FOLLOW_UP_EXPIRED = "follow-up expired"  # nobody spoke within the follow-up window
    SESSION_LIMIT = "session limit"  # the conversation reached its maximum length
    END_CONVERSATION = "end conversation"  # the model called end_conversation
    CONNECTION_LOST = "connection lost"  # a transient failure: reconnect with the handle
    FATAL_ERROR = "fatal error"  # a failure retrying will not fix soon (key, model)
    RETRY = "retry"  # the error backoff has passed
    DEVICE_LOST = "device lost"  # an audio device disappeared
    DEVICE_BACK = "device back"  # it returned


class Effect(enum.Enum):
    """Work for the controller. Effects are idempotent: doing one twice does no harm."""

    OPEN_SESSION = "open session"  # connect; starts the session-length limit
    CLOSE_SESSION = "close session"  # disconnect; stops the session-length limit
    RECONNECT = "reconnect"  # reopen with the resumption handle, after backoff
    SEND_PREROLL = "send pre-roll"  # send what was said after the wake word, before it fired
    FLUSH_PLAYBACK = "flush playback"  # drop queued and device audio, and the turn's rest
    START_FOLLOW_UP = "start follow-up"  # (re)start the follow-up window timer
    START_FLASH = "start flash"  # start the INTERRUPTED flash timer
    SCHEDULE_RETRY = "schedule retry"  # start the error backoff timer
    EARCON_START = "earcon start"
    EARCON_END = "earcon end"
    EARCON_ERROR = "earcon error"


class Uplink(enum.Enum):
    """What happens to captured microphone audio in a state."""

    DISCARD = "discard"  # not used at all, not even for the wake word (MUTED)
    LOCAL = "local"  # wake word and pre-roll ring only; nothing leaves the device
    BUFFER = "buffer"  # kept, to be sent once the session is ready
    LIVE = "live"  # sent as captured
    GUARDED = "guarded"  # not sent: the mic hears the speaker (no echo cancellation)


@dataclass(frozen=True)
class Status:
    """The machine's whole state: the State, and whether the conversation is closing (the
    model called end_conversation: end once its reply, usually a goodbye, is done)."""

    state: State = State.IDLE
    closing: bool = False


Transition = tuple[Status, tuple[Effect, ...]]
Rule = Callable[[Status], Transition]

_CLOSABLE = frozenset({State.LISTENING, State.THINKING, State.SPEAKING})
CONVERSATION = frozenset(
    {State.CONNECTING, State.LISTENING, State.THINKING, State.SPEAKING, State.INTERRUPTED}
)
_END = (Effect.FLUSH_PLAYBACK, Effect.CLOSE_SESSION, Effect.EARCON_END)
_FAIL = (Effect.FLUSH_PLAYBACK, Effect.CLOSE_SESSION, Effect.EARCON_ERROR, Effect.SCHEDULE_RETRY)
_LEAVE = (Effect.FLUSH_PLAYBACK, Effect.CLOSE_SESSION)  # quietly: mute, lost device
_BARGE_IN = (Effect.FLUSH_PLAYBACK, Effect.START_FLASH)


def uplink(state: State, voice_barge_in: bool = False) -> Uplink:
    """Where microphone audio goes in ``state``.

    While SPEAKING the microphone mostly hears the speaker, so without echo cancellation the
    audio is withheld (the model would interrupt itself); ``voice_barge_in`` sends it anyway.
    """
    if state is State.SPEAKING:
        return Uplink.LIVE if voice_barge_in else Uplink.GUARDED
    return _UPLINK[state]


_UPLINK = {
    State.IDLE: Uplink.LOCAL,
    State.CONNECTING: Uplink.BUFFER,
    State.LISTENING: Uplink.LIVE,
    State.THINKING: Uplink.LIVE,
    State.INTERRUPTED: Uplink.LIVE,
    State.MUTED: Uplink.DISCARD,
    State.ERROR: Uplink.LOCAL,
}


def transition(status: Status, event: Event) -> Transition:
    """The next status and the effects to carry out; unknown pairs leave everything as is."""
    rule = _RULES.get((status.state, event)) or _common(status.state, event)
    return rule(status) if rule else (status, ())


def _to(state: State, *effects: Effect) -> Rule:
    """A rule that moves to ``state`` with ``effects``; ``closing`` survives only while the
    conversation heads for its last reply (a barge-in means the user had more to say)."""
    return lambda status: (Status(state, status.closing and state in _CLOSABLE), effects)


def _reply_done(status: Status) -> Transition:
    if status.closing:
        return Status(State.IDLE), _END
    return Status(State.LISTENING), (Effect.START_FOLLOW_UP,)


def _close_after_reply(status: Status) -> Transition:
    return replace(status, closing=True), ()


_RULES: dict[tuple[State, Event], Rule] = {
    (State.IDLE, Event.WAKE_WORD): _to(
        State.CONNECTING, Effect.OPEN_SESSION, Effect.SEND_PREROLL, Effect.EARCON_START
    ),
    (State.IDLE, Event.BUTTON_PRESS): _to(
        State.CONNECTING, Effect.OPEN_SESSION, Effect.EARCON_START
    ),
    (State.IDLE, Event.BUTTON_HOLD): _to(State.MUTED),
    (State.IDLE, Event.DEVICE_LOST): _to(State.ERROR),
    (State.CONNECTING, Event.SESSION_READY): _to(State.LISTENING, Effect.START_FOLLOW_UP),
    (State.CONNECTING, Event.CONNECTION_LOST): _to(State.CONNECTING, Effect.RECONNECT),
    (State.LISTENING, Event.USER_SPEECH): _to(State.LISTENING, Effect.START_FOLLOW_UP),
    (State.LISTENING, Event.USER_TURN_ENDED): _to(State.THINKING),
    (State.LISTENING, Event.MODEL_AUDIO): _to(State.SPEAKING),
    (State.LISTENING, Event.REPLY_DONE): _reply_done,
    (State.LISTENING, Event.END_CONVERSATION): _close_after_reply,
    (State.LISTENING, Event.FOLLOW_UP_EXPIRED): _to(State.IDLE, *_END),
    (State.THINKING, Event.MODEL_AUDIO): _to(State.SPEAKING),
    (State.THINKING, Event.REPLY_DONE): _reply_done,
    (State.THINKING, Event.END_CONVERSATION): _close_after_reply,
    (State.THINKING, Event.SERVER_INTERRUPTED): _to(State.LISTENING, Effect.START_FOLLOW_UP),
    (State.SPEAKING, Event.REPLY_DONE): _reply_done,
    (State.SPEAKING, Event.SERVER_INTERRUPTED): _to(State.INTERRUPTED, *_BARGE_IN),
    (State.SPEAKING, Event.BUTTON_PRESS): _to(State.INTERRUPTED, *_BARGE_IN),
    (State.SPEAKING, Event.WAKE_WORD): _to(State.INTERRUPTED, *_BARGE_IN, Effect.SEND_PREROLL),
    (State.SPEAKING, Event.END_CONVERSATION): _close_after_reply,
    (State.INTERRUPTED, Event.FLASH_DONE): _to(State.LISTENING, Effect.START_FOLLOW_UP),
    (State.MUTED, Event.BUTTON_HOLD): _to(State.IDLE),
    (State.ERROR, Event.RETRY): _to(State.IDLE),
    (State.ERROR, Event.DEVICE_BACK): _to(State.IDLE),
    (State.ERROR, Event.BUTTON_PRESS): _to(State.IDLE),
    (State.ERROR, Event.BUTTON_HOLD): _to(State.MUTED),
}


def _common(state: State, event: Event) -> Rule | None:
    """Rules every conversation state shares: how a conversation ends or fails."""
    if state not in CONVERSATION:
        return None
    return _IN_CONVERSATION.get(event)


_IN_CONVERSATION: dict[Event, Rule] = {
    Event.BUTTON_PRESS: _to(State.IDLE, *_END),  # SPEAKING overrides: a press interrupts
    Event.BUTTON_HOLD: _to(State.MUTED, *_LEAVE),
    Event.SESSION_LIMIT: _to(State.IDLE, *_END),
    Event.END_CONVERSATION: _to(State.IDLE, *_END),  # SPEAKING overrides: after the reply
    Event.CONNECTION_LOST: _to(State.CONNECTING, Effect.FLUSH_PLAYBACK, Effect.RECONNECT),
    Event.FATAL_ERROR: _to(State.ERROR, *_FAIL),
    Event.DEVICE_LOST: _to(State.ERROR, *_LEAVE),
}
