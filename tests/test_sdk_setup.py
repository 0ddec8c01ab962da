"""Contract: connecting and setting up, as the real SDK (and a raw JS-style client) sees it."""

import base64
import json

import pytest
import websockets
from google.genai import errors, types
from websockets.asyncio.client import connect as ws_connect

from pispeaker.audio.pcm import INPUT_RATE, OUTPUT_RATE
from pispeaker.audio.resample import resample
from pispeaker.emulator import LiveEmulator, client_context
from pispeaker.emulator.wire import MAX_REASON_BYTES
from tests.conftest import (
    MODEL,
    StartEmulator,
    audio_config,
    next_turn,
    padded,
    sdk_client,
    speech,
)

TOKEN = "auth_tokens/emulator-token"


@pytest.mark.parametrize("api_version", ["v1", "v1beta", "v1alpha"])
async def test_setup_complete_comes_first_on_every_api_version(
    emulator: LiveEmulator, api_version: str
) -> None:
    client = sdk_client(emulator, api_version=api_version)
    async with client.aio.live.connect(model=MODEL, config=audio_config()) as session:
        assert session.setup_complete == types.LiveServerSetupComplete()
    [connect] = emulator.timeline.of("connect")
    assert connect.data == {"api_version": api_version, "method": "BidiGenerateContent"}


async def test_base_url_with_trailing_slash_gives_double_slash_path(emulator: LiveEmulator) -> None:
    client = sdk_client(emulator, base_url=emulator.base_url + "/")
    async with client.aio.live.connect(model=MODEL, config=audio_config()) as session:
        assert session.setup_complete is not None


async def test_ephemeral_token_uses_constrained_method(start_emulator: StartEmulator) -> None:
    emulator = await start_emulator(api_keys=frozenset({TOKEN}))
    client = sdk_client(emulator, api_key=TOKEN, api_version="v1alpha")
    with pytest.warns(errors.ExperimentalWarning):
        async with client.aio.live.connect(model=MODEL, config=audio_config()) as session:
            assert session.setup_complete is not None
    [connect] = emulator.timeline.of("connect")
    assert connect.data["method"] == "BidiGenerateContentConstrained"


async def test_bad_api_key_is_closed_with_1007_and_the_real_reason(emulator: LiveEmulator) -> None:
    client = sdk_client(emulator, api_key="AIza-wrong")
    with pytest.raises(errors.APIError) as raised:
        async with client.aio.live.connect(model=MODEL, config=audio_config()):
            pass
    assert raised.value.code == 1007
    assert raised.value.details == "API key not valid. Please pass a valid API key."


async def test_unknown_model_is_closed_with_1008_and_a_truncated_reason(
    emulator: LiveEmulator,
) -> None:
    model = "gemini-9.9-live-" + "x" * 40
    with pytest.raises(errors.APIError) as raised:
        async with sdk_client(emulator).aio.live.connect(model=model, config=audio_config()):
            pass
    assert raised.value.code == 1008
    reason = str(raised.value.details)
    assert reason.startswith(f"models/{model} is not found for API version v1beta")
    assert len(reason.encode()) <= MAX_REASON_BYTES


async def test_text_modality_is_rejected_by_native_audio_models(emulator: LiveEmulator) -> None:
    config = types.LiveConnectConfig(response_modalities=[types.Modality.TEXT])
    with pytest.raises(errors.APIError) as raised:
        async with sdk_client(emulator).aio.live.connect(model=MODEL, config=config):
            pass
    assert raised.value.code == 1007
    assert "response modalities (TEXT)" in str(raised.value.details)


