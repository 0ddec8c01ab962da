"""Configuration: one TOML file parsed into frozen, typed, documented models.

Contract: ``load_config`` returns a fully valid ``Config`` or raises ``ConfigError`` listing
every problem at once, one ``section.key: message`` line each. A missing section or key takes
its default, so an empty file means "all defaults". ``config/pispeaker.toml`` in the source
tree lists every key with its default and is kept in step with these models by a test.
"""

import difflib
import ipaddress
import json
import re
import tomllib
import urllib.parse
import zoneinfo
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import annotated_types
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from pispeaker.errors import ConfigError
from pispeaker.live.models import (
    DEFAULT_MODEL,
    KNOWN,
    ModelRules,
    Proactive,
    Thinking,
    known_models,
)
from pispeaker.panel.looks import looks_for

DEFAULT_CONFIG_PATH = Path("/etc/pispeaker/pispeaker.toml")


def _optional_path(value: object) -> Path | None:
    """Turn a TOML string into a path; "" means unset because TOML has no null."""
    if value is None or value == "":
        return None
    if isinstance(value, Path):
        return value
    if isinstance(value, str):
        return Path(value)
    raise ValueError('expected a file path string, or "" for none')


OptionalPath = Annotated[Path | None, BeforeValidator(_optional_path)]


