# ruff: noqa: E501 - the table rows read best on one line each
"""The state machine as a table: every (state, event) pair has an expected outcome.

The table below is written from the product rules (DESIGN.md), not from the code: each row is
``STATE  EVENT  -> NEXT  effects...``, where NEXT may carry Status fields (``+closing``,
``+reconnects=1``). Every pair not listed must change nothing. The tests after it cover the
decisions that depend on more than the State: dropping, the reconnect cap and the options.
"""

import itertools
from dataclasses import replace

import pytest

from pispeaker.states import (
    CONVERSATION,
    Effect,
    Event,
    Options,
    State,
    Status,
    Uplink,
    transition,
    uplink,
)

TABLE = """
IDLE         WAKE_WORD           -> CONNECTING   OPEN_SESSION SEND_PREROLL EARCON_START
IDLE         BUTTON_PRESS        -> CONNECTING   OPEN_SESSION EARCON_START
IDLE         BUTTON_HOLD         -> MUTED
IDLE         DEVICE_LOST         -> ERROR

CONNECTING   SESSION_READY       -> LISTENING    START_FOLLOW_UP START_UNANSWERED
CONNECTING   BUTTON_PRESS        -> IDLE         FLUSH_PLAYBACK CLOSE_SESSION EARCON_END
CONNECTING   BUTTON_HOLD         -> MUTED        FLUSH_PLAYBACK CLOSE_SESSION
CONNECTING   SESSION_LIMIT       -> IDLE         FLUSH_PLAYBACK CLOSE_SESSION EARCON_END
CONNECTING   END_CONVERSATION    -> IDLE         FLUSH_PLAYBACK CLOSE_SESSION EARCON_END
CONNECTING   CONNECTION_LOST     -> CONNECTING+reconnects=1 RECONNECT
CONNECTING   TURN_COMPLETE       -> CONNECTING   AWAIT_PLAYBACK
CONNECTING   REASONING_STARTED   -> CONNECTING+reasoning
CONNECTING   MODEL_TOOL_CALL     -> CONNECTING+answering STOP_UNANSWERED
CONNECTING   ANSWER_OVERDUE      -> CONNECTING+overdue
CONNECTING   FATAL_ERROR         -> ERROR        FLUSH_PLAYBACK CLOSE_SESSION EARCON_ERROR SCHEDULE_RETRY
CONNECTING   DEVICE_LOST         -> ERROR        FLUSH_PLAYBACK CLOSE_SESSION

LISTENING    SOUND_ONSET         -> LISTENING    HOLD_FOLLOW_UP
LISTENING    SOUND_GONE          -> LISTENING    START_FOLLOW_UP
LISTENING    USER_SPEECH         -> LISTENING    HOLD_FOLLOW_UP
LISTENING    USER_SILENCE        -> LISTENING    START_FOLLOW_UP
LISTENING    USER_TURN_ENDED     -> THINKING
LISTENING    MODEL_AUDIO         -> SPEAKING+answering PLAY_AUDIO STOP_UNANSWERED
LISTENING    TURN_COMPLETE       -> LISTENING    START_FOLLOW_UP
LISTENING    REASONING_STARTED   -> LISTENING+reasoning
LISTENING    REPLY_DONE          -> LISTENING    START_FOLLOW_UP START_UNANSWERED
LISTENING    FOLLOW_UP_EXPIRED   -> IDLE         FLUSH_PLAYBACK CLOSE_SESSION EARCON_END
LISTENING    UNANSWERED_LIMIT    -> IDLE         FLUSH_PLAYBACK CLOSE_SESSION EARCON_END
LISTENING    MODEL_TOOL_CALL     -> LISTENING+answering STOP_UNANSWERED
LISTENING    ANSWER_OVERDUE      -> LISTENING+overdue
LISTENING    BUTTON_PRESS        -> IDLE         FLUSH_PLAYBACK CLOSE_SESSION EARCON_END
LISTENING    BUTTON_HOLD         -> MUTED        FLUSH_PLAYBACK CLOSE_SESSION
LISTENING    SESSION_LIMIT       -> IDLE         FLUSH_PLAYBACK CLOSE_SESSION EARCON_END
LISTENING    END_CONVERSATION    -> LISTENING+closing
LISTENING    CONNECTION_LOST     -> CONNECTING+dropping+reconnects=1 FLUSH_PLAYBACK RECONNECT
LISTENING    FATAL_ERROR         -> ERROR        FLUSH_PLAYBACK CLOSE_SESSION EARCON_ERROR SCHEDULE_RETRY
LISTENING    DEVICE_LOST         -> ERROR        FLUSH_PLAYBACK CLOSE_SESSION

THINKING     MODEL_AUDIO         -> SPEAKING+answering PLAY_AUDIO STOP_UNANSWERED
THINKING     TURN_COMPLETE       -> LISTENING    START_FOLLOW_UP
THINKING     UNANSWERED_LIMIT    -> IDLE         FLUSH_PLAYBACK CLOSE_SESSION EARCON_END
THINKING     MODEL_TOOL_CALL     -> THINKING+answering STOP_UNANSWERED
THINKING     ANSWER_OVERDUE      -> THINKING+overdue
THINKING     REASONING_STARTED   -> THINKING+reasoning
THINKING     REPLY_DONE          -> LISTENING    START_FOLLOW_UP START_UNANSWERED
THINKING     SERVER_INTERRUPTED  -> LISTENING    START_FOLLOW_UP
THINKING     BUTTON_PRESS        -> IDLE         FLUSH_PLAYBACK CLOSE_SESSION EARCON_END
THINKING     BUTTON_HOLD         -> MUTED        FLUSH_PLAYBACK CLOSE_SESSION
THINKING     SESSION_LIMIT       -> IDLE         FLUSH_PLAYBACK CLOSE_SESSION EARCON_END
THINKING     END_CONVERSATION    -> THINKING+closing
THINKING     CONNECTION_LOST     -> CONNECTING+dropping+reconnects=1 FLUSH_PLAYBACK RECONNECT
THINKING     FATAL_ERROR         -> ERROR        FLUSH_PLAYBACK CLOSE_SESSION EARCON_ERROR SCHEDULE_RETRY
THINKING     DEVICE_LOST         -> ERROR        FLUSH_PLAYBACK CLOSE_SESSION

SPEAKING     MODEL_AUDIO         -> SPEAKING+answering PLAY_AUDIO STOP_UNANSWERED
SPEAKING     MODEL_TOOL_CALL     -> SPEAKING+answering STOP_UNANSWERED
SPEAKING     ANSWER_OVERDUE      -> SPEAKING+overdue
SPEAKING     TURN_COMPLETE       -> SPEAKING     AWAIT_PLAYBACK
SPEAKING     REASONING_STARTED   -> SPEAKING+reasoning
SPEAKING     REPLY_DONE          -> LISTENING    START_FOLLOW_UP START_UNANSWERED
SPEAKING     SERVER_INTERRUPTED  -> INTERRUPTED  FLUSH_PLAYBACK START_FLASH
SPEAKING     BUTTON_PRESS        -> INTERRUPTED  FLUSH_PLAYBACK START_FLASH
SPEAKING     WAKE_WORD           -> INTERRUPTED  FLUSH_PLAYBACK START_FLASH SEND_PREROLL
SPEAKING     END_CONVERSATION    -> SPEAKING+closing
SPEAKING     USER_TURN_ENDED     -> THINKING     FLUSH_PLAYBACK
SPEAKING     SOUND_ONSET         -> DUCKED
SPEAKING     USER_SPEECH         -> INTERRUPTED  FLUSH_PLAYBACK START_FLASH SEND_HELD
SPEAKING     BUTTON_HOLD         -> MUTED        FLUSH_PLAYBACK CLOSE_SESSION
SPEAKING     SESSION_LIMIT       -> IDLE         FLUSH_PLAYBACK CLOSE_SESSION EARCON_END
SPEAKING     CONNECTION_LOST     -> SPEAKING+reconnects=1 RECONNECT AWAIT_PLAYBACK
SPEAKING     REPLY_STALLED       -> SPEAKING+reconnects=1 RECONNECT AWAIT_PLAYBACK
SPEAKING     FATAL_ERROR         -> ERROR        FLUSH_PLAYBACK CLOSE_SESSION EARCON_ERROR SCHEDULE_RETRY
SPEAKING     DEVICE_LOST         -> ERROR        FLUSH_PLAYBACK CLOSE_SESSION

DUCKED       SOUND_GONE          -> SPEAKING
DUCKED       USER_SPEECH         -> INTERRUPTED  FLUSH_PLAYBACK START_FLASH SEND_HELD
DUCKED       MODEL_AUDIO         -> DUCKED+answering PLAY_AUDIO STOP_UNANSWERED
DUCKED       MODEL_TOOL_CALL     -> DUCKED+answering STOP_UNANSWERED
DUCKED       ANSWER_OVERDUE      -> DUCKED+overdue
DUCKED       TURN_COMPLETE       -> DUCKED       AWAIT_PLAYBACK
DUCKED       REASONING_STARTED   -> DUCKED+reasoning
DUCKED       REPLY_DONE          -> LISTENING    START_FOLLOW_UP START_UNANSWERED
DUCKED       SERVER_INTERRUPTED  -> INTERRUPTED  FLUSH_PLAYBACK START_FLASH
DUCKED       BUTTON_PRESS        -> INTERRUPTED  FLUSH_PLAYBACK START_FLASH
DUCKED       WAKE_WORD           -> INTERRUPTED  FLUSH_PLAYBACK START_FLASH SEND_PREROLL
DUCKED       END_CONVERSATION    -> DUCKED+closing
DUCKED       USER_TURN_ENDED     -> THINKING     FLUSH_PLAYBACK
DUCKED       BUTTON_HOLD         -> MUTED        FLUSH_PLAYBACK CLOSE_SESSION
DUCKED       SESSION_LIMIT       -> IDLE         FLUSH_PLAYBACK CLOSE_SESSION EARCON_END
DUCKED       CONNECTION_LOST     -> DUCKED+reconnects=1 RECONNECT AWAIT_PLAYBACK
DUCKED       REPLY_STALLED       -> DUCKED+reconnects=1 RECONNECT AWAIT_PLAYBACK
DUCKED       FATAL_ERROR         -> ERROR        FLUSH_PLAYBACK CLOSE_SESSION EARCON_ERROR SCHEDULE_RETRY
DUCKED       DEVICE_LOST         -> ERROR        FLUSH_PLAYBACK CLOSE_SESSION

INTERRUPTED  FLASH_DONE          -> LISTENING    START_FOLLOW_UP
INTERRUPTED  TURN_COMPLETE       -> INTERRUPTED  AWAIT_PLAYBACK
INTERRUPTED  REASONING_STARTED   -> INTERRUPTED+reasoning
INTERRUPTED  MODEL_TOOL_CALL     -> INTERRUPTED+answering STOP_UNANSWERED
INTERRUPTED  ANSWER_OVERDUE      -> INTERRUPTED+overdue
INTERRUPTED  BUTTON_PRESS        -> IDLE         FLUSH_PLAYBACK CLOSE_SESSION EARCON_END
INTERRUPTED  BUTTON_HOLD         -> MUTED        FLUSH_PLAYBACK CLOSE_SESSION
INTERRUPTED  SESSION_LIMIT       -> IDLE         FLUSH_PLAYBACK CLOSE_SESSION EARCON_END
INTERRUPTED  END_CONVERSATION    -> IDLE         FLUSH_PLAYBACK CLOSE_SESSION EARCON_END
INTERRUPTED  CONNECTION_LOST     -> CONNECTING+dropping+reconnects=1 FLUSH_PLAYBACK RECONNECT
INTERRUPTED  FATAL_ERROR         -> ERROR        FLUSH_PLAYBACK CLOSE_SESSION EARCON_ERROR SCHEDULE_RETRY
INTERRUPTED  DEVICE_LOST         -> ERROR        FLUSH_PLAYBACK CLOSE_SESSION

MUTED        BUTTON_HOLD         -> IDLE

ERROR        RETRY               -> IDLE
ERROR        DEVICE_BACK         -> IDLE
ERROR        BUTTON_PRESS        -> IDLE
ERROR        BUTTON_HOLD         -> MUTED
"""


