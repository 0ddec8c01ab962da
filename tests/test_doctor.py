"""``pispeaker doctor``: the command against the Live API emulator and ALSA file PCMs, each
failure it must tell apart (no sound card, wrong key, untrusted certificate, DNS, refused,
unknown model, quota, a wrong clock), the systemd unit's state as ``systemctl show`` prints
it, and the report's JSON shape."""

import asyncio
import datetime
import http.server
import json
import os
import ssl
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from pydantic import SecretStr

from pispeaker import __version__
from pispeaker.audio.pcm import INPUT_RATE, OUTPUT_RATE, silence, tone
from pispeaker.config import (
    Config,
    LiveConfig,
    McpServerConfig,
    PanelConfig,
    ToolsConfig,
    load_config,
)
from pispeaker.credentials import ApiKey
from pispeaker.doctor import Options, checks, examine, holders, network, unit
from pispeaker.doctor.results import Outcome, Result
from pispeaker.emulator import LiveEmulator
from pispeaker.soundcheck import chime
from tests.alsa_rig import AlsaRig
from tests.conftest import StartEmulator
from tests.test_cli import ROOT, pispeaker
from tests.test_mcphub import TOKEN, HttpServer, free_port

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AlsaRig:
    """A microphone reading a file of speech-level tone and a speaker writing a file."""
    rig = AlsaRig(tmp_path, monkeypatch)
    (tmp_path / "said.raw").write_bytes(tone(440, 4.0, INPUT_RATE, amplitude=0.1))
    rig.capture("usbmic", tmp_path / "said.raw")
    rig.playback("usbspk", tmp_path / "played.raw")
    return rig


def write_config(tmp_path: Path, **sections: dict[str, Any]) -> Path:
    """A config file with the rig's devices and no wake word, changed by ``sections``."""
    audio = {
        "capture_device": "usbmic",
        "capture_rate": INPUT_RATE,
        "capture_channels": 1,
        "capture_format": "S16_LE",
        "playback_device": "usbspk",
        "playback_rate": OUTPUT_RATE,
        "playback_channels": 1,
        "playback_format": "S16_LE",
    }
    tables = {"audio": audio, "wake": {"models": []}}
    for name, values in sections.items():
        tables[name] = tables.get(name, {}) | values
    text = "".join(
        f"[{name}]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in keys.items())
        for name, keys in tables.items()
    )
    path = tmp_path / "pispeaker.toml"
    path.write_text(text)
    load_config(path)  # a mistake of the test's own fails here, not in the doctor
    return path


def live_section(emulator: LiveEmulator, **changes: Any) -> dict[str, Any]:
    return {"base_url": emulator.base_url, "ca_file": str(emulator.ca_file)} | changes


def environment(tmp_path: Path, key: str | None) -> dict[str, str]:
    """The doctor's environment: only ``key``, the rig's ALSA configuration, a state dir."""
    drop = ("GEMINI_API_KEY", "GOOGLE_API_KEY", "CREDENTIALS_DIRECTORY", "STATE_DIRECTORY")
    env = {name: value for name, value in os.environ.items() if name not in drop}
    env["STATE_DIRECTORY"] = str(tmp_path / "state")
    return env | ({"GEMINI_API_KEY": key} if key else {})


async def doctor(config: Path, env: dict[str, str], *args: str) -> tuple[int, str]:
    """``pispeaker --config CONFIG doctor ARGS`` as a subprocess, awaited: the emulator runs
    on this test's event loop meanwhile. Its exit code and output."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pispeaker",
        "--config",
        str(config),
        "doctor",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env=env,
    )
    out, err = await process.communicate()
    assert not err.strip() or b"Traceback" not in err, err.decode()
    assert process.returncode is not None
    return process.returncode, out.decode()


def line(output: str, name: str) -> str:
    """The report's line for check ``name``, with its next step if it has one."""
    lines = output.splitlines()
    index = next(i for i, text in enumerate(lines) if text[9:].startswith(f"{name}:"))
    follows = lines[index + 1] if index + 1 < len(lines) else ""
    return lines[index] + ("\n" + follows if follows.strip().startswith("->") else "")


def by_name(results: list[Result]) -> dict[str, Result]:
    return {result.name: result for result in results}


