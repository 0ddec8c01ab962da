"""systemd/pispeaker.service: systemd's own checks, and the promises the code relies on.

``systemd-analyze verify`` exits 0 on many problems, so its stderr must be empty. It also
wants ExecStart= to exist: here it runs on a copy that starts this checkout's pispeaker (the
Ansible test verifies the unit as installed, in a provisioned Debian root).
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pispeaker.audio.alsa import STALL_S
from pispeaker.config import DEFAULT_CONFIG_PATH
from pispeaker.credentials import CREDENTIAL_NAME, KEY_FILE

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "pispeaker.service"
INSTALLED = "/opt/pispeaker/venv/bin/pispeaker"
#: The most exposure `systemd-analyze security` may find (0 best, 10 worst).
MOST_EXPOSURE = 2.0


def directives() -> dict[str, list[str]]:
    """Every Key=value of the unit, values in order (keys may repeat)."""
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def test_systemd_analyze_verify_finds_nothing(tmp_path: Path) -> None:
    unit = tmp_path / "pispeaker.service"
    here = str(Path(sys.executable).parent / "pispeaker")
    unit.write_text(UNIT.read_text().replace(INSTALLED, here))
    verify = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True
    )
    assert (verify.returncode, verify.stderr) == (0, "")


def test_the_exposure_is_low(report: list[str]) -> None:
    security = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(UNIT)],
        capture_output=True,
        text=True,
        env={**os.environ, "SYSTEMD_COLORS": "0"},
    )
    score = re.search(r"Overall exposure level for pispeaker\.service: ([\d.]+)", security.stdout)
    assert score is not None, security.stdout + security.stderr
    report.append(f"systemd-analyze security: exposure {score[1]} (at most {MOST_EXPOSURE})")
    assert float(score[1]) <= MOST_EXPOSURE


def test_the_unit_starts_pispeaker_run_on_the_default_config() -> None:
    unit = directives()
    assert unit["ExecStart"] == [f"{INSTALLED} --config {DEFAULT_CONFIG_PATH} run"]
    assert unit["Type"] == ["notify"]
    assert unit["NotifyAccess"] == ["main"]
    assert unit["ExecReload"] == ["/bin/kill -HUP $MAINPID"]  # the daemon reloads on SIGHUP


def test_a_config_mistake_is_not_restarted() -> None:
    unit = directives()
    assert unit["Restart"] == ["on-failure"]
    assert unit["RestartPreventExitStatus"] == [str(os.EX_CONFIG)]


def test_the_key_arrives_as_the_credential_the_daemon_reads() -> None:
    [credential] = directives()["LoadCredential"]
    assert credential == f"{CREDENTIAL_NAME}:{KEY_FILE}"  # where the error message says


@pytest.mark.parametrize("device", ["char-alsa rw", "char-gpiochip rw"])
def test_the_sound_cards_and_gpio_chips_stay_reachable(device: str) -> None:
    unit = directives()
    assert unit["DevicePolicy"] == ["closed"]
    assert device in unit["DeviceAllow"]
    assert unit["SupplementaryGroups"] == ["audio gpio"]


def test_lgpio_gets_a_writable_working_directory() -> None:
    unit = directives()
    assert unit["WorkingDirectory"] == [f"/run/{unit['RuntimeDirectory'][0]}"]
    assert unit["ProtectSystem"] == ["strict"]  # so nothing else would be writable


def test_a_stalled_microphone_is_noticed_before_the_daemon_checks_the_watchdog() -> None:
    [watchdog] = directives()["WatchdogSec"]
    assert float(watchdog) / 2 > STALL_S


def test_the_metrics_endpoint_may_listen_on_tcp() -> None:
    """[metrics] listen needs IP sockets, a bind on any port above 1023 and nothing more."""
    unit = directives()
    [families] = unit["RestrictAddressFamilies"]
    assert {"AF_INET", "AF_INET6"} <= set(families.split())
    assert "@network-io" not in " ".join(unit["SystemCallFilter"])  # bind/listen not refused
    for blocking in ("SocketBindDeny", "SocketBindAllow", "IPAddressDeny", "PrivateNetwork"):
        assert blocking not in unit, blocking