def _expected() -> dict[tuple[State, Event], tuple[Status, tuple[Effect, ...]]]:
    rows = {}
    for line in filter(None, (raw.split() for raw in TABLE.splitlines())):
        state, event, arrow, target, *effects = line
        assert arrow == "->", line
        name, *flags = target.split("+")
        rows[State[state], Event[event]] = (
            Status(State[name], **dict(_flag(flag) for flag in flags)),
            tuple(Effect[effect] for effect in effects),
        )
    return rows


def _flag(text: str) -> tuple[str, bool | int]:
    """``closing`` -> ("closing", True); ``reconnects=1`` -> ("reconnects", 1)."""
    name, _, value = text.partition("=")
    return name, int(value) if value else True


EXPECTED = _expected()
PAIRS = list(itertools.product(State, Event))


@pytest.mark.parametrize(("state", "event"), PAIRS, ids=[f"{s.name}-{e.name}" for s, e in PAIRS])
def test_every_state_event_pair(state: State, event: Event) -> None:
    unchanged = (Status(state), ())
    assert transition(Status(state), event) == EXPECTED.get((state, event), unchanged)


def test_the_table_has_no_duplicate_rows() -> None:
    rows = [tuple(line.split()[:2]) for line in TABLE.splitlines() if line.strip()]
    assert len(rows) == len(set(rows)) == len(EXPECTED)