class _Section(BaseModel):
    """Base of every section: immutable, unknown keys rejected, no type coercion."""

    # strict: TOML values are already typed, so "20" where an integer belongs is a mistake
    # worth reporting rather than silently converting (an int is still accepted for a float).
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class LiveConfig(_Section):
    """How to reach the Gemini Live API and how the conversation behaves."""

    model: str = Field(
        DEFAULT_MODEL,
        min_length=1,
        description="Live model id, without the 'models/' prefix (see the README's models).",
    )
    api_version: Literal["v1", "v1beta", "v1alpha"] = Field(
        "v1beta", description="API version path segment: 'v1', 'v1beta' or 'v1alpha'."
    )
    base_url: str = Field(
        "https://generativelanguage.googleapis.com/",
        description="API endpoint URL, http:// or https:// (point it at the emulator to test).",
    )
    ca_file: OptionalPath = Field(
        None,
        description='Extra PEM CA certificate to trust, e.g. the emulator\'s; "" for none.',
    )
    api_key_file: OptionalPath = Field(
        None,
        description='File holding only the API key; "" to use the credential or environment.',
    )
    voice: str = Field("Kore", min_length=1, description="Prebuilt voice name, e.g. 'Kore'.")
    language: str = Field(
        "", description="BCP-47 language code for speech, e.g. 'en-US'; \"\" lets the model choose."
    )
    system_instruction: str = Field(
        "You are a friendly voice assistant on a smart speaker. "
        "Answer briefly and conversationally. "
        "You may hear people who are not talking to you: stay silent when speech is not "
        "addressed to you, and if people are talking among themselves, call "
        "end_conversation without saying anything.",
        description="Instruction sent at the start of every session (plain text).",
    )
    start_of_speech_sensitivity: Literal["high", "low"] = Field(
        "high", description="Server voice detection: how readily speech is deemed to start."
    )
    end_of_speech_sensitivity: Literal["high", "low"] = Field(
        "high", description="Server voice detection: how readily speech is deemed to end."
    )
    prefix_padding_ms: int = Field(
        20,
        ge=0,
        le=2000,
        description="Speech needed before start of speech is committed, in ms (0 to 2000).",
    )
    silence_duration_ms: int = Field(
        800,
        ge=100,
        le=5000,
        description="Silence that ends the user's turn, in ms (100 to 5000).",
    )
    activity_handling: Literal["interrupt", "no_interruption"] = Field(
        "interrupt",
        description="Whether user speech interrupts the model's reply ('interrupt') or not.",
    )
    google_search: bool = Field(
        True, description="Let the model ground answers in Google Search (news, weather, ...)."
    )
    thinking_level: Literal["", "minimal", "low", "medium", "high"] = Field(
        "",
        description="How hard models with thinking levels think (3.8 extended thinking, 3.1); "
        '"" for the model\'s default.',
    )
    thinking_budget: int = Field(
        -1,
        ge=-1,
        le=32768,
        description="Thinking tokens of 2.5 models (0 turns thinking off; -1 the model's "
        "default, dynamic).",
    )
    proactive_audio: Literal["model", "on", "off"] = Field(
        "model",
        description="Whether the model may stay silent when it was not spoken to: 'model' "
        "leaves it to the model (always on for 3.8), 'on' or 'off' (2.5, v1alpha).",
    )
    affective_dialog: bool = Field(
        False, description="Adapt the voice to the user's tone (2.5 models on v1alpha only)."
    )
    input_transcription: bool = Field(True, description="Ask for transcripts of the user.")
    output_transcription: bool = Field(True, description="Ask for transcripts of the model.")
    session_resumption: bool = Field(
        True, description="Resume the session after the server closes the connection."
    )
    context_window_compression: bool = Field(
        True, description="Let the server compress old context so sessions can run long."
    )
    uplink_chunk_ms: int = Field(
        20, ge=10, le=100, description="Audio per uplink message, in ms of 16 kHz (10 to 100)."
    )
    connect_timeout_s: float = Field(
        10.0, ge=1, le=120, description="Connection and setup timeout, in seconds (1 to 120)."
    )
    ping_interval_s: float = Field(
        0.0,
        ge=0,
        le=600,
        description="Websocket keepalive ping interval, in seconds (0 to 600); 0 disables "
        "pings because the Live API's pongs can take 8 to 30 s.",
    )
    ping_timeout_s: float = Field(
        60.0, ge=1, le=600, description="Time to wait for a pong, in seconds (1 to 600)."
    )

    @field_validator("model")
    @classmethod
    def _model_without_prefix(cls, value: str) -> str:
        """One spelling only, so logs and comparisons never disagree about the model."""
        if value.startswith("models/"):
            raise ValueError("give the model id without the 'models/' prefix")
        return value

    @field_validator("thinking_level", "thinking_budget")
    @classmethod
    def _thinking_fits(cls, value: str | int, info: ValidationInfo) -> str | int:
        """A level only for models that think in levels, a budget only for those that think
        in tokens (the defaults, "" and -1, send nothing)."""
        model, rules = _model_of(info)
        wanted = Thinking.LEVEL if info.field_name == "thinking_level" else Thinking.BUDGET
        if value not in ("", -1) and rules is not None and rules.thinking is not wanted:
            raise ValueError(f"{model} {_THINKING_HINT[rules.thinking]}; remove {info.field_name}")
        return value

    @field_validator("proactive_audio")
    @classmethod
    def _proactive_audio_fits(cls, value: str, info: ValidationInfo) -> str:
        """Proactive audio is fixed on some models, missing on others, v1alpha on 2.5."""
        model, rules = _model_of(info)
        if value == "model" or rules is None:
            return value
        if rules.proactive_audio is Proactive.ALWAYS and value == "off":
            raise ValueError(f"proactive audio is always on for {model}; remove the setting")
        if rules.proactive_audio is Proactive.NEVER:
            raise ValueError(f"{model} has no proactive audio; remove the setting")
        _needs_v1alpha(rules.v1alpha_features and value == "on", "proactive audio", info)
        return value

    @field_validator("affective_dialog")
    @classmethod
    def _affective_dialog_fits(cls, value: bool, info: ValidationInfo) -> bool:
        """Affective dialog exists only on 2.5 native-audio models, on v1alpha."""
        model, rules = _model_of(info)
        if value and rules is not None and not rules.affective_dialog:
            raise ValueError(f"{model} has no affective dialog; set it to false")
        _needs_v1alpha(value and rules is not None, "affective dialog", info)
        return value

    def warnings(self) -> list[str]:
        """What is allowed but probably not meant."""
        if self.model in KNOWN:
            return []
        return [
            f"live.model: {self.model!r} is not a model pispeaker knows ({known_models()}); "
            "it is used as given, with the rules of the default model"
        ]

    @field_validator("base_url")
    @classmethod
    def _url_has_scheme(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must start with https:// or http://")
        return value

    @field_validator("language")
    @classmethod
    def _language_looks_like_bcp47(cls, value: str) -> str:
        """A shape check only; the server decides which languages it supports."""
        parts = value.split("-")
        if value and not (parts[0].isalpha() and 2 <= len(parts[0]) <= 3):
            raise ValueError("must be a BCP-47 language code like 'en-US', or \"\"")
        return value


_THINKING_HINT = {
    Thinking.NONE: "reasons as it talks and takes no thinking setting",
    Thinking.LEVEL: "takes thinking_level, not a budget",
    Thinking.BUDGET: "takes thinking_budget, not a level",
}


def _model_of(info: ValidationInfo) -> tuple[str, ModelRules | None]:
    """The model being configured and its rules (None if unknown: then nothing is checked,
    since a new model's rules are not known)."""
    model = str(info.data.get("model", DEFAULT_MODEL))
    return model, KNOWN.get(model)


def _needs_v1alpha(asked: bool, feature: str, info: ValidationInfo) -> None:
    if asked and info.data.get("api_version") != "v1alpha":
        raise ValueError(f'{feature} needs api_version = "v1alpha"')


SampleFormatName = Literal["auto", "S16_LE", "S24_LE", "S24_3LE", "S32_LE", "FLOAT_LE"]
SampleRate = Annotated[int, Field(ge=0, le=192_000)]
ChannelCount = Annotated[int, Field(ge=0, le=32)]


class AudioConfig(_Section):
    """Which ALSA devices to record from and play to, and how."""

    capture_device: str = Field(
        "default", min_length=1, description="ALSA PCM to record from, e.g. plughw:CARD=Device."
    )
    capture_rate: SampleRate = Field(
        0,
        description="Capture sample rate in Hz; 0 asks for 48000 and "
        "takes the nearest the device offers.",
    )
    capture_channels: ChannelCount = Field(
        0, description="Capture channels; 0 asks for 1 and takes what is offered."
    )
    capture_format: SampleFormatName = Field(
        "auto", description="Capture sample format; auto prefers S16_LE."
    )
    capture_channel: ChannelCount = Field(
        0, description="0 mixes all capture channels; N uses only channel N."
    )
    playback_device: str = Field(
        "default", min_length=1, description="ALSA PCM to play to, e.g. plughw:CARD=Device."
    )
    playback_rate: SampleRate = Field(
        0,
        description="Playback sample rate in Hz; 0 asks for 24000 (the replies' "
        "own rate) and takes the nearest the device offers.",
    )
    playback_channels: ChannelCount = Field(
        0, description="Playback channels; 0 asks for 1 and takes what is offered."
    )
    playback_format: SampleFormatName = Field(
        "auto", description="Playback sample format; auto prefers S16_LE."
    )
    period_ms: int = Field(20, ge=5, le=200, description="ALSA period in milliseconds, 5-200.")
    periods: int = Field(
        4,
        ge=2,
        le=32,
        description="Periods in the playback buffer, 2-32: the output latency "
        "is period_ms x periods.",
    )
    volume: int = Field(
        70, ge=0, le=100, description="Volume at first start, 0-100; later changes are kept."
    )
    mixer_control: str = Field(
        "", description="ALSA mixer control for the volume, e.g. PCM; empty for software volume."
    )
    mixer_device: str = Field(
        "default", min_length=1, description="ALSA control device holding mixer_control."
    )

    @field_validator("capture_channel")
    @classmethod
    def _channel_exists(cls, channel: int, info: ValidationInfo) -> int:
        channels = info.data.get("capture_channels", 0)
        if channels and channel > channels:
            raise ValueError(f"channel {channel} does not exist: capture_channels is {channels}")
        return channel


class AssistantConfig(_Section):
    """Where and when the speaker is, so that "today", "tomorrow" and "here" mean something."""

    location: str = Field(
        "",
        description='Where the speaker is, e.g. "Lyon, France"; "" to leave it unsaid.',
    )
    time_zone: str = Field(
        "",
        description='IANA time zone, e.g. "Europe/Paris"; "" for the system\'s.',
    )

    @field_validator("time_zone")
    @classmethod
    def _time_zone_exists(cls, value: str) -> str:
        if not value:
            return value
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}; use an IANA name like 'Europe/Paris' "
                "(timedatectl list-timezones lists them)"
            ) from None
        return value


