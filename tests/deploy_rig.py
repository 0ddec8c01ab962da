"""A real Ansible run into a throwaway Debian bookworm root, and the caches that make it fast.

The playbook reaches the root through community.general's chroot connection (needs root).
Slow inputs are cached in `tests/.cache/deploy` (git-ignored) under names carrying a hash of
what determines them, so a change rebuilds them and nothing else does:

- `bookworm-<key>.tar`: `debootstrap --variant=minbase --include=...` of bookworm from the
  host's Debian mirror (~40 s, ~300 MB); each test session unpacks a fresh copy (~6 s).
- `wheels-<key>/`: `pip wheel` of pyproject.toml's dependencies, built on the host, for the
  role's offline install (`--no-index --find-links`).
- `collections-<key>/`: community.general (the chroot connection), taken from the `ansible`
  package's wheel: installing that package would add ~470 MB of collections to the venv.

Cache entries are built in a temporary sibling and renamed into place, so an interrupted
build never leaves a half-made entry behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
ROLE = DEPLOY / "roles" / "pispeaker"
CACHE = REPO / "tests" / ".cache" / "deploy"
BIN = Path(sys.executable).parent
"""The venv's bin directory: ansible-playbook and ansible-lint come from the test extra."""

SUITE = "bookworm"
DEBOOTSTRAP_INCLUDE = ("python3", "python3-apt", "python3-venv", "systemd", "ca-certificates")
"""What the root has before the role runs: Ansible's needs (python3, python3-apt for the apt
module) and the unit's (systemd). The role installs everything else itself."""

ANSIBLE_PACKAGE = "ansible==12.3.0"
"""The Ansible community package whose community.general provides the chroot connection; its
series 12 goes with the test extra's ansible-core 2.19."""

WHEEL_DIR = "/opt/pispeaker/wheels"
"""Where the role copies the wheels on the target (the pispeaker_wheelhouse goes there too)."""

_BANNER = re.compile(r"^(?:TASK|RUNNING HANDLER) \[(?:[^]]*? : )?(?P<name>.*)\] \*+$")
_RECAP = re.compile(
    r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+"
    r"unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)\s+skipped=(?P<skipped>\d+)\s+"
    r"rescued=(?P<rescued>\d+)\s+ignored=(?P<ignored>\d+)",
    re.MULTILINE,
)


def run(args: list[str | Path], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a command with text output captured; the caller checks the return code."""
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, check=False, **kwargs
    )


def checked(args: list[str | Path], **kwargs: Any) -> str:
    """Run a command and return its stdout; raise with its output when it fails."""
    done = run(args, **kwargs)
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(map(str, args))} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
        )
    return done.stdout


def _key(*parts: object) -> str:
    """A 16-hex-digit hash of `parts`."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def _cached(path: Path, build: Callable[[Path], None]) -> Path:
    """`path`, made by `build(temporary sibling)` and renamed into place if it is missing."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    try:
        build(scratch / path.name)
        os.replace(scratch / path.name, path)
    finally:
        shutil.rmtree(scratch)
    return path


def host_mirror(apt: Path = Path("/etc/apt")) -> str:
    """The URI of the host's Debian archive: the first deb822 `URIs:` entry serving `SUITE`
    (not -security or -updates), else the first matching `deb` line of sources.list."""
    for sources in sorted((apt / "sources.list.d").glob("*.sources")):
        for stanza in sources.read_text().split("\n\n"):
            fields = dict(
                line.split(":", 1) for line in stanza.splitlines() if re.match(r"^\w[\w-]*:", line)
            )
            if SUITE in fields.get("Suites", "").split():
                return fields["URIs"].split()[0]
    legacy = apt / "sources.list"
    lines = legacy.read_text().splitlines() if legacy.exists() else []
    for line in lines:
        match = re.match(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", line)
        if match and match.group(2) == SUITE:
            return match.group(1)
    raise RuntimeError(f"no Debian {SUITE} mirror in {apt}/sources.list(.d): debootstrap needs one")


def root_tarball() -> Path:
    """The cached debootstrap root as a tar file (numeric owners kept)."""
    arch = checked(["dpkg", "--print-architecture"]).strip()
    key = _key(SUITE, "minbase", DEBOOTSTRAP_INCLUDE, arch)

    def build(tarball: Path) -> None:
        root = tarball.with_suffix(".d")
        checked(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(DEBOOTSTRAP_INCLUDE)}",
                SUITE,
                root,
                host_mirror(),
            ]
        )
        checked(["tar", "--numeric-owner", "-C", root, "-cf", tarball, "."])
        shutil.rmtree(root)

    return _cached(CACHE / f"{SUITE}-{key}.tar", build)


def restore_root(dest: Path) -> Path:
    """Unpack a fresh copy of the cached root into `dest` and point its apt and TLS at what
    the host uses: the host's package sources and its extra CA certificates."""
    checked(["tar", "--numeric-owner", "-C", dest, "-xf", root_tarball()])
    host_sources = sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))
    for sources in host_sources:
        shutil.copy(sources, dest / "etc/apt/sources.list.d" / sources.name)
    if host_sources:  # the same archive, listed once
        (dest / "etc/apt/sources.list").unlink(missing_ok=True)
    extra_cas = sorted(Path("/usr/local/share/ca-certificates").glob("*.crt"))
    for cert in extra_cas:
        shutil.copy(cert, dest / "usr/local/share/ca-certificates" / cert.name)
    if extra_cas:
        checked(["chroot", dest, "update-ca-certificates"])
    return dest