# -- the must-show cases, as commands -------------------------------------------------------


async def test_against_the_emulator_with_alsa_file_devices_all_is_well(
    rig: AlsaRig, tmp_path: Path, emulator: LiveEmulator
) -> None:
    config = write_config(tmp_path, live=live_section(emulator), wake={"models": ["hey_jarvis"]})
    code, out = await doctor(config, environment(tmp_path, emulator.api_key), "--play")
    assert code == 0, out
    assert out.endswith("All is well.\n")
    assert "problem" not in out
    assert line(out, "API key").startswith("ok       API key: found in $GEMINI_API_KEY")
    assert emulator.api_key not in out
    assert f"{emulator.base_url} (v1beta) accepted a session" in line(out, "Live session")
    microphone = line(out, "microphone")
    assert "'usbmic' (16000 Hz, 1 ch, S16_LE): 3.0 s, peak -20.0 dBFS" in microphone
    assert "played the chime at volume 70" in line(out, "speaker")
    assert len((tmp_path / "played.raw").read_bytes()) == len(chime())
    assert line(out, "wake word") == "ok       wake word: loaded hey_jarvis"
    assert line(out, "state directory").startswith("ok ")
    # The session was real: the emulator saw its setup, and nothing else was sent.
    assert [event.data["model"] for event in emulator.timeline.of("setup")] == ["gemini-3.8-live"]
    assert not emulator.timeline.of("audio.in")


def test_no_sound_card_exits_1_naming_the_microphone_and_the_next_step(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        audio={"capture_device": "plughw:CARD=NoSuchMic,DEV=0"},
        live={"base_url": f"https://127.0.0.1:{free_port()}"},
    )
    done = pispeaker("--config", str(config), "doctor", env=environment(tmp_path, None))
    assert done.returncode == 1
    microphone = line(done.stdout, "microphone")
    assert microphone.startswith(
        "problem  microphone: audio.capture_device 'plughw:CARD=NoSuchMic,DEV=0' cannot be opened"
    )
    assert (
        "-> plug in the microphone, find its name with `pispeaker devices` and set "
        "audio.capture_device" in microphone
    )
    assert "ALSA lib" not in done.stderr


async def test_a_wrong_key_is_named(rig: AlsaRig, tmp_path: Path, emulator: LiveEmulator) -> None:
    config = write_config(tmp_path, live=live_section(emulator))
    code, out = await doctor(config, environment(tmp_path, "not-the-key"))
    assert code == 1
    session = line(out, "Live session")
    assert session.startswith(
        "problem  Live session: the Live API rejected the API key from $GEMINI_API_KEY: "
        "API key rejected (API key not valid. Please pass a valid API key.)"
    )
    assert "-> put a valid key there" in session
    assert "not-the-key" not in out
    assert out.endswith("1 problem.\n")


async def test_an_untrusted_certificate_is_named_as_tls(
    rig: AlsaRig, tmp_path: Path, emulator: LiveEmulator
) -> None:
    config = write_config(tmp_path, live={"base_url": emulator.base_url})  # no ca_file
    code, out = await doctor(config, environment(tmp_path, emulator.api_key))
    assert code == 1
    endpoint = line(out, "endpoint")
    assert endpoint.startswith(
        f"problem  endpoint: TLS: the certificate of 127.0.0.1:{emulator.port} is not trusted ("
    )
    assert "live.ca_file" in endpoint
    assert line(out, "Live session") == "skipped  Live session: needs the endpoint reachable"
    assert not emulator.timeline.of("connect")  # the SDK was never let loose on it