#: How much longer than the follow-up window the bound on unanswered talk must be (s).
UNANSWERED_MARGIN_S = 2.0


class ConversationConfig(_Section):
    """How a conversation starts, flows and ends."""

    follow_up_s: float = Field(
        8.0,
        ge=1.0,
        le=60.0,
        description="Seconds to wait for you to speak again after a reply before ending, 1-60.",
    )
    max_unanswered_s: float = Field(
        30.0,
        ge=5.0,
        le=600.0,
        description="Seconds after a reply that talk the model does not answer (people "
        "talking among themselves, a radio) may keep the conversation open, 5-600; at least "
        "follow_up_s + 2.",
    )
    max_session_s: float = Field(
        600.0,
        ge=30.0,
        le=3600.0,
        description="Longest conversation in seconds, 30-3600; it ends then whatever happens.",
    )
    # "auto": on the echo bench it never interrupts itself (see the README).
    duplex: Literal["auto", "aec", "hardware", "off"] = Field(
        "auto",
        description="Talking over the speaker: auto (cancel its echo, and once the canceller "
        "has converged hear you over it on the device: your voice turns it down and stops it, "
        "and what you said goes to the model from your first word; until then the microphone "
        "is withheld while it talks), aec (the same, but a canceller that cannot load is an "
        "error), hardware (a speakerphone cancels the echo itself: hear you over it at once), "
        "off (withhold the microphone while it talks; the wake word and the button still "
        "interrupt).",
    )
    voice_barge_in: bool | None = Field(
        None,
        description='Deprecated: duplex = "hardware" (true) or "off" (false).',
        exclude=True,
    )
    earcons: bool = Field(True, description="Play short tones when a conversation starts and ends.")
    max_reconnects: int = Field(
        8,
        ge=0,
        le=100,
        description="Reconnect attempts after a network failure before showing an error, 0-100.",
    )

    @field_validator("max_unanswered_s")
    @classmethod
    def _longer_than_the_follow_up(cls, value: float, info: ValidationInfo) -> float:
        """Speech is judged (and may be answered) within the follow-up window: a shorter
        bound would end a conversation the user is still having."""
        follow_up = info.data.get("follow_up_s")
        if follow_up is not None and value < follow_up + UNANSWERED_MARGIN_S:
            raise ValueError(
                f"must be at least follow_up_s + {UNANSWERED_MARGIN_S:g} "
                f"({follow_up + UNANSWERED_MARGIN_S:g}): the voice detector and the model "
                "need that long to hear and answer a follow-up"
            )
        return value

    @model_validator(mode="before")
    @classmethod
    def _duplex_from_voice_barge_in(cls, data: Any) -> Any:
        """The deprecated ``voice_barge_in = true/false`` is ``duplex = "hardware"/"off"``."""
        if not isinstance(data, Mapping) or not isinstance(data.get("voice_barge_in"), bool):
            return data  # a wrong type is reported by the field's own check
        if "duplex" in data:
            raise ValueError("voice_barge_in is replaced by duplex: remove voice_barge_in")
        return {**data, "duplex": "hardware" if data["voice_barge_in"] else "off"}

    def warnings(self) -> list[str]:
        """What is allowed but should change."""
        if self.voice_barge_in is None:
            return []
        return [
            f"conversation.voice_barge_in is deprecated: write duplex = {self.duplex!r} "
            'instead (or "auto", which cancels the echo so that your voice can interrupt)'
        ]


