"""The Ansible provisioning in deploy/: lint, and real playbook runs into a Debian root.

The root tests run deploy/site.yml into a fresh debootstrap'd bookworm root through
community.general's chroot connection (see tests/deploy_rig.py), installing pispeaker offline
from wheels built on the host, and check the result from inside the root. They need root
(debootstrap, chroot), as CI has. On 2 cores the module takes ~2.3 min with a warm cache
and ~3.2 min with a cold one (debootstrap, the wheelhouse and the collection come first).
"""

import os
import re
import shutil
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy_rig import (
    BIN,
    DEPLOY,
    REPO,
    ROLE,
    PlaybookRun,
    ansible_env,
    checked,
    in_root,
    offline_install,
    restore_root,
    run,
    run_playbook,
    vault_options,
    wheelhouse,
)

API_KEY = "test-key-0123456789"
# Role variable -> (section, key, value): what the playbook is given and what the rendered
# configuration must then hold.
NAMED = {
    "pispeaker_capture_device": ("audio", "capture_device", "plughw:CARD=Test,DEV=0"),
    "pispeaker_playback_device": ("audio", "playback_device", "plughw:CARD=Speaker,DEV=0"),
    "pispeaker_volume": ("audio", "volume", 35),
    "pispeaker_voice": ("live", "voice", "Puck"),
    "pispeaker_wake_models": ("wake", "models", ["alexa", "hey_jarvis"]),
    "pispeaker_wake_threshold": ("wake", "threshold", 0.6),
    "pispeaker_button_pin": ("panel", "button_pin", 17),
    "pispeaker_led_pins": ("panel", "led_pins", [5, 6, 13]),
    "pispeaker_led_rgb": ("panel", "led_rgb", True),
    "pispeaker_metrics_listen": ("metrics", "listen", "0.0.0.0:9460"),
    "pispeaker_mcp_servers": (
        "tools",
        "mcp",
        [
            {"name": "home", "url": "http://homeassistant.local:8123/api/mcp", "allow": []},
            {"name": "notes", "command": ["/usr/local/bin/notes-mcp", "--stdio"]},
        ],
    ),
}
MCP_TOKEN = "mcp-token-0123456789"
SETTINGS = {
    "logging": {"level": "debug"},
    "conversation": {"follow_up_s": 12.0},
    "panel": {"looks": {"listening": "blue solid"}},
    "live": {"system_instruction": 'Say "hello" \\ then \u00e9\U0001f600 and a tab:\t.'},
}
VARIABLES: dict[str, Any] = {
    "pispeaker_settings": SETTINGS,
    "pispeaker_mcp_tokens": {"home": MCP_TOKEN},
} | {name: value for name, (_, _, value) in NAMED.items()}
CONFIG = "/etc/pispeaker/pispeaker.toml"
KEY_FILE = "/etc/pispeaker/gemini-api-key"
UNIT = "/etc/systemd/system/pispeaker.service"
MCP_TOKEN_FILE = "/etc/pispeaker/mcp-home-token"
MCP_DROPIN = "/etc/systemd/system/pispeaker.service.d/mcp-tokens.conf"

ROOT_TEST = pytest.mark.timeout(900)  # a cold cache debootstraps and builds wheels first
LINT_TEST = pytest.mark.timeout(180)


@dataclass(frozen=True)
class Provisioned:
    """A root the playbook has provisioned once, and where to keep further runs' files."""

    root: Path
    workdir: Path
    variables: dict[str, Any]
    options: list[str]
    first: PlaybookRun

    def again(self, name: str, **overrides: Any) -> PlaybookRun:
        """Run the playbook into the root again, with some variables changed."""
        variables = self.variables | overrides
        return run_playbook(self.root, variables, self.workdir / name, self.options)


def require_root_and_tools() -> None:
    """Fail (never skip) with what is missing to run the playbook into a root."""
    if os.geteuid() != 0:
        pytest.fail(
            "the provisioning tests need root: debootstrap and Ansible's chroot connection "
            "run as root (CI runs as root); run them as root",
            pytrace=False,
        )
    missing = [
        tool for tool in ("debootstrap", "chroot", "systemd-analyze") if not shutil.which(tool)
    ]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not found: run `bash deploy/setup.sh --test`", pytrace=False
        )


@pytest.fixture(scope="module")
def provisioned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provisioned]:
    """A fresh bookworm root provisioned by deploy/site.yml with VARIABLES; removed after."""
    require_root_and_tools()
    workdir = tmp_path_factory.mktemp("deploy")
    root = workdir / "root"
    root.mkdir()
    variables = VARIABLES | offline_install(wheelhouse())
    # The key travels as the README says: encrypted with ansible-vault.
    options = vault_options("pispeaker_api_key", API_KEY, workdir)
    restore_root(root)
    try:
        first = run_playbook(root, variables, workdir / "run-1", options)
        assert first.returncode == 0, first.output[-6000:]
        yield Provisioned(root, workdir, variables, options, first)
    finally:
        shutil.rmtree(root)