DROPPING = [state for state in State if state in CONVERSATION]
_END_EFFECTS = (Effect.FLUSH_PLAYBACK, Effect.CLOSE_SESSION, Effect.EARCON_END)
_AFTER_ANSWER = (Effect.START_FOLLOW_UP, Effect.START_UNANSWERED)


@pytest.mark.parametrize("state", DROPPING)
def test_while_dropping_reply_audio_is_not_played_and_the_turn_end_stops_the_drop(
    state: State,
) -> None:
    dropping = Status(state, dropping=True)
    assert transition(dropping, Event.MODEL_AUDIO) == (dropping, ())
    assert transition(dropping, Event.USER_TURN_ENDED) == (dropping, ())  # the old turn's
    assert transition(dropping, Event.TURN_COMPLETE) == (Status(state), ())


@pytest.mark.parametrize("state", DROPPING)
def test_a_new_session_ends_the_drop_and_the_reconnect_count(state: State) -> None:
    status, effects = transition(Status(state, dropping=True, reconnects=3), Event.SESSION_READY)
    expected = State.LISTENING if state is State.CONNECTING else state
    assert status == Status(expected)
    after_answer = (Effect.START_FOLLOW_UP, Effect.START_UNANSWERED)
    assert effects == (after_answer if state is State.CONNECTING else ())


