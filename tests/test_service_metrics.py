"""The Prometheus endpoint of a running daemon: ``pispeaker run`` as a subprocess (see
tests/service_rig.py) with ``metrics.listen`` set, scraped over HTTP during a conversation
with the emulator and parsed with prometheus_client's own text parser."""

import asyncio
import os
import signal
import socket
import urllib.error
import urllib.request

import pytest

from pispeaker.emulator import LiveEmulator
from tests.service_rig import ServiceRig, has, status_is
from tests.test_metrics import Samples, parse, value
from tests.test_service import LISTENING_FOR_JARVIS, wake_then_request
from tests.test_service import rig as rig  # a fixture: the tests take it by name


def free_address() -> str:
    """A loopback address whose port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


async def scrape(address: str) -> Samples:
    """GET /metrics, parsed with prometheus_client's parser: every sample by name and labels."""

    def get() -> str:
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as response:
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            return str(response.read().decode())

    return parse(await asyncio.to_thread(get))


def state_of(samples: Samples) -> str:
    [state] = [
        dict(labels)["state"]
        for (name, labels), count in samples.items()
        if name == "pispeaker_state" and count == 1
    ]
    return state


async def refused(address: str) -> bool:
    try:
        await scrape(address)
    except urllib.error.URLError as error:
        return isinstance(error.reason, ConnectionRefusedError)
    return False


@pytest.mark.timeout(90)
async def test_scraped_during_a_conversation_the_counters_move(
    rig: ServiceRig, emulator: LiveEmulator
) -> None:
    address = free_address()
    # A follow-up window long enough that the conversation is surely still on when scraped.
    config = rig.config(metrics={"listen": address}, conversation={"follow_up_s": 6.0})
    daemon = await rig.start(config, wake_then_request())
    notes = daemon.notes
    ready = await notes.wait_for(has("READY", "1"), within_s=30)
    before = await scrape(address)
    assert state_of(before) == "idle"
    assert value(before, "pispeaker_conversations_total", trigger="wake_word") == 0
    assert value(before, "pispeaker_reply_latency_seconds_count") == 0
    assert value(before, "pispeaker_build_info", version="0.1.0", python=_python(before)) == 1

    # "hey jarvis", then the request: scraped while the reply plays.
    thinking = await notes.wait_for(
        status_is("In conversation, turn 1 (thinking)"), after=ready, within_s=30
    )
    during = await scrape(address)
    assert state_of(during) in {"thinking", "speaking", "listening"}
    assert value(during, "pispeaker_conversations_total", trigger="wake_word") == 1
    assert (
        value(during, "pispeaker_wake_detections_total", model="hey_jarvis", acted_on="true") == 1
    )
    assert value(during, "pispeaker_uplink_bytes_total", outcome="sent") > 16_000  # > 0.5 s
    assert value(during, "pispeaker_xruns_total", port="microphone") == 0

    # The parroted reply, the follow-up window, idle again.
    await notes.wait_for(status_is(LISTENING_FOR_JARVIS), after=thinking, within_s=30)
    after = await scrape(address)
    assert state_of(after) == "idle"
    assert value(after, "pispeaker_reply_latency_seconds_count") == 1
    assert value(after, "pispeaker_reply_latency_seconds_sum") > 0
    assert value(after, "pispeaker_tokens_total", kind="prompt") > 0
    assert value(after, "pispeaker_tokens_total", kind="response") > 0
    assert value(after, "pispeaker_uplink_bytes_total", outcome="sent") > value(
        during, "pispeaker_uplink_bytes_total", outcome="sent"
    )
    assert value(after, "pispeaker_barge_ins_total", cause="voice") == 0
    assert value(after, "pispeaker_audio_devices_lost_total", port="speaker") == 0
    assert value(after, "process_resident_memory_bytes") > 0

    daemon.send(signal.SIGTERM)
    assert await daemon.exit_code() == 0
    assert await refused(address)  # the port is free again
    assert f"serving metrics at http://{address}/metrics" in daemon.log
    assert "Traceback" not in daemon.log


def _python(samples: Samples) -> str:
    [labels] = [dict(labels) for name, labels in samples if name == "pispeaker_build_info"]
    return labels["python"]


async def test_a_reload_serves_the_same_address_again_and_a_new_one_moves_it(
    rig: ServiceRig,
) -> None:
    address = moved = free_address()
    while moved == address:
        moved = free_address()
    daemon = await rig.start(rig.config(metrics={"listen": address}), b"")
    notes = daemon.notes
    ready = await notes.wait_for(has("READY", "1"), within_s=30)
    assert state_of(await scrape(address)) == "idle"

    daemon.send(signal.SIGHUP)  # the same configuration: the same port, taken again
    reloading = await notes.wait_for(has("RELOADING", "1"), after=ready)
    ready = await notes.wait_for(has("READY", "1"), after=reloading)
    assert notes.notes[ready].fields["STATUS"] == LISTENING_FOR_JARVIS
    assert state_of(await scrape(address)) == "idle"

    rig.write_config(rig.config(metrics={"listen": moved}))
    daemon.send(signal.SIGHUP)
    reloading = await notes.wait_for(has("RELOADING", "1"), after=ready)
    ready = await notes.wait_for(has("READY", "1"), after=reloading)
    assert state_of(await scrape(moved)) == "idle"
    assert await refused(address)

    rig.write_config(rig.config())  # metrics off
    daemon.send(signal.SIGHUP)
    reloading = await notes.wait_for(has("RELOADING", "1"), after=ready)
    await notes.wait_for(has("READY", "1"), after=reloading)
    assert await refused(moved)
    daemon.send(signal.SIGTERM)
    assert await daemon.exit_code() == 0
    assert "Traceback" not in daemon.log


async def test_a_port_in_use_at_start_names_the_address_and_what_to_do(rig: ServiceRig) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        daemon = await rig.start(rig.config(metrics={"listen": address}), b"")
        assert await daemon.exit_code(within_s=30) == os.EX_UNAVAILABLE
    status = daemon.notes.statuses()[-1]
    assert status.startswith(f"Error: metrics.listen: cannot serve metrics on {address} (")
    assert status.endswith("stop it, or choose another port in metrics.listen")
    assert not any("READY" in note.fields for note in daemon.notes.notes)
    assert "Traceback" not in daemon.log


async def test_a_bad_listen_address_is_a_config_error_naming_the_key(rig: ServiceRig) -> None:
    daemon = await rig.start('[metrics]\nlisten = "9460"\n', b"")
    assert await daemon.exit_code() == os.EX_CONFIG
    assert 'metrics.listen: must be "HOST:PORT"' in daemon.log
