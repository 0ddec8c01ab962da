"""The daemon as systemd runs it: ``pispeaker run`` as a subprocess against a NOTIFY_SOCKET
listener, real libasound (FIFO microphone and speaker), the real wake-word model on
synthesized speech and the Live API emulator over TLS."""

import asyncio
import json
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pispeaker.config import McpServerConfig
from pispeaker.conversation.hearing import CONVERGING
from pispeaker.emulator import LiveEmulator, Reply, ToolCall
from tests import speech
from tests.alsa_rig import AlsaRig
from tests.service_rig import ServiceRig, has, service_rig, status_is
from tests.test_mcphub import TOKEN as MCP_TOKEN
from tests.test_mcphub import HttpServer, recorded

LISTENING_FOR_JARVIS = "Listening for 'hey jarvis'"


@pytest.fixture
async def rig(
    tmp_path: Path, emulator: LiveEmulator, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[ServiceRig]:
    async with service_rig(tmp_path, emulator, AlsaRig(tmp_path, monkeypatch)) as rig:
        yield rig


def wake_then_request() -> bytes:
    said = speech.wake_then_request()
    return speech.to_rate(said.path, speech.RATE, speech.CHANNELS, raw=True).read_bytes()


@pytest.mark.timeout(90)
async def test_a_conversation_is_told_to_systemd_and_sigterm_stops_it_cleanly(
    rig: ServiceRig, emulator: LiveEmulator
) -> None:
    daemon = await rig.start(rig.config(), wake_then_request())
    notes = daemon.notes
    ready = await notes.wait_for(has("READY", "1"), within_s=30)
    assert notes.notes[ready].fields["STATUS"] == LISTENING_FOR_JARVIS
    # "hey jarvis", the request, the parroted reply, the follow-up window, idle again.
    back = await notes.wait_for(status_is(LISTENING_FOR_JARVIS), after=ready + 1, within_s=30)
    assert notes.statuses(ready + 1)[: back - ready] == [
        "Connecting to the Live API, conversation 1",
        "In conversation, turn 1 (listening)",
        "In conversation, turn 1 (thinking)",
        # duplex = "auto": a new installation's canceller has not yet learnt the room.
        f"In conversation, turn 1 (speaking); {CONVERGING}",
        "In conversation, turn 2 (listening)",
        LISTENING_FOR_JARVIS,
    ]
    assert notes.count("WATCHDOG") >= 10  # every 0.5 s while the microphone delivers
    daemon.send(signal.SIGTERM)
    assert await daemon.exit_code() == 0
    assert "STOPPING" in notes.notes[-1].fields
    assert "wake word hey_jarvis" in daemon.log
    assert "Traceback" not in daemon.log


async def test_sigterm_in_a_conversation_closes_the_session_and_exits_0(
    rig: ServiceRig, emulator: LiveEmulator
) -> None:
    daemon = await rig.start(rig.config(), wake_then_request())
    await daemon.notes.wait_for(status_is("In conversation, turn 1 (listening)"), within_s=30)
    daemon.send(signal.SIGTERM)
    assert await daemon.exit_code() == 0
    assert "STOPPING" in daemon.notes.notes[-1].fields
    [closed] = emulator.timeline.of("disconnect")
    assert closed.data["code"] == 1000  # closed by the client, normally


async def test_the_watchdog_is_fed_only_while_the_microphone_delivers(rig: ServiceRig) -> None:
    config = rig.config(wake={"models": []}, panel={"button_pin": 17})
    daemon = await rig.start(config, b"", watchdog_s=0.4)  # a check every 0.2 s
    notes = daemon.notes
    await notes.wait_for(has("READY", "1"), within_s=30)
    await notes.wait_for(lambda note: notes.count("WATCHDOG") >= 5)
    # A hiccup shorter than the 2 s after which capture counts as lost: no pets meanwhile,
    # then they come back.
    paused = time.monotonic()
    daemon.microphone.pause()
    await asyncio.sleep(1.4)
    resumed = time.monotonic()
    daemon.microphone.resume()
    await notes.wait_for(has("WATCHDOG"), after=len(notes.notes))
    assert notes.count("WATCHDOG", paused + 0.5, resumed) == 0
    assert notes.count("WATCHDOG", paused - 1.0, paused) >= 4
    # A stall for good: no pets, then a clean exit for systemd to restart it, before its
    # watchdog would kill it.
    stalled = time.monotonic()
    daemon.microphone.pause()
    assert await daemon.exit_code() == os.EX_UNAVAILABLE
    assert notes.count("WATCHDOG", stalled + 0.5) == 0
    assert "exiting so that systemd restarts pispeaker" in notes.statuses()[-1]
    assert "'mic'" in notes.statuses()[-1]


async def test_sighup_reloads_a_good_config_and_keeps_the_old_one_when_the_new_is_bad(
    rig: ServiceRig,
) -> None:
    daemon = await rig.start(rig.config(), b"")
    notes = daemon.notes
    await notes.wait_for(has("READY", "1"), within_s=30)
    rig.write_config(rig.config(wake={"models": ["alexa"]}))
    daemon.send(signal.SIGHUP)
    reloading = await notes.wait_for(has("RELOADING", "1"))
    assert "MONOTONIC_USEC" in notes.notes[reloading].fields
    ready = await notes.wait_for(has("READY", "1"), after=reloading)
    assert notes.notes[ready].fields["STATUS"] == "Listening for 'alexa'"

    rig.write_config('[audio]\nvolume = 500\n[wake]\nmodels = ["hey_jarvsi"]\n')
    daemon.send(signal.SIGHUP)
    reloading = await notes.wait_for(has("RELOADING", "1"), after=ready)
    refused = await notes.wait_for(has("READY", "1"), after=reloading)
    status = notes.notes[refused].fields["STATUS"]
    assert status.startswith("Reload failed; kept the previous configuration: ")
    assert "audio.volume" in status
    assert "wake.models" in status
    # Still running on the previous configuration: fed and listening for "alexa".
    await notes.wait_for(has("WATCHDOG"), after=refused)
    daemon.send(signal.SIGTERM)
    assert await daemon.exit_code() == 0
    assert "wake words: alexa" in daemon.log
    assert daemon.log.count("wake words:") == 2  # the first two configurations only


async def test_a_panel_that_cannot_open_after_a_reload_brings_the_old_config_back(
    rig: ServiceRig,
) -> None:
    no_gpio = {"GPIOZERO_PIN_FACTORY": "no-such-factory"}  # only used if pins are configured
    daemon = await rig.start(rig.config(), b"", environ=no_gpio)
    notes = daemon.notes
    await notes.wait_for(has("READY", "1"), within_s=30)
    rig.write_config(rig.config(panel={"button_pin": 17}))
    daemon.send(signal.SIGHUP)
    reloading = await notes.wait_for(has("RELOADING", "1"))
    ready = await notes.wait_for(has("READY", "1"), after=reloading)
    assert notes.notes[ready].fields["STATUS"] == LISTENING_FOR_JARVIS
    await notes.wait_for(has("WATCHDOG"), after=ready)
    daemon.send(signal.SIGTERM)
    assert await daemon.exit_code() == 0
    assert "cannot start with the new configuration (cannot use GPIO17" in daemon.log


async def test_a_bad_config_at_start_exits_78_naming_every_problem(rig: ServiceRig) -> None:
    daemon = await rig.start("[audio]\nvolume = 500\n[wake]\nthreshold = 2\n", b"")
    assert await daemon.exit_code() == os.EX_CONFIG
    assert not any("READY" in note.fields for note in daemon.notes.notes)
    assert "audio.volume" in daemon.log
    assert "wake.threshold" in daemon.log
    assert daemon.notes.statuses()[-1].startswith("Error: ")


async def test_under_systemd_logs_go_to_the_journal_with_state_session_and_event(
    rig: ServiceRig,
) -> None:
    daemon = await rig.start(rig.config(), wake_then_request(), journal=True)
    notes = daemon.notes
    ready = await notes.wait_for(has("READY", "1"), within_s=30)
    await notes.wait_for(status_is(LISTENING_FOR_JARVIS), after=ready + 1, within_s=30)
    daemon.send(signal.SIGTERM)
    assert await daemon.exit_code() == 0
    assert daemon.journal is not None
    entries = daemon.journal.entries
    assert {entry["SYSLOG_IDENTIFIER"] for entry in entries} == {"pispeaker"}
    woke = next(entry for entry in entries if "idle -> connecting" in entry["MESSAGE"])
    assert woke["EVENT"] == "wake word"
    assert woke["STATE"] == "connecting"
    assert woke["PRIORITY"] == "6"  # info
    session = woke["SESSION"]
    assert len(session) == 12
    talk = [entry for entry in entries if entry.get("SESSION") == session]
    assert any(entry["MESSAGE"].endswith("listening -> idle (follow-up expired)") for entry in talk)
    assert "EVENT" not in next(entry for entry in entries if "wake words:" in entry["MESSAGE"])
    assert "idle -> connecting" not in daemon.log  # not on stderr as well


async def test_a_rejected_key_shows_in_the_status_with_what_to_do(rig: ServiceRig) -> None:
    wrong_key = {"GEMINI_API_KEY": "not-the-key"}
    daemon = await rig.start(rig.config(), wake_then_request(), environ=wrong_key)
    index = await daemon.notes.wait_for(
        lambda note: note.fields.get("STATUS", "").startswith("Error: "), within_s=30
    )
    status = daemon.notes.notes[index].fields["STATUS"]
    assert status.startswith("Error: API key rejected")
    assert status.endswith("update the gemini-api-key credential and restart")
    assert "not-the-key" not in status + daemon.log
    daemon.send(signal.SIGTERM)
    assert await daemon.exit_code() == 0


@pytest.mark.timeout(90)
async def test_with_duplex_auto_systemctl_status_says_why_the_microphone_is_withheld(
    rig: ServiceRig, emulator: LiveEmulator
) -> None:
    """The first reply teaches the echo canceller the room; STATUS says why the microphone
    is withheld meanwhile."""
    daemon = await rig.start(rig.config(conversation={"duplex": "auto"}), wake_then_request())
    notes = daemon.notes
    ready = await notes.wait_for(has("READY", "1"), within_s=30)
    await notes.wait_for(status_is(LISTENING_FOR_JARVIS), after=ready + 1, within_s=30)
    assert f"In conversation, turn 1 (speaking); {CONVERGING}" in notes.statuses(ready + 1)
    daemon.send(signal.SIGTERM)
    assert await daemon.exit_code() == 0


@pytest.mark.timeout(90)
async def test_the_service_connects_its_mcp_servers_with_the_token_credential(
    rig: ServiceRig, emulator: LiveEmulator, tmp_path: Path
) -> None:
    server = HttpServer(tmp_path)
    rig.stack.callback(server.stop)
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "mcp-home-token").write_text(MCP_TOKEN + "\n")
    call = ToolCall("HassTurnOn", {"name": "kitchen light"})
    emulator.script.push(Reply(audio="tone", seconds=0.3, tool_calls=(call,)))
    config = rig.config(tools={"mcp": [McpServerConfig(name="home", url=server.url)]})
    environ = {"CREDENTIALS_DIRECTORY": str(credentials)}
    daemon = await rig.start(config, wake_then_request(), environ=environ)
    answered = await emulator.timeline.wait_for("tool.response", within_s=60)
    assert answered.data["responses"][0]["response"] == {"output": "Turned on the kitchen light"}
    await recorded(
        server.record,
        {"tool": "HassTurnOn", "args": {"name": "kitchen light", "area": None, "domain": None}},
    )
    daemon.send(signal.SIGTERM)
    assert await daemon.exit_code() == 0
    assert "MCP server home connected" in daemon.log
    assert MCP_TOKEN not in daemon.log


