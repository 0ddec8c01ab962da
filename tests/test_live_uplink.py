"""The uplink's cost-saving choices keep what reaches the wire: the same websocket handshake,
and every chunk whole."""

import zlib

from websockets.extensions.permessage_deflate import (
    PerMessageDeflate,
    enable_client_permessage_deflate,
)

from pispeaker.config import LiveConfig
from pispeaker.emulator import LiveEmulator
from pispeaker.live import genai
from tests.conftest import speech

CHUNK = 640  # 20 ms of 16 kHz s16le


def _pointed_at(emulator: LiveEmulator) -> LiveConfig:
    update = {"base_url": emulator.base_url, "ca_file": emulator.ca_file}
    return LiveConfig().model_copy(update=update)


def test_the_deflate_offer_is_websockets_default() -> None:
    [default] = enable_client_permessage_deflate(None)
    assert genai.uplink_deflate().get_request_params() == default.get_request_params()


async def test_uplink_is_huffman_coded_within_the_negotiated_deflate(
    emulator: LiveEmulator,
) -> None:
    live = _pointed_at(emulator)
    said = speech(0.5)
    async with genai.connect(genai.make_client(live, emulator.api_key), live, None, []) as session:
        ws = session._session._ws  # the SDK's websocket (no public way to it)
        [deflate] = ws.protocol.extensions
        assert isinstance(deflate, PerMessageDeflate)  # agreed, so the downlink is compressed
        assert deflate.compress_settings["strategy"] == zlib.Z_HUFFMAN_ONLY
        for start in range(0, len(said), CHUNK):
            await session.send_audio(said[start : start + CHUNK])
        [stored] = emulator.store.sessions.values()
        await emulator.timeline.wait_for(
            "audio.in", lambda _: stored.uploaded_audio_bytes == len(said), within_s=5
        )
    chunks = [event.data["bytes"] for event in emulator.timeline.of("audio.in")]
    assert chunks == [CHUNK] * (len(said) // CHUNK)