async def test_json_report_shape(rig: AlsaRig, tmp_path: Path, emulator: LiveEmulator) -> None:
    config = write_config(tmp_path, live=live_section(emulator))
    code, out = await doctor(config, environment(tmp_path, None), "--json", "--seconds", "1")
    assert code == 1
    report = json.loads(out)
    assert set(report) == {"ok", "version", "checks"}
    assert report["ok"] is False
    assert report["version"] == __version__
    names = [check["name"] for check in report["checks"]]
    assert names == [
        "configuration",
        "API key",
        "endpoint",
        "clock",
        "Live session",
        "microphone",
        "speaker",
        "wake word",
        "GPIO",
        "service",
        "state directory",
        "MCP servers",
    ]
    for check in report["checks"]:
        assert set(check) == {"name", "result", "detail", "next_step"}
        assert check["result"] in ("ok", "problem", "warning", "skipped")
        assert bool(check["next_step"]) or check["result"] != "problem"
    results = {check["name"]: check for check in report["checks"]}
    assert results["API key"]["result"] == "problem"
    assert results["Live session"] == {
        "name": "Live session",
        "result": "skipped",
        "detail": "needs an API key",
        "next_step": "",
    }
    assert "1.0 s" in results["microphone"]["detail"]


def test_a_bad_configuration_lists_every_problem_and_skips_what_needs_it(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[live]\nmodle = "x"\n[audio]\nvolume = 300\n')
    done = pispeaker("--config", str(path), "doctor", env=environment(tmp_path, None))
    assert done.returncode == 1
    configuration = line(done.stdout, "configuration")
    assert f"problem  configuration: {path}: 2 problems: live.modle:" in configuration
    assert "audio.volume:" in configuration
    assert "`pispeaker check-config`" in configuration
    assert line(done.stdout, "microphone") == "skipped  microphone: needs a valid configuration"
    assert line(done.stdout, "service").startswith("skipped  service: not under systemd")
    assert line(done.stdout, "state directory").startswith("ok ")


# -- the Live API: each failure in its own words --------------------------------------------


def key(value: str) -> ApiKey:
    return ApiKey(SecretStr(value), "the test")


async def test_an_unknown_model_is_named(emulator: LiveEmulator) -> None:
    live = LiveConfig(**live_section(emulator, model="gemini-0-nonexistent"))
    result = await checks.check_session(live, key(emulator.api_key))
    assert result.outcome is Outcome.PROBLEM
    assert "model or feature not available (1008: models/gemini-0-nonexistent is not found" in (
        result.detail
    )
    assert result.next_step.startswith("set live.model to a Live model the key may use")


async def test_a_used_up_quota_is_named(start_emulator: StartEmulator) -> None:
    emulator = await start_emulator(quota_exhausted=True)
    live = LiveConfig(**live_section(emulator))
    result = await checks.check_session(live, key(emulator.api_key))
    assert result.outcome is Outcome.PROBLEM
    assert result.detail == (
        "quota exhausted (You exceeded your current quota, please check your plan and billing "
        "details.), for the key from the test"
    )
    assert "raise it" in result.next_step


async def test_a_quota_refused_at_the_upgrade_is_named(emulator: LiveEmulator) -> None:
    emulator.reject_upgrades(429)
    live = LiveConfig(**live_section(emulator))
    result = await checks.check_session(live, key(emulator.api_key))
    assert result.outcome is Outcome.PROBLEM
    assert result.detail.startswith("quota exhausted (HTTP 429)")


async def test_a_session_that_opens_is_closed_at_once(emulator: LiveEmulator) -> None:
    live = LiveConfig(**live_section(emulator))
    result = await checks.check_session(live, key(emulator.api_key))
    assert result.outcome is Outcome.OK, result
    closed = await emulator.timeline.wait_for("disconnect")
    assert closed.data["code"] == 1000
    assert len(emulator.timeline.of("setup")) == 1
    assert not emulator.timeline.of("audio.in")


def test_a_name_that_does_not_resolve_is_dns() -> None:
    endpoint = network.Endpoint.of("https://nonexistent.invalid/")
    found = network.reach(endpoint, ssl.create_default_context(), 5.0)
    assert found.failure == "dns"
    result = network.judge_endpoint(endpoint, found, clock_wrong=False)
    assert result.outcome is Outcome.PROBLEM
    assert result.detail.startswith("DNS: the name 'nonexistent.invalid' does not resolve (")
    assert "getent hosts nonexistent.invalid" in result.next_step


def test_a_closed_port_is_refused() -> None:
    port = free_port()
    endpoint = network.Endpoint.of(f"https://127.0.0.1:{port}")
    found = network.reach(endpoint, ssl.create_default_context(), 5.0)
    assert found == network.Reach("refused", "connection refused")
    result = network.judge_endpoint(endpoint, found, clock_wrong=False)
    assert (
        result.detail == f"127.0.0.1:{port} (live.base_url) refused the connection: "
        "nothing listens there"
    )


# -- the clock -------------------------------------------------------------------------------


@pytest.fixture
def future_certificate(tmp_path: Path) -> Iterator[tuple[network.Endpoint, Path]]:
    """An HTTPS server whose certificate is valid only from tomorrow (as every certificate
    looks to a Pi that booted in the past), and the CA that issued it."""
    ca = trustme.CA()
    tomorrow = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)
    leaf = ca.issue_cert("127.0.0.1", not_before=tomorrow)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(context)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    yield network.Endpoint("127.0.0.1", server.server_address[1], True), ca_file
    server.shutdown()
    server.server_close()


