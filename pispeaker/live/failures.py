"""What went wrong with the Live API, and whether trying again soon can help.

Transient failures (normal or abnormal closes, internal errors, refused connections,
timeouts, a malformed server message) reconnect with the resumption handle after a short
backoff. Fatal ones (rejected key, unknown model, exhausted quota, an untrusted certificate)
need a person or time: ERROR, a message naming the fix, and a long backoff.
"""

import enum
import ssl
from dataclasses import dataclass

import websockets
from google.genai import errors

#: Reasons of 1011 closes that retrying soon cannot fix.
_QUOTA_WORDS = ("quota", "exhausted")


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


def classify(error: BaseException) -> Failure:
    """Classify an exception raised by connecting to, sending to or receiving from a session.

    Anything else is a bug in pispeaker, not a network or service failure: it is re-raised.
    """
    if isinstance(error, errors.APIError):
        return _close(error.code, str(error.details or ""))
    if isinstance(error, websockets.InvalidStatus):
        return _http(error.response.status_code)
    if isinstance(error, ssl.SSLCertVerificationError):
        return Failure(
            Kind.FATAL,
            f"the Live API's TLS certificate is not trusted ({error.verify_message}); "
            "check live.base_url, or set live.ca_file for a private endpoint",
        )
    if isinstance(error, websockets.ConnectionClosed | OSError | TimeoutError):
        return Failure(Kind.TRANSIENT, f"connection failed: {error!r}")
    if isinstance(error, ValueError | TypeError):  # the SDK's answer to a malformed message
        return Failure(Kind.TRANSIENT, f"malformed message from the Live API: {error}")
    raise error


def _close(code: int, reason: str) -> Failure:
    if code == 1007 and "api key" in reason.lower():
        return Failure(
            Kind.FATAL,
            f"API key rejected ({reason}); update the gemini-api-key credential and restart",
            code,
        )
    if code == 1007:
        return Failure(Kind.FATAL, f"the Live API rejected the request (1007: {reason})", code)
    if code == 1008:
        return Failure(
            Kind.FATAL,
            f"model or feature not available (1008: {reason}); check live.model and "
            "live.api_version",
            code,
        )
    if any(word in reason.lower() for word in _QUOTA_WORDS):
        return Failure(Kind.FATAL, f"quota exhausted ({reason}); wait or raise the quota", code)
    return Failure(Kind.TRANSIENT, f"session closed ({code}: {reason or 'no reason'})", code)


def _http(status: int) -> Failure:
    if status == 429:
        return Failure(Kind.FATAL, "quota exhausted (HTTP 429); wait or raise the quota", status)
    if status in (401, 403):
        return Failure(Kind.FATAL, f"API key refused (HTTP {status}); update the credential")
    if status >= 500:
        return Failure(Kind.TRANSIENT, f"the Live API is unavailable (HTTP {status})", status)
    return Failure(
        Kind.FATAL,
        f"the Live API endpoint refused the connection (HTTP {status}); check live.base_url "
        "and live.api_version",
        status,
    )