def test_reconnecting_gives_up_after_the_cap() -> None:
    options = Options(max_reconnects=2)
    status, history = Status(State.LISTENING), []
    for _ in range(3):
        status, effects = transition(status, Event.CONNECTION_LOST, options)
        history.append((status, effects))
    assert [status.reconnects for status, _ in history[:2]] == [1, 2]
    assert history[1] == (
        Status(State.CONNECTING, reconnects=2, dropping=True),
        (Effect.RECONNECT,),
    )
    assert history[2] == (
        Status(State.ERROR),
        (
            Effect.REPORT_OFFLINE,
            Effect.FLUSH_PLAYBACK,
            Effect.CLOSE_SESSION,
            Effect.EARCON_ERROR,
            Effect.SCHEDULE_RETRY,
        ),
    )


def test_a_conversation_ends_with_a_fresh_count() -> None:
    status, _ = transition(Status(State.CONNECTING, reconnects=5), Event.BUTTON_PRESS)
    assert status == Status(State.IDLE)
    status, _ = transition(status, Event.BUTTON_PRESS)
    assert status == Status(State.CONNECTING)


def test_the_wake_word_interrupts_a_reply_only_when_the_owner_wants_it() -> None:
    speaking = Status(State.SPEAKING)
    assert transition(speaking, Event.WAKE_WORD, Options(wake_barge_in=False)) == (speaking, ())
    interrupted, effects = transition(speaking, Event.WAKE_WORD, Options(wake_barge_in=True))
    assert interrupted == Status(State.INTERRUPTED)
    assert Effect.SEND_PREROLL in effects