def test_a_certificate_not_yet_valid_still_reads_the_servers_time(
    future_certificate: tuple[network.Endpoint, Path],
) -> None:
    endpoint, ca_file = future_certificate
    context = ssl.create_default_context(cafile=str(ca_file))
    found = network.reach(endpoint, context, 5.0)
    assert (found.failure, found.reason) == ("tls", "certificate is not yet valid")
    assert found.server_time is not None  # read past the failure, from the Date header
    # This machine's clock agrees with the server's: the certificate itself is the problem.
    now = found.server_time
    assert not network.clock_is_wrong(now, found, synchronized=None)
    result = network.judge_endpoint(endpoint, found, clock_wrong=False)
    assert result.detail.endswith("is not trusted (certificate is not yet valid)")
    assert "live.ca_file" in result.next_step
    # A Pi whose clock is two days behind: the clock is named, and how to fix it.
    behind = found.server_time - 2 * 86400
    assert network.clock_is_wrong(behind, found, synchronized=False)
    clock = network.judge_clock(behind, found, False, endpoint.host)
    assert clock.outcome is Outcome.PROBLEM
    assert clock.detail.startswith("this machine's clock is 2 days behind 127.0.0.1's")
    assert "(not synchronised)" in clock.detail
    assert "timedatectl" in clock.next_step
    tls = network.judge_endpoint(endpoint, found, clock_wrong=True)
    assert tls.detail.endswith("(certificate is not yet valid), by this machine's wrong clock")
    assert tls.next_step == network.CLOCK_NEXT_STEP


@pytest.mark.parametrize(
    ("off_s", "synchronized", "outcome", "words"),
    [
        (3.0, True, Outcome.OK, "synchronised; within 60 s of api's"),
        (-30.0, None, Outcome.OK, "sync state unknown; within 60 s of api's"),
        (5.0, False, Outcome.WARNING, "not synchronised (yet), but within 60 s"),
        (3600.0, True, Outcome.PROBLEM, "60 min ahead of api's (synchronised)"),
        (-90.0, None, Outcome.PROBLEM, "90 s behind api's (sync state unknown)"),
    ],
)
def test_the_clock_against_the_servers_date(
    off_s: float, synchronized: bool | None, outcome: Outcome, words: str
) -> None:
    server = network.http_date("Sun, 06 Dec 2026 03:00:00 GMT")
    assert server == datetime.datetime(2026, 12, 6, 3, tzinfo=datetime.UTC).timestamp()
    result = network.judge_clock(
        server + off_s, network.Reach("", server_time=server), synchronized, "api"
    )
    assert result.outcome is outcome
    assert words in result.detail


def test_the_clock_without_a_servers_date() -> None:
    unreachable = network.Reach("dns", "no such name")
    assert network.judge_clock(0.0, unreachable, False, "api").outcome is Outcome.WARNING
    assert network.judge_clock(0.0, unreachable, None, "api").outcome is Outcome.SKIPPED
    assert network.judge_clock(0.0, unreachable, True, "api").outcome is Outcome.OK
    assert network.http_date("not a date") is None
    assert network.http_date(None) is None


def test_the_sync_state_is_unknown_without_timedatectl() -> None:
    # This machine has no systemd: timedatectl is missing or cannot answer.
    assert network.clock_synchronized() is None


# -- the systemd unit ------------------------------------------------------------------------