def in_root_ok(provisioned: Provisioned, *args: str) -> str:
    """stdout of a command inside the root; fail the test with its output if it fails."""
    done = in_root(provisioned.root, *args)
    assert done.returncode == 0, f"{' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


# --- lint and syntax ------------------------------------------------------------------------


@LINT_TEST
def test_ansible_lint_passes_the_production_profile(tmp_path: Path) -> None:
    done = run([BIN / "ansible-lint"], cwd=DEPLOY, env=ansible_env(tmp_path))
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Profile 'production' was required, and it passed" in output


@LINT_TEST
def test_playbook_syntax_and_example_inventory(tmp_path: Path) -> None:
    env = ansible_env(tmp_path)
    inventory = DEPLOY / "inventory.example.yml"
    checked(
        [BIN / "ansible-playbook", "--syntax-check", "-i", inventory, DEPLOY / "site.yml"], env=env
    )
    listed = yaml.safe_load(
        checked([BIN / "ansible-inventory", "-i", inventory, "--list"], env=env)
    )
    hostvars = listed["_meta"]["hostvars"]
    fleet = listed["fleet"]["hosts"]
    assert len(fleet) >= 2
    assert set(listed["pispeaker"]["hosts"]) | set(fleet) == set(hostvars)
    # Each fleet host names its own microphone and shares the fleet's wake words.
    devices = [hostvars[host]["pispeaker_capture_device"] for host in fleet]
    assert len(set(devices)) == len(devices)
    assert len({tuple(hostvars[host]["pispeaker_wake_models"]) for host in fleet}) == 1


def test_role_defaults_match_the_config_file_and_the_argument_specs() -> None:
    defaults = yaml.safe_load((ROLE / "defaults/main.yml").read_text())
    specs = yaml.safe_load((ROLE / "meta/argument_specs.yml").read_text())
    options = specs["argument_specs"]["main"]["options"]
    named = yaml.safe_load((ROLE / "vars/main.yml").read_text())["pispeaker_named_settings"]
    config = tomllib.loads((REPO / "config/pispeaker.toml").read_text())

    assert set(options) == set(defaults)
    for name, option in options.items():
        if option.get("required"):
            assert defaults[name] == "", f"{name}: required, so its default only marks it unset"
        else:
            assert option["default"] == defaults[name], name
    for section, keys in named.items():
        for key, expression in keys.items():
            variable = re.search(r"pispeaker_\w+", expression)
            assert variable, f"{section}.{key}: {expression} names no variable"
            assert defaults[variable.group()] == config[section][key], f"{section}.{key}"


# --- a real run into a Debian root ----------------------------------------------------------


@ROOT_TEST
def test_service_user_is_in_the_audio_and_gpio_groups(provisioned: Provisioned) -> None:
    groups = in_root_ok(provisioned, "id", "-nG", "pispeaker").split()
    assert groups[0] == "pispeaker"
    assert {"audio", "gpio"} <= set(groups)
    account = in_root_ok(provisioned, "getent", "passwd", "pispeaker").strip().split(":")
    assert account[5:] == ["/var/lib/pispeaker", "/usr/sbin/nologin"]
    assert int(account[2]) < 1000  # a system user
    rule = in_root_ok(provisioned, "cat", "/etc/udev/rules.d/60-pispeaker-gpio.rules")
    assert 'KERNEL=="gpiochip*", GROUP="gpio", MODE="0660"' in rule


@ROOT_TEST
def test_config_and_key_files_have_their_owners_and_modes(provisioned: Provisioned) -> None:
    def mode(path: str) -> str:
        return in_root_ok(provisioned, "stat", "-c", "%a %U:%G", path).strip()

    assert mode(CONFIG) == "640 root:pispeaker"
    assert mode(KEY_FILE) == "600 root:root"
    assert in_root_ok(provisioned, "cat", KEY_FILE).strip() == API_KEY
    assert API_KEY not in provisioned.first.output
    assert mode(MCP_TOKEN_FILE) == "600 root:root"
    assert in_root_ok(provisioned, "cat", MCP_TOKEN_FILE).strip() == MCP_TOKEN
    assert MCP_TOKEN not in provisioned.first.output
    dropin = in_root_ok(provisioned, "cat", MCP_DROPIN)
    assert f"LoadCredential=mcp-home-token:{MCP_TOKEN_FILE}" in dropin.splitlines()


@ROOT_TEST
def test_installed_pispeaker_accepts_the_rendered_config(provisioned: Provisioned) -> None:
    effective = tomllib.loads(
        in_root_ok(provisioned, "/opt/pispeaker/venv/bin/pispeaker", "check-config", CONFIG)
    )
    for name, (section, key, value) in NAMED.items():
        assert _given(effective[section][key], value) == value, name
    for section, keys in SETTINGS.items():
        for key, value in keys.items():
            assert effective[section][key] == value, f"{section}.{key}"


