"""Each command loads only what it needs: ``--help`` and ``check-config`` none of the heavy
libraries, the daemon and ``pispeaker tools`` the MCP SDK only for configured servers. Every
case is a fresh interpreter that reports its ``sys.modules``."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "config" / "pispeaker.toml"
#: What ``--help`` and ``check-config`` need none of: the cloud, models, sound, GPIO, MCP.
HEAVY = (
    "google.genai",
    "numpy",
    "onnxruntime",
    "tflite_runtime",
    "openwakeword",
    "mcp",
    "httpx2",
    "alsaaudio",
    "gpiozero",
    "soxr",
    "systemd",
    "websockets",
    "trustme",
    "pispeaker.emulator",
    "pispeaker.bench",
    "prometheus_client",
)
#: What the daemon never needs without MCP servers (or metrics). httpx2 is not among them:
#: google.genai imports it whenever it is installed.
NOT_FOR_THE_DAEMON = (
    "mcp",
    "pispeaker.mcphub",
    "pispeaker.emulator",
    "trustme",
    "pispeaker.bench",
    "prometheus_client",  # only with metrics.listen set
    "pispeaker.service.metrics",
)
#: The parts ``pispeaker run`` builds for a configuration, as Daemon._run builds them.
DAEMON_PARTS = """
import asyncio
from pathlib import Path
import pispeaker.service.daemon
from pispeaker.app import (
    build_alsa_ports, build_controller, build_panel, build_volume, tool_servers, wake_maker
)
from pispeaker.config import load_config

async def build(path, state):
    config = load_config(Path(path))
    source, sink = build_alsa_ports(config)
    async with tool_servers(config.tools.mcp, {}) as hub:
        volume = build_volume(config.audio, {"STATE_DIRECTORY": state})
        make_wake = wake_maker(config.wake)
        controller = build_controller(
            config, "key", source, sink, volume=volume, make_wake=make_wake, tool_source=hub
        )
        build_panel(config.panel, controller)
"""
#: ``pispeaker ARGS``, as the console script runs it.
COMMAND = "from pispeaker.cli import main\ntry:\n    main({args!r})\nexcept SystemExit:\n    pass\n"


def loaded(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``code``."""
    report = "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    result = subprocess.run(
        [sys.executable, "-c", code + report],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout.splitlines()[-1]))


def command_loads(*args: str) -> set[str]:
    """The modules ``pispeaker ARGS`` loaded, whatever its exit code."""
    return loaded(COMMAND.format(args=list(args)))


def among(names: tuple[str, ...], modules: set[str]) -> list[str]:
    return [name for name in names if name in modules]


def test_help_loads_no_heavy_library() -> None:
    assert among(HEAVY, command_loads("--help")) == []


def test_check_config_of_the_default_file_loads_no_heavy_library() -> None:
    assert among(HEAVY, command_loads("check-config")) == []


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("[wake]\nmodels = []\n", id="good"),
        pytest.param('[audio]\nvolume = "loud"\nbogus = 1\n', id="bad"),
        pytest.param(SHIPPED.read_text(), id="shipped"),
    ],
)
def test_check_config_of_a_file_loads_no_heavy_library(tmp_path: Path, text: str) -> None:
    path = tmp_path / "pispeaker.toml"
    path.write_text(text)
    assert among(HEAVY, command_loads("check-config", str(path))) == []


def test_the_daemons_parts_without_mcp_servers_load_no_mcp_emulator_or_bench(
    tmp_path: Path,
) -> None:
    modules = loaded(DAEMON_PARTS + f"asyncio.run(build({str(SHIPPED)!r}, {str(tmp_path)!r}))")
    assert "google.genai" in modules  # it did build a speaker
    assert among(NOT_FOR_THE_DAEMON, modules) == []


def test_tools_loads_the_mcp_sdk_only_for_configured_servers(tmp_path: Path) -> None:
    none = tmp_path / "none.toml"
    none.write_text("")
    down = tmp_path / "down.toml"  # nothing listens on the discard port: unreachable
    down.write_text('[[tools.mcp]]\nname = "home"\nurl = "http://127.0.0.1:9/mcp"\ntimeout_s = 5\n')
    assert (
        among(("mcp", "httpx2", "google.genai"), command_loads("--config", str(none), "tools"))
        == []
    )
    assert "mcp" in command_loads("--config", str(down), "tools")
