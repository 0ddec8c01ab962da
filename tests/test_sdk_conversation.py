"""Contract: turns, audio both ways, VAD, barge-in and tools, through the real SDK."""

import asyncio
import time

import pytest
from google.genai import errors, types

from pispeaker.audio.pcm import INPUT_RATE, OUTPUT_RATE, silence
from pispeaker.audio.resample import resample
from pispeaker.emulator import LiveEmulator, Reply, ToolCall
from pispeaker.emulator.script import CHUNK_S, FIRST_CHUNK_S
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
from tests.signals import dominant_frequency

TRANSCRIBED = {
    "input_audio_transcription": types.AudioTranscriptionConfig(),
    "output_audio_transcription": types.AudioTranscriptionConfig(),
}


def vad_config(**detection: object) -> types.RealtimeInputConfig:
    return types.RealtimeInputConfig(
        automatic_activity_detection=types.AutomaticActivityDetection(**detection)  # type: ignore[arg-type]
    )


async def test_parrot_reply_is_the_utterance_resampled_to_24khz(emulator: LiveEmulator) -> None:
    said = speech(1.3)
    async with sdk_client(emulator).aio.live.connect(model=MODEL, config=audio_config()) as session:
        await send_audio(session, padded(said))
        turn = await next_turn(session)
    assert turn.audio == resample(said, INPUT_RATE, OUTPUT_RATE)
    assert turn.mime_types == {"audio/pcm;rate=24000"}
    sizes = [len(chunk) for chunk in turn.chunks]
    assert sizes[0] == round(FIRST_CHUNK_S * OUTPUT_RATE) * 2
    assert set(sizes[1:-1]) == {round(CHUNK_S * OUTPUT_RATE) * 2}
    assert abs(dominant_frequency(turn.audio, OUTPUT_RATE) - 300) < 5
    assert emulator.store.sessions["session-1"].uploaded_audio_bytes == len(padded(said))


async def test_turn_ends_with_generation_complete_then_turn_complete_and_usage(
    emulator: LiveEmulator,
) -> None:
    async with sdk_client(emulator).aio.live.connect(model=MODEL, config=audio_config()) as session:
        await send_audio(session, padded(speech(1.0)))
        turn = await next_turn(session)
    [generation_complete] = turn.flags("generation_complete")
    [turn_complete] = turn.flags("turn_complete")
    assert max(turn.flags("model_turn")) < generation_complete < turn_complete
    assert turn_complete == len(turn.messages) - 1  # receive() stops there
    usage = turn.messages[-1].usage_metadata
    assert usage is not None
    assert usage.prompt_token_count == 25


async def test_receive_ends_each_turn_and_the_next_call_gets_the_next_turn(
    emulator: LiveEmulator,
) -> None:
    emulator.script.push(Reply(audio="tone", seconds=0.4, frequency_hz=600))
    emulator.script.push(Reply(audio="tone", seconds=0.6, frequency_hz=900))
    async with sdk_client(emulator).aio.live.connect(model=MODEL, config=audio_config()) as session:
        await send_audio(session, padded(speech(0.5)))
        first = await next_turn(session)
        await send_audio(session, padded(speech(0.5)))
        second = await next_turn(session)
    assert len(first.audio) == round(0.4 * OUTPUT_RATE) * 2
    assert abs(dominant_frequency(second.audio, OUTPUT_RATE) - 900) < 5


async def test_transcriptions_are_sent_only_when_enabled(emulator: LiveEmulator) -> None:
    emulator.script.push(Reply(text="It is sunny in Lisbon today.", heard="What's the weather?"))
    emulator.script.push(Reply())
    client = sdk_client(emulator)
    async with client.aio.live.connect(model=MODEL, config=audio_config(**TRANSCRIBED)) as session:
        await send_audio(session, padded(speech(1.0)))
        transcribed = await next_turn(session)
    async with client.aio.live.connect(model=MODEL, config=audio_config()) as session:
        await send_audio(session, padded(speech(1.0)))
        plain = await next_turn(session)
    assert transcribed.text("input_transcription") == "What's the weather?"
    assert transcribed.text("output_transcription") == "It is sunny in Lisbon today."
    # 2.5 models send one part per event: audio and transcript never share a message
    assert not set(transcribed.flags("model_turn")) & set(transcribed.flags("output_transcription"))
    assert not plain.flags("input_transcription")
    assert not plain.flags("output_transcription")


