"""Contract: session resumption, connection lifetime, faults and observability, via the SDK."""

import json
from pathlib import Path

import pytest
import websockets
from google.genai import errors, types
from google.genai.live import AsyncSession

from pispeaker.emulator import Fault, LiveEmulator, Reply, ScheduledFault, ToolCall
from tests.conftest import (
    MODEL,
    StartEmulator,
    Turn,
    audio_config,
    next_turn,
    padded,
    sdk_client,
    send_audio,
    speech,
)

TRANSCRIBED = {"output_audio_transcription": types.AudioTranscriptionConfig()}


def resumable(handle: str | None = None) -> types.LiveConnectConfig:
    return audio_config(
        session_resumption=types.SessionResumptionConfig(handle=handle), **TRANSCRIBED
    )


def newest_handle(turn: Turn) -> str:
    updates = [u for u in turn.of("session_resumption_update") if u.resumable]
    assert updates, "no resumable sessionResumptionUpdate"
    return str(updates[-1].new_handle)


async def test_handles_come_after_turns_only_when_resumption_is_asked_for(
    emulator: LiveEmulator,
) -> None:
    client = sdk_client(emulator)
    async with client.aio.live.connect(model=MODEL, config=resumable()) as session:
        await send_audio(session, padded(speech(0.5)))
        turn = await next_turn(session)
        after = await speak_and_receive(session)
    async with client.aio.live.connect(model=MODEL, config=audio_config()) as session:
        await send_audio(session, padded(speech(0.5)))
        plain = await next_turn(session)
    assert newest_handle(turn)  # right after setup, in the first receive()
    assert newest_handle(after) != newest_handle(turn)  # and after the turn
    assert not plain.of("session_resumption_update")


async def speak_and_receive(session: AsyncSession) -> Turn:
    """Say something more; the next receive() starts with the handle issued after turn 1."""
    await send_audio(session, padded(speech(0.3)))
    return await next_turn(session)


async def test_not_resumable_while_a_tool_call_is_pending(emulator: LiveEmulator) -> None:
    emulator.script.push(Reply(tool_calls=(ToolCall("get_local_time"),)))
    async with sdk_client(emulator).aio.live.connect(model=MODEL, config=resumable()) as session:
        await send_audio(session, padded(speech(0.5)))
        updates = []
        async for message in session.receive():
            if message.session_resumption_update:
                updates.append(message.session_resumption_update)
            if message.tool_call:
                [call] = message.tool_call.function_calls or []
                answer = types.FunctionResponse(id=call.id, name=call.name, response={"output": 1})
                await session.send_tool_response(function_responses=[answer])
    assert [bool(u.resumable) for u in updates] == [True, False]
    assert updates[1].new_handle is None


async def test_go_away_then_deadline_close_then_resume_continues_the_session(
    start_emulator: StartEmulator,
) -> None:
    emulator = await start_emulator(
        faults=(ScheduledFault(Fault.GO_AWAY, at_s=0.0, connection=1),), go_away_lead_s=0.5
    )
    client = sdk_client(emulator)
    async with client.aio.live.connect(model=MODEL, config=resumable()) as session:
        await send_audio(session, padded(speech(0.5)))
        first = await next_turn(session)
        with pytest.raises(errors.APIError) as raised:
            while True:
                first.messages += (await next_turn(session)).messages
    [go_away] = first.of("go_away")
    assert go_away.time_left == "0.5s"
    assert raised.value.code == 1011
    assert raised.value.details == "Deadline expired before operation could complete."
    async with client.aio.live.connect(
        model=MODEL, config=resumable(newest_handle(first))
    ) as session:
        await send_audio(session, padded(speech(0.5)))
        second = await next_turn(session)
    assert first.text("output_transcription") == "Reply 1."
    assert second.text("output_transcription") == "Reply 2."  # the session remembers turn 1
    [session_state] = emulator.store.sessions.values()
    assert [h.role for h in session_state.history] == ["user", "model", "user", "model"]
    assert [e.data["resumed"] for e in emulator.timeline.of("setup")] == [False, True]


async def test_connection_lifetime_sends_go_away_ahead_of_the_close(
    start_emulator: StartEmulator,
) -> None:
    emulator = await start_emulator(connection_lifetime_s=0.6, go_away_lead_s=0.4)
    async with sdk_client(emulator).aio.live.connect(model=MODEL, config=audio_config()) as session:
        turn = Turn()
        with pytest.raises(errors.APIError) as raised:
            async for message in session.receive():
                turn.messages.append(message)
    [go_away] = turn.of("go_away")
    assert go_away.time_left == "0.4s"
    assert raised.value.code == 1011
    [sent] = emulator.timeline.of("go_away")
    [closed] = emulator.timeline.of("close")
    assert closed.t - sent.t >= 0.4


async def test_unknown_handle_is_rejected(emulator: LiveEmulator) -> None:
    with pytest.raises(errors.APIError) as raised:
        async with sdk_client(emulator).aio.live.connect(model=MODEL, config=resumable("nope")):
            pass
    assert raised.value.code == 1008


async def test_resuming_while_the_old_socket_is_open_is_rejected(emulator: LiveEmulator) -> None:
    client = sdk_client(emulator)
    async with client.aio.live.connect(model=MODEL, config=resumable()) as old:
        await send_audio(old, padded(speech(0.3)))
        handle = newest_handle(await next_turn(old))
        with pytest.raises(errors.APIError) as raised:
            async with client.aio.live.connect(model=MODEL, config=resumable(handle)):
                pass
    assert raised.value.code == 1011


# -- faults --------------------------------------------------------------------------------