#: `systemctl show pispeaker -p ...` of a service that restarted twice after a crash.
RUNNING = """\
LoadState=loaded
ActiveState=active
SubState=running
Result=success
ExecMainStatus=0
NRestarts=2
StatusText=Listening for 'hey jarvis'
MainPID=4242
"""
#: ... of one that gave up on a configuration error.
FAILED = """\
LoadState=loaded
ActiveState=failed
SubState=failed
Result=exit-code
ExecMainStatus=78
NRestarts=0
StatusText=
MainPID=0
"""


def test_unit_states_as_systemctl_show_prints_them() -> None:
    running = unit.UnitState.parse(RUNNING)
    assert running.active
    assert running.restarts == 2
    assert running.main_pid == 4242
    assert unit.UnitState.parse(FAILED).main_pid is None
    result = unit.judge_unit(running)
    assert result.outcome is Outcome.WARNING
    assert result.detail == (
        "active (running) after 2 restarts (last exit status 0); Listening for 'hey jarvis'"
    )
    healthy = unit.judge_unit(unit.UnitState.parse(RUNNING.replace("NRestarts=2", "NRestarts=0")))
    assert healthy.outcome is Outcome.OK
    assert healthy.detail == "active (running), no restarts; Listening for 'hey jarvis'"
    failed = unit.judge_unit(unit.UnitState.parse(FAILED))
    assert failed.outcome is Outcome.PROBLEM
    assert "last exit status 78 (a configuration or credential error)" in failed.detail
    assert failed.next_step.startswith("read why: journalctl -u pispeaker -b")
    restarting = (
        FAILED.replace("ActiveState=failed", "ActiveState=activating")
        .replace("SubState=failed", "SubState=auto-restart")
        .replace("ExecMainStatus=78", "ExecMainStatus=69")
    )
    assert "a sound device failed" in unit.judge_unit(unit.UnitState.parse(restarting)).detail
    missing = unit.judge_unit(unit.UnitState.parse("LoadState=not-found\nActiveState=inactive\n"))
    assert missing.outcome is Outcome.WARNING
    assert missing.detail == "no pispeaker unit is installed"


def test_journal_errors_as_journalctl_prints_them() -> None:
    entries = [
        {"MESSAGE": "pispeaker.controller: API key rejected", "PRIORITY": "3"},
        {"MESSAGE": list("caf\u00e9 down".encode()), "PRIORITY": "3"},  # not valid UTF-8 text
    ]
    text = "".join(json.dumps(entry) + "\n" for entry in entries)
    messages = unit.journal_messages(text)
    assert messages == ["pispeaker.controller: API key rejected", "caf\u00e9 down"]
    result = unit.judge_journal(messages)
    assert result.outcome is Outcome.WARNING
    assert result.detail == "2 errors in the last hour; the last: caf\u00e9 down"
    assert unit.judge_journal([]).outcome is Outcome.OK
    assert unit.judge_journal(None).next_step.startswith("run as root")


def test_a_journal_this_user_may_only_partly_read_is_not_read() -> None:
    import subprocess

    hint = (
        "Hint: You are currently not seeing messages from other users and the system.\n"
        "      Users in groups 'adm', 'systemd-journal' can see all messages.\n"
    )

    def journalctl(args: list[str], **_: object) -> "subprocess.CompletedProcess[str]":
        return subprocess.CompletedProcess(args, 0, "", hint)

    assert unit.read_journal_errors(journalctl) is None
    assert unit.journal_messages("-- No entries --\n") == []


def test_not_under_systemd_here() -> None:
    results, state = unit.service_results()
    assert state is None
    assert [(r.name, r.outcome) for r in results] == [("service", Outcome.SKIPPED)]
    assert results[0].detail.startswith("not under systemd")


# -- devices, pins, state, tools -------------------------------------------------------------


async def test_a_silent_microphone_is_wrong_or_muted(rig: AlsaRig, tmp_path: Path) -> None:
    (tmp_path / "silence.raw").write_bytes(silence(2.0, INPUT_RATE))
    rig.capture("mutedmic", tmp_path / "silence.raw")
    config = write_config(tmp_path, audio={"capture_device": "mutedmic"})
    audio = load_config(config).audio
    result = await checks.check_microphone(audio, 1.0, service=None)
    assert result.outcome is Outcome.PROBLEM
    assert result.detail.endswith("silence, every sample 0 (wrong device, or muted)")
    assert "`pispeaker devices`" in result.next_step
    assert "alsamixer" in result.next_step


