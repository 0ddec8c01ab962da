"""Tests for pispeaker.emulator.wire: key casing, parsing, base64, server messages, closes."""

import base64
import json
from typing import Any

import pytest

from pispeaker.emulator import wire

TRICKY = b"\xfb\xff\xfe\xfb"  # base64url "-__--w==", standard "+//++w=="


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("client_content", "clientContent"),
        ("realtime_input_config", "realtimeInputConfig"),
        ("automatic_activity_detection", "automaticActivityDetection"),
        ("clientContent", "clientContent"),
        ("setup", "setup"),
        ("mime_type", "mimeType"),
        ("turnComplete", "turnComplete"),
    ],
)
def test_camel(key: str, expected: str) -> None:
    assert wire.camel(key) == expected


def test_camel_is_idempotent() -> None:
    for key in ("tool_response", "function_responses", "prebuilt_voice_config"):
        assert wire.camel(wire.camel(key)) == wire.camel(key)


def test_normalize_folds_snake_case_at_every_level() -> None:
    message = {
        "setup": {
            "model": "models/x",
            "generation_config": {
                "response_modalities": ["AUDIO"],
                "speech_config": {
                    "voice_config": {"prebuilt_voice_config": {"voice_name": "Puck"}}
                },
            },
            "realtimeInputConfig": {"automatic_activity_detection": {"silence_duration_ms": 300}},
        }
    }
    assert wire.normalize(message) == {
        "setup": {
            "model": "models/x",
            "generationConfig": {
                "responseModalities": ["AUDIO"],
                "speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Puck"}}},
            },
            "realtimeInputConfig": {"automaticActivityDetection": {"silenceDurationMs": 300}},
        }
    }


def test_normalize_descends_into_lists() -> None:
    message = {"client_content": {"turns": [{"role": "user", "parts": [{"inline_data": {}}]}]}}
    assert wire.normalize(message) == {
        "clientContent": {"turns": [{"role": "user", "parts": [{"inlineData": {}}]}]}
    }


def test_normalize_leaves_tool_response_payload_alone() -> None:
    message = {
        "tool_response": {
            "function_responses": [
                {"id": "x", "name": "get_time", "response": {"snake_key": 1, "deep": {"a_b": 2}}}
            ]
        }
    }
    assert wire.normalize(message) == {
        "toolResponse": {
            "functionResponses": [
                {"id": "x", "name": "get_time", "response": {"snake_key": 1, "deep": {"a_b": 2}}}
            ]
        }
    }


def test_normalize_leaves_schemas_and_args_alone() -> None:
    declaration = {
        "function_declarations": [
            {
                "name": "set_timer",
                "parameters": {"type": "OBJECT", "properties": {"duration_s": {"type": "NUMBER"}}},
            },
            {
                "name": "set_alarm",
                "parameters_json_schema": {"properties": {"at_time": {"type": "string"}}},
            },
        ]
    }
    result = wire.normalize({"setup": {"tools": [declaration]}})
    declarations = result["setup"]["tools"][0]["functionDeclarations"]
    assert declarations[0]["parameters"]["properties"] == {"duration_s": {"type": "NUMBER"}}
    assert declarations[1]["parametersJsonSchema"] == {
        "properties": {"at_time": {"type": "string"}}
    }
    call = wire.normalize({"function_call": {"args": {"snake_arg": {"inner_key": 1}}}})
    assert call == {"functionCall": {"args": {"snake_arg": {"inner_key": 1}}}}


def test_normalize_passes_scalars_through() -> None:
    assert wire.normalize("some_text") == "some_text"
    assert wire.normalize(3) == 3
    assert wire.normalize(None) is None


@pytest.mark.parametrize("frame_type", [str, bytes])
def test_parse_client_message_text_and_binary(frame_type: type) -> None:
    text = json.dumps({"realtime_input": {"audio": {"mime_type": "audio/pcm", "data": "AAA="}}})
    raw = text if frame_type is str else text.encode()
    assert wire.parse_client_message(raw) == {
        "realtimeInput": {"audio": {"mimeType": "audio/pcm", "data": "AAA="}}
    }


