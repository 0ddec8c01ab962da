"""Contract: each model family's behaviour and refusals, as the real SDK sees them."""

from collections.abc import Callable

import pytest
from google.genai import errors, types
from google.genai.live import AsyncSession

from pispeaker.audio.pcm import OUTPUT_RATE, byte_count
from pispeaker.emulator import LiveEmulator, Reply, ToolCall
from pispeaker.emulator.wire import MAX_REASON_BYTES
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

LIVE = "gemini-3.8-live"
EXTENDED = "gemini-3.8-live-extended-thinking"
FLASH = "gemini-3.1-flash-live-preview"
TRANSCRIBED = {
    "input_audio_transcription": types.AudioTranscriptionConfig(),
    "output_audio_transcription": types.AudioTranscriptionConfig(),
}
#: What the model says about a NON_BLOCKING result in these tests: 0.4 s at 880 Hz.
FOLLOW_UP = Reply(audio="tone", seconds=0.4, frequency_hz=880.0, text="It is 10:42.")
Answer = Callable[[types.FunctionCall], types.FunctionResponse]


def declared(behavior: types.Behavior | None = None) -> list[types.Tool]:
    """One function, get_local_time, declared with ``behavior`` (None: the model's default)."""
    declaration = types.FunctionDeclaration(
        name="get_local_time", description="The local time.", behavior=behavior
    )
    return [types.Tool(function_declarations=[declaration])]


def answer(
    scheduling: types.FunctionResponseScheduling | None = None, **response: object
) -> Answer:
    """Answer a call with ``response`` (plus "10:42") and ``scheduling`` in the field."""

    def respond(call: types.FunctionCall) -> types.FunctionResponse:
        body = {"output": "10:42"} | response
        return types.FunctionResponse(
            id=call.id, name=call.name, response=body, scheduling=scheduling
        )

    return respond


async def speak_and_answer(session: AsyncSession, respond: Answer, after_audio: bool) -> Turn:
    """Say something; answer the model's call as soon as it is made, or once audio follows
    it (``after_audio``); every message up to the end of the interaction."""
    await send_audio(session, padded(speech(0.5)))
    turn, call = Turn(), None
    async for message in session.receive():
        turn.messages.append(message)
        if message.tool_call:
            [call] = message.tool_call.function_calls or []
        if call and (message.data or not after_audio):
            await session.send_tool_response(function_responses=[respond(call)])
            call = None
    return turn


def audio_before_answer(turn: Turn) -> bytes:
    """The audio that arrived after the tool call (the answer is sent at the first chunk)."""
    [call_at] = [i for i, m in enumerate(turn.messages) if m.tool_call]
    return b"".join(m.data for m in turn.messages[call_at:] if m.data)


# -- NON_BLOCKING calls and response scheduling ----------------------------------------------


async def test_non_blocking_call_on_3_8_lets_the_model_talk_on(emulator: LiveEmulator) -> None:
    emulator.script.push(Reply(audio="tone", seconds=1.0, tool_calls=(ToolCall("get_local_time"),)))
    config = audio_config(tools=declared())
    async with sdk_client(emulator).aio.live.connect(model=LIVE, config=config) as session:
        turn = await speak_and_answer(session, answer(), after_audio=True)
        follow_up = await next_turn(session)
    assert audio_before_answer(turn)  # the reply streamed while the call was pending
    assert not turn.flags("interrupted")
    assert len(turn.audio) == byte_count(1.0, OUTPUT_RATE)
    assert follow_up.audio  # WHEN_IDLE by default: a turn of its own after the reply
    [call] = emulator.timeline.of("tool.call")
    assert call.data["blocking"] is False
    [decided] = emulator.timeline.of("tool.followup")
    assert decided.data["scheduling"] == "WHEN_IDLE"


async def answered_mid_reply(
    start_emulator: StartEmulator, scheduling: types.FunctionResponseScheduling
) -> tuple[LiveEmulator, Turn, Turn]:
    """Answer a 3.8 NON_BLOCKING call with ``scheduling`` at the first chunk of a 2 s reply
    streamed in real time: the emulator, the reply's interaction, and the one after it."""
    emulator = await start_emulator(pace=1.0, playback_hold=1.0)
    call = ToolCall("get_local_time")
    emulator.script.push(Reply(audio="tone", seconds=2.0, tool_calls=(call,), follow_up=FOLLOW_UP))
    config = audio_config(tools=declared())
    async with sdk_client(emulator).aio.live.connect(model=LIVE, config=config) as session:
        reply = await speak_and_answer(session, answer(scheduling), after_audio=True)
        return emulator, reply, await next_turn(session)


