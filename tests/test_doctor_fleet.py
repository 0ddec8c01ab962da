"""deploy/doctor.yml: its syntax, and a real run over a fake fleet on this machine (local
connections), each host's doctor command pointed at this checkout's ``pispeaker doctor
--json`` with a configuration of its own, against the emulator and ALSA file PCMs."""

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from pispeaker.audio.pcm import INPUT_RATE, tone
from pispeaker.emulator import LiveEmulator
from tests.alsa_rig import AlsaRig
from tests.deploy_rig import BIN, DEPLOY, ansible_env, checked

PLAYBOOK = DEPLOY / "doctor.yml"
MISSING = "Failed to find executable /opt/pispeaker/venv/bin/pispeaker: No such file or directory"

pytestmark = pytest.mark.timeout(180)


def test_playbook_syntax(tmp_path: Path) -> None:
    inventory = DEPLOY / "inventory.example.yml"
    checked(
        [BIN / "ansible-playbook", "--syntax-check", "-i", inventory, PLAYBOOK],
        env=ansible_env(tmp_path),
    )


#: Stands in for systemd-run (there is no systemd here): keeps its arguments, one a line, and
#: prints the report of a speaker where all is well.
FAKE_SYSTEMD_RUN = """#!/bin/sh
printf '%s\\n' "$@" > "$(dirname "$0")/arguments"
echo '{"ok": true, "version": "0", "checks": [{"name": "microphone", "result": "ok",
"detail": "fine", "next_step": ""}]}'
"""


async def test_by_default_it_runs_as_the_service_with_its_credentials(tmp_path: Path) -> None:
    bin_dir, config_dir = tmp_path / "bin", tmp_path / "etc"
    bin_dir.mkdir()
    config_dir.mkdir()
    fake = bin_dir / "systemd-run"
    fake.write_text(FAKE_SYSTEMD_RUN)
    fake.chmod(0o755)
    for secret in ("gemini-api-key", "mcp-home-token", "pispeaker.toml"):
        (config_dir / secret).write_text("x\n")
    inventory = tmp_path / "inventory.ini"
    inventory.write_text(
        f"kitchen.local ansible_connection=local ansible_become=false "
        f"ansible_python_interpreter={sys.executable}\n"
    )
    env = ansible_env(tmp_path) | {"PATH": f"{bin_dir}:{os.environ['PATH']}"}
    process = await asyncio.create_subprocess_exec(
        str(BIN / "ansible-playbook"),
        "-i",
        str(inventory),
        str(PLAYBOOK),
        "-e",
        f"pispeaker_doctor_config_dir={config_dir}",
        "-e",
        "pispeaker_doctor_options='--play --seconds 5'",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,
        env=env,
    )
    out, _ = await process.communicate()
    assert process.returncode == 0, out.decode()
    assert "kitchen.local  yes  -" in out.decode()
    arguments = (bin_dir / "arguments").read_text().splitlines()
    properties = [arguments[i + 1] for i, word in enumerate(arguments) if word == "-p"]
    assert sorted(properties) == sorted(
        [
            "User=pispeaker",
            "Group=pispeaker",
            "SupplementaryGroups=audio gpio systemd-journal",
            "StateDirectory=pispeaker",
            "StateDirectoryMode=0700",
            "RuntimeDirectory=pispeaker-doctor",
            "WorkingDirectory=/run/pispeaker-doctor",
            f"LoadCredential=gemini-api-key:{config_dir}/gemini-api-key",
            f"LoadCredential=mcp-home-token:{config_dir}/mcp-home-token",
        ]
    )
    assert arguments[:5] == ["--quiet", "--wait", "--pipe", "--collect", "--service-type=exec"]
    assert arguments[-8:] == [
        "/opt/pispeaker/venv/bin/pispeaker",
        "--config",
        f"{config_dir}/pispeaker.toml",
        "doctor",
        "--json",
        "--play",
        "--seconds",
        "5",
    ]


def host_config(
    tmp_path: Path, name: str, emulator: LiveEmulator, capture_device: str, audio: str = ""
) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(
        f'[live]\nbase_url = "{emulator.base_url}"\nca_file = "{emulator.ca_file}"\n'
        f'[audio]\ncapture_device = "{capture_device}"\ncapture_rate = {INPUT_RATE}\n'
        'capture_channels = 1\ncapture_format = "S16_LE"\nplayback_device = "usbspk"\n'
        f'playback_rate = 24000\nplayback_channels = 1\nplayback_format = "S16_LE"\n{audio}'
        "[wake]\nmodels = []\n"
    )
    return path