#: Keys still read but no longer written (check-config leaves them out).
DEPRECATED_KEYS = frozenset({"voice_barge_in"})


class WakeConfig(_Section):
    """The on-device wake word (openWakeWord): nothing is sent before it fires."""

    models: list[str] = Field(
        ["hey_jarvis"],
        description="Wake words: built-in names (alexa, hey_jarvis, hey_mycroft, hey_rhasspy, "
        "okay_nabu) or paths of custom .tflite/.onnx models; [] for the button only.",
    )
    threshold: float = Field(
        0.5, ge=0.05, le=0.99, description="Score that counts as the wake word, 0.05-0.99."
    )
    thresholds: dict[str, float] = Field(
        {}, description="Per-model thresholds, e.g. { alexa = 0.6 }; others use threshold."
    )
    refractory_s: float = Field(
        2.0, ge=0.2, le=30.0, description="Seconds after a detection with no other, 0.2-30."
    )
    warmup_s: float = Field(
        1.5,
        ge=0.0,
        le=10.0,
        description="Seconds ignored after start or unmute, 0-10: scores spike as models settle.",
    )
    barge_in: bool = Field(
        True, description="The wake word said while the speaker talks interrupts the reply."
    )
    preroll_s: float = Field(
        2.0,
        ge=0.5,
        le=10.0,
        description="Seconds of audio kept so words said right after the wake word are not "
        "lost while the session connects, 0.5-10.",
    )
    journal: bool = Field(
        False,
        description="Keep the audio around each detection (16 kHz WAV), its model and score, "
        "and what followed, on the device, to find false wakes (pispeaker wake-journal).",
    )
    journal_max_files: int = Field(
        200, ge=1, le=100000, description="Journal entries kept at most; the oldest go first."
    )
    journal_max_mb: int = Field(
        50, ge=1, le=100000, description="Megabytes the journal keeps at most; the oldest go first."
    )

    @field_validator("models")
    @classmethod
    def _models_exist(cls, models: list[str]) -> list[str]:
        from pispeaker.wake.catalog import problem  # lists files only; loads no model

        problems = [text for text in map(problem, models) if text]
        if len(set(models)) != len(models):
            problems.append("a model is listed twice")
        if problems:
            raise ValueError("; ".join(problems))
        return models

    @field_validator("thresholds")
    @classmethod
    def _thresholds_known(
        cls, thresholds: dict[str, float], info: ValidationInfo
    ) -> dict[str, float]:
        names = [Path(spec).stem for spec in info.data.get("models", [])]
        for name, value in thresholds.items():
            if name not in names:
                raise ValueError(f"{name!r} is not one of wake.models ({', '.join(names)})")
            if not 0.05 <= value <= 0.99:
                raise ValueError(f"{name}: {value} must be between 0.05 and 0.99")
        return thresholds

    def threshold_of(self, name: str) -> float:
        """The threshold of model ``name``."""
        return self.thresholds.get(name, self.threshold)