def test_a_reply_while_the_model_reasons_is_not_its_answer() -> None:
    # Extended thinking: a quick acknowledgment, then the answer after background reasoning.
    status, history = Status(State.LISTENING), []
    for event in [
        Event.USER_TURN_ENDED,
        Event.REASONING_STARTED,
        Event.MODEL_AUDIO,  # "let me think about that"
        Event.TURN_COMPLETE,
        Event.REPLY_DONE,
        Event.MODEL_AUDIO,  # the answer
        Event.REASONING_DONE,
        Event.TURN_COMPLETE,
        Event.REPLY_DONE,
    ]:
        status, effects = transition(status, event)
        history.append((status.state, effects))
    states = [state for state, _ in history]
    assert states == [
        State.THINKING,
        State.THINKING,
        State.SPEAKING,
        State.SPEAKING,
        State.THINKING,  # still thinking: no follow-up window yet
        State.SPEAKING,
        State.SPEAKING,
        State.SPEAKING,
        State.LISTENING,
    ]
    assert history[4][1] == ()
    assert history[-1][1] == (Effect.START_FOLLOW_UP, Effect.START_UNANSWERED)


@pytest.mark.parametrize("state", DROPPING)
def test_reasoning_ends_with_its_session_and_its_conversation(state: State) -> None:
    reasoning = Status(state, reasoning=True)
    assert not transition(reasoning, Event.SESSION_READY)[0].reasoning
    assert not transition(reasoning, Event.BUTTON_HOLD)[0].reasoning


def test_closing_survives_reply_audio() -> None:
    status, effects = transition(Status(State.THINKING, closing=True), Event.MODEL_AUDIO)
    assert status == Status(State.SPEAKING, closing=True, answering=True)
    assert effects == (Effect.PLAY_AUDIO, Effect.STOP_UNANSWERED)


def test_a_device_lost_and_back_while_muted_never_unmutes() -> None:
    # Privacy: muted means the microphone is off until the user says otherwise; a USB
    # hiccup must not bring it back to listening for the wake word.
    status = Status(State.MUTED)
    for event in (Event.DEVICE_LOST, Event.DEVICE_BACK, Event.RETRY):
        status, effects = transition(status, event)
        assert status == Status(State.MUTED)
        assert effects == ()


def test_end_conversation_while_speaking_ends_after_the_reply() -> None:
    closing, effects = transition(Status(State.SPEAKING), Event.END_CONVERSATION)
    assert effects == ()
    still, _ = transition(closing, Event.MODEL_AUDIO)
    assert still == replace(closing, answering=True)  # the goodbye keeps playing
    done, effects = transition(still, Event.REPLY_DONE)
    assert done == Status(State.IDLE)
    assert effects == (Effect.FLUSH_PLAYBACK, Effect.CLOSE_SESSION, Effect.EARCON_END)


def test_end_conversation_before_the_goodbye_waits_for_it() -> None:
    status = Status(State.THINKING)
    for event in [Event.END_CONVERSATION, Event.MODEL_AUDIO]:
        status, _ = transition(status, event)
    assert status == Status(State.SPEAKING, closing=True, answering=True)
    status, effects = transition(status, Event.REPLY_DONE)
    assert status == Status(State.IDLE)
    assert Effect.CLOSE_SESSION in effects


