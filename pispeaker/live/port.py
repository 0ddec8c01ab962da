"""The Live port: what the conversation sees of the Live API, with no SDK in sight.

A ``Link`` connects in the background and reports what happens as ``LinkEvent`` values
through a callback; it never retries on its own (the conversation owns the error policy).
``Message`` is one server message already translated from the SDK's types, and ``Failure``
says whether retrying soon can help. ``pispeaker.live.genai`` is the one module that speaks
google-genai and translates to and from these types.
"""

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Speaker = Literal["user", "model"]


class Kind(enum.Enum):
    """Whether a quick retry can help."""

    TRANSIENT = "transient"
    FATAL = "fatal"


@dataclass(frozen=True)
class Failure:
    """A classified failure: ``message`` is for a person and names the next step."""

    kind: Kind
    message: str
    code: int | None = None
    #: What failed, for a diagnosis (``pispeaker doctor``): "key" (rejected or missing),
    #: "model" (unknown, or a feature it lacks), "quota", "tls", or "" for anything else.
    cause: str = ""


@dataclass(frozen=True)
class Ready:
    """A session is open; ``resumed`` when it continues the previous one."""

    resumed: bool


@dataclass(frozen=True)
class ModelAudio:
    """24 kHz s16le reply audio."""

    pcm: bytes


@dataclass(frozen=True)
class Transcript:
    """What the user said (``user``) or the model said (``model``), as transcribed."""

    speaker: Speaker
    text: str


@dataclass(frozen=True)
class TurnComplete:
    """The model's turn is over (its audio may still be playing)."""


@dataclass(frozen=True)
class Interrupted:
    """The server cut the model's reply: the user spoke over it."""


@dataclass(frozen=True)
class ToolRequest:
    """One function call the model wants answered."""

    id: str
    name: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ToolsCancelled:
    """The server withdrew these calls (the user interrupted)."""

    ids: tuple[str, ...]


@dataclass(frozen=True)
class Reasoning:
    """The model reasons in the background (``in_progress``) or has finished: a request can
    then bring several turns, the last one the answer (interactionStatus)."""

    in_progress: bool


@dataclass(frozen=True)
class Usage:
    """Tokens the service counted (``usageMetadata``); they add up over a conversation."""

    prompt: int = 0
    response: int = 0
    total: int = 0

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(
            self.prompt + other.prompt, self.response + other.response, self.total + other.total
        )


@dataclass(frozen=True)
class Grounded:
    """The answer was grounded in Google Search, with these queries."""

    queries: tuple[str, ...]


@dataclass(frozen=True)
class Crashed:
    """A bug in pispeaker (not a network or service failure) ended the link."""

    error: BaseException


@dataclass(frozen=True)
class Lost:
    """The session ended by failure; ``failure.kind`` says whether to retry soon."""

    failure: Failure


LinkEvent = (
    Ready
    | ModelAudio
    | Transcript
    | TurnComplete
    | Interrupted
    | ToolRequest
    | ToolsCancelled
    | Reasoning
    | Usage
    | Grounded
    | Lost
    | Crashed
)
Report = Callable[[LinkEvent], None]


@dataclass(frozen=True)
class Message:
    """One server message, translated: the parts pispeaker acts on, in the order it acts."""

    interrupted: bool = False
    audio: tuple[bytes, ...] = ()
    transcripts: tuple[Transcript, ...] = ()
    turn_complete: bool = False
    model_turn: bool = False  # the message carries part of the model's turn
    tool_calls: tuple[ToolRequest, ...] = ()
    cancelled_calls: tuple[str, ...] = ()
    go_away_s: float | None = None  # seconds until the server closes the connection
    handle: str | None = None  # a new resumption handle (only when resumable)
    reasoning: bool | None = None  # interactionStatus: IN_PROGRESS True, IDLE False
    usage: Usage | None = None
    search_queries: tuple[str, ...] | None = None  # groundingMetadata, when present


class Link(Protocol):
    """One conversation's connection to the Live API."""

    def open(self, resume: bool = False) -> None:
        """Connect in the background (resuming the last session if asked and possible);
        report Ready, then the session's events, or Lost."""

    def stop(self) -> None:
        """End the conversation at once: forget unsent audio and the resumption handle;
        the socket finishes closing in the background (``close`` waits for it)."""

    async def close(self) -> None:
        """``stop()``, and wait until the socket is closed."""

    def send_audio(self, pcm: bytes) -> None:
        """Queue 16 kHz s16le microphone audio; it is sent once a session is ready."""

    async def respond(self, request: ToolRequest, response: dict[str, Any]) -> None:
        """Answer a tool call (``{"output": ...}`` or ``{"error": ...}``)."""