def inventory(tmp_path: Path, commands: dict[str, str]) -> Path:
    """Hosts reached by local connections, each with its own doctor command."""
    lines = ["[speakers]"]
    for host, command in commands.items():
        variables = {
            "ansible_connection": "local",
            "ansible_become": "false",
            "ansible_python_interpreter": sys.executable,
            "pispeaker_doctor_command": command,
        }
        lines.append(
            host + "".join(f" {key}={json.dumps(value)}" for key, value in variables.items())
        )
    path = tmp_path / "inventory.ini"
    path.write_text("\n".join(lines) + "\n")
    return path


async def test_one_table_for_the_fleet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, emulator: LiveEmulator
) -> None:
    rig = AlsaRig(tmp_path, monkeypatch)
    (tmp_path / "said.raw").write_bytes(tone(440, 4.0, INPUT_RATE, amplitude=0.1))
    rig.capture("usbmic", tmp_path / "said.raw")
    rig.playback("usbspk", tmp_path / "played.raw")
    doctor = f"{BIN / 'pispeaker'} --config {{}} doctor --json --seconds 1"
    commands = {
        "kitchen.local": doctor.format(host_config(tmp_path, "kitchen", emulator, "usbmic")),
        "office.local": doctor.format(
            host_config(tmp_path, "office", emulator, "plughw:CARD=Gone,DEV=0")
        ),
        "hall.local": doctor.format(  # a volume control its card lacks: a warning only
            host_config(
                tmp_path,
                "hall",
                emulator,
                "usbmic",
                'mixer_control = "PCM"\nmixer_device = "usbspk"\n',
            )
        ),
        # What systemd-run says where pispeaker is not installed.
        "attic.local": f"sh -c 'echo {MISSING} >&2; exit 1'",
    }
    env = ansible_env(tmp_path) | {
        "GEMINI_API_KEY": emulator.api_key,
        "STATE_DIRECTORY": str(tmp_path / "state"),
        "ALSA_CONFIG_PATH": os.environ["ALSA_CONFIG_PATH"],
    }
    # Awaited as a subprocess: the emulator serves on this loop meanwhile.
    process = await asyncio.create_subprocess_exec(
        str(BIN / "ansible-playbook"),
        "-i",
        str(inventory(tmp_path, commands)),
        str(PLAYBOOK),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,
        env=env,
    )
    out, _ = await process.communicate()
    output = out.decode()
    assert process.returncode == 2, output  # two speakers need attention
    table = table_lines(output)
    assert table[0] == "HOST           OK   CHECKS NEEDING ATTENTION"
    rows = "\n".join(table)
    assert "\nkitchen.local  yes  -\n" in rows
    office = rows.split("office.local")[1].split("hall.local")[0]
    assert office.startswith(
        "   NO   1 problem\n"
        "                 problem: microphone: audio.capture_device 'plughw:CARD=Gone,DEV=0' "
        "cannot be opened"
    )
    assert "-> plug in the microphone, find its name with `pispeaker devices`" in office
    assert "problem: speaker" not in office
    hall = rows.split("hall.local")[1].split("attic.local")[0]
    assert hall.startswith(
        f"     yes  1 warning\n{' ' * 17}warning: speaker: 'usbspk' opens (24000 Hz, 1 ch, "
        "S16_LE) (--play plays a chime); but audio.mixer_control 'PCM' on audio.mixer_device "
        "'usbspk': "
    )
    assert "-> set audio.mixer_control to one of those controls" in hall
    attic = rows.split("attic.local")[1]
    assert attic.startswith(f"    ?    no report: the doctor exited 1: {MISSING}\n")
    assert "-> is pispeaker installed there?" in attic
    # Only the hosts with problems fail, each named.
    assert "office.local: has problems (see the table above)" in output
    assert "attic.local: pispeaker doctor gave no report (see the table above)" in output
    assert "kitchen.local: has problems" not in output
    assert "hall.local: has problems" not in output
    assert emulator.api_key not in output


def table_lines(output: str) -> list[str]:
    """The lines of the table the debug task printed (a JSON list under "msg")."""
    start = output.index('"msg": [')
    end = output.index("]\n}", start)
    return list(json.loads(output[start + len('"msg": ') : end + 1]))
