"""The error hierarchy: one root, and each subclass also inherits the builtin it resembles.

Every message names the thing that is wrong and the next step, so that a person reading a
journal line knows what to do without reading code.
"""

import os


class PispeakerError(Exception):
    """Root of every error pispeaker raises on purpose."""

    #: Process exit code when this error ends the command line (sysexits.h).
    exit_code: int = 1


class ConfigError(PispeakerError, ValueError):
    """The configuration file is missing, unreadable or invalid.

    ``problems`` holds one ``section.key: message`` line per problem, all of them at once.
    """

    exit_code = os.EX_CONFIG

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {problem}" for problem in problems)
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        super().__init__(f"{source}: {count}:\n{lines}")


class CredentialError(PispeakerError, LookupError):
    """A secret (the Gemini API key, an MCP server's token) is missing or unreadable; the
    message says where it was looked for."""

    exit_code = os.EX_CONFIG


class EchoCancellerError(PispeakerError, RuntimeError):
    """The echo canceller (WebRTC AEC3 from pywebrtc-audio) cannot start or failed."""


class VoiceDetectorError(PispeakerError, RuntimeError):
    """The voice detector's model (Silero VAD for onnxruntime) cannot be loaded or run."""


class UsageError(PispeakerError, ValueError):
    """A command-line argument is wrong (the message shows a right one)."""

    exit_code = os.EX_USAGE


class MetricsError(PispeakerError, OSError):
    """The Prometheus endpoint cannot listen where ``metrics.listen`` says (the port is taken,
    the address is not this machine's); a restart may find it free."""

    exit_code = os.EX_UNAVAILABLE