async def test_interrupt_result_cuts_the_reply_and_is_spoken_at_once(
    start_emulator: StartEmulator,
) -> None:
    interrupt = types.FunctionResponseScheduling.INTERRUPT
    emulator, cut, follow_up = await answered_mid_reply(start_emulator, interrupt)
    assert len(cut.audio) < byte_count(2.0, OUTPUT_RATE)  # stopped mid-reply
    [interrupted] = cut.flags("interrupted")
    assert interrupted < cut.flags("turn_complete")[0]
    assert not cut.flags("generation_complete")
    assert len(follow_up.audio) == byte_count(0.4, OUTPUT_RATE)
    assert abs(dominant_frequency(follow_up.audio, OUTPUT_RATE) - 880) < 5
    [event] = emulator.timeline.of("interrupted")
    assert (event.data["cause"], event.data["cancelled_calls"]) == ("tool", [])


async def test_when_idle_result_waits_for_the_reply_to_finish(
    start_emulator: StartEmulator,
) -> None:
    when_idle = types.FunctionResponseScheduling.WHEN_IDLE
    emulator, whole, follow_up = await answered_mid_reply(start_emulator, when_idle)
    assert len(whole.audio) == byte_count(2.0, OUTPUT_RATE)
    assert whole.flags("generation_complete")
    assert not whole.flags("interrupted")
    assert abs(dominant_frequency(follow_up.audio, OUTPUT_RATE) - 880) < 5
    kinds = [e.kind for e in emulator.timeline.events]
    answered, followed = kinds.index("tool.response"), kinds.index("followup.start")
    assert answered < kinds.index("turn.complete") < followed  # answered mid-reply, said after


async def test_silent_result_is_only_remembered(emulator: LiveEmulator) -> None:
    call = ToolCall("get_local_time")
    emulator.script.push(
        Reply(audio="tone", seconds=0.5, tool_calls=(call,), follow_up=FOLLOW_UP),
        Reply(audio="tone", seconds=0.3, frequency_hz=330.0),
    )
    config = audio_config(tools=declared())
    respond = answer(scheduling="SILENT")  # as the ai.google.dev guide puts it: in the response
    async with sdk_client(emulator).aio.live.connect(model=LIVE, config=config) as session:
        await speak_and_answer(session, respond, after_audio=False)
        await emulator.timeline.wait_for("tool.followup")
        await send_audio(session, padded(speech(0.5)))
        next_reply = await next_turn(session)
    assert abs(dominant_frequency(next_reply.audio, OUTPUT_RATE) - 330) < 5  # no follow-up
    assert not emulator.timeline.of("followup.start")
    [decided] = emulator.timeline.of("tool.followup")
    assert decided.data["scheduling"] == "SILENT"
    history = emulator.store.sessions["session-1"].history
    assert any(entry.role == "tool" and "10:42" in entry.text for entry in history)


# -- BLOCKING calls ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "behavior", "blocking"),
    [
        (LIVE, types.Behavior.BLOCKING, True),
        (MODEL, None, True),
        (MODEL, types.Behavior.NON_BLOCKING, False),
        (FLASH, None, True),
    ],
)
async def test_a_blocking_call_holds_the_reply_until_answered(
    emulator: LiveEmulator, model: str, behavior: types.Behavior | None, blocking: bool
) -> None:
    emulator.script.push(Reply(audio="tone", seconds=0.5, tool_calls=(ToolCall("get_local_time"),)))
    config = audio_config(tools=declared(behavior))
    async with sdk_client(emulator).aio.live.connect(model=model, config=config) as session:
        turn = await speak_and_answer(session, answer(), after_audio=not blocking)
    [call] = emulator.timeline.of("tool.call")
    assert call.data["blocking"] is blocking
    kinds = [e.kind for e in emulator.timeline.events]
    assert (kinds.index("tool.response") < kinds.index("audio.out")) is blocking
    assert len(turn.audio) == byte_count(0.5, OUTPUT_RATE)


