"""The pispeaker unit under systemd: its state, last exit status and restarts (``systemctl
show``), and its errors in the journal (``journalctl``), read through those commands (no
library: the doctor must also work where systemd-python is missing)."""

import json
import os
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pispeaker.doctor.results import Result, ok, problem, skipped, warning

UNIT = "pispeaker"
PROPERTIES = (
    "LoadState",
    "ActiveState",
    "SubState",
    "Result",
    "ExecMainStatus",
    "NRestarts",
    "StatusText",
    "MainPID",
)
#: Exit statuses the daemon gives on purpose (sysexits.h), and what they mean.
EXIT_MEANINGS = {
    os.EX_CONFIG: "a configuration or credential error",
    os.EX_UNAVAILABLE: "a sound device failed or vanished",
    os.EX_USAGE: "a command-line mistake",
}
#: Where systemd, when it is the init system, keeps its runtime state (sd_booted(3)).
SYSTEMD_RUNTIME = Path("/run/systemd/system")
#: The journal's window for errors.
JOURNAL_SINCE = "-1h"

Run = Callable[..., "subprocess.CompletedProcess[str]"]


def ask(
    run: Run, command: list[str], timeout_s: float
) -> "subprocess.CompletedProcess[str] | None":
    """What a system command answered (its output as text), or None if it is missing or
    did not answer within ``timeout_s``."""
    try:
        return run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None


@dataclass(frozen=True)
class UnitState:
    """The properties of the unit ``systemctl show`` printed."""

    properties: Mapping[str, str]

    @classmethod
    def parse(cls, text: str) -> "UnitState":
        """Read ``Key=Value`` lines (values may hold ``=``)."""
        pairs = (line.partition("=") for line in text.splitlines() if "=" in line)
        return cls({key: value for key, _, value in pairs})

    def __getitem__(self, key: str) -> str:
        return self.properties.get(key, "")

    @property
    def active(self) -> bool:
        return self["ActiveState"] in ("active", "reloading")

    @property
    def main_pid(self) -> int | None:
        """The running service's main process (None when it has none)."""
        pid = self["MainPID"]
        return int(pid) if pid.isdigit() and int(pid) > 0 else None

    @property
    def restarts(self) -> int:
        count = self["NRestarts"]
        return int(count) if count.isdigit() else 0

    @property
    def exit_status(self) -> str:
        """The main process's last exit status, with its meaning when it has one."""
        status = self["ExecMainStatus"]
        meaning = EXIT_MEANINGS.get(int(status)) if status.isdigit() else None
        return f"{status} ({meaning})" if meaning else status or "unknown"


def under_systemd() -> bool:
    """Whether systemd runs this machine."""
    return SYSTEMD_RUNTIME.is_dir()


def read_unit(run: Run = subprocess.run) -> UnitState | None:
    """The unit's state from ``systemctl show``; None if systemctl cannot answer."""
    done = ask(run, ["systemctl", "show", UNIT, "-p", ",".join(PROPERTIES)], 10)
    return UnitState.parse(done.stdout) if done is not None and done.returncode == 0 else None


def judge_unit(state: UnitState) -> Result:
    """The service line: running, restarting, failed, stopped or not installed."""
    name = "service"
    if state["LoadState"] == "not-found":
        return warning(
            name,
            f"no {UNIT} unit is installed",
            "install it with deploy/ (ansible-playbook deploy/site.yml), see the README",
        )
    restarts = f"{state.restarts} restart{'s' if state.restarts != 1 else ''}"
    now = f"{state['ActiveState']} ({state['SubState']})"
    if state["ActiveState"] == "failed" or state["SubState"] == "auto-restart":
        return problem(
            name,
            f"{now}: last exit status {state.exit_status}, result {state['Result']}, {restarts}",
            f"read why: journalctl -u {UNIT} -b; fix it, then sudo systemctl restart {UNIT}",
        )
    if not state.active and state["ActiveState"] != "activating":
        return warning(
            name,
            f"{now}: not running (last exit status {state.exit_status})",
            f"start it: sudo systemctl enable --now {UNIT}",
        )
    status = f"; {state['StatusText']}" if state["StatusText"] else ""
    if state.restarts:
        return warning(
            name,
            f"{now} after {restarts} (last exit status {state.exit_status}){status}",
            f"see why it restarted: journalctl -u {UNIT} -b",
        )
    return ok(name, f"{now}, no restarts{status}")


def read_journal_errors(run: Run = subprocess.run) -> list[str] | None:
    """The messages the unit logged at error or worse in the last hour, oldest first; None
    if the journal cannot be read (or only this user's part of it: the system's is what
    matters, and journalctl then says so on stderr)."""
    command = ["journalctl", "-u", UNIT, "-p", "err", "--since", JOURNAL_SINCE, "-o", "json"]
    done = ask(run, [*command, "--no-pager"], 20)
    if done is None or done.returncode != 0:
        return None
    if any(hint in done.stderr for hint in PARTIAL_JOURNAL):
        return None
    return journal_messages(done.stdout)


#: What journalctl says when this user may not read the system's journal.
PARTIAL_JOURNAL = ("not seeing messages from other users", "insufficient permissions")


def journal_messages(text: str) -> list[str]:
    """The MESSAGE of each JSON entry (``journalctl -o json``: one object a line; a message
    that is not valid UTF-8 comes as a list of byte values)."""
    messages = []
    for line in text.splitlines():
        if not line.startswith("{"):  # e.g. "-- No entries --"
            continue
        message = json.loads(line).get("MESSAGE", "")
        if isinstance(message, list):
            message = bytes(message).decode("utf-8", errors="replace")
        messages.append(str(message))
    return messages


def judge_journal(messages: list[str] | None) -> Result:
    """The journal line: errors of the last hour, the last one quoted."""
    name = "journal"
    if messages is None:
        return warning(
            name,
            "cannot read the journal",
            "run as root (sudo pispeaker doctor) or as a member of the adm or "
            "systemd-journal group",
        )
    if not messages:
        return ok(name, "no errors in the last hour")
    last = " ".join(messages[-1].split())[:300]
    return warning(
        name,
        f"{len(messages)} error{'s' if len(messages) != 1 else ''} in the last hour; "
        f"the last: {last}",
        f"journalctl -u {UNIT} -p err --since -1h",
    )


def service_results(run: Run = subprocess.run) -> tuple[list[Result], UnitState | None]:
    """The service and journal lines, and the unit's state (None without systemd)."""
    if not under_systemd():
        reason = "not under systemd (it is not this machine's init system)"
        return [skipped("service", reason)], None
    state = read_unit(run)
    if state is None:
        return [warning("service", "systemctl did not answer", "run `systemctl status`")], None
    results = [judge_unit(state)]
    if state["LoadState"] != "not-found":
        results.append(judge_journal(read_journal_errors(run)))
    return results, state
