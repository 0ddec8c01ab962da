"""The conversation state machine: pure, synchronous, no I/O.

``transition(status, event, options)`` returns the next status and the effects the controller
must carry out, as data. Every decision about the conversation is made here: whether reply
audio plays (not while the rest of an interrupted turn is being dropped), whether a wake word
acts in the current state, and when reconnecting gives up. Two things are derived from the
state instead of being effects, so that they can never drift out of step with it:

- ``uplink(state, hears_over_reply)``: what happens to microphone audio (privacy lives here:
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
    DUCKED = "ducked"  # someone may be talking over the reply: it plays quieter until sure
    INTERRUPTED = "interrupted"  # barge-in: playback flushed; a short flash, then LISTENING
    MUTED = "muted"  # the user turned the microphone off (button hold)
    ERROR = "error"  # key rejected, model unavailable or device lost; waiting to retry


class Event(enum.Enum):
    """Something that happened, from a port or a timer."""

    WAKE_WORD = "wake word"
    BUTTON_PRESS = "button press"
    BUTTON_HOLD = "button hold"  # the mute toggle
    SESSION_READY = "session ready"  # setupComplete on a new or resumed session
    SOUND_ONSET = "sound onset"  # a sound started over the reply: maybe the user
    SOUND_GONE = "sound gone"  # it was not the user talking (a cough, a door), or it ended
    USER_SPEECH = "user speech"  # the user is talking (the follow-up window waits)
    USER_SILENCE = "user silence"  # they stopped (the follow-up window starts afresh)
    USER_TURN_ENDED = "user turn ended"  # the server heard the end of the user's turn
    MODEL_AUDIO = "model audio"  # reply audio arrived
    TURN_COMPLETE = "turn complete"  # the model's turn is over (its audio may still play)
    REPLY_DONE = "reply done"  # turnComplete arrived and the reply has finished playing
    REPLY_STALLED = "reply stalled"  # its audio played out, and no more came nor its end
    SERVER_INTERRUPTED = "server interrupted"  # the server cut its reply (voice barge-in)
    REASONING_STARTED = "reasoning started"  # the model reasons on after this turn
    REASONING_DONE = "reasoning done"  # its last turn of the request is coming or came
    FLASH_DONE = "flash done"  # the INTERRUPTED flash has been shown
    FOLLOW_UP_EXPIRED = "follow-up expired"  # nobody spoke within the follow-up window
    ANSWER_OVERDUE = "answer overdue"  # follow_up_s since the last answer: a declined turn ends
    UNANSWERED_LIMIT = "unanswered limit"  # max_unanswered_s since the last answer: end
    MODEL_TOOL_CALL = "model tool call"  # the model acts on the turn (an answer, if silent)
    SESSION_LIMIT = "session limit"  # the conversation reached its maximum length
    END_CONVERSATION = "end conversation"  # the model called end_conversation
    CONNECTION_LOST = "connection lost"  # a transient failure: reconnect with the handle
    FATAL_ERROR = "fatal error"  # a failure retrying will not fix soon (key, model)
    RETRY = "retry"  # the error backoff has passed
    DEVICE_LOST = "device lost"  # an audio device disappeared
    DEVICE_BACK = "device back"  # it returned


class Effect(enum.Enum):
    """Work for the controller, carried out in order before anyone is told of the change."""

    OPEN_SESSION = "open session"  # connect; starts the session-length limit
    CLOSE_SESSION = "close session"  # disconnect; stops the session-length limit
    RECONNECT = "reconnect"  # reopen with the resumption handle, after backoff
    REPORT_OFFLINE = "report offline"  # reconnecting gave up: say so (before EARCON_ERROR)
    SEND_PREROLL = "send pre-roll"  # send what was said after the wake word, before it fired
    PLAY_AUDIO = "play audio"  # play the reply audio that came with MODEL_AUDIO
    AWAIT_PLAYBACK = "await playback"  # REPLY_DONE once the last queued sample has played
    FLUSH_PLAYBACK = "flush playback"  # drop queued and device audio, and the turn's rest
    SEND_HELD = "send held"  # send what the user said over the reply, from its first sound
    START_FOLLOW_UP = "start follow-up"  # (re)start the follow-up window timer
    HOLD_FOLLOW_UP = "hold follow-up"  # stop it: the window counts only silence
    START_UNANSWERED = "start unanswered"  # (re)start the clock since the last answer
    STOP_UNANSWERED = "stop unanswered"  # an answer is on its way: stop that clock
    START_FLASH = "start flash"  # start the INTERRUPTED flash timer
    SCHEDULE_RETRY = "schedule retry"  # start the error backoff timer
    EARCON_START = "earcon start"
    EARCON_END = "earcon end"
    EARCON_ERROR = "earcon error"
    EARCON_CUT = "earcon cut"  # a reply cut short by a lost connection has played out


class Uplink(enum.Enum):
    """What happens to captured microphone audio in a state."""

    DISCARD = "discard"  # not used at all, not even for the wake word (MUTED)
    LOCAL = "local"  # wake word and pre-roll ring only; nothing leaves the device
    BUFFER = "buffer"  # kept, to be sent once the session is ready
    LIVE = "live"  # sent as captured
    GUARDED = "guarded"  # not sent: the mic hears the speaker (no echo cancellation yet)
    #: kept on the device while the reply plays (the echo is cancelled), and sent, from its
    #: first sound, once the voice detector is sure the user talks over it (SEND_HELD):
    #: what is left of the echo, a cough or a door never reach the model
    HELD = "held"


@dataclass(frozen=True)
class Status:
    """The machine's whole state: the State, and within a conversation

    - ``closing``: the model called end_conversation: end once its reply (a goodbye) is done;
    - ``dropping``: playback was flushed: the rest of that turn's audio is not played, until
      its turnComplete or a new session (a turn cut off with its connection never ends);
    - ``reconnects``: reconnects since the last session was ready;
    - ``reasoning``: the model reasons in the background: a reply that ends is not its
      answer yet, so the speaker keeps THINKING and the follow-up window waits;
    - ``answering``: the model's turn in progress brought audio or a tool call (a turn that
      ends without either is declined: what it heard was not for the speaker);
    - ``overdue``: follow_up_s have passed since the last answer ended: a declined turn now
      ends the conversation (people talking among themselves, not to the speaker);
    - ``cut``: the connection was lost before the answer in progress was complete: once
      what was received has played (or the session is back, if nothing was), an earcon
      says the rest is missing.

    A reply goes on playing while the link reconnects (``reconnects`` > 0 in SPEAKING or
    DUCKED); the user's turn after it waits in CONNECTING until the session is back.
    """

    state: State = State.IDLE
    closing: bool = False
    dropping: bool = False
    reconnects: int = 0
    reasoning: bool = False
    answering: bool = False
    overdue: bool = False
    cut: bool = False


@dataclass(frozen=True)
class Options:
    """The owner's choices the machine decides with."""

    wake_barge_in: bool = True  # the wake word interrupts a reply
    voice_interrupts: bool = True  # the user's speech stops a reply (activity_handling)
    max_reconnects: int = 8  # transient failures in a row before ERROR