# -- proactive audio -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "api_version", "proactivity"),
    [
        (LIVE, "v1beta", None),  # always on
        (MODEL, "v1alpha", types.ProactivityConfig(proactive_audio=True)),
    ],
)
async def test_a_declined_utterance_gets_no_model_content(
    emulator: LiveEmulator,
    model: str,
    api_version: str,
    proactivity: types.ProactivityConfig | None,
) -> None:
    emulator.script.push(Reply(declined=True, heard="Anyway, as I was saying"), Reply())
    client = sdk_client(emulator, api_version=api_version)
    config = audio_config(proactivity=proactivity, **TRANSCRIBED)
    async with client.aio.live.connect(model=model, config=config) as session:
        await send_audio(session, padded(speech(0.5)))
        declined = await next_turn(session)
        await send_audio(session, padded(speech(0.5)))
        answered = await next_turn(session)
    assert declined.text("input_transcription") == "Anyway, as I was saying"
    assert not declined.audio
    assert not declined.flags("output_transcription")
    [content] = [c for c in declined.contents() if c.turn_complete]
    assert content.turn_complete_reason == types.TurnCompleteReason.RESPONSE_REJECTED
    assert answered.audio
    [event] = emulator.timeline.of("turn.declined")
    assert event.data == {"turn": 1}


async def test_without_proactive_audio_the_model_answers_every_utterance(
    emulator: LiveEmulator,
) -> None:
    emulator.script.push(Reply(declined=True))
    async with sdk_client(emulator).aio.live.connect(model=MODEL, config=audio_config()) as session:
        await send_audio(session, padded(speech(0.5)))
        turn = await next_turn(session)
    assert turn.audio
    assert not emulator.timeline.of("turn.declined")


# -- extended thinking ---------------------------------------------------------------------


async def test_extended_thinking_acknowledges_then_answers_in_one_interaction(
    emulator: LiveEmulator,
) -> None:
    emulator.script.push(Reply(audio="tone", seconds=0.5, think_s=0.2, text="Forty-two."))
    config = audio_config(**TRANSCRIBED)
    async with sdk_client(emulator).aio.live.connect(model=EXTENDED, config=config) as session:
        await send_audio(session, padded(speech(0.5)))
        interaction = await next_turn(session)  # receive() ends only on IDLE
    contents = interaction.contents()
    completes = [c for c in contents if c.turn_complete]
    assert [c.interaction_status for c in completes] == [
        types.InteractionStatus.IN_PROGRESS,
        types.InteractionStatus.IDLE,
    ]
    assert all(c.interaction_status == types.InteractionStatus.IN_PROGRESS for c in contents[:-1])
    assert interaction.text("output_transcription") == "Let me think.Forty-two."
    assert len(interaction.audio) == byte_count(0.3, OUTPUT_RATE) + byte_count(0.5, OUTPUT_RATE)
    [reasoning] = emulator.timeline.of("reasoning.start")
    assert reasoning.data == {"think_s": 0.2}


# -- settings each model refuses -----------------------------------------------------------

THINKING_LEVEL = types.ThinkingConfig(thinking_level=types.ThinkingLevel.LOW)
PROACTIVE = types.ProactivityConfig(proactive_audio=True)


@pytest.mark.parametrize(
    ("model", "api_version", "fields", "reason"),
    [
        (
            LIVE,
            "v1beta",
            {"thinking_config": THINKING_LEVEL},
            "thinking_config is not supported by gemini-3.8-live.",
        ),
        (
            LIVE,
            "v1beta",
            {"proactivity": types.ProactivityConfig(proactive_audio=False)},
            f"proactivity.proactive_audio is always on for {LIVE} and cannot be turned off.",
        ),
        (
            LIVE,
            "v1alpha",
            {"enable_affective_dialog": True},
            "enable_affective_dialog is not supported by gemini-3.8-live.",
        ),
        (
            EXTENDED,
            "v1beta",
            {"tools": declared(types.Behavior.BLOCKING)},
            "function get_local_time: behavior BLOCKING is not supported by "
            "gemini-3.8-live-extended-thinking.",
        ),
        (
            EXTENDED,
            "v1beta",
            {"thinking_config": types.ThinkingConfig(thinking_level=types.ThinkingLevel.MINIMAL)},
            "thinking_level MINIMAL is not supported by gemini-3.8-live-extended-thinking; "
            "use LOW, MEDIUM, HIGH.",
        ),
        (
            MODEL,
            "v1beta",
            {"proactivity": PROACTIVE},
            f"proactivity.proactive_audio is only available on api_version v1alpha for {MODEL}.",
        ),
        (
            MODEL,
            "v1beta",
            {"enable_affective_dialog": True},
            f"enable_affective_dialog is only available on api_version v1alpha for {MODEL}.",
        ),
        (
            FLASH,
            "v1beta",
            {"tools": declared(types.Behavior.NON_BLOCKING)},
            f"function get_local_time: behavior NON_BLOCKING is not supported by {FLASH}.",
        ),
        (
            FLASH,
            "v1alpha",
            {"proactivity": PROACTIVE},
            f"proactivity.proactive_audio is not supported by {FLASH}.",
        ),
        (
            FLASH,
            "v1alpha",
            {"enable_affective_dialog": True},
            f"enable_affective_dialog is not supported by {FLASH}.",
        ),
    ],
)
async def test_a_refused_setting_is_closed_with_1007_and_says_why(
    emulator: LiveEmulator, model: str, api_version: str, fields: dict[str, object], reason: str
) -> None:
    client = sdk_client(emulator, api_version=api_version)
    with pytest.raises(errors.APIError) as raised:
        async with client.aio.live.connect(model=model, config=audio_config(**fields)):
            pass
    assert (raised.value.code, raised.value.details) == (1007, reason)
    assert len(reason.encode()) <= MAX_REASON_BYTES


