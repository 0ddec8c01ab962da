"""The setup exchange: the first client message, admitted or refused as the service does.

The upgrade request gives a :class:`Handshake`; the first message must then be ``setup``.
:class:`SetupGate` refuses a bad one with the real close codes, in the real order (not a
setup, no key, wrong key, used-up quota, unknown model, a setting the model refuses, a
refused resumption handle), or attaches a session and answers ``setupComplete``.

:class:`SessionConfig` is everything the rest of the connection reads from the setup,
including the model's :class:`~pispeaker.emulator.profiles.ModelProfile`: the gate asks the
profile what it refuses, and turn generation and tool calls read it from the config.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pispeaker.emulator import wire
from pispeaker.emulator.channel import Channel
from pispeaker.emulator.profiles import BLOCKING, ModelProfile, Support, profile_for
from pispeaker.emulator.store import ResumeRejected
from pispeaker.emulator.vad import VadSettings

INTERRUPTS = "START_OF_ACTIVITY_INTERRUPTS"


@dataclass(frozen=True)
class Handshake:
    """What the HTTP upgrade request said."""

    number: int
    api_version: str
    method: str
    credential: str | None


@dataclass(frozen=True)
class SessionConfig:
    """What an admitted setup asked for, as the connection's parts read it."""

    model: str
    profile: ModelProfile
    #: The client asked for resumption handles (``sessionResumption`` present).
    resumable: bool
    #: Automatic activity detection is off: the client sends activityStart/activityEnd.
    manual_activity: bool
    vad: VadSettings
    #: User activity barges in on a reply (not ``NO_INTERRUPTION``).
    interrupts: bool
    input_transcription: bool
    output_transcription: bool
    #: The model may choose not to answer an utterance (always on for 3.8).
    proactive_audio: bool
    #: Each declared function's behavior (BLOCKING or NON_BLOCKING), defaults resolved.
    functions: Mapping[str, str]
    #: The declared built-in tools, by their setup key (e.g. "googleSearch").
    builtin_tools: frozenset[str]

    @classmethod
    def from_setup(cls, setup: dict[str, Any], default_silence_ms: int) -> SessionConfig:
        """Read a camelCase setup; absent fields take the service defaults."""
        realtime = setup.get("realtimeInputConfig", {})
        detection = realtime.get("automaticActivityDetection", {})
        model = model_name(setup)
        profile = profile_for(model)
        tools = setup.get("tools", [])
        return cls(
            model=model,
            profile=profile,
            resumable=isinstance(setup.get("sessionResumption"), dict),
            manual_activity=bool(detection.get("disabled", False)),
            vad=VadSettings.from_setup(detection, default_silence_ms),
            interrupts=realtime.get("activityHandling", INTERRUPTS) != "NO_INTERRUPTION",
            input_transcription="inputAudioTranscription" in setup,
            output_transcription="outputAudioTranscription" in setup,
            proactive_audio=profile.proactive_audio is Support.ALWAYS
            or bool(setup.get("proactivity", {}).get("proactiveAudio")),
            functions=profile.behaviors_of(setup),
            builtin_tools=frozenset(key for tool in tools for key in tool)
            - {"functionDeclarations"},
        )

    def blocking(self, name: str) -> bool:
        """Whether a call of function ``name`` holds the reply until it is answered."""
        return self.functions.get(name, self.profile.default_behavior) == BLOCKING


def model_name(setup: dict[str, Any]) -> str:
    """The setup's model without its ``models/`` prefix."""
    return str(setup.get("model", "")).removeprefix("models/")


class SetupGate:
    """Admit one socket: read its setup, then refuse it with a close or attach a session."""

    def __init__(self, channel: Channel, handshake: Handshake) -> None:
        self.channel = channel
        self.handshake = handshake
        self.options = channel.shared.options

    async def admit(self) -> SessionConfig | None:
        """The admitted setup's config, after setupComplete; None once the socket is closed.

        On admission the channel has its session (new, or resumed from the setup's handle),
        and a resumable setup has been sent its first handle.
        """
        setup = await self._receive()
        if setup is None:
            await self.channel.close(wire.INVALID_ARGUMENT)
            return None
        # A Close is a non-empty tuple, so only a setup that passes the checks is attached.
        rejection = self._check(setup) or self._attach(setup)
        if rejection is not None:
            await self.channel.close(rejection)
            return None
        config = SessionConfig.from_setup(setup, self.options.default_silence_ms)
        if self.handshake.number in self.options.unanswered_setups:
            self.channel.record("setup.unanswered")
            await self.channel.ws.wait_closed()  # a service that never completes the setup
            return None
        await self._complete(setup, config)
        return config

    async def _receive(self) -> dict[str, Any] | None:
        """The setup object of the first message; None if that message is not a setup."""
        try:
            message = wire.parse_client_message(await self.channel.ws.recv())
        except wire.WireError:
            return None
        setup = message.get("setup")
        return setup if isinstance(setup, dict) else None

    def _check(self, setup: dict[str, Any]) -> wire.Close | None:
        """The close for a wrong credential, a used-up quota, an unknown model or a refused
        setting."""
        credential = self.handshake.credential
        if not credential:
            return wire.NO_KEY
        if credential not in self.options.api_keys:
            return wire.BAD_KEY
        if self.options.quota_exhausted:
            return wire.QUOTA
        if model_name(setup) not in self.options.models:
            return wire.unknown_model(model_name(setup), self.handshake.api_version)
        return self._check_settings(setup)

    def _check_settings(self, setup: dict[str, Any]) -> wire.Close | None:
        """The close for a setting the (known) model refuses, as its profile says."""
        modalities = setup.get("generationConfig", {}).get("responseModalities", [])
        if "TEXT" in [str(m).upper() for m in modalities]:
            return wire.TEXT_MODALITY
        model = model_name(setup)
        reason = profile_for(model).refusal(model, setup, self.handshake.api_version)
        return None if reason is None else wire.Close(1007, reason)

    def _attach(self, setup: dict[str, Any]) -> wire.Close | None:
        """Attach a new session, or the one behind the setup's handle; the close if refused."""
        store, model, number = self.channel.shared.store, model_name(setup), self.handshake.number
        resumption = setup.get("sessionResumption")
        handle = resumption.get("handle") if isinstance(resumption, dict) else None
        try:
            if handle:
                now = self.channel.shared.timeline.now()
                self.channel.session = store.resume(handle, model, number, now)
            else:
                self.channel.session = store.create(model, number)
        except ResumeRejected as rejected:
            return rejected.close
        return None

    async def _complete(self, setup: dict[str, Any], config: SessionConfig) -> None:
        """Answer setupComplete, then the first handle if the client asked for resumption."""
        assert self.channel.session is not None
        await self.channel.send("setupComplete", {})
        resumed = self.channel.session.turns > 0
        self.channel.record(
            "setup", model=config.model, profile=config.profile.name, resumed=resumed, setup=setup
        )
        if config.resumable:
            await self.channel.send_handle()
