"""A local, protocol-faithful Gemini Live API server for tests, benchmarks and the demo."""

from pispeaker.emulator.certs import client_context
from pispeaker.emulator.options import DEFAULT_MODELS, EmulatorOptions, Fault, ScheduledFault
from pispeaker.emulator.script import Reply, ToolCall
from pispeaker.emulator.server import LiveEmulator

__all__ = [
    "DEFAULT_MODELS",
    "EmulatorOptions",
    "Fault",
    "LiveEmulator",
    "Reply",
    "ScheduledFault",
    "ToolCall",
    "client_context",
]
