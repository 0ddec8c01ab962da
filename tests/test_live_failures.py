"""Failures produced for real (emulator + SDK) are classified as the error policy needs."""

import asyncio
import socket
import ssl
from collections.abc import Awaitable, Callable

import pytest

from pispeaker.backoff import Backoff
from pispeaker.emulator import Fault, LiveEmulator
from pispeaker.live.genai import classify
from pispeaker.live.port import Kind
from tests.conftest import MODEL, audio_config, next_turn, sdk_client


async def _failure_of(work: Callable[[], Awaitable[object]]) -> BaseException:
    try:
        await work()
    except Exception as error:  # noqa: BLE001 - the point is to capture whatever the SDK raised
        return error
    raise AssertionError("no failure happened")


async def _session_fault(emulator: LiveEmulator, fault: Fault) -> BaseException:
    async def run() -> None:
        async with sdk_client(emulator).aio.live.connect(model=MODEL, config=audio_config()) as s:
            await emulator.inject(fault)
            await next_turn(s)

    return await _failure_of(run)


TRANSIENT_FAULTS = [
    Fault.INTERNAL_ERROR,
    Fault.UNAVAILABLE,
    Fault.NORMAL_CLOSE,
    Fault.DROP,
    Fault.MALFORMED,
    Fault.UNKNOWN_ONLY,
]


@pytest.mark.parametrize("fault", TRANSIENT_FAULTS, ids=[f.value for f in TRANSIENT_FAULTS])
async def test_session_faults_are_transient(emulator: LiveEmulator, fault: Fault) -> None:
    assert classify(await _session_fault(emulator, fault)).kind is Kind.TRANSIENT


async def test_quota_close_is_fatal(emulator: LiveEmulator) -> None:
    failure = classify(await _session_fault(emulator, Fault.QUOTA))
    assert failure.kind is Kind.FATAL
    assert "quota" in failure.message


async def _connect_failure(
    emulator: LiveEmulator, model: str = MODEL, **client: object
) -> Exception:
    async def run() -> None:
        async with sdk_client(emulator, **client).aio.live.connect(  # type: ignore[arg-type]
            model=model, config=audio_config()
        ):
            pass

    return await _failure_of(run)  # type: ignore[return-value]


async def test_rejected_key_is_fatal_and_names_the_credential(emulator: LiveEmulator) -> None:
    failure = classify(await _connect_failure(emulator, api_key="wrong"))
    assert (failure.kind, failure.code) == (Kind.FATAL, 1007)
    assert "gemini-api-key" in failure.message
    assert "wrong" not in failure.message  # never echo a key


async def test_unknown_model_is_fatal_and_names_the_setting(emulator: LiveEmulator) -> None:
    failure = classify(await _connect_failure(emulator, model="gemini-0-nope"))
    assert (failure.kind, failure.code) == (Kind.FATAL, 1008)
    assert "live.model" in failure.message
    assert "gemini-3.8-live, gemini-3.8-live-extended-thinking" in failure.message  # known ones


async def test_http_429_at_the_upgrade_is_fatal(emulator: LiveEmulator) -> None:
    emulator.reject_upgrades(429)
    failure = classify(await _connect_failure(emulator))
    assert (failure.kind, failure.code) == (Kind.FATAL, 429)


async def test_http_503_at_the_upgrade_is_transient(emulator: LiveEmulator) -> None:
    emulator.reject_upgrades(503)
    assert classify(await _connect_failure(emulator)).kind is Kind.TRANSIENT


async def test_refused_connection_is_transient(emulator: LiveEmulator) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    error = await _connect_failure(emulator, base_url=f"https://127.0.0.1:{closed_port}")
    assert isinstance(error, ConnectionRefusedError)
    assert classify(error).kind is Kind.TRANSIENT


async def test_untrusted_certificate_is_fatal_and_names_ca_file(emulator: LiveEmulator) -> None:
    error = await _connect_failure(emulator, ssl=ssl.create_default_context())
    failure = classify(error)
    assert failure.kind is Kind.FATAL
    assert "live.ca_file" in failure.message


def test_bugs_are_not_classified() -> None:
    with pytest.raises(KeyError):
        classify(KeyError("a bug"))


def test_backoff_grows_to_its_cap_with_jitter_below_the_ceiling() -> None:
    no_jitter = Backoff(initial_s=0.5, factor=2.0, cap_s=4.0, uniform=lambda: 0.0)
    assert [no_jitter.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    full_jitter = Backoff(initial_s=1.0, cap_s=8.0, jitter=0.5, uniform=lambda: 1.0)
    assert [full_jitter.next_delay() for _ in range(3)] == [0.5, 1.0, 2.0]


def test_backoff_reset_starts_over() -> None:
    backoff = Backoff(initial_s=1.0, uniform=lambda: 0.0)
    backoff.next_delay()
    backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() == 1.0


async def test_pings_unanswered_while_sending_name_the_ping_timeout(emulator: LiveEmulator) -> None:
    """The service stops answering pings while the speaker streams the user's voice:
    websockets closes the connection itself, and the SDK lets its error through as it is
    from a send. The failure still names live.ping_timeout_s."""
    from google.genai import types

    async def run() -> None:
        client = sdk_client(emulator, ping_interval=0.2, ping_timeout=0.2)
        async with client.aio.live.connect(model=MODEL, config=audio_config()) as session:
            await emulator.inject(Fault.NO_PONGS)
            chunk = types.Blob(data=bytes(640), mime_type="audio/pcm;rate=16000")
            while True:  # until the keepalive gives up: a send then raises
                await session.send_realtime_input(audio=chunk)
                await asyncio.sleep(0.02)

    failure = classify(await _failure_of(run))
    assert failure.kind is Kind.TRANSIENT
    assert "live.ping_timeout_s" in failure.message
