"""Build the google-genai client and the Live session configuration from pispeaker's config.

The same code talks to the real service and to the emulator: only ``live.base_url``,
``live.api_version`` and ``live.ca_file`` differ.
"""

import ssl
from typing import Any

from google import genai
from google.genai import types

from pispeaker.config import LiveConfig
from pispeaker.tools import Tool

INPUT_MIME = "audio/pcm;rate=16000"

_START = {
    "high": types.StartSensitivity.START_SENSITIVITY_HIGH,
    "low": types.StartSensitivity.START_SENSITIVITY_LOW,
}
_END = {
    "high": types.EndSensitivity.END_SENSITIVITY_HIGH,
    "low": types.EndSensitivity.END_SENSITIVITY_LOW,
}
_ACTIVITY = {
    "interrupt": types.ActivityHandling.START_OF_ACTIVITY_INTERRUPTS,
    "no_interruption": types.ActivityHandling.NO_INTERRUPTION,
}


def make_client(live: LiveConfig, api_key: str) -> genai.Client:
    """A client for ``live.base_url`` with pispeaker's websocket settings."""
    return genai.Client(
        api_key=api_key,
        http_options=types.HttpOptions(
            base_url=live.base_url,
            api_version=live.api_version,
            async_client_args=_websocket_args(live),
        ),
    )


def _websocket_args(live: LiveConfig) -> dict[str, Any]:
    # Passed through to websockets' connect(). The default 20 s keepalive is shorter than
    # the Live API's observed pong latency, so the interval is config (0 disables).
    args: dict[str, Any] = {
        "ping_interval": live.ping_interval_s or None,
        "ping_timeout": live.ping_timeout_s,
        "open_timeout": live.connect_timeout_s,
    }
    if live.ca_file is not None:
        context = ssl.create_default_context()
        context.load_verify_locations(cafile=str(live.ca_file))
        args["ssl"] = context
    return args


def connect_config(
    live: LiveConfig, resume_handle: str | None = None, tools: list[types.Tool] | None = None
) -> types.LiveConnectConfig:
    """The LiveConnectConfig for one session (``resume_handle`` continues an earlier one)."""
    return types.LiveConnectConfig(
        tools=tools or None,
        response_modalities=[types.Modality.AUDIO],
        system_instruction=live.system_instruction,
        speech_config=types.SpeechConfig(
            voice_config=types.VoiceConfig(
                prebuilt_voice_config=types.PrebuiltVoiceConfig(voice_name=live.voice)
            ),
            language_code=live.language or None,
        ),
        realtime_input_config=types.RealtimeInputConfig(
            automatic_activity_detection=types.AutomaticActivityDetection(
                disabled=False,
                start_of_speech_sensitivity=_START[live.start_of_speech_sensitivity],
                end_of_speech_sensitivity=_END[live.end_of_speech_sensitivity],
                prefix_padding_ms=live.prefix_padding_ms,
                silence_duration_ms=live.silence_duration_ms,
            ),
            activity_handling=_ACTIVITY[live.activity_handling],
        ),
        input_audio_transcription=_enabled(live.input_transcription),
        output_audio_transcription=_enabled(live.output_transcription),
        session_resumption=(
            types.SessionResumptionConfig(handle=resume_handle) if live.session_resumption else None
        ),
        context_window_compression=(
            types.ContextWindowCompressionConfig(sliding_window=types.SlidingWindow())
            if live.context_window_compression
            else None
        ),
    )


def _enabled(flag: bool) -> types.AudioTranscriptionConfig | None:
    return types.AudioTranscriptionConfig() if flag else None


def declarations(tools: list[Tool]) -> list[types.Tool]:
    """The tools as the session setup declares them (JSON schema parameters)."""
    if not tools:
        return []
    return [
        types.Tool(
            function_declarations=[
                types.FunctionDeclaration(
                    name=tool.name,
                    description=tool.description,
                    parameters_json_schema=tool.parameters,
                )
                for tool in tools
            ]
        )
    ]