Transition = tuple[Status, tuple[Effect, ...]]
Rule = Callable[[Status, Options], Transition]

#: The reply is playing (at full level, or ducked).
PLAYING = frozenset({State.SPEAKING, State.DUCKED})
_CLOSABLE = frozenset({State.LISTENING, State.THINKING, *PLAYING})
CONVERSATION = frozenset(
    {State.CONNECTING, State.LISTENING, State.THINKING, *PLAYING, State.INTERRUPTED}
)
_END = (Effect.FLUSH_PLAYBACK, Effect.CLOSE_SESSION, Effect.EARCON_END)
_FAIL = (Effect.FLUSH_PLAYBACK, Effect.CLOSE_SESSION, Effect.EARCON_ERROR, Effect.SCHEDULE_RETRY)
_LEAVE = (Effect.FLUSH_PLAYBACK, Effect.CLOSE_SESSION)  # quietly: mute, lost device
_BARGE_IN = (Effect.FLUSH_PLAYBACK, Effect.START_FLASH)
#: The user's turn again after an answer (or the wake word): the follow-up window, and the
#: clock of how long speech may go unanswered.
_AFTER_ANSWER = (Effect.START_FOLLOW_UP, Effect.START_UNANSWERED)
#: Where a turn can end with nothing said: the user's turn, or waiting for the model.
_DECLINABLE = frozenset({State.LISTENING, State.THINKING})