@pytest.mark.parametrize(
    ("model", "api_version", "fields"),
    [
        (LIVE, "v1beta", {"proactivity": PROACTIVE, "tools": declared(types.Behavior.BLOCKING)}),
        (EXTENDED, "v1beta", {"thinking_config": types.ThinkingConfig(thinking_level="HIGH")}),
        (FLASH, "v1beta", {"thinking_config": THINKING_LEVEL}),
        (
            MODEL,
            "v1alpha",
            {
                "proactivity": PROACTIVE,
                "enable_affective_dialog": True,
                "thinking_config": types.ThinkingConfig(thinking_budget=0),
            },
        ),
    ],
)
async def test_each_model_takes_its_own_settings(
    emulator: LiveEmulator, model: str, api_version: str, fields: dict[str, object]
) -> None:
    client = sdk_client(emulator, api_version=api_version)
    async with client.aio.live.connect(model=model, config=audio_config(**fields)) as session:
        assert session.setup_complete is not None


# -- Google Search -------------------------------------------------------------------------

SEARCH = [types.Tool(google_search=types.GoogleSearch())]


@pytest.mark.parametrize("model", [LIVE, FLASH, MODEL])
async def test_search_queries_ground_the_reply_when_google_search_is_declared(
    emulator: LiveEmulator, model: str
) -> None:
    grounded = Reply(search_queries=("weather in Lyon",))
    emulator.script.push(grounded, grounded)
    client = sdk_client(emulator)
    turns = []
    for tools in (SEARCH, None):
        async with client.aio.live.connect(model=model, config=audio_config(tools=tools)) as s:
            await send_audio(s, padded(speech(0.5)))
            turns.append(await next_turn(s))
    [metadata] = [c.grounding_metadata for c in turns[0].contents() if c.grounding_metadata]
    assert metadata.web_search_queries == ["weather in Lyon"]
    [chunk] = metadata.grounding_chunks or []
    assert chunk.web
    assert chunk.web.title == "weather in Lyon"
    assert str(chunk.web.uri).startswith("https://")
    assert turns[0].audio
    assert not [c for c in turns[1].contents() if c.grounding_metadata]  # not declared


# -- framing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "multi_part"),
    [
        (LIVE, True),
        (EXTENDED, True),
        (FLASH, True),
        ("gemini-2.5-flash-native-audio-preview-12-2025", False),
        ("gemini-2.5-flash-native-audio-preview-09-2025", False),
        ("gemini-2.5-flash-native-audio-latest", False),
    ],
)
async def test_3_x_models_send_audio_and_transcript_together_2_5_apart(
    emulator: LiveEmulator, model: str, multi_part: bool
) -> None:
    emulator.script.push(Reply(text="One two three four five six seven", think_s=0.0))
    config = audio_config(**TRANSCRIBED)
    async with sdk_client(emulator).aio.live.connect(model=model, config=config) as session:
        await send_audio(session, padded(speech(1.0)))
        turn = await next_turn(session)
    audio, transcript = set(turn.flags("model_turn")), set(turn.flags("output_transcription"))
    assert transcript
    assert (transcript <= audio) is multi_part
    assert bool(transcript & audio) is multi_part