def _run(status: Status, *events: Event) -> list[tuple[Status, tuple[Effect, ...]]]:
    """Every step of ``events`` from ``status``."""
    steps = []
    for event in events:
        status, effects = transition(status, event)
        steps.append((status, effects))
    return steps


def test_a_declined_turn_keeps_the_window_open_only_until_the_answer_is_overdue() -> None:
    # People talk among themselves after an answer; the model declines each of their turns.
    talk = (Event.USER_TURN_ENDED, Event.TURN_COMPLETE)
    steps = _run(Status(State.LISTENING), *talk, Event.ANSWER_OVERDUE, *talk)
    assert steps[1] == (Status(State.LISTENING), (Effect.START_FOLLOW_UP,))  # no answer clock
    assert steps[2][0] == Status(State.LISTENING, overdue=True)
    assert steps[3][0] == Status(State.THINKING, overdue=True)
    assert steps[4] == (Status(State.IDLE), (*_END_EFFECTS,))


def test_an_answer_or_a_tool_call_is_never_a_declined_turn() -> None:
    overdue = Status(State.THINKING, overdue=True)
    for answer in (Event.MODEL_AUDIO, Event.MODEL_TOOL_CALL):
        answered, done = _run(overdue, answer, Event.TURN_COMPLETE)
        assert answered[0].answering
        assert not answered[0].overdue
        assert done[1] == (Effect.AWAIT_PLAYBACK,)  # its audio (if any) plays out


def test_a_silent_turn_after_end_conversation_ends_it() -> None:
    # The model called end_conversation without a goodbye.
    steps = _run(Status(State.THINKING), Event.END_CONVERSATION, Event.TURN_COMPLETE)
    assert steps[-1][0] == Status(State.IDLE)


def test_a_reply_plays_on_through_a_lost_connection_and_its_cut_is_told() -> None:
    speaking = Status(State.SPEAKING, answering=True)  # its turn had not ended
    steps = _run(speaking, Event.CONNECTION_LOST, Event.REPLY_DONE, Event.SESSION_READY)
    assert steps[0] == (
        Status(State.SPEAKING, answering=True, reconnects=1, cut=True),
        (Effect.RECONNECT, Effect.AWAIT_PLAYBACK),
    )
    # Played out before the link is back: the earcon, then the user's turn waits for it.
    assert steps[1] == (
        Status(State.CONNECTING, answering=True, reconnects=1),
        (Effect.EARCON_CUT,),
    )
    assert steps[2][0] == Status(State.LISTENING)


def test_an_answer_lost_before_any_of_it_played_is_told_when_the_session_is_back() -> None:
    # The model called a tool; the connection failed before its answer came.
    thinking = Status(State.THINKING, answering=True)
    steps = _run(thinking, Event.CONNECTION_LOST, Event.SESSION_READY)
    assert steps[0][0].cut
    assert steps[1] == (Status(State.LISTENING), (Effect.EARCON_CUT, *_AFTER_ANSWER))
    # Nothing was on its way: no earcon.
    steps = _run(Status(State.THINKING), Event.CONNECTION_LOST, Event.SESSION_READY)
    assert steps[1] == (Status(State.LISTENING), _AFTER_ANSWER)


def test_a_reply_whose_turn_had_ended_plays_out_without_the_cut_earcon() -> None:
    steps = _run(Status(State.SPEAKING), Event.CONNECTION_LOST, Event.SESSION_READY)
    assert steps[-1][0] == Status(State.SPEAKING)  # back before the reply had played out
    done, effects = transition(steps[-1][0], Event.REPLY_DONE)
    assert (done, effects) == (Status(State.LISTENING), _AFTER_ANSWER)


