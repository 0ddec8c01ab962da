"""The core imports no outside library: each one lives behind exactly one adapter."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

import pispeaker

#: The conversation core: it must run (and be tested) without any of the libraries below.
CORE = [
    "pispeaker.states",
    "pispeaker.controller",
    "pispeaker.conversation.core",
    "pispeaker.conversation.routing",
    "pispeaker.conversation.devices",
    "pispeaker.conversation.session",
    "pispeaker.conversation.toolrunner",
    "pispeaker.conversation.tasks",
    "pispeaker.conversation.history",
    "pispeaker.config",
    "pispeaker.tools",
    "pispeaker.audio.ports",
    "pispeaker.live.port",
]
OUTSIDE = [
    "google.genai",
    "websockets",
    "alsaaudio",
    "gpiozero",
    "openwakeword",
    "tflite_runtime",
    "onnxruntime",
    "systemd",
    "soxr",
    "pywebrtc_audio",
    "mcp",
    "httpx2",
    "prometheus_client",
]
#: Each outside library and the places that may import it (modules or packages): one
#: adapter, and for websockets also the emulator, which is a server of its own; onnxruntime
#: runs both custom wake-word models and the voice detector's model. openWakeWord itself is
#: imported by no module (wake/engine.py runs its models; tests hold it to the package).
ADAPTERS = {
    "google.genai": ("pispeaker/live/genai.py",),
    "websockets": ("pispeaker/live/genai.py", "pispeaker/emulator/"),
    "alsaaudio": ("pispeaker/audio/alsa/",),
    "gpiozero": ("pispeaker/panel/gpio.py",),
    "tflite_runtime": ("pispeaker/wake/engine.py",),
    "onnxruntime": ("pispeaker/wake/engine.py", "pispeaker/audio/voice.py"),
    "systemd": ("pispeaker/service/systemd.py",),
    "soxr": ("pispeaker/audio/resample.py",),
    "pywebrtc_audio": ("pispeaker/audio/echo.py",),
    "mcp": ("pispeaker/mcphub.py",),
    "httpx2": ("pispeaker/mcphub.py",),  # the HTTP client the mcp SDK takes
    "prometheus_client": ("pispeaker/service/metrics.py",),
}
PACKAGE = Path(pispeaker.__file__).parent


def test_the_core_imports_no_outside_library() -> None:
    code = (
        "import sys\n"
        + "".join(f"import {module}\n" for module in CORE)
        + f"print(sorted(m for m in {OUTSIDE!r} if m in sys.modules))"
    )
    environ = os.environ | {"PYTHONPATH": str(PACKAGE.parent)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=environ
    )
    assert result.stdout.strip() == "[]"


def _importers(library: str) -> set[str]:
    """The modules of pispeaker (paths from the repository root) that import ``library``."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            if any(name == library or name.startswith(library + ".") for name in names):
                found.add(str(path.relative_to(PACKAGE.parent)))
    return found


@pytest.mark.parametrize("library", sorted(ADAPTERS))
def test_each_outside_library_has_one_adapter(library: str) -> None:
    allowed = ADAPTERS[library]
    assert {path for path in _importers(library) if not path.startswith(allowed)} == set()
    assert _importers(library), f"nothing imports {library}: update ADAPTERS"


def test_openwakeword_itself_is_never_imported() -> None:
    assert _importers("openwakeword") == set()