async def test_gemini_3_models_put_audio_and_transcript_in_one_message(
    emulator: LiveEmulator,
) -> None:
    emulator.script.push(Reply(text="One two three four five six seven"))
    config = audio_config(**TRANSCRIBED)
    async with sdk_client(emulator).aio.live.connect(
        model="gemini-3.8-live", config=config
    ) as session:
        await send_audio(session, padded(speech(1.0)))
        turn = await next_turn(session)
    assert set(turn.flags("output_transcription")) <= set(turn.flags("model_turn"))


async def test_paced_replies_arrive_no_faster_than_real_time(start_emulator: StartEmulator) -> None:
    emulator = await start_emulator(pace=1.0)
    emulator.script.push(Reply(audio="tone", seconds=1.0))
    async with sdk_client(emulator).aio.live.connect(model=MODEL, config=audio_config()) as session:
        await send_audio(session, padded(speech(0.3)))
        audio_arrivals: list[float] = []
        async for message in session.receive():
            if message.data:
                audio_arrivals.append(time.monotonic())
        turn_complete_at = time.monotonic()
    # chunk k is sent when playback of the ones before it would end; turnComplete when all would
    assert audio_arrivals[-1] - audio_arrivals[0] >= 0.95 * (1.0 - CHUNK_S)
    assert turn_complete_at - audio_arrivals[0] >= 0.95


@pytest.mark.parametrize(("silence_ms", "turns"), [(200, 2), (600, 1)])
async def test_silence_duration_decides_where_a_turn_ends(
    emulator: LiveEmulator, silence_ms: int, turns: int
) -> None:
    stream = padded(speech(0.4) + silence(0.3, INPUT_RATE) + speech(0.4), tail_s=0.8)
    config = audio_config(
        realtime_input_config=vad_config(silence_duration_ms=silence_ms),
    )
    async with sdk_client(emulator).aio.live.connect(model=MODEL, config=config) as session:
        await send_audio(session, stream)
        await emulator.timeline.wait_for("turn.queued", lambda e: True)
        await next_turn(session)
    queued = emulator.timeline.of("turn.queued")
    assert len(queued) == turns
    assert len(emulator.timeline.of("vad.start")) == turns


@pytest.mark.parametrize(
    ("sensitivity", "heard"),
    [
        (types.StartSensitivity.START_SENSITIVITY_HIGH, True),
        (types.StartSensitivity.START_SENSITIVITY_LOW, False),
    ],
)
async def test_start_sensitivity_decides_whether_quiet_speech_counts(
    emulator: LiveEmulator, sensitivity: types.StartSensitivity, heard: bool
) -> None:
    quiet = speech(0.5, amplitude=0.02)  # about -37 dBFS
    config = audio_config(realtime_input_config=vad_config(start_of_speech_sensitivity=sensitivity))
    async with sdk_client(emulator).aio.live.connect(model=MODEL, config=config) as session:
        await send_audio(session, padded(quiet))
        await session.send_realtime_input(audio_stream_end=True)
        await session.send_realtime_input(text="marker")  # a turn that always happens
        await emulator.timeline.wait_for("turn.queued", lambda e: e.data["text"] == "marker")
    assert bool(emulator.timeline.of("vad.start")) is heard


async def test_prefix_padding_ignores_clicks_shorter_than_it(emulator: LiveEmulator) -> None:
    config = audio_config(realtime_input_config=vad_config(prefix_padding_ms=200))
    async with sdk_client(emulator).aio.live.connect(model=MODEL, config=config) as session:
        await send_audio(session, padded(speech(0.1)) + padded(speech(0.6)))
        turn = await next_turn(session)
    [start] = emulator.timeline.of("vad.start")
    assert start.data["offset_s"] == pytest.approx(0.2 + 0.1 + 0.5 + 0.2)
    assert turn.audio == resample(speech(0.6), INPUT_RATE, OUTPUT_RATE)