class PanelConfig(_Section):
    """The GPIO button and status LEDs (BCM pin numbers; 0 or [] for none)."""

    button_pin: int = Field(0, ge=0, le=27, description="BCM GPIO of the button, 0-27; 0 for none.")
    button_pull_up: bool = Field(
        True, description="true: the button connects the pin to ground (the usual wiring)."
    )
    hold_s: float = Field(
        2.0, ge=0.5, le=10.0, description="Hold this long to toggle mute, in seconds, 0.5-10."
    )
    debounce_ms: int = Field(
        30, ge=0, le=200, description="Ignore contact bounce shorter than this, in ms, 0-200."
    )
    led_pins: list[int] = Field(
        [], description="BCM GPIOs of the LEDs, e.g. [17] or [5, 6, 13]; [] for none."
    )
    led_rgb: bool = Field(
        False, description="true: led_pins are the red, green and blue legs of one RGB LED."
    )
    led_pwm: bool = Field(True, description="Dim and fade the LEDs (PWM); false: on/off only.")
    led_active_high: bool = Field(
        True, description="false for LEDs wired to 3V3, e.g. common-anode RGB LEDs."
    )
    brightness: float = Field(
        1.0, ge=0.05, le=1.0, description="Brightness of a lit LED, 0.05-1.0 (needs led_pwm)."
    )
    looks: dict[str, str] = Field(
        {},
        description='Per-state looks, e.g. { listening = "blue solid", muted = "red dim" }; '
        "states not listed keep their default.",
    )

    @field_validator("led_pins")
    @classmethod
    def _pins_usable(cls, pins: list[int], info: ValidationInfo) -> list[int]:
        if any(not 1 <= pin <= 27 for pin in pins):
            raise ValueError("LED pins must be BCM GPIO numbers between 1 and 27")
        if len(set(pins)) != len(pins):
            raise ValueError("a pin is listed twice")
        if info.data.get("button_pin") in pins:
            raise ValueError(f"GPIO{info.data['button_pin']} is already the button_pin")
        return pins

    @field_validator("led_rgb")
    @classmethod
    def _rgb_has_three_pins(cls, rgb: bool, info: ValidationInfo) -> bool:
        pins = info.data.get("led_pins", [])
        if rgb and len(pins) != 3:
            raise ValueError(f"an RGB LED needs 3 led_pins (red, green, blue), not {len(pins)}")
        return rgb

    @field_validator("looks")
    @classmethod
    def _looks_parse(cls, looks: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        """Keys are state names ("listening"); values are looks the configured LEDs can show
        (parsed by pispeaker.panel.looks.parse_look). Every bad entry is reported at once."""
        looks_for(info.data.get("led_pins", []), looks, pwm=info.data.get("led_pwm", True))
        return looks


class McpServerConfig(_Section):
    """One MCP server whose tools the model may call: a streamable HTTP (or SSE) ``url``, or a
    local stdio ``command``. Its token is never here: see pispeaker.credentials."""

    name: str = Field(
        description="Short name (lower case, digits, _): in logs, and the prefix of its tool "
        "names where they clash with another's.",
    )
    url: str = Field(
        "", description='Its streamable HTTP (or SSE, ending in "/sse") endpoint; "" with command.'
    )
    command: list[str] = Field(
        default_factory=list, description="A local stdio server to start: program and arguments."
    )
    token_file: OptionalPath = Field(
        None,
        description="A file holding only its bearer token (for url), read at start; the "
        "systemd credential mcp-NAME-token comes first.",
    )
    allow: list[str] = Field(
        default_factory=list, description="The tool names to offer; [] offers all it lists."
    )
    timeout_s: float = Field(
        10.0, ge=1.0, le=120.0, description="Longest wait for it to connect or answer a call."
    )

    @field_validator("name")
    @classmethod
    def _short_name(cls, name: str) -> str:
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,31}", name):
            raise ValueError("must be 1-32 lower-case letters, digits or _, starting with a letter")
        return name

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        parts = urllib.parse.urlsplit(url)
        if url and (parts.scheme not in ("http", "https") or not parts.hostname):
            raise ValueError("must be an http:// or https:// URL with a host")
        return url

    @model_validator(mode="after")
    def _one_transport(self) -> "McpServerConfig":
        if bool(self.url) == bool(self.command):
            raise ValueError(f"server {self.name!r}: give exactly one of url and command")
        if self.token_file is not None and self.command:
            raise ValueError(f"server {self.name!r}: token_file is for url servers only")
        return self


