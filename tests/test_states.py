# ruff: noqa: E501 - the table rows read best on one line each
"""The state machine as a table: every (state, event) pair has an expected outcome.

The table below is written from the product rules (DESIGN.md), not from the code: each row is
``STATE  EVENT  -> NEXT  effects...``. Every pair not listed must change nothing.
"""

import itertools

import pytest

from pispeaker.states import Effect, Event, State, Status, Uplink, transition, uplink

TABLE = """
IDLE         WAKE_WORD           -> CONNECTING   OPEN_SESSION SEND_PREROLL EARCON_START
IDLE         BUTTON_PRESS        -> CONNECTING   OPEN_SESSION EARCON_START
IDLE         BUTTON_HOLD         -> MUTED
IDLE         DEVICE_LOST         -> ERROR

CONNECTING   SESSION_READY       -> LISTENING    START_FOLLOW_UP
CONNECTING   BUTTON_PRESS        -> IDLE         FLUSH_PLAYBACK CLOSE_SESSION EARCON_END
CONNECTING   BUTTON_HOLD         -> MUTED        FLUSH_PLAYBACK CLOSE_SESSION
CONNECTING   SESSION_LIMIT       -> IDLE         FLUSH_PLAYBACK CLOSE_SESSION EARCON_END
CONNECTING   END_CONVERSATION    -> IDLE         FLUSH_PLAYBACK CLOSE_SESSION EARCON_END
CONNECTING   CONNECTION_LOST     -> CONNECTING   RECONNECT
CONNECTING   FATAL_ERROR         -> ERROR        FLUSH_PLAYBACK CLOSE_SESSION EARCON_ERROR SCHEDULE_RETRY
CONNECTING   DEVICE_LOST         -> ERROR        FLUSH_PLAYBACK CLOSE_SESSION

LISTENING    USER_SPEECH         -> LISTENING    START_FOLLOW_UP
LISTENING    USER_TURN_ENDED     -> THINKING
LISTENING    MODEL_AUDIO         -> SPEAKING
LISTENING    REPLY_DONE          -> LISTENING    START_FOLLOW_UP
LISTENING    FOLLOW_UP_EXPIRED   -> IDLE         FLUSH_PLAYBACK CLOSE_SESSION EARCON_END
LISTENING    BUTTON_PRESS        -> IDLE         FLUSH_PLAYBACK CLOSE_SESSION EARCON_END
LISTENING    BUTTON_HOLD         -> MUTED        FLUSH_PLAYBACK CLOSE_SESSION
LISTENING    SESSION_LIMIT       -> IDLE         FLUSH_PLAYBACK CLOSE_SESSION EARCON_END
LISTENING    END_CONVERSATION    -> LISTENING+closing
LISTENING    CONNECTION_LOST     -> CONNECTING   FLUSH_PLAYBACK RECONNECT
LISTENING    FATAL_ERROR         -> ERROR        FLUSH_PLAYBACK CLOSE_SESSION EARCON_ERROR SCHEDULE_RETRY
LISTENING    DEVICE_LOST         -> ERROR        FLUSH_PLAYBACK CLOSE_SESSION

THINKING     MODEL_AUDIO         -> SPEAKING
THINKING     REPLY_DONE          -> LISTENING    START_FOLLOW_UP
THINKING     SERVER_INTERRUPTED  -> LISTENING    START_FOLLOW_UP
THINKING     BUTTON_PRESS        -> IDLE         FLUSH_PLAYBACK CLOSE_SESSION EARCON_END
THINKING     BUTTON_HOLD         -> MUTED        FLUSH_PLAYBACK CLOSE_SESSION
THINKING     SESSION_LIMIT       -> IDLE         FLUSH_PLAYBACK CLOSE_SESSION EARCON_END
THINKING     END_CONVERSATION    -> THINKING+closing
THINKING     CONNECTION_LOST     -> CONNECTING   FLUSH_PLAYBACK RECONNECT
THINKING     FATAL_ERROR         -> ERROR        FLUSH_PLAYBACK CLOSE_SESSION EARCON_ERROR SCHEDULE_RETRY
THINKING     DEVICE_LOST         -> ERROR        FLUSH_PLAYBACK CLOSE_SESSION

SPEAKING     REPLY_DONE          -> LISTENING    START_FOLLOW_UP
SPEAKING     SERVER_INTERRUPTED  -> INTERRUPTED  FLUSH_PLAYBACK START_FLASH
SPEAKING     BUTTON_PRESS        -> INTERRUPTED  FLUSH_PLAYBACK START_FLASH
SPEAKING     WAKE_WORD           -> INTERRUPTED  FLUSH_PLAYBACK START_FLASH SEND_PREROLL
SPEAKING     END_CONVERSATION    -> SPEAKING+closing
SPEAKING     BUTTON_HOLD         -> MUTED        FLUSH_PLAYBACK CLOSE_SESSION
SPEAKING     SESSION_LIMIT       -> IDLE         FLUSH_PLAYBACK CLOSE_SESSION EARCON_END
SPEAKING     CONNECTION_LOST     -> CONNECTING   FLUSH_PLAYBACK RECONNECT
SPEAKING     FATAL_ERROR         -> ERROR        FLUSH_PLAYBACK CLOSE_SESSION EARCON_ERROR SCHEDULE_RETRY
SPEAKING     DEVICE_LOST         -> ERROR        FLUSH_PLAYBACK CLOSE_SESSION

INTERRUPTED  FLASH_DONE          -> LISTENING    START_FOLLOW_UP
INTERRUPTED  BUTTON_PRESS        -> IDLE         FLUSH_PLAYBACK CLOSE_SESSION EARCON_END
INTERRUPTED  BUTTON_HOLD         -> MUTED        FLUSH_PLAYBACK CLOSE_SESSION
INTERRUPTED  SESSION_LIMIT       -> IDLE         FLUSH_PLAYBACK CLOSE_SESSION EARCON_END
INTERRUPTED  END_CONVERSATION    -> IDLE         FLUSH_PLAYBACK CLOSE_SESSION EARCON_END
INTERRUPTED  CONNECTION_LOST     -> CONNECTING   FLUSH_PLAYBACK RECONNECT
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
        name, _, flag = target.partition("+")
        rows[State[state], Event[event]] = (
            Status(State[name], closing=flag == "closing"),
            tuple(Effect[effect] for effect in effects),
        )
    return rows


EXPECTED = _expected()
PAIRS = list(itertools.product(State, Event))


@pytest.mark.parametrize(("state", "event"), PAIRS, ids=[f"{s.name}-{e.name}" for s, e in PAIRS])
def test_every_state_event_pair(state: State, event: Event) -> None:
    unchanged = (Status(state), ())
    assert transition(Status(state), event) == EXPECTED.get((state, event), unchanged)


def test_the_table_has_no_duplicate_rows() -> None:
    rows = [tuple(line.split()[:2]) for line in TABLE.splitlines() if line.strip()]
    assert len(rows) == len(set(rows)) == len(EXPECTED)


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
    assert still == closing  # the goodbye keeps playing
    done, effects = transition(still, Event.REPLY_DONE)
    assert done == Status(State.IDLE)
    assert effects == (Effect.FLUSH_PLAYBACK, Effect.CLOSE_SESSION, Effect.EARCON_END)


def test_end_conversation_before_the_goodbye_waits_for_it() -> None:
    status = Status(State.THINKING)
    for event in [Event.END_CONVERSATION, Event.MODEL_AUDIO]:
        status, _ = transition(status, event)
    assert status == Status(State.SPEAKING, closing=True)
    status, effects = transition(status, Event.REPLY_DONE)
    assert status == Status(State.IDLE)
    assert Effect.CLOSE_SESSION in effects


def test_a_barge_in_while_closing_keeps_the_conversation() -> None:
    closing, _ = transition(Status(State.SPEAKING), Event.END_CONVERSATION)
    interrupted, _ = transition(closing, Event.SERVER_INTERRUPTED)
    assert interrupted == Status(State.INTERRUPTED)  # the user had more to say


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
    State.INTERRUPTED: Uplink.LIVE,
    State.MUTED: Uplink.DISCARD,
    State.ERROR: Uplink.LOCAL,
}


@pytest.mark.parametrize("state", list(State))
def test_uplink_of_every_state(state: State) -> None:
    assert uplink(state) is UPLINK[state]
    expected_with_barge_in = Uplink.LIVE if state is State.SPEAKING else UPLINK[state]
    assert uplink(state, voice_barge_in=True) is expected_with_barge_in


@pytest.mark.parametrize("state", [State.IDLE, State.MUTED, State.ERROR])
def test_nothing_leaves_the_device_outside_a_conversation(state: State) -> None:
    for voice_barge_in in (False, True):
        assert uplink(state, voice_barge_in) in (Uplink.LOCAL, Uplink.DISCARD)