async def test_audio_stream_end_closes_the_turn_without_waiting_for_silence(
    emulator: LiveEmulator,
) -> None:
    said = speech(0.8)
    config = audio_config(realtime_input_config=vad_config(silence_duration_ms=5000))
    async with sdk_client(emulator).aio.live.connect(model=MODEL, config=config) as session:
        await send_audio(session, silence(0.2, INPUT_RATE) + said)
        await session.send_realtime_input(audio_stream_end=True)
        turn = await next_turn(session)
    assert turn.audio == resample(said, INPUT_RATE, OUTPUT_RATE)


async def test_manual_activity_marks_the_turn(emulator: LiveEmulator) -> None:
    said = speech(0.5) + silence(0.7, INPUT_RATE) + speech(0.3)  # a pause VAD would split
    config = audio_config(realtime_input_config=vad_config(disabled=True))
    async with sdk_client(emulator).aio.live.connect(model=MODEL, config=config) as session:
        await send_audio(session, silence(0.3, INPUT_RATE))  # outside any activity: not a turn
        await session.send_realtime_input(activity_start=types.ActivityStart())
        await send_audio(session, said)
        await session.send_realtime_input(activity_end=types.ActivityEnd())
        turn = await next_turn(session)
    assert turn.audio == resample(said, INPUT_RATE, OUTPUT_RATE)
    assert not emulator.timeline.of("vad.start")


async def test_activity_start_with_automatic_detection_is_rejected(emulator: LiveEmulator) -> None:
    async with sdk_client(emulator).aio.live.connect(model=MODEL, config=audio_config()) as session:
        await session.send_realtime_input(activity_start=types.ActivityStart())
        with pytest.raises(errors.APIError) as raised:
            await next_turn(session)
    assert raised.value.code == 1007


async def test_text_input_is_answered(emulator: LiveEmulator) -> None:
    emulator.script.push(Reply(audio="tone", seconds=0.5))
    config = audio_config(**TRANSCRIBED)
    async with sdk_client(emulator).aio.live.connect(model=MODEL, config=config) as session:
        await session.send_realtime_input(text="What time is it?")
        turn = await next_turn(session)
    assert turn.text("input_transcription") == "What time is it?"
    assert len(turn.audio) == round(0.5 * OUTPUT_RATE) * 2


# -- barge-in ------------------------------------------------------------------------------


async def _barge_in(
    emulator: LiveEmulator, config: types.LiveConnectConfig
) -> tuple[list[object], bytes]:
    """Speak, wait for the first reply chunk, speak again; return the first turn's messages."""
    emulator.script.push(Reply(audio="tone", seconds=3.0), Reply(audio="parrot"))
    async with sdk_client(emulator).aio.live.connect(model=MODEL, config=config) as session:
        await send_audio(session, padded(speech(0.5)))
        messages = []
        async for message in session.receive():
            messages.append(message)
            if message.data and len([m for m in messages if m.data]) == 1:
                await send_audio(session, padded(speech(0.4, frequency_hz=500)))
        follow_up = await next_turn(session)
    return messages, follow_up.audio


async def test_speech_during_a_reply_interrupts_it(start_emulator: StartEmulator) -> None:
    emulator = await start_emulator(pace=1.0)
    messages, follow_up = await _barge_in(emulator, audio_config())
    flags = [m.server_content for m in messages if m.server_content]  # type: ignore[attr-defined]
    assert [c.interrupted for c in flags[-2:]] == [True, None]
    assert flags[-1].turn_complete
    assert not any(c.generation_complete for c in flags)  # an interrupted turn never completes
    assert sum(len(m.data) for m in messages if m.data) < 3.0 * OUTPUT_RATE * 2  # type: ignore[attr-defined]
    assert abs(dominant_frequency(follow_up, OUTPUT_RATE) - 500) < 5  # the barge-in is answered


async def test_no_interruption_lets_the_model_finish(start_emulator: StartEmulator) -> None:
    emulator = await start_emulator(pace=1.0)
    config = audio_config(
        realtime_input_config=types.RealtimeInputConfig(
            activity_handling=types.ActivityHandling.NO_INTERRUPTION
        )
    )
    messages, follow_up = await _barge_in(emulator, config)
    contents = [m.server_content for m in messages if m.server_content]  # type: ignore[attr-defined]
    assert not any(c.interrupted for c in contents)
    assert sum(len(m.data) for m in messages if m.data) == 3 * OUTPUT_RATE * 2  # type: ignore[attr-defined]
    assert abs(dominant_frequency(follow_up, OUTPUT_RATE) - 500) < 5  # queued, then answered