CLOSES = [
    (Fault.INTERNAL_ERROR, 1011, "Internal error encountered."),
    (Fault.UNAVAILABLE, 1011, "The service is currently unavailable."),
    (
        Fault.QUOTA,
        1011,
        "You exceeded your current quota, please check your plan and billing details.",
    ),
    (Fault.NORMAL_CLOSE, 1000, ""),
    (Fault.DROP, 1006, "abnormal closure [internal]"),
]


@pytest.mark.parametrize(("fault", "code", "reason"), CLOSES, ids=[c[0].value for c in CLOSES])
async def test_injected_closes_surface_as_api_errors(
    emulator: LiveEmulator, fault: Fault, code: int, reason: str
) -> None:
    async with sdk_client(emulator).aio.live.connect(model=MODEL, config=audio_config()) as session:
        await emulator.inject(fault)
        with pytest.raises(errors.APIError) as raised:
            await next_turn(session)
    assert (raised.value.code, raised.value.details or "") == (code, reason)


async def test_malformed_frame_breaks_the_sdk_receive_with_value_error(
    emulator: LiveEmulator,
) -> None:
    async with sdk_client(emulator).aio.live.connect(model=MODEL, config=audio_config()) as session:
        await emulator.inject(Fault.MALFORMED)
        with pytest.raises(ValueError, match="Failed to parse response"):
            await next_turn(session)


async def test_unknown_only_message_breaks_the_sdk_receive_with_type_error(
    emulator: LiveEmulator,
) -> None:
    # An SDK 3.4.0 bug the daemon must survive: APIError.raise_error(None, ...) compares None.
    async with sdk_client(emulator).aio.live.connect(model=MODEL, config=audio_config()) as session:
        await emulator.inject(Fault.UNKNOWN_ONLY)
        with pytest.raises(TypeError):
            await next_turn(session)


async def test_scheduled_fault_hits_only_its_connection(start_emulator: StartEmulator) -> None:
    emulator = await start_emulator(faults=(ScheduledFault(Fault.INTERNAL_ERROR, at_s=0.2),))
    client = sdk_client(emulator)
    async with client.aio.live.connect(model=MODEL, config=audio_config()) as session:
        with pytest.raises(errors.APIError) as raised:
            await next_turn(session)
    async with client.aio.live.connect(model=MODEL, config=audio_config()) as session:
        await send_audio(session, padded(speech(0.5)))
        assert (await next_turn(session)).audio  # connection 2 is healthy
    assert raised.value.code == 1011
    [fault] = emulator.timeline.of("fault")
    [setup] = emulator.timeline.of("setup", connection=1)
    assert fault.connection == 1
    assert fault.t - setup.t >= 0.2


async def test_quota_can_refuse_the_upgrade_with_http_429(emulator: LiveEmulator) -> None:
    emulator.reject_upgrades(429)
    with pytest.raises(websockets.InvalidStatus) as raised:
        async with sdk_client(emulator).aio.live.connect(model=MODEL, config=audio_config()):
            pass
    assert raised.value.response.status_code == 429
    emulator.reject_upgrades(None)
    async with sdk_client(emulator).aio.live.connect(model=MODEL, config=audio_config()) as session:
        assert session.setup_complete is not None


@pytest.mark.parametrize("fault", [Fault.NO_PONGS, Fault.SLOW_PONGS])
async def test_missing_or_late_pongs_trip_the_client_keepalive(
    start_emulator: StartEmulator, fault: Fault
) -> None:
    emulator = await start_emulator(slow_pong_s=2.0)
    client = sdk_client(emulator, ping_interval=0.1, ping_timeout=0.3)
    async with client.aio.live.connect(model=MODEL, config=audio_config()) as session:
        await emulator.inject(fault)
        with pytest.raises(errors.APIError) as raised:
            await next_turn(session)
    assert raised.value.code in (1006, 1011)  # no close frame came back: abnormal closure


async def test_slow_pongs_within_the_client_timeout_are_harmless(
    start_emulator: StartEmulator,
) -> None:
    emulator = await start_emulator(slow_pong_s=0.2)
    client = sdk_client(emulator, ping_interval=0.1, ping_timeout=2.0)
    async with client.aio.live.connect(model=MODEL, config=audio_config()) as session:
        await emulator.inject(Fault.SLOW_PONGS)
        await send_audio(session, padded(speech(0.8)))
        assert (await next_turn(session)).audio


# -- observability -------------------------------------------------------------------------


async def test_timeline_and_byte_accounting(start_emulator: StartEmulator, tmp_path: Path) -> None:
    jsonl = tmp_path / "timeline.jsonl"
    emulator = await start_emulator(timeline_path=jsonl)
    stream = padded(speech(0.7))
    async with sdk_client(emulator).aio.live.connect(model=MODEL, config=audio_config()) as session:
        await send_audio(session, stream)
        turn = await next_turn(session)
    await emulator.timeline.wait_for("disconnect")
    [state] = emulator.store.sessions.values()
    assert state.uploaded_audio_bytes == len(stream)
    assert state.downloaded_audio_bytes == len(turn.audio)
    assert sum(e.data["bytes"] for e in emulator.timeline.of("audio.in")) == len(stream)
    times = [e.t for e in emulator.timeline.events]
    assert times == sorted(times)
    kinds = [e.kind for e in emulator.timeline.events]
    for earlier, later in [
        ("connect", "setup"),
        ("vad.start", "vad.end"),
        ("turn.start", "audio.out"),
        ("generation.complete", "turn.complete"),
        ("turn.complete", "disconnect"),
    ]:
        assert kinds.index(earlier) < kinds.index(later)
    written = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [w["kind"] for w in written] == kinds