async def test_a_clipping_microphone_is_a_warning(rig: AlsaRig, tmp_path: Path) -> None:
    (tmp_path / "loud.raw").write_bytes(tone(440, 2.0, INPUT_RATE, amplitude=1.0))
    rig.capture("loudmic", tmp_path / "loud.raw")
    config = write_config(tmp_path, audio={"capture_device": "loudmic"})
    audio = load_config(config).audio
    result = await checks.check_microphone(audio, 1.0, service=None)
    assert result.outcome is Outcome.WARNING
    assert result.detail.endswith("the signal clips")
    assert result.next_step == "turn the microphone gain down (alsamixer)"


async def test_a_mixer_control_the_card_lacks_is_a_warning(rig: AlsaRig, tmp_path: Path) -> None:
    config = write_config(tmp_path, audio={"mixer_control": "Speaker", "mixer_device": "usbspk"})
    environ = {"STATE_DIRECTORY": str(tmp_path / "state")}
    result = await checks.check_speaker(load_config(config).audio, False, environ, None)
    assert result.outcome is Outcome.WARNING
    assert result.detail.startswith("'usbspk' opens (24000 Hz, 1 ch, S16_LE) (--play plays")
    assert "but audio.mixer_control 'Speaker' on audio.mixer_device 'usbspk': " in result.detail
    assert result.next_step.startswith("set audio.mixer_control to one of those controls")


#: /proc/asound/cardN/pcmDc/subS/status of a substream a process has open (as the kernel
#: writes it), and of a closed one.
OPEN_STATUS = """\
state: RUNNING
owner_pid   : 4242
trigger_time: 1717.371048620
tstamp      : 1725.103224434
delay       : 320
avail       : 320
avail_max   : 640
-----
hw_ptr      : 123680
appl_ptr    : 123360
"""


@pytest.fixture
def proc(tmp_path: Path) -> Path:
    """A /proc with card 1 ("Device"): its capture held by pid 4242 (pispeaker), its
    playback closed."""
    proc = tmp_path / "proc"
    card = proc / "asound" / "card1"
    for pcm, status in (("pcm0c", OPEN_STATUS), ("pcm0p", "closed\n")):
        (card / pcm / "sub0").mkdir(parents=True)
        (card / pcm / "sub0" / "status").write_text(status)
    (proc / "asound" / "Device").symlink_to("card1")
    (proc / "4242").mkdir()
    (proc / "4242" / "comm").write_text("pispeaker\n")
    return proc


@pytest.mark.parametrize(
    "device", ["plughw:CARD=Device,DEV=0", "hw:CARD=Device", "hw:1,0", "plughw:1", "front:Device"]
)
def test_who_holds_a_card_device(proc: Path, device: str) -> None:
    assert holders.holder_of(device, True, proc=proc) == holders.Holder(4242, "pispeaker")
    assert holders.holder_of(device, False, proc=proc) is None  # its playback is free


def test_a_name_without_a_card_is_held_if_the_service_holds_that_direction(proc: Path) -> None:
    assert holders.holder_of("default", True, proc=proc) is None  # cannot tell
    assert holders.holder_of("default", True, 4242, proc) == holders.Holder(4242, "pispeaker")
    assert holders.holder_of("default", True, 999, proc) is None
    assert holders.holder_of("default", False, 4242, proc) is None
    assert holders.holder_of("hw:CARD=Other,DEV=0", True, 4242, proc) is None  # no such card


def test_a_device_held_by_the_service_or_another_program() -> None:
    held = holders.Holder(4242, "pispeaker")
    device = "audio.capture_device 'hw:CARD=Device,DEV=0'"
    by_service = checks._held("microphone", device, held, service=4242)
    assert by_service == Result(
        "microphone",
        Outcome.WARNING,
        f"{device} is in use by the running service (pid 4242 (pispeaker))",
        checks.STOP_SERVICE,
    )
    assert checks.STOP_SERVICE.startswith("this check needs the service stopped: sudo systemctl")
    by_other = checks._held("microphone", device, holders.Holder(77, "arecord"), service=None)
    assert by_other.outcome is Outcome.PROBLEM
    assert by_other.detail == f"{device} is in use by pid 77 (arecord)"
    assert "dsnoop" in by_other.next_step


