"""The Live API's JSON wire format as the emulator reads and writes it.

Clients mix snake_case and camelCase keys at every level and use either base64 alphabet
(the Python SDK sends URL-safe base64, the JS SDK and docs standard). The real server is a
protobuf JSON parser that accepts both, so :func:`normalize` folds everything to camelCase.
Server messages use camelCase top-level keys only and omit proto3 defaults, because the SDK
crashes on a message whose top-level keys it does not know.
"""

import base64
import binascii
import json
from typing import Any, NamedTuple

#: Keys whose values are user data (tool arguments, JSON schemas): their inner keys stay as sent.
OPAQUE_KEYS = frozenset(
    {"args", "response", "parameters", "parametersJsonSchema", "responseJsonSchema", "labels"}
)
#: Top-level server message kinds the SDK understands (google-genai 3.4.0).
SERVER_KINDS = frozenset(
    {
        "setupComplete",
        "serverContent",
        "toolCall",
        "toolCallCancellation",
        "goAway",
        "sessionResumptionUpdate",
        "voiceActivity",
        "voiceActivityDetectionSignal",
    }
)
#: WebSocket close reasons travel in a control frame: at most 123 bytes of UTF-8.
MAX_REASON_BYTES = 123
AUDIO_MIME_OUT = "audio/pcm;rate=24000"


_URLSAFE_TO_STANDARD = str.maketrans("-_", "+/")


class WireError(ValueError):
    """A client message the server cannot parse."""


class Close(NamedTuple):
    """A WebSocket close the real service sends: code and reason text."""

    code: int
    reason: str


NORMAL = Close(1000, "")
BAD_KEY = Close(1007, "API key not valid. Please pass a valid API key.")
NO_KEY = Close(1007, "API Key not found. Please pass a valid API key.")
INVALID_ARGUMENT = Close(1007, "Request contains an invalid argument.")
MEDIA_CHUNKS = Close(
    1007, "realtime_input.media_chunks is deprecated. Use audio, video, or text instead."
)
TEXT_MODALITY = Close(
    1007,
    "The requested combination of response modalities (TEXT) is not supported by the model.",
)
NOT_FOUND = Close(1008, "Requested entity was not found.")
INTERNAL = Close(1011, "Internal error encountered.")
UNAVAILABLE = Close(1011, "The service is currently unavailable.")
QUOTA = Close(1011, "You exceeded your current quota, please check your plan and billing details.")
DEADLINE = Close(1011, "Deadline expired before operation could complete.")


def unknown_model(model: str, api_version: str) -> Close:
    """The 1008 close for a model the API version does not serve (reason truncated as real)."""
    return Close(
        1008,
        f"models/{model} is not found for API version {api_version}, or is not supported for "
        "bidiGenerateContent. Call ListModels to see the list of available models and their "
        "supported methods.",
    )


def truncate_reason(reason: str) -> str:
    """Cut a close reason to the 123-byte limit without splitting a UTF-8 sequence."""
    encoded = reason.encode()[:MAX_REASON_BYTES]
    return encoded.decode(errors="ignore")


def camel(key: str) -> str:
    """``snake_case`` -> ``snakeCase``; camelCase keys pass through unchanged."""
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def snake(key: str) -> str:
    """``camelCase`` -> ``camel_case``, as the service names fields in its close reasons."""
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in key)


def normalize(value: Any) -> Any:
    """Recursively rename dict keys to camelCase, leaving user data under OPAQUE_KEYS alone."""
    if isinstance(value, list):
        return [normalize(item) for item in value]
    if isinstance(value, dict):
        return _normalize_object(value)
    return value


def _normalize_object(value: dict[str, Any]) -> dict[str, Any]:
    """``normalize`` for a JSON object, typed as one."""
    renamed = {}
    for key, item in value.items():
        name = camel(key)
        renamed[name] = item if name in OPAQUE_KEYS else normalize(item)
    return renamed


def parse_client_message(raw: str | bytes) -> dict[str, Any]:
    """Decode one client frame (text or binary JSON) into a camelCase dict."""
    try:
        message = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise WireError(f"client frame is not JSON: {error}") from error
    if not isinstance(message, dict):
        raise WireError("client frame is not a JSON object")
    return _normalize_object(message)


def decode_bytes(text: str) -> bytes:
    """Decode base64 in either alphabet, padded or not."""
    standard = text.translate(_URLSAFE_TO_STANDARD)
    try:
        return base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
    except (binascii.Error, ValueError) as error:
        raise WireError(f"invalid base64 data: {error}") from error


def encode_bytes(data: bytes) -> str:
    """Standard padded base64, as the real server sends."""
    return base64.b64encode(data).decode()


def prune(value: Any) -> Any:
    """Drop proto3 default values (False, 0, "", [], None) below the top level of a message.

    Empty objects stay: ``{"setupComplete": {}}`` is meaningful.
    """
    if isinstance(value, dict):
        return {k: prune(v) for k, v in value.items() if v not in (False, 0, "", [], None)}
    if isinstance(value, list):
        return [prune(item) for item in value]
    return value


def server_message(kind: str, body: dict[str, Any], **extra: Any) -> bytes:
    """Serialise one server message; ``extra`` holds top-level companions like usageMetadata."""
    if kind not in SERVER_KINDS:
        raise ValueError(f"{kind!r} is not a server message kind the SDK understands")
    return json.dumps({kind: prune(body), **prune(extra)}).encode()


def audio_part(pcm: bytes) -> dict[str, Any]:
    """A modelTurn part carrying 24 kHz reply audio."""
    return {"inlineData": {"mimeType": AUDIO_MIME_OUT, "data": encode_bytes(pcm)}}


def duration_text(seconds: float) -> str:
    """A proto Duration in JSON form, e.g. ``"50s"`` or ``"9.5s"``."""
    return f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"
