"""pispeaker's own Live client (config -> SDK) against the emulator."""

import ssl

import pytest

from pispeaker.audio.pcm import INPUT_RATE, OUTPUT_RATE, resample
from pispeaker.config import LiveConfig
from pispeaker.emulator import LiveEmulator
from pispeaker.live.smoke import exchange
from tests.conftest import padded, speech


def _pointed_at(emulator: LiveEmulator, **fields: object) -> LiveConfig:
    update = {"base_url": emulator.base_url, "ca_file": emulator.ca_file} | fields
    return LiveConfig().model_copy(update=update)


async def test_exchange_through_config_returns_the_parrot_reply(emulator: LiveEmulator) -> None:
    said = speech(0.9)
    reports: list[tuple[str, str]] = []
    result = await exchange(
        _pointed_at(emulator),
        emulator.api_key,
        padded(said),
        lambda source, text: reports.append((source, text)),
        realtime=False,
    )
    assert bytes(result.reply) == resample(said, INPUT_RATE, OUTPUT_RATE)
    assert result.turn_complete
    assert result.said == ["Reply", " 1."]
    assert result.response_latency_s is not None
    assert result.response_latency_s >= 0
    assert ("live", "turn complete") in reports


async def test_config_reaches_the_wire(emulator: LiveEmulator) -> None:
    live = _pointed_at(
        emulator,
        voice="Puck",
        language="de-DE",
        silence_duration_ms=300,
        prefix_padding_ms=60,
        start_of_speech_sensitivity="low",
        activity_handling="no_interruption",
        input_transcription=False,
        session_resumption=True,
        context_window_compression=True,
        system_instruction="Sprich Deutsch.",
    )
    await exchange(live, emulator.api_key, padded(speech(0.3)), lambda s, t: None, realtime=False)
    [setup] = emulator.timeline.of("setup")
    sent = setup.data["setup"]
    assert sent["model"] == f"models/{live.model}"
    assert sent["generationConfig"]["responseModalities"] == ["AUDIO"]
    speech_config = sent["generationConfig"]["speechConfig"]
    assert speech_config["voiceConfig"]["prebuiltVoiceConfig"]["voiceName"] == "Puck"
    assert speech_config["languageCode"] == "de-DE"
    assert sent["systemInstruction"]["parts"] == [{"text": "Sprich Deutsch."}]
    realtime = sent["realtimeInputConfig"]
    assert realtime["activityHandling"] == "NO_INTERRUPTION"
    assert realtime["automaticActivityDetection"] == {
        "disabled": False,
        "startOfSpeechSensitivity": "START_SENSITIVITY_LOW",
        "endOfSpeechSensitivity": "END_SENSITIVITY_HIGH",
        "prefixPaddingMs": 60,
        "silenceDurationMs": 300,
    }
    assert "inputAudioTranscription" not in sent
    assert "outputAudioTranscription" in sent
    assert "sessionResumption" in sent
    assert "contextWindowCompression" in sent


async def test_emulator_is_refused_without_its_ca_file(emulator: LiveEmulator) -> None:
    live = _pointed_at(emulator, ca_file=None)  # the system CAs alone do not trust it
    with pytest.raises(ssl.SSLCertVerificationError):
        await exchange(
            live, emulator.api_key, padded(speech(0.2)), lambda s, t: None, realtime=False
        )