def test_a_device_the_running_service_holds_is_a_warning() -> None:
    from pispeaker.audio.ports import DeviceLostError

    busy = DeviceLostError(
        "audio.capture_device 'hw:CARD=Mic,DEV=0' did not open within 5 s: another program "
        "may be using it (share it with dsnoop/dmix, see config/alsa/)"
    )
    held = checks._device_failed("microphone", "audio.capture_device", busy, service_active=True)
    assert held.outcome is Outcome.WARNING
    assert held.next_step.startswith("this check needs the service stopped: sudo systemctl stop")
    alone = checks._device_failed("microphone", "audio.capture_device", busy, service_active=False)
    assert alone.outcome is Outcome.PROBLEM


async def test_gpio_pins_free_and_usable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    monkeypatch.setenv("GPIOZERO_MOCK_PIN_CLASS", "mockpwmpin")
    from gpiozero import Device

    monkeypatch.setattr(Device, "pin_factory", None)  # made afresh from the environment
    panel = PanelConfig(button_pin=17, led_pins=[5, 6, 13], led_rgb=True)
    result = await checks.check_panel(panel, service_active=False)
    assert result == Result("GPIO", Outcome.OK, "GPIO17, GPIO5, GPIO6, GPIO13 free and usable")
    assert (await checks.check_panel(PanelConfig(), False)).outcome is Outcome.SKIPPED


async def test_gpio_pins_that_cannot_be_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "no-such-factory")
    from gpiozero import Device

    monkeypatch.setattr(Device, "pin_factory", None)
    result = await checks.check_panel(PanelConfig(button_pin=17), service_active=False)
    assert result.outcome is Outcome.PROBLEM
    assert result.detail.startswith("cannot use GPIO17 for panel.button_pin (")
    assert "pispeaker test-button" in result.next_step


def test_a_state_directory_that_is_not_writable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    result = checks.check_state_dir({"STATE_DIRECTORY": str(tmp_path / "file" / "state")})
    assert result.outcome is Outcome.PROBLEM
    assert result.detail.startswith(f"{tmp_path}/file/state is not writable (")
    assert "chown" in result.next_step
    writable = checks.check_state_dir({"STATE_DIRECTORY": str(tmp_path / "state")})
    assert writable.outcome is Outcome.OK
    assert list((tmp_path / "state").iterdir()) == []  # its test file is gone


async def test_mcp_servers_reachable_or_not(tmp_path: Path) -> None:
    server = HttpServer(tmp_path)
    try:
        token = tmp_path / "token"
        token.write_text(TOKEN)
        down = f"http://127.0.0.1:{free_port()}/mcp"
        servers = [
            McpServerConfig(name="home", url=server.url, token_file=token, timeout_s=20),
            McpServerConfig(name="garage", url=down, timeout_s=5),
        ]
        result = await checks.check_mcp(Config(tools=ToolsConfig(mcp=servers)), {})
        assert result.outcome is Outcome.PROBLEM
        assert result.detail.startswith(f"garage: cannot reach {down}")
        reachable = await checks.check_mcp(Config(tools=ToolsConfig(mcp=servers[:1])), {})
        assert reachable == Result("MCP servers", Outcome.OK, "home: reachable, 9 tools")
    finally:
        server.stop()


async def test_examine_in_process_against_the_emulator(
    rig: AlsaRig, tmp_path: Path, emulator: LiveEmulator
) -> None:
    config = write_config(tmp_path, live=live_section(emulator, model="gemini-0-nonexistent"))
    results = by_name(
        await examine(Options(config, seconds=0.5), environment(tmp_path, emulator.api_key))
    )
    assert results["configuration"].outcome is Outcome.WARNING  # a model pispeaker does not know
    assert results["Live session"].outcome is Outcome.PROBLEM
    assert results["microphone"].outcome is Outcome.OK