def test_a_barge_in_while_relinking_waits_for_the_link() -> None:
    steps = _run(
        Status(State.SPEAKING), Event.CONNECTION_LOST, Event.BUTTON_PRESS, Event.FLASH_DONE
    )
    assert steps[1][1] == (Effect.FLUSH_PLAYBACK, Effect.START_FLASH)
    assert steps[2] == (Status(State.CONNECTING, reconnects=1), ())


def test_a_turn_heard_over_an_earlier_sessions_reply_stops_it_unless_the_model_may_finish() -> None:
    speaking = Status(State.SPEAKING)
    assert transition(speaking, Event.USER_TURN_ENDED, Options(voice_interrupts=False)) == (
        speaking,
        (),
    )
    stopped, _ = transition(speaking, Event.USER_TURN_ENDED)
    answer, effects = transition(stopped, Event.MODEL_AUDIO)  # the new turn's answer plays
    assert (answer.state, effects[0]) == (State.SPEAKING, Effect.PLAY_AUDIO)


@pytest.mark.parametrize(
    "barge_in", [Event.BUTTON_PRESS, Event.WAKE_WORD, Event.USER_SPEECH, Event.SERVER_INTERRUPTED]
)
def test_a_barge_in_drops_the_rest_of_the_turn_only_while_it_is_still_coming(
    barge_in: Event,
) -> None:
    # Before turnComplete the rest of the turn's audio may still arrive: it is not played.
    # After it, what arrives is the answer to what the user said over the reply.
    coming, _ = transition(Status(State.SPEAKING, answering=True), barge_in)
    complete, _ = transition(Status(State.SPEAKING), barge_in)
    assert (coming.dropping, complete.dropping) == (True, False)


def test_a_barge_in_while_closing_keeps_the_conversation() -> None:
    closing, _ = transition(Status(State.SPEAKING), Event.END_CONVERSATION)
    interrupted, _ = transition(closing, Event.SERVER_INTERRUPTED)
    assert not interrupted.closing  # the user had more to say
    assert interrupted.state is State.INTERRUPTED


def test_a_whole_conversation() -> None:
    status, history = Status(), []
    for event in [
        Event.WAKE_WORD,
        Event.SESSION_READY,
        Event.USER_TURN_ENDED,
        Event.MODEL_AUDIO,
        Event.REPLY_DONE,
        Event.MODEL_AUDIO,
        Event.BUTTON_PRESS,
        Event.FLASH_DONE,
        Event.FOLLOW_UP_EXPIRED,
    ]:
        status, effects = transition(status, event)
        history.append((status.state, effects))
    assert [state for state, _ in history] == [
        State.CONNECTING,
        State.LISTENING,
        State.THINKING,
        State.SPEAKING,
        State.LISTENING,
        State.SPEAKING,
        State.INTERRUPTED,
        State.LISTENING,
        State.IDLE,
    ]
    assert history[-1][1][-2:] == (Effect.CLOSE_SESSION, Effect.EARCON_END)


UPLINK = {
    State.IDLE: Uplink.LOCAL,
    State.CONNECTING: Uplink.BUFFER,
    State.LISTENING: Uplink.LIVE,
    State.THINKING: Uplink.LIVE,
    State.SPEAKING: Uplink.GUARDED,
    State.DUCKED: Uplink.GUARDED,
    State.INTERRUPTED: Uplink.LIVE,
    State.MUTED: Uplink.DISCARD,
    State.ERROR: Uplink.LOCAL,
}


@pytest.mark.parametrize("state", list(State))
def test_uplink_of_every_state(state: State) -> None:
    assert uplink(state) is UPLINK[state]
    expected_over_reply = Uplink.HELD if UPLINK[state] is Uplink.GUARDED else UPLINK[state]
    assert uplink(state, hears_over_reply=True) is expected_over_reply


@pytest.mark.parametrize("state", [State.IDLE, State.MUTED, State.ERROR])
def test_nothing_leaves_the_device_outside_a_conversation(state: State) -> None:
    for hears_over_reply in (False, True):
        assert uplink(state, hears_over_reply) in (Uplink.LOCAL, Uplink.DISCARD)
