"""What each Live model family accepts, so that a setting the model would refuse is a config
error before any connection, and so the session is set up the way each model expects.

Facts from reference/live-api.md section 11 (Nov 2026). Model names change often: a model
not listed here is still used (with a warning); its rules are then the default model's.
"""

import enum
from dataclasses import dataclass, replace

from pispeaker.tools import Tool


class Thinking(enum.Enum):
    """How a model's thinking is configured, if at all."""

    NONE = "none"  # it reasons as it talks: no thinking setting may be sent
    LEVEL = "level"  # thinking_level (minimal, low, medium, high)
    BUDGET = "budget"  # thinking_budget in tokens (0 turns thinking off)


class Proactive(enum.Enum):
    """Whether the model may choose not to answer what it hears."""

    ALWAYS = "always"  # on, and cannot be turned off
    OPTIONAL = "optional"  # off unless asked for (on the v1alpha API)
    NEVER = "never"  # not supported: asking for it is an error


@dataclass(frozen=True)
class ModelRules:
    """One model family's rules."""

    thinking: Thinking
    async_tools: bool  # NON_BLOCKING function calls (the model talks on while one runs)
    sync_tools: bool  # BLOCKING function calls (the model waits for the answer)
    proactive_audio: Proactive
    affective_dialog: bool
    v1alpha_features: bool  # proactive audio and affective dialog need api_version v1alpha
    notes: bool  # clientContent mid-session (a note to the model); else only initial history

    def runs_async(self, tool: Tool) -> bool:
        """Whether ``tool`` is declared NON_BLOCKING: where the model has both kinds, as the
        tool prefers; else the one kind the model has."""
        if not self.async_tools:
            return False
        return not (tool.blocking and self.sync_tools)


GA = ModelRules(
    thinking=Thinking.NONE,
    async_tools=True,
    sync_tools=True,
    proactive_audio=Proactive.ALWAYS,
    affective_dialog=False,
    v1alpha_features=False,
    notes=True,
)
#: The other families, by how they differ from the GA model.
EXTENDED_THINKING = replace(GA, thinking=Thinking.LEVEL, sync_tools=False)
FLASH_31 = replace(
    GA, thinking=Thinking.LEVEL, async_tools=False, proactive_audio=Proactive.NEVER, notes=False
)
NATIVE_AUDIO_25 = replace(
    GA,
    thinking=Thinking.BUDGET,
    proactive_audio=Proactive.OPTIONAL,
    affective_dialog=True,
    v1alpha_features=True,
)

DEFAULT_MODEL = "gemini-3.8-live"
#: The models pispeaker knows, newest first.
KNOWN: dict[str, ModelRules] = {
    "gemini-3.8-live": GA,
    "gemini-3.8-live-extended-thinking": EXTENDED_THINKING,
    "gemini-3.1-flash-live-preview": FLASH_31,
    "gemini-2.5-flash-native-audio-preview-12-2025": NATIVE_AUDIO_25,
    "gemini-2.5-flash-native-audio-preview-09-2025": NATIVE_AUDIO_25,
    "gemini-2.5-flash-native-audio-latest": NATIVE_AUDIO_25,
}


def rules_of(model: str) -> ModelRules:
    """The rules of ``model``; an unknown model gets the default model's."""
    return KNOWN.get(model, KNOWN[DEFAULT_MODEL])


def known_models() -> str:
    """The known model names, for a message."""
    return ", ".join(KNOWN)