def uplink(state: State, hears_over_reply: bool = False) -> Uplink:
    """Where microphone audio goes in ``state``.

    While the reply plays the microphone mostly hears the speaker, so the audio is withheld
    (the model would interrupt itself) unless ``hears_over_reply``: the echo is cancelled
    (a converged canceller, or a speakerphone's own), so what is left is the user, and the
    device keeps it until its voice detector is sure of that.
    """
    if state in PLAYING:
        return Uplink.HELD if hears_over_reply else Uplink.GUARDED
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


def transition(status: Status, event: Event, options: Options = Options()) -> Transition:
    """The next status and the effects to carry out; unknown pairs leave everything as is."""
    rule = _RULES.get((status.state, event)) or _common(status.state, event)
    return rule(status, options) if rule else (status, ())


def _to(state: State, *effects: Effect) -> Rule:
    """A rule that moves to ``state`` with ``effects``. ``closing`` survives only while the
    conversation heads for its last reply (a barge-in means the user had more to say); a
    flush starts ``dropping`` while the model's turn is still coming (once its
    turnComplete has come, what comes next is the next turn's); leaving the conversation
    forgets both, and the reconnects."""
    flushes = Effect.FLUSH_PLAYBACK in effects

    def rule(status: Status, _options: Options) -> Transition:
        if state not in CONVERSATION:
            return Status(state), effects
        closing = status.closing and state in _CLOSABLE
        dropping = status.dropping or (flushes and status.answering)
        return replace(status, state=state, closing=closing, dropping=dropping), effects

    return rule


def _unless_dropping(rule: Rule) -> Rule:
    """``rule``, except while the rest of an interrupted turn is dropped: then nothing."""
    return lambda status, options: (status, ()) if status.dropping else rule(status, options)


def _play(status: Status, _options: Options) -> Transition:
    """Play reply audio; a ducked reply stays ducked."""
    state = status.state if status.state in PLAYING else State.SPEAKING
    answered, effects = _answering(status)
    return replace(answered, state=state), (Effect.PLAY_AUDIO, *effects)


def _answering(status: Status, _options: Options | None = None) -> Transition:
    """The model answers the turn (audio or a tool call): the clock since the last answer
    stops, once per turn."""
    effects = () if status.answering else (Effect.STOP_UNANSWERED,)
    return replace(status, answering=True, overdue=False), effects


def _turn_complete(status: Status, _options: Options) -> Transition:
    if status.dropping:  # the interrupted turn is over
        return replace(status, dropping=False, answering=False), ()
    if status.answering or status.state not in _DECLINABLE:
        return replace(status, answering=False), (Effect.AWAIT_PLAYBACK,)
    # Declined: the model heard speech that was not for it. That keeps the conversation
    # open no longer than follow_up_s after the last answer.
    if status.closing or status.overdue:
        return Status(State.IDLE), _END
    return replace(status, state=State.LISTENING), (Effect.START_FOLLOW_UP,)


def _session_ready(status: Status, _options: Options) -> Transition:
    """A new or resumed session: reconnecting worked, and no turn (or reasoning) of the old
    one goes on."""
    fresh = replace(status, dropping=False, reconnects=0, reasoning=False, answering=False)
    if status.state is State.CONNECTING:  # an answer the loss cut off is told now
        cut = (Effect.EARCON_CUT,) if status.cut else ()
        return replace(fresh, state=State.LISTENING, cut=False), (*cut, *_AFTER_ANSWER)
    return fresh, ()  # a reply still plays: its end tells of its cut


