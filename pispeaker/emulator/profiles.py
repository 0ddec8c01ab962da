"""Model profiles: what each Live model family does, and which setups it refuses.

A :class:`ModelProfile` is data: how replies are framed (one part per event or several),
how function calls behave unless declared otherwise, whether proactive audio is on, whether
the model reasons in the background, and which optional settings it takes. :func:`profile_for`
finds the profile of a model id; the setup gate asks it for a refusal, and the connection's
parts read it through the session config. Sources: reference/live-api.md sections 4 and 11.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from pispeaker.emulator import wire

BLOCKING = "BLOCKING"
NON_BLOCKING = "NON_BLOCKING"


class Support(enum.Enum):
    """How a model takes an optional feature of the setup."""

    NONE = "none"  # asking for it at all is refused
    V1ALPHA = "v1alpha"  # taken on api_version v1alpha only
    ALWAYS = "always"  # always on: asking for it is fine, turning it off is refused

    def refusal(self, name: str, value: Any, model: str, api_version: str) -> str | None:
        """Why ``model`` refuses setting ``name`` to ``value`` (None: absent); None if fine."""
        if value is None:
            return None
        if self is Support.NONE:
            return f"{name} is not supported by {model}."
        if self is Support.V1ALPHA and api_version != "v1alpha":
            return f"{name} is only available on api_version v1alpha for {model}."
        if self is Support.ALWAYS and value is False:
            return f"{name} is always on for {model} and cannot be turned off."
        return None


@dataclass(frozen=True)
class ModelProfile:
    """What one model family does and takes.

    ``thinking`` maps the ``thinkingConfig`` fields the model takes (snake_case) to their
    accepted values (empty: any value); None refuses ``thinkingConfig`` altogether.
    """

    name: str
    #: A server event may carry audio and its transcript together (3.x); else one part each.
    multi_part: bool
    #: The behavior of a function declared without one (or UNSPECIFIED).
    default_behavior: str
    #: The function behaviors a declaration may ask for.
    behaviors: frozenset[str]
    proactive_audio: Support
    affective_dialog: Support
    thinking: Mapping[str, tuple[str, ...]] | None
    #: Each request is acknowledged at once and answered after background reasoning.
    background_reasoning: bool = False

    def behaviors_of(self, setup: dict[str, Any]) -> dict[str, str]:
        """Each declared function's behavior, this model's default where none is declared."""
        return {
            str(declaration.get("name", "")): self._behavior(declaration)
            for tool in setup.get("tools", [])
            for declaration in tool.get("functionDeclarations", [])
        }

    def refusal(self, model: str, setup: dict[str, Any], api_version: str) -> str | None:
        """Why ``model`` (of this family) refuses a camelCase ``setup``; None if it takes it."""
        generation = setup.get("generationConfig", {})
        proactive = setup.get("proactivity", {}).get("proactiveAudio")
        affective = generation.get("enableAffectiveDialog")
        return (
            self._thinking_refusal(model, generation.get("thinkingConfig"))
            or self.proactive_audio.refusal(
                "proactivity.proactive_audio", proactive, model, api_version
            )
            or self.affective_dialog.refusal(
                "enable_affective_dialog", affective, model, api_version
            )
            or self._behavior_refusal(model, setup)
        )

    def _behavior(self, declaration: dict[str, Any]) -> str:
        behavior = str(declaration.get("behavior", "")).upper()
        return behavior if behavior in (BLOCKING, NON_BLOCKING) else self.default_behavior

    def _behavior_refusal(self, model: str, setup: dict[str, Any]) -> str | None:
        for name, behavior in self.behaviors_of(setup).items():
            if behavior not in self.behaviors:
                return f"function {name}: behavior {behavior} is not supported by {model}."
        return None

    def _thinking_refusal(self, model: str, config: dict[str, Any] | None) -> str | None:
        if config is None:
            return None
        if self.thinking is None:
            return f"thinking_config is not supported by {model}."
        for key, value in config.items():
            name = wire.snake(key)
            if name not in self.thinking:
                return f"thinking_config.{name} is not supported by {model}."
            accepted = self.thinking[name]
            if accepted and str(value).upper() not in accepted:
                return f"{name} {value} is not supported by {model}; use {', '.join(accepted)}."
        return None


#: Stable since 2026-09: interleaved reasoning (no thinking_config), NON_BLOCKING by default.
LIVE_3_8 = ModelProfile(
    name="gemini-3.8-live",
    multi_part=True,
    default_behavior=NON_BLOCKING,
    behaviors=frozenset({BLOCKING, NON_BLOCKING}),
    proactive_audio=Support.ALWAYS,
    affective_dialog=Support.NONE,
    thinking=None,
)
#: 3.8 with background reasoning: async tools only, a thinking level to choose.
EXTENDED_THINKING_3_8 = replace(
    LIVE_3_8,
    name="gemini-3.8-live-extended-thinking",
    behaviors=frozenset({NON_BLOCKING}),
    thinking={"thinking_level": ("LOW", "MEDIUM", "HIGH"), "include_thoughts": ()},
    background_reasoning=True,
)
#: The legacy 3.1 preview: synchronous functions only, no proactivity, no affective dialog.
FLASH_LIVE_3_1 = ModelProfile(
    name="gemini-3.1-flash-live",
    multi_part=True,
    default_behavior=BLOCKING,
    behaviors=frozenset({BLOCKING}),
    proactive_audio=Support.NONE,
    affective_dialog=Support.NONE,
    thinking={"thinking_level": (), "include_thoughts": ()},
)
#: 2.5 native audio: one part per event; proactivity and affective dialog on v1alpha.
NATIVE_AUDIO_2_5 = ModelProfile(
    name="gemini-2.5-flash-native-audio",
    multi_part=False,
    default_behavior=BLOCKING,
    behaviors=frozenset({BLOCKING, NON_BLOCKING}),
    proactive_audio=Support.V1ALPHA,
    affective_dialog=Support.V1ALPHA,
    thinking={"thinking_budget": (), "include_thoughts": ()},
)
PROFILES = (LIVE_3_8, EXTENDED_THINKING_3_8, FLASH_LIVE_3_1, NATIVE_AUDIO_2_5)


def profile_for(model: str) -> ModelProfile:
    """The profile of a model id (``models/`` prefix optional): its family's, by name prefix.

    The longest matching family name wins (``gemini-3.8-live-extended-thinking`` over
    ``gemini-3.8-live``); a model of no known family (one a test added to the options'
    models) behaves as 2.5 native audio, the emulator's behaviour before profiles.
    """
    model = model.removeprefix("models/")
    matching = [profile for profile in PROFILES if model.startswith(profile.name)]
    return max(matching, key=lambda profile: len(profile.name), default=NATIVE_AUDIO_2_5)