class ToolsConfig(_Section):
    """Tools beyond the built-in ones: MCP servers, each a [[tools.mcp]] table."""

    mcp: list[McpServerConfig] = Field(
        default_factory=list, description="MCP servers, each a [[tools.mcp]] table."
    )

    @field_validator("mcp")
    @classmethod
    def _unique_names(cls, servers: list[McpServerConfig]) -> list[McpServerConfig]:
        names = [server.name for server in servers]
        if twice := sorted({name for name in names if names.count(name) > 1}):
            raise ValueError(f"each server needs its own name; given twice: {_quoted(twice)}")
        return servers


class LoggingConfig(_Section):
    """What the daemon writes to its log (the journal under systemd)."""

    level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Least severe level logged: debug, info, warning or error."
    )
    transcripts: bool = Field(True, description="Log what the user and the model said, at INFO.")


#: A host name as DNS spells it (letters, digits and hyphens, dot-separated labels).
_HOST_NAME = re.compile(
    r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*"
)
_LISTEN = re.compile(r"(?:\[(?P<ipv6>[^\]]*)\]|(?P<host>[^:\[\]]+)):(?P<port>[0-9]{1,5})")
_LISTEN_SHAPE = (
    'must be "HOST:PORT", e.g. "0.0.0.0:9460" (every IPv4 address), "127.0.0.1:9460" (this '
    'machine only) or "[::]:9460" (every address); "" serves no metrics'
)


def listen_address(value: str) -> tuple[str, int]:
    """The host (an IPv6 address without its brackets) and port of a "HOST:PORT" listen
    address; raise ValueError naming the right shape if it is not one."""
    match = _LISTEN.fullmatch(value)
    if match is None:
        raise ValueError(_LISTEN_SHAPE)
    host, port = match["ipv6"] if match["ipv6"] is not None else match["host"], int(match["port"])
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} must be between 1 and 65535")
    if match["ipv6"] is not None:
        _address(ipaddress.IPv6Address, host)
    elif host.replace(".", "").isdigit():
        _address(ipaddress.IPv4Address, host)
    elif not _HOST_NAME.fullmatch(host):
        raise ValueError(f"{host!r} is neither an IP address nor a host name; {_LISTEN_SHAPE}")
    return host, port


def _address(kind: type[ipaddress.IPv4Address | ipaddress.IPv6Address], host: str) -> None:
    try:
        kind(host)
    except ValueError:
        raise ValueError(f"{host!r} is not an IP address; {_LISTEN_SHAPE}") from None