def _connection_lost(status: Status, options: Options) -> Transition:
    """Reconnect with backoff, up to ``options.max_reconnects`` times in a row. A reply
    that plays goes on playing meanwhile: what was received is the user's (cut short if its
    turn had not ended)."""
    if status.reconnects >= options.max_reconnects:
        return Status(State.ERROR), (Effect.REPORT_OFFLINE, *_FAIL)
    if status.state in PLAYING:
        relinking = replace(status, reconnects=status.reconnects + 1, cut=status.answering)
        return relinking, (Effect.RECONNECT, Effect.AWAIT_PLAYBACK)
    flush = () if status.state is State.CONNECTING else (Effect.FLUSH_PLAYBACK,)
    connecting = replace(
        status,
        state=State.CONNECTING,
        closing=False,
        dropping=status.dropping or bool(flush),
        reconnects=status.reconnects + 1,
        cut=status.cut or status.answering,  # e.g. lost after a tool call, before its answer
    )
    return connecting, (*flush, Effect.RECONNECT)


def _heard_over_reply(status: Status, options: Options) -> Transition:
    """The service took the user's words as a turn while a reply still plays without
    having interrupted it: the reply is an earlier session's (a handover or a reconnect
    came between), which the new session cannot interrupt. Stop it, unless the owner lets
    the model finish, and wait for the answer (no turn was cut on the wire: nothing of the
    answer is dropped)."""
    if not options.voice_interrupts:
        return status, ()
    return replace(status, state=State.THINKING, closing=False), (Effect.FLUSH_PLAYBACK,)


def _wake_barge_in(status: Status, options: Options) -> Transition:
    if not options.wake_barge_in:
        return status, ()
    return _to(State.INTERRUPTED, *_BARGE_IN, Effect.SEND_PREROLL)(status, options)


def _reply_done(status: Status, _options: Options) -> Transition:
    if status.closing:
        return Status(State.IDLE), _END
    cut = (Effect.EARCON_CUT,) if status.cut else ()
    status = replace(status, cut=False)
    if status.reconnects:  # the link is still coming back: the user's turn waits for it
        return replace(status, state=State.CONNECTING), cut
    if status.reasoning:  # that was not the answer yet
        return replace(status, state=State.THINKING), cut
    return replace(status, state=State.LISTENING), (*cut, *_AFTER_ANSWER)


def _flash_done(status: Status, _options: Options) -> Transition:
    """The user's turn after a barge-in; it waits for the link if that is coming back."""
    if status.reconnects:
        return replace(status, state=State.CONNECTING), ()
    return replace(status, state=State.LISTENING), (Effect.START_FOLLOW_UP,)


def _overdue(status: Status, _options: Options) -> Transition:
    return replace(status, overdue=True), ()


def _reasoning(in_progress: bool) -> Rule:
    return lambda status, _options: (replace(status, reasoning=in_progress), ())


def _close_after_reply(status: Status, _options: Options) -> Transition:
    return replace(status, closing=True), ()


def _while_playing(event: Event, rule: Rule) -> dict[tuple[State, Event], Rule]:
    """``rule`` for ``event`` while the reply plays, ducked or not."""
    return {(state, event): rule for state in PLAYING}


