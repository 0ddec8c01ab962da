"""Model profiles: the lookup by model id, refusals read off any casing, response scheduling."""

import json

import pytest

from pispeaker.emulator import DEFAULT_MODELS, wire
from pispeaker.emulator.calls import scheduling
from pispeaker.emulator.profiles import (
    EXTENDED_THINKING_3_8,
    LIVE_3_8,
    NATIVE_AUDIO_2_5,
    profile_for,
)


@pytest.mark.parametrize(
    ("model", "profile"),
    [
        ("gemini-3.8-live", LIVE_3_8),
        ("models/gemini-3.8-live", LIVE_3_8),
        ("gemini-3.8-live-extended-thinking", EXTENDED_THINKING_3_8),  # the longer name wins
        ("gemini-2.5-flash-native-audio-latest", NATIVE_AUDIO_2_5),
        ("a-model-a-test-added", NATIVE_AUDIO_2_5),  # the behaviour from before profiles
    ],
)
def test_a_model_gets_its_familys_profile(model: str, profile: object) -> None:
    assert profile_for(model) is profile


def test_every_served_model_has_a_family() -> None:
    for model in DEFAULT_MODELS:
        assert model.startswith(profile_for(model).name)


def test_refusals_read_the_setup_in_either_casing() -> None:
    snake = {"model": "models/gemini-3.8-live", "generation_config": {"thinking_config": {}}}
    camel = {"model": "models/gemini-3.8-live", "generationConfig": {"thinkingConfig": {}}}
    reasons = {
        LIVE_3_8.refusal("gemini-3.8-live", parsed(setup), "v1beta") for setup in (snake, camel)
    }
    assert reasons == {"thinking_config is not supported by gemini-3.8-live."}


def test_a_refused_thinking_field_is_named_in_snake_case() -> None:
    setup = parsed({"generationConfig": {"thinkingConfig": {"thinkingBudget": 0}}})
    assert EXTENDED_THINKING_3_8.refusal("x", setup, "v1beta") == (
        "thinking_config.thinking_budget is not supported by x."
    )


def parsed(setup: dict[str, object]) -> dict[str, object]:
    """A setup as the emulator reads it off the wire."""
    message = wire.parse_client_message(json.dumps({"setup": setup}))
    return message["setup"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ({"id": "a", "scheduling": "INTERRUPT"}, "INTERRUPT"),  # the FunctionResponse field
        ({"id": "a", "response": {"scheduling": "SILENT"}}, "SILENT"),  # the tools guide's place
        ({"id": "a", "scheduling": "interrupt"}, "INTERRUPT"),  # enums are case-insensitive
        ({"id": "a", "response": {"result": "ok"}}, "WHEN_IDLE"),  # the default
        ({"id": "a", "scheduling": "SCHEDULING_UNSPECIFIED"}, "WHEN_IDLE"),
    ],
)
def test_scheduling_is_read_from_either_place(response: dict[str, object], expected: str) -> None:
    assert scheduling(response) == expected