@pytest.mark.parametrize(
    "raw", ["not json", b"{broken", b"\xff\xfe\x00garbage", "", "{'single': 'quotes'}"]
)
def test_parse_client_message_rejects_non_json(raw: str | bytes) -> None:
    with pytest.raises(wire.WireError):
        wire.parse_client_message(raw)


@pytest.mark.parametrize("raw", ["[1, 2]", "42", '"setup"', "null", b"[]", "true"])
def test_parse_client_message_rejects_non_objects(raw: str | bytes) -> None:
    with pytest.raises(wire.WireError):
        wire.parse_client_message(raw)


def test_wire_error_is_a_value_error() -> None:
    assert issubclass(wire.WireError, ValueError)


def test_the_two_alphabets_really_differ_for_the_sample() -> None:
    assert base64.urlsafe_b64encode(TRICKY).decode() == "-__--w=="
    assert base64.b64encode(TRICKY).decode() == "+//++w=="


@pytest.mark.parametrize("text", ["-__--w==", "+//++w==", "-__--w", "+//++w", "-__--w="])
def test_decode_bytes_accepts_either_alphabet_padded_or_not(text: str) -> None:
    assert wire.decode_bytes(text) == TRICKY


def test_decode_bytes_round_trips_arbitrary_lengths() -> None:
    for n in range(10):
        data = bytes(range(250, 250 - n, -1))
        assert wire.decode_bytes(base64.urlsafe_b64encode(data).decode().rstrip("=")) == data
        assert wire.decode_bytes(wire.encode_bytes(data)) == data


@pytest.mark.parametrize(
    "text",
    [
        "a",  # one character cannot encode any byte
        "abcde",  # 4n + 1 characters
        "abc!",  # a character outside both alphabets
        "@@@@",  # nothing but characters outside both alphabets
        "AAAA@@@@",  # valid data followed by junk
    ],
)
def test_decode_bytes_rejects_invalid_base64(text: str) -> None:
    with pytest.raises(wire.WireError):
        wire.decode_bytes(text)


def test_encode_bytes_is_standard_padded_base64() -> None:
    assert wire.encode_bytes(TRICKY) == "+//++w=="
    assert wire.encode_bytes(b"\x00") == "AA=="


def test_server_message_is_binary_json_with_camel_case_kind() -> None:
    raw = wire.server_message("setupComplete", {})
    assert isinstance(raw, bytes)
    assert json.loads(raw) == {"setupComplete": {}}


def test_server_message_rejects_unknown_kinds() -> None:
    for kind in ("setup_complete", "server_content", "error", "usageMetadata", "nonsense"):
        with pytest.raises(ValueError, match=kind):
            wire.server_message(kind, {})


def test_server_message_accepts_every_known_kind() -> None:
    for kind in wire.SERVER_KINDS:
        assert list(json.loads(wire.server_message(kind, {"x": 1}))) == [kind]


def test_server_message_prunes_proto3_defaults_below_top_level() -> None:
    body: dict[str, Any] = {
        "turnComplete": False,
        "interrupted": True,
        "generationComplete": None,
        "outputTranscription": {"text": "", "finished": 0},
        "modelTurn": {"parts": []},
        "groundingMetadata": {},
        "turnCompleteReason": "",
        "waitingForInput": 0.0,
        "count": 3,
    }
    message = json.loads(wire.server_message("serverContent", body))
    assert message == {
        "serverContent": {
            "interrupted": True,
            "outputTranscription": {},
            "modelTurn": {},
            "groundingMetadata": {},
            "count": 3,
        }
    }


def test_server_message_prunes_inside_lists_but_keeps_list_items() -> None:
    body: dict[str, Any] = {"functionCalls": [{"id": "a", "name": "f", "args": {}, "extra": None}]}
    message = json.loads(wire.server_message("toolCall", body))
    assert message == {"toolCall": {"functionCalls": [{"id": "a", "name": "f", "args": {}}]}}


