"""What each model's session setup says: tools, thinking, proactivity, the instruction."""

import datetime

import pytest
from google.genai import types

from pispeaker.config import AssistantConfig, LiveConfig
from pispeaker.live.genai import connect_config
from pispeaker.live.instruction import session_instruction
from pispeaker.tools import builtin_tools

TOOLS = builtin_tools(lambda: None, lambda level: None)
EVENING = datetime.datetime(2026, 12, 3, 19, 30, tzinfo=datetime.UTC)


def _setup(**live: object) -> types.LiveConnectConfig:
    return connect_config(LiveConfig().model_copy(update=live), tools=TOOLS)


def _behaviors(setup: types.LiveConnectConfig) -> dict[str, types.Behavior | None]:
    [functions] = [
        tool.function_declarations for tool in setup.tools or [] if tool.function_declarations
    ]
    return {function.name or "": function.behavior for function in functions}


NON_BLOCKING, BLOCKING = types.Behavior.NON_BLOCKING, types.Behavior.BLOCKING


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gemini-3.8-live", (NON_BLOCKING, NON_BLOCKING, BLOCKING)),
        ("gemini-3.8-live-extended-thinking", (NON_BLOCKING, NON_BLOCKING, NON_BLOCKING)),
        ("gemini-3.1-flash-live-preview", (None, None, None)),
        ("gemini-2.5-flash-native-audio-preview-12-2025", (NON_BLOCKING, NON_BLOCKING, BLOCKING)),
    ],
)
def test_tools_are_declared_the_way_each_model_runs_them(
    model: str, expected: tuple[types.Behavior | None, ...]
) -> None:
    behaviors = _behaviors(_setup(model=model))
    assert tuple(behaviors.values()) == expected
    assert list(behaviors) == ["end_conversation", "set_volume", "get_local_time"]


def test_google_search_is_declared_unless_turned_off() -> None:
    assert types.Tool(google_search=types.GoogleSearch()) in (_setup().tools or [])
    assert all(tool.google_search is None for tool in _setup(google_search=False).tools or [])


def test_the_ga_model_gets_no_thinking_proactivity_or_affective_dialog_setting() -> None:
    setup = _setup()
    assert (setup.thinking_config, setup.proactivity, setup.enable_affective_dialog) == (
        None,
        None,
        None,
    )


def test_settings_the_owner_chose_are_sent() -> None:
    extended = _setup(model="gemini-3.8-live-extended-thinking", thinking_level="high")
    assert extended.thinking_config == types.ThinkingConfig(thinking_level=types.ThinkingLevel.HIGH)
    native = _setup(
        model="gemini-2.5-flash-native-audio-preview-12-2025",
        api_version="v1alpha",
        thinking_budget=0,
        proactive_audio="on",
        affective_dialog=True,
    )
    assert native.thinking_config == types.ThinkingConfig(thinking_budget=0)
    assert native.proactivity == types.ProactivityConfig(proactive_audio=True)
    assert native.enable_affective_dialog is True


def test_the_instruction_says_where_and_when_in_the_configured_zone() -> None:
    assistant = AssistantConfig(location="Lyon, France", time_zone="Europe/Paris")
    text = session_instruction("Answer briefly.", assistant, EVENING)
    assert text.startswith("Answer briefly.\n\nThe speaker is in Lyon, France.\n\n")
    assert "Thursday 3 December 2026, 20:30 (Europe/Paris, UTC+01:00)" in text


def test_without_a_place_or_zone_it_says_the_system_time_only() -> None:
    text = session_instruction("Answer briefly.", AssistantConfig(), EVENING)
    local = EVENING.astimezone()
    assert "The speaker is in" not in text
    assert f"{local:%H:%M}" in text


def test_the_instruction_reaches_the_setup() -> None:
    setup = connect_config(LiveConfig(), tools=[], instruction="It is Thursday.")
    assert setup.system_instruction == "It is Thursday."
    assert connect_config(LiveConfig()).system_instruction == LiveConfig().system_instruction