_RULES: dict[tuple[State, Event], Rule] = {
    (State.IDLE, Event.WAKE_WORD): _to(
        State.CONNECTING, Effect.OPEN_SESSION, Effect.SEND_PREROLL, Effect.EARCON_START
    ),
    (State.IDLE, Event.BUTTON_PRESS): _to(
        State.CONNECTING, Effect.OPEN_SESSION, Effect.EARCON_START
    ),
    (State.IDLE, Event.BUTTON_HOLD): _to(State.MUTED),
    (State.IDLE, Event.DEVICE_LOST): _to(State.ERROR),
    # The follow-up window waits while a sound is judged (it may be the user), and while
    # the user talks; it starts afresh when they stop, or when the sound was not a voice.
    (State.LISTENING, Event.SOUND_ONSET): _to(State.LISTENING, Effect.HOLD_FOLLOW_UP),
    (State.LISTENING, Event.SOUND_GONE): _to(State.LISTENING, Effect.START_FOLLOW_UP),
    (State.LISTENING, Event.USER_SPEECH): _to(State.LISTENING, Effect.HOLD_FOLLOW_UP),
    (State.LISTENING, Event.USER_SILENCE): _to(State.LISTENING, Effect.START_FOLLOW_UP),
    (State.LISTENING, Event.USER_TURN_ENDED): _unless_dropping(_to(State.THINKING)),
    (State.LISTENING, Event.MODEL_AUDIO): _unless_dropping(_play),
    (State.LISTENING, Event.REPLY_DONE): _reply_done,
    (State.LISTENING, Event.END_CONVERSATION): _close_after_reply,
    (State.LISTENING, Event.FOLLOW_UP_EXPIRED): _to(State.IDLE, *_END),
    (State.LISTENING, Event.UNANSWERED_LIMIT): _to(State.IDLE, *_END),
    (State.THINKING, Event.UNANSWERED_LIMIT): _to(State.IDLE, *_END),
    (State.THINKING, Event.MODEL_AUDIO): _unless_dropping(_play),
    (State.THINKING, Event.REPLY_DONE): _reply_done,
    (State.THINKING, Event.END_CONVERSATION): _close_after_reply,
    (State.THINKING, Event.SERVER_INTERRUPTED): _to(State.LISTENING, Effect.START_FOLLOW_UP),
    **_while_playing(Event.MODEL_AUDIO, _unless_dropping(_play)),
    **_while_playing(Event.REPLY_DONE, _reply_done),
    # A service that stopped answering with its socket open is as good as gone.
    **_while_playing(Event.REPLY_STALLED, _connection_lost),
    **_while_playing(Event.SERVER_INTERRUPTED, _to(State.INTERRUPTED, *_BARGE_IN)),
    **_while_playing(Event.BUTTON_PRESS, _to(State.INTERRUPTED, *_BARGE_IN)),
    **_while_playing(Event.WAKE_WORD, _wake_barge_in),
    **_while_playing(Event.USER_TURN_ENDED, _unless_dropping(_heard_over_reply)),
    **_while_playing(Event.END_CONVERSATION, _close_after_reply),
    # Voice barge-in heard on the device: duck at the first sound, stop once it is speech,
    # and send the model what the user said from that first sound.
    **_while_playing(Event.USER_SPEECH, _to(State.INTERRUPTED, *_BARGE_IN, Effect.SEND_HELD)),
    (State.SPEAKING, Event.SOUND_ONSET): _to(State.DUCKED),
    (State.DUCKED, Event.SOUND_GONE): _to(State.SPEAKING),
    (State.INTERRUPTED, Event.FLASH_DONE): _flash_done,
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
    Event.BUTTON_PRESS: _to(State.IDLE, *_END),  # PLAYING overrides: a press interrupts
    Event.BUTTON_HOLD: _to(State.MUTED, *_LEAVE),
    Event.SESSION_LIMIT: _to(State.IDLE, *_END),
    Event.END_CONVERSATION: _to(State.IDLE, *_END),  # PLAYING overrides: after the reply
    Event.SESSION_READY: _session_ready,
    Event.REASONING_STARTED: _reasoning(True),
    Event.REASONING_DONE: _reasoning(False),
    Event.TURN_COMPLETE: _turn_complete,
    Event.MODEL_TOOL_CALL: _answering,
    Event.ANSWER_OVERDUE: _overdue,
    Event.CONNECTION_LOST: _connection_lost,
    Event.FATAL_ERROR: _to(State.ERROR, *_FAIL),
    Event.DEVICE_LOST: _to(State.ERROR, *_LEAVE),
}
