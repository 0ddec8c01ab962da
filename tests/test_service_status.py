"""The status line and journal fields the service shows for each state (pure)."""

from pathlib import Path

import pytest

from pispeaker.config import Config, PanelConfig, WakeConfig
from pispeaker.service.status import Narrator, wake_phrase
from pispeaker.states import State

S = State


def narrated(*states: State, models: tuple[str, ...] = ("hey_jarvis",), button: int = 0) -> str:
    narrator = Narrator()
    narrator.configure(
        Config(wake=WakeConfig(models=list(models)), panel=PanelConfig(button_pin=button))
    )
    for state in states:
        narrator.follow(state)
    return narrator.line("API key rejected; update the gemini-api-key credential and restart")


@pytest.mark.parametrize(
    ("states", "line"),
    [
        ((), "Listening for 'hey jarvis'"),
        ((S.CONNECTING,), "Connecting to the Live API, conversation 1"),
        ((S.CONNECTING, S.LISTENING), "In conversation, turn 1 (listening)"),
        ((S.CONNECTING, S.LISTENING, S.THINKING, S.SPEAKING), "In conversation, turn 1 (speaking)"),
        (
            (S.CONNECTING, S.LISTENING, S.THINKING, S.SPEAKING, S.LISTENING),
            "In conversation, turn 2 (listening)",
        ),
        (  # a barge-in starts the user's next turn
            (S.CONNECTING, S.LISTENING, S.THINKING, S.SPEAKING, S.INTERRUPTED, S.LISTENING),
            "In conversation, turn 2 (listening)",
        ),
        (  # a reconnect does not
            (S.CONNECTING, S.LISTENING, S.CONNECTING),
            "Reconnecting to the Live API, conversation 1",
        ),
        (
            (S.CONNECTING, S.LISTENING, S.CONNECTING, S.LISTENING),
            "In conversation, turn 1 (listening)",
        ),
        (
            (S.CONNECTING, S.LISTENING, S.IDLE, S.CONNECTING),
            "Connecting to the Live API, conversation 2",
        ),
        (
            (S.CONNECTING, S.ERROR),
            "Error: API key rejected; update the gemini-api-key credential and restart",
        ),
        ((S.MUTED,), "Muted: the microphone is off; hold the button to turn it back on"),
    ],
)
def test_each_state_has_its_line(states: tuple[State, ...], line: str) -> None:
    assert narrated(*states) == line


def test_the_idle_line_names_what_wakes_the_speaker(tmp_path: Path) -> None:
    custom = tmp_path / "hey_pi.onnx"
    custom.write_bytes(b"")
    assert narrated(models=("alexa", str(custom)), button=17) == (
        "Listening for 'alexa' or 'hey pi' or a button press"
    )
    assert narrated(models=(), button=17) == "Waiting for a button press"
    assert narrated(models=()).startswith("Idle: no wake word or button is configured")


def test_journal_fields_carry_the_state_and_one_session_id_per_conversation() -> None:
    narrator = Narrator()
    assert narrator.fields() == {"STATE": "idle"}
    narrator.follow(State.CONNECTING)
    first = narrator.fields()
    narrator.follow(State.LISTENING)
    assert narrator.fields() == {"STATE": "listening", "SESSION": first["SESSION"]}
    narrator.follow(State.IDLE)
    narrator.follow(State.CONNECTING)
    assert narrator.fields()["SESSION"] != first["SESSION"]


def test_wake_phrases_read_as_said() -> None:
    assert wake_phrase("hey_jarvis") == "hey jarvis"
    assert wake_phrase("/models/ok_computer.tflite") == "ok computer"