# -- tools ---------------------------------------------------------------------------------

TOOLS = [
    types.Tool(
        function_declarations=[
            types.FunctionDeclaration(name="get_local_time", description="The local time.")
        ]
    )
]


async def test_tool_call_waits_for_the_matching_response(emulator: LiveEmulator) -> None:
    emulator.script.push(Reply(audio="tone", seconds=0.5, tool_calls=(ToolCall("get_local_time"),)))
    config = audio_config(tools=TOOLS)
    async with sdk_client(emulator).aio.live.connect(model=MODEL, config=config) as session:
        await send_audio(session, padded(speech(0.5)))
        messages = []
        async for message in session.receive():
            messages.append(message)
            if message.tool_call:
                [call] = message.tool_call.function_calls or []
                assert not [m for m in messages if m.data], "no audio before the tool answer"
                response = types.FunctionResponse(
                    id=call.id, name=call.name, response={"output": "10:42"}
                )
                await session.send_tool_response(function_responses=[response])
    assert call.name == "get_local_time"
    assert str(call.id).startswith("function-call-")
    assert sum(len(m.data) for m in messages if m.data) == round(0.5 * OUTPUT_RATE) * 2
    tool_entries = [h for h in emulator.store.sessions["session-1"].history if h.role == "tool"]
    assert tool_entries
    assert "10:42" in tool_entries[0].text


async def test_tool_response_with_a_wrong_id_closes_with_1008(emulator: LiveEmulator) -> None:
    emulator.script.push(Reply(tool_calls=(ToolCall("get_local_time"),)))
    async with sdk_client(emulator).aio.live.connect(
        model=MODEL, config=audio_config(tools=TOOLS)
    ) as session:
        await send_audio(session, padded(speech(0.5)))
        with pytest.raises(errors.APIError) as raised:
            async for message in session.receive():
                if message.tool_call:
                    wrong = types.FunctionResponse(id="function-call-999", name="x", response={})
                    await session.send_tool_response(function_responses=[wrong])
    assert (raised.value.code, raised.value.details) == (1008, "Requested entity was not found.")


async def test_barge_in_cancels_pending_tool_calls(emulator: LiveEmulator) -> None:
    emulator.script.push(
        Reply(tool_calls=(ToolCall("get_local_time"), ToolCall("set_volume", {"level": 3})))
    )
    async with sdk_client(emulator).aio.live.connect(
        model=MODEL, config=audio_config(tools=TOOLS)
    ) as session:
        await send_audio(session, padded(speech(0.5)))
        messages = []
        async for message in session.receive():
            messages.append(message)
            if message.tool_call:
                calls = message.tool_call.function_calls or []
                await send_audio(session, padded(speech(0.3)))  # the user talks instead
        # interrupted and turnComplete end the receive(); the cancellation follows them
        assert messages[-2].server_content
        assert messages[-2].server_content.interrupted
        follow_up = await asyncio.wait_for(next_turn(session), 5)
    [cancellation] = follow_up.of("tool_call_cancellation")
    assert cancellation.ids == [call.id for call in calls]
    assert [c.name for c in calls] == ["get_local_time", "set_volume"]
    assert calls[1].args == {"level": 3}
    assert follow_up.audio  # and the user's new turn is answered


async def test_barge_in_after_generation_complete_interrupts_the_assumed_playback(
    start_emulator: StartEmulator,
) -> None:
    # Generated in a burst, but the server holds turnComplete for 3 s of real-time playback.
    emulator = await start_emulator(pace=0.0, playback_hold=1.0)
    emulator.script.push(Reply(audio="tone", seconds=3.0))
    async with sdk_client(emulator).aio.live.connect(model=MODEL, config=audio_config()) as session:
        await send_audio(session, padded(speech(0.5)))
        turn = Turn()
        async for message in session.receive():
            turn.messages.append(message)
            if message.server_content and message.server_content.generation_complete:
                await send_audio(session, padded(speech(0.3)))
    assert len(turn.audio) == 3 * OUTPUT_RATE * 2  # everything arrived before the barge-in
    [generation_complete] = turn.flags("generation_complete")
    [interrupted] = turn.flags("interrupted")
    assert generation_complete < interrupted < turn.flags("turn_complete")[0]