#: Libraries a default installation (no panel, no MCP server, no metrics) never uses:
#: openWakeWord's package and its training stack, the MCP SDK, gpiozero, prometheus_client,
#: and what only tests, the bench and the emulator use.
NEVER_FOR_THE_DEFAULTS = (
    "openwakeword",
    "sklearn",
    "scipy",
    "tqdm",
    "requests",
    "mcp",
    "pispeaker.mcphub",
    "gpiozero",
    "pispeaker.panel.gpio",
    "onnx",
    "trustme",
    "pispeaker.emulator",
    "pispeaker.bench",
    "prometheus_client",  # metrics are off unless metrics.listen is set
    "pispeaker.service.metrics",
    "pispeaker.wake.journal",
)
#: What the defaults do use: the wake word, the voice detector, the echo canceller, the
#: Live API client, ALSA, soxr and systemd.
USED_BY_THE_DEFAULTS = (
    "tflite_runtime",
    "onnxruntime",
    "pywebrtc_audio",
    "google.genai",
    "alsaaudio",
    "soxr",
    "systemd",
)


@pytest.mark.timeout(90)
async def test_a_running_daemon_imports_only_what_its_configuration_uses(
    rig: ServiceRig, tmp_path: Path
) -> None:
    modules_file = tmp_path / "modules.json"
    daemon = await rig.start(rig.config(), wake_then_request(), modules_to=modules_file)
    notes = daemon.notes
    ready = await notes.wait_for(has("READY", "1"), within_s=30)
    # a whole conversation: whatever it imports on the way counts too
    back = await notes.wait_for(status_is(LISTENING_FOR_JARVIS), after=ready + 1, within_s=30)
    assert "In conversation, turn 1 (thinking)" in notes.statuses(ready + 1)[: back - ready]
    daemon.send(signal.SIGTERM)
    assert await daemon.exit_code() == 0
    modules = set(json.loads(modules_file.read_text()))

    def imported(name: str) -> bool:
        return any(module == name or module.startswith(name + ".") for module in modules)

    assert [name for name in NEVER_FOR_THE_DEFAULTS if imported(name)] == []
    assert [name for name in USED_BY_THE_DEFAULTS if not imported(name)] == []
