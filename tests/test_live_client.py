"""pispeaker's own Live client: the [live] config reaches the wire unchanged."""

from pispeaker.config import LiveConfig
from pispeaker.emulator import LiveEmulator
from pispeaker.live.link import LiveLink
from pispeaker.live.port import Kind, Lost, Ready
from tests.conftest import Recorder


def _pointed_at(emulator: LiveEmulator, **fields: object) -> LiveConfig:
    update = {"base_url": emulator.base_url, "ca_file": emulator.ca_file} | fields
    return LiveConfig().model_copy(update=update)


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
        api_version="v1alpha",
    )
    recorder = Recorder()
    link = LiveLink(live, emulator.api_key, recorder)
    link.open()
    await recorder.wait_for(Ready)
    await link.close()
    [connect] = emulator.timeline.of("connect")
    assert connect.data["api_version"] == "v1alpha"
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
    recorder = Recorder()
    link = LiveLink(_pointed_at(emulator, ca_file=None), emulator.api_key, recorder)
    link.open()
    lost = await recorder.wait_for(Lost)
    assert isinstance(lost, Lost)
    assert lost.failure.kind is Kind.FATAL
    assert "live.ca_file" in lost.failure.message