def _given(effective: Any, given: Any) -> Any:
    """The part of ``effective`` that was ``given``: the keys of tables the role was given
    (check-config fills in the others' defaults)."""
    if isinstance(given, list) and given and isinstance(given[0], dict):
        return [
            {key: table[key] for key in want} for table, want in zip(effective, given, strict=True)
        ]
    return effective


@ROOT_TEST
def test_unit_is_enabled_and_verifies_in_the_root(provisioned: Provisioned) -> None:
    enabled = in_root_ok(provisioned, "systemctl", "is-enabled", "pispeaker.service")
    assert enabled.strip() == "enabled"
    installed = (provisioned.root / UNIT.lstrip("/")).read_text()
    assert installed == (REPO / "systemd/pispeaker.service").read_text()
    verify = run(["systemd-analyze", "verify", "--man=no", f"--root={provisioned.root}", UNIT])
    assert (verify.returncode, verify.stderr) == (0, "")


@ROOT_TEST
def test_second_run_changes_nothing(provisioned: Provisioned) -> None:
    second = provisioned.again("run-2")
    assert second.returncode == 0, second.output[-6000:]
    assert second.recap()["changed"] == 0, f"{second.recap_line()}: {second.changed_tasks()}"


@ROOT_TEST
def test_changed_source_is_reinstalled(provisioned: Provisioned) -> None:
    # The same version with other code: pip alone would keep the installed copy.
    source = provisioned.workdir / "source"
    local = (".git", ".venv", ".cache", "*_cache", "__pycache__", "*.egg-info", "build")
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(*local))
    mark = "\nPROVISIONING_TEST_MARK = 1  # added by tests/test_deploy.py\n"
    with (source / "pispeaker/__init__.py").open("a") as init:
        init.write(mark)

    changed = provisioned.again("run-changed", pispeaker_source_dir=str(source))
    assert changed.returncode == 0, changed.output[-6000:]
    python = "/opt/pispeaker/venv/bin/python"
    found = in_root_ok(
        provisioned, python, "-c", "import pispeaker; print(pispeaker.PROVISIONING_TEST_MARK)"
    )
    assert found.strip() == "1"
    assert changed.changed_tasks() == [
        "Copy the pispeaker wheel",
        "Reinstall pispeaker from its changed wheel",
        "Record which wheel the virtualenv holds",
    ]


@ROOT_TEST
def test_bad_config_fails_validation_and_keeps_the_file(provisioned: Provisioned) -> None:
    before = (provisioned.root / CONFIG.lstrip("/")).read_bytes()
    bad = provisioned.again(
        "run-bad", pispeaker_volume=500, pispeaker_wake_models=["hey_jarvis", "hey_nobody"]
    )
    assert bad.returncode != 0
    assert bad.recap()["failed"] == 1
    assert "failed to validate" in bad.output
    assert "audio.volume: must be between 0 and 100 (got 500)" in bad.output
    assert "no built-in wake word 'hey_nobody'" in bad.output
    assert (provisioned.root / CONFIG.lstrip("/")).read_bytes() == before


@ROOT_TEST
@pytest.mark.parametrize(
    ("overrides", "messages"),
    [
        pytest.param(
            {"pispeaker_api_key": "  "},
            ["pispeaker_api_key is empty", "ansible-vault encrypt_string --stdin-name"],
            id="empty-api-key",
        ),
        pytest.param(
            {"pispeaker_settings": {"audio": {"volume": 5, "period_ms": 40}}},
            ["pispeaker_settings sets audio.volume: give it its own variable"],
            id="settings-with-a-named-key",
        ),
        pytest.param(
            {"pispeaker_settings": {"logging": "debug"}},
            ["pispeaker_settings.logging must be a table of keys"],
            id="settings-section-not-a-table",
        ),
        pytest.param(
            {"pispeaker_wheelhouse": "/nonexistent/wheels"},
            ["pispeaker_wheelhouse (/nonexistent/wheels) is not a directory on the controller"],
            id="missing-wheelhouse",
        ),
        pytest.param(
            {"pispeaker_volume": "loud"},
            ["argument 'pispeaker_volume' is of type str and we were unable to convert to int"],
            id="argument-type",
        ),
    ],
)
def test_preflight_stops_the_run_before_any_change(
    provisioned: Provisioned, overrides: dict[str, Any], messages: list[str]
) -> None:
    stopped = provisioned.again("run-preflight", **overrides)
    assert stopped.returncode != 0
    assert stopped.recap()["changed"] == 0
    for message in messages:
        assert message in stopped.output
    assert in_root_ok(provisioned, "cat", KEY_FILE).strip() == API_KEY