async def test_deprecated_media_chunks_are_closed_with_1007(emulator: LiveEmulator) -> None:
    async with sdk_client(emulator).aio.live.connect(model=MODEL, config=audio_config()) as session:
        blob = types.Blob(data=speech(0.02), mime_type="audio/pcm;rate=16000")
        with pytest.warns(DeprecationWarning, match="send"):
            await session.send(input=blob)
        with pytest.raises(errors.APIError) as raised:
            await next_turn(session)
    assert raised.value.code == 1007
    assert raised.value.details == (
        "realtime_input.media_chunks is deprecated. Use audio, video, or text instead."
    )


# -- a raw client, as the JavaScript SDK and the docs speak the protocol --------------------


def _raw_url(emulator: LiveEmulator, query: str = "") -> str:
    path = "ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
    return f"wss://127.0.0.1:{emulator.port}/{path}{query}"


def _camel_audio(pcm: bytes) -> str:
    data = base64.b64encode(pcm).decode()  # the standard alphabet, as JS sends it
    return json.dumps(
        {"realtimeInput": {"audio": {"data": data, "mimeType": "audio/pcm;rate=16000"}}}
    )


async def _raw_turn(ws: websockets.ClientConnection) -> tuple[list[dict[str, object]], bytes]:
    messages, audio = [], b""
    while True:
        frame = await ws.recv()
        assert isinstance(frame, bytes), "the service sends JSON in binary frames"
        message = json.loads(frame)
        messages.append(message)
        for part in message.get("serverContent", {}).get("modelTurn", {}).get("parts", []):
            audio += base64.b64decode(part["inlineData"]["data"])
        if message.get("serverContent", {}).get("turnComplete"):
            return messages, audio


@pytest.mark.parametrize("query", ["?key={key}", "?access_token={key}"])
async def test_raw_camel_case_client_with_query_auth_and_standard_base64(
    emulator: LiveEmulator, query: str
) -> None:
    said = speech(0.6)
    url = _raw_url(emulator, query.format(key=emulator.api_key))
    async with ws_connect(url, ssl=client_context(emulator.ca_file)) as ws:
        await ws.send(json.dumps({"setup": {"model": f"models/{MODEL}"}}))
        assert json.loads(await ws.recv()) == {"setupComplete": {}}
        for offset in range(0, len(padded(said)), 640):
            await ws.send(_camel_audio(padded(said)[offset : offset + 640]))
        messages, audio = await _raw_turn(ws)
    assert audio == resample(said, INPUT_RATE, OUTPUT_RATE)
    assert all(len(message) <= 2 for message in messages)  # one kind (+ usageMetadata)


async def test_first_message_must_be_setup(emulator: LiveEmulator) -> None:
    async with ws_connect(
        _raw_url(emulator, f"?key={emulator.api_key}"), ssl=client_context(emulator.ca_file)
    ) as ws:
        await ws.send(_camel_audio(speech(0.02)))
        with pytest.raises(websockets.ConnectionClosedError) as raised:
            await ws.recv()
    assert raised.value.rcvd is not None
    assert raised.value.rcvd.code == 1007


async def test_second_setup_is_rejected(emulator: LiveEmulator) -> None:
    async with ws_connect(
        _raw_url(emulator, f"?key={emulator.api_key}"), ssl=client_context(emulator.ca_file)
    ) as ws:
        setup = json.dumps({"setup": {"model": f"models/{MODEL}"}})
        await ws.send(setup)
        await ws.recv()
        await ws.send(setup)
        with pytest.raises(websockets.ConnectionClosedError) as raised:
            await ws.recv()
    assert raised.value.rcvd is not None
    assert (raised.value.rcvd.code, raised.value.rcvd.reason) == (
        1007,
        "Request contains an invalid argument.",
    )


async def test_unknown_path_is_refused_at_the_upgrade(emulator: LiveEmulator) -> None:
    url = f"wss://127.0.0.1:{emulator.port}/ws/google.ai.generativelanguage.v2.Nope"
    with pytest.raises(websockets.InvalidStatus) as raised:
        async with ws_connect(url, ssl=client_context(emulator.ca_file)):
            pass
    assert raised.value.response.status_code == 404