class MetricsConfig(_Section):
    """The Prometheus endpoint: off unless ``listen`` names an address."""

    listen: str = Field(
        "",
        description="Address and port to serve Prometheus metrics on (/metrics), e.g. "
        '"0.0.0.0:9460"; "" for none.',
    )

    @field_validator("listen")
    @classmethod
    def _host_and_port(cls, value: str) -> str:
        if value:
            listen_address(value)
        return value


class Config(_Section):
    """The whole configuration file; every section is optional."""

    live: LiveConfig = Field(default_factory=LiveConfig, description="[live] section.")
    assistant: AssistantConfig = Field(
        default_factory=AssistantConfig, description="[assistant] section."
    )
    audio: AudioConfig = Field(default_factory=AudioConfig, description="[audio] section.")
    conversation: ConversationConfig = Field(
        default_factory=ConversationConfig, description="[conversation] section."
    )
    wake: WakeConfig = Field(default_factory=WakeConfig, description="[wake] section.")
    panel: PanelConfig = Field(default_factory=PanelConfig, description="[panel] section.")
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="[logging] section.")
    metrics: MetricsConfig = Field(default_factory=MetricsConfig, description="[metrics] section.")
    tools: ToolsConfig = Field(default_factory=ToolsConfig, description="[tools] section.")

    def warnings(self) -> list[str]:
        """What is allowed but probably not meant, or should change, in every section."""
        return self.live.warnings() + self.conversation.warnings()