def test_server_message_extra_top_level_companions() -> None:
    raw = wire.server_message(
        "serverContent",
        {"turnComplete": True},
        usageMetadata={"totalTokenCount": 12, "promptTokenCount": 0},
    )
    assert json.loads(raw) == {
        "serverContent": {"turnComplete": True},
        "usageMetadata": {"totalTokenCount": 12},
    }
    assert json.loads(wire.server_message("goAway", {"timeLeft": "5s"}, usageMetadata=None)) == {
        "goAway": {"timeLeft": "5s"}
    }


def test_server_message_does_not_mutate_body() -> None:
    body = {"turnComplete": False, "interrupted": True}
    wire.server_message("serverContent", body)
    assert body == {"turnComplete": False, "interrupted": True}


def test_audio_part_carries_24k_mime_and_standard_base64() -> None:
    part = wire.audio_part(TRICKY)
    assert part == {"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": "+//++w=="}}
    assert wire.decode_bytes(part["inlineData"]["data"]) == TRICKY


def test_truncate_reason_leaves_short_reasons_alone() -> None:
    assert wire.truncate_reason("Internal error encountered.") == "Internal error encountered."
    assert wire.truncate_reason("") == ""
    exact = "x" * wire.MAX_REASON_BYTES
    assert wire.truncate_reason(exact) == exact


def test_truncate_reason_cuts_ascii_to_123_bytes() -> None:
    reason = "".join(chr(ord("a") + i % 26) for i in range(300))
    cut = wire.truncate_reason(reason)
    assert len(cut.encode()) == wire.MAX_REASON_BYTES
    assert reason.startswith(cut)


@pytest.mark.parametrize("char", ["é", "€", "🎤"])
def test_truncate_reason_never_splits_a_multibyte_character(char: str) -> None:
    reason = char * 200
    cut = wire.truncate_reason(reason)
    encoded = cut.encode()
    width = len(char.encode())
    assert len(encoded) <= wire.MAX_REASON_BYTES
    # As many whole characters as fit, and only whole ones.
    assert cut == char * (wire.MAX_REASON_BYTES // width)
    assert len(encoded) > wire.MAX_REASON_BYTES - width


def test_unknown_model_close() -> None:
    close = wire.unknown_model("gemini-nonexistent", "v1beta")
    assert close.code == 1008
    reason = wire.truncate_reason(close.reason)
    assert len(reason.encode()) <= wire.MAX_REASON_BYTES
    assert reason.startswith("models/gemini-nonexistent is not found for API version v1beta")
    assert close.reason.startswith(reason)


def test_unknown_model_close_names_the_api_version() -> None:
    reason = wire.truncate_reason(wire.unknown_model("m", "v1").reason)
    assert reason.startswith("models/m is not found for API version v1,")


def test_close_codes_of_the_named_closes() -> None:
    assert (wire.NORMAL.code, wire.NORMAL.reason) == (1000, "")
    for close in (wire.BAD_KEY, wire.NO_KEY, wire.INVALID_ARGUMENT, wire.MEDIA_CHUNKS):
        assert close.code == 1007
    assert wire.NOT_FOUND.code == 1008
    for close in (wire.INTERNAL, wire.UNAVAILABLE, wire.QUOTA, wire.DEADLINE):
        assert close.code == 1011
    every = [wire.BAD_KEY, wire.NO_KEY, wire.INVALID_ARGUMENT, wire.MEDIA_CHUNKS]
    every += [wire.TEXT_MODALITY, wire.NOT_FOUND, wire.INTERNAL, wire.UNAVAILABLE, wire.QUOTA]
    for close in [*every, wire.DEADLINE]:
        assert len(close.reason.encode()) <= wire.MAX_REASON_BYTES


@pytest.mark.parametrize(
    ("seconds", "text"), [(50, "50s"), (9.5, "9.5s"), (0, "0s"), (0.25, "0.25s"), (120.0, "120s")]
)
def test_duration_text(seconds: float, text: str) -> None:
    assert wire.duration_text(seconds) == text