def wheelhouse() -> Path:
    """Wheels of pispeaker's dependencies for this Python and machine, built on the host.

    Keyed on pyproject.toml's dependency list, so editing other parts of it rebuilds nothing.
    The host's Python (3.11) and glibc match bookworm's, so the wheels install in the root."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"]
    key = _key(requirements, sys.implementation.cache_tag, platform.machine())

    def build(directory: Path) -> None:
        pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
        checked([*pip, "wheel", "--quiet", "--wheel-dir", directory, *requirements])

    return _cached(CACHE / f"wheels-{key}", build)


def collections() -> Path:
    """A collections directory holding community.general from `ANSIBLE_PACKAGE`'s wheel."""
    prefix = "ansible_collections/community/general/"

    def build(directory: Path) -> None:
        download = directory.with_suffix(".download")
        pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
        checked([*pip, "download", "--quiet", "--no-deps", "-d", download, ANSIBLE_PACKAGE])
        (wheel,) = download.glob("*.whl")
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(directory, [n for n in archive.namelist() if n.startswith(prefix)])
        shutil.rmtree(download)

    return _cached(CACHE / f"collections-{_key(ANSIBLE_PACKAGE)}", build)


def ansible_env(workdir: Path) -> dict[str, str]:
    """The environment of every Ansible command: nothing from the user's Ansible set-up
    (configuration, collections, home) leaks in, and the output is plain text."""
    config = workdir / "ansible.cfg"
    config.touch()
    return os.environ | {
        "ANSIBLE_CONFIG": str(config),
        "ANSIBLE_HOME": str(workdir / "ansible-home"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        # Modules reach the target's Python on stdin rather than through a temporary file:
        # fewer commands per task.
        "ANSIBLE_PIPELINING": "1",
        "NO_COLOR": "1",
    }


@dataclass(frozen=True)
class PlaybookRun:
    """What one ansible-playbook run printed and returned."""

    returncode: int
    output: str

    def _recap(self) -> re.Match[str]:
        (match,) = _RECAP.finditer(self.output)  # one play, one host: one recap line
        return match

    def recap(self) -> dict[str, int]:
        """The PLAY RECAP counters (ok, changed, failed, ...) of the run's only host."""
        counters = self._recap().groupdict()
        return {name: int(value) for name, value in counters.items() if name != "host"}

    def changed_tasks(self) -> list[str]:
        """The names of the tasks and handlers that reported a change, in order."""
        changed: list[str] = []
        task = ""
        for line in self.output.splitlines():
            if banner := _BANNER.match(line):
                task = banner.group("name")
            elif line.startswith("changed:") and changed[-1:] != [task]:
                changed.append(task)
        return changed

    def recap_line(self) -> str:
        """The PLAY RECAP line of the run's only host, spaces squeezed."""
        return " ".join(self._recap().group(0).split())


def run_playbook(
    root: Path, variables: Mapping[str, object], workdir: Path, options: Sequence[str] = ()
) -> PlaybookRun:
    """Run deploy/site.yml into `root` with ansible-playbook `options`, then `variables` as
    extra vars (which win over the options' own); never raises on failure.

    The chroot connection is root already, and a minbase root has no sudo: become is off."""
    workdir.mkdir(parents=True, exist_ok=True)
    inventory = workdir / "inventory.ini"
    inventory.write_text(
        f"[pispeaker]\n{root} ansible_connection=community.general.chroot"
        " ansible_become=false ansible_python_interpreter=/usr/bin/python3\n"
    )
    extra = workdir / "vars.json"
    extra.write_text(json.dumps(variables))
    done = run(
        [
            BIN / "ansible-playbook",
            "-i",
            inventory,
            DEPLOY / "site.yml",
            *options,
            "-e",
            f"@{extra}",
        ],
        cwd=workdir,
        env=ansible_env(workdir) | {"ANSIBLE_COLLECTIONS_PATH": str(collections())},
    )
    return PlaybookRun(done.returncode, done.stdout + done.stderr)


def vault_options(name: str, secret: str, workdir: Path) -> list[str]:
    """ansible-playbook options that define variable `name` as `secret`, encrypted as the
    README says (`ansible-vault encrypt_string --stdin-name`) into a vars file."""
    password = workdir / "vault-password"
    password.write_text("test vault password\n")
    encrypted = checked(
        [
            BIN / "ansible-vault",
            "encrypt_string",
            "--vault-password-file",
            password,
            "--stdin-name",
            name,
        ],
        input=secret,
        env=ansible_env(workdir),
    )
    vault = workdir / "vault.yml"
    vault.write_text(encrypted)
    return ["-e", f"@{vault}", "--vault-password-file", str(password)]


def offline_install(wheels: Path) -> dict[str, str]:
    """The role variables that install pispeaker from `wheels` with no package index."""
    return {
        "pispeaker_wheelhouse": str(wheels),
        "pispeaker_pip_extra_args": f"--no-index --find-links {WHEEL_DIR}",
    }


def in_root(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a command inside `root` (its own users, groups and Python)."""
    return run(["chroot", root, *args])