def load_config(path: Path) -> Config:
    """Read and validate the TOML file at ``path``; raise ConfigError on any problem."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, [_unreadable(path, exc)]) from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [f"invalid TOML: {exc}"]) from exc
    return parse_config(data, source)


def _unreadable(path: Path, error: OSError | UnicodeDecodeError) -> str:
    """Why the config file at ``path`` cannot be read, and what to do about it."""
    if isinstance(error, IsADirectoryError):
        return (
            f"is a directory, not a config file; pass the file, e.g. --config "
            f"{path / 'pispeaker.toml'}"
        )
    if isinstance(error, FileNotFoundError):
        return (
            f"cannot read config file: {error.strerror}. "
            "Create it from config/pispeaker.toml or pass --config PATH."
        )
    if isinstance(error, UnicodeDecodeError):
        return f"cannot read config file: not UTF-8 text ({error.reason} at byte {error.start})"
    return f"cannot read config file: {error.strerror or error}; check its permissions"


def parse_config(data: Mapping[str, Any], source: str) -> Config:
    """Validate parsed TOML; raise ConfigError listing every problem, in file order."""
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        errors = sorted(exc.errors(), key=lambda error: _position(data, error["loc"]))
        raise ConfigError(source, [line for error in errors for line in _lines(error)]) from exc


def redacted_toml(config: Config, api_key_status: str) -> str:
    """Render ``config`` as TOML, every section and key in model order.

    The configuration holds no secret (the key lives elsewhere), so nothing needs hiding;
    ``api_key_status`` is the caller's line saying where the key comes from, without its value.
    """
    lines = [
        "# Effective pispeaker configuration (defaults filled in).",
        f"# Gemini API key: {' '.join(api_key_status.split())}",
    ]
    for name, section in _sections(config):
        keys = [(key, value) for key, value in section if key not in DEPRECATED_KEYS]
        lines += ["", f"[{name}]"]
        lines += [f"{key} = {_toml_value(value)}" for key, value in keys if not _tables(value)]
        for key, tables in ((key, value) for key, value in keys if _tables(value)):
            for table in tables:  # an array of tables, e.g. [[tools.mcp]]
                lines += ["", f"[[{name}.{key}]]"]
                lines += [f"{field} = {_toml_value(item)}" for field, item in table]
    return "\n".join(lines) + "\n"


def _tables(value: object) -> bool:
    """Whether ``value`` is a non-empty array of tables (models)."""
    return isinstance(value, list) and bool(value) and isinstance(value[0], BaseModel)


def _sections(config: Config) -> Iterator[tuple[str, BaseModel]]:
    for name in Config.model_fields:
        yield name, getattr(config, name)


def _section_model(name: str) -> type[BaseModel]:
    annotation = Config.model_fields[name].annotation
    # Every field of Config is a section model; the asserts narrow the type for mypy.
    assert isinstance(annotation, type)
    assert issubclass(annotation, BaseModel)
    return annotation


def _toml_value(value: object) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(map(_toml_value, value)) + "]"
    if isinstance(value, dict):
        pairs = (f"{json.dumps(key)} = {_toml_value(item)}" for key, item in value.items())
        return "{ " + ", ".join(pairs) + " }" if value else "{}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if value is None:
        return '""'
    # JSON string escapes are valid TOML basic-string escapes, except that TOML also
    # forbids a raw DEL character.
    return json.dumps(str(value), ensure_ascii=False).replace("\x7f", "\\u007f")


def _position(data: Mapping[str, Any], loc: tuple[int | str, ...]) -> tuple[int, ...]:
    """Where ``loc`` sits in the parsed file: tomllib keeps keys in file order."""
    positions: list[int] = []
    node: object = data
    for part in loc:
        if isinstance(node, list) and isinstance(part, int):  # an array of tables
            positions.append(part)
            node = node[part] if part < len(node) else None
            continue
        keys = list(node) if isinstance(node, Mapping) else []
        positions.append(keys.index(part) if part in keys else len(keys))
        node = node.get(part) if isinstance(node, Mapping) else None
    return tuple(positions)


_TYPE_MESSAGES = {
    "bool_type": "expected a boolean",
    "int_type": "expected an integer",
    "float_type": "expected a number",
    "string_type": "expected a string",
    "model_type": "expected a table",
    "string_too_short": "must not be empty",
    "missing": "required",
}


def _lines(error: ErrorDetails) -> list[str]:
    """One line per problem: a validator that finds several says each on its own line."""
    where, _, message = _problem(error).partition(": ")
    return [f"{where}: {line}" for line in message.split("\n")]


def _problem(error: ErrorDetails) -> str:
    """One ``section.key: message`` line for a pydantic error."""
    loc = error["loc"]
    where = ".".join(str(part) for part in loc)
    if error["type"] == "extra_forbidden":
        return f"{where}: {_unknown(loc)}"
    if isinstance(error["input"], Mapping | list):  # whole tables: the message names them
        return f"{where}: {_describe(error)}"
    return f"{where}: {_describe(error)} (got {error['input']!r})"


def _unknown(loc: tuple[int | str, ...]) -> str:
    """Name the unknown section or key and suggest the nearest real one."""
    if len(loc) == 1:
        what, known = "section", list(Config.model_fields)
    else:
        what, known = "key", list(_section_model(str(loc[0])).model_fields)
    close = difflib.get_close_matches(str(loc[-1]), known, n=1)
    if close:
        return f"unknown {what} (did you mean {close[0]!r}?)"
    if what == "section":
        return f"unknown section (sections are {_quoted(known)})"
    return "unknown key"


def _describe(error: ErrorDetails) -> str:
    """A human message for one error, derived from the field's own bounds where possible."""
    field = _field(error["loc"])
    kind = error["type"]
    if kind in ("greater_than_equal", "less_than_equal") and field is not None:
        return _range(field) or error["msg"]
    if kind == "literal_error" and field is not None and get_origin(field.annotation):
        return f"must be one of {_quoted(get_args(field.annotation))}"
    if kind == "value_error":
        return str(error.get("ctx", {}).get("error", error["msg"]))
    return _TYPE_MESSAGES.get(kind, error["msg"])


def _field(loc: tuple[int | str, ...]) -> FieldInfo | None:
    """The field at ``loc``, through sections and arrays of tables (``tools.mcp.0.url``)."""
    model: type[BaseModel] | None = Config
    field = None
    for part in (part for part in loc if not isinstance(part, int)):
        field = model.model_fields.get(part) if model is not None else None
        if field is None:
            return None
        model = _model_in(field.annotation)
    return field


def _model_in(annotation: object) -> type[BaseModel] | None:
    """The model a field holds: a section, or the tables of an array (list[Model])."""
    for candidate in (annotation, *get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _range(field: FieldInfo) -> str | None:
    low = next((m.ge for m in field.metadata if isinstance(m, annotated_types.Ge)), None)
    high = next((m.le for m in field.metadata if isinstance(m, annotated_types.Le)), None)
    if low is None or high is None:
        return None
    return f"must be between {low} and {high}"


def _quoted(values: Iterable[object]) -> str:
    return ", ".join(repr(value) for value in values)
