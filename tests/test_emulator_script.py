"""Tests for pispeaker.emulator.script: reply audio, chunking, transcripts and the queue."""

import pytest

from pispeaker.audio import pcm
from pispeaker.audio.resample import resample
from pispeaker.emulator.script import (
    CHUNK_S,
    FIRST_CHUNK_S,
    Reply,
    Script,
    ToolCall,
    UserTurn,
    render_audio,
    split_chunks,
    split_words,
)
from tests.signals import dominant_frequency

FIRST = 9_600  # 200 ms at 24 kHz s16le
NEXT = 11_520  # 240 ms at 24 kHz s16le


def numbered(n_bytes: int) -> bytes:
    return bytes(i % 251 for i in range(n_bytes))


def test_chunk_sizes_are_the_services() -> None:
    assert pcm.byte_count(FIRST_CHUNK_S, pcm.OUTPUT_RATE) == FIRST
    assert pcm.byte_count(CHUNK_S, pcm.OUTPUT_RATE) == NEXT


@pytest.mark.parametrize(
    ("n_bytes", "sizes"),
    [
        (1, [1]),
        (FIRST - 2, [FIRST - 2]),
        (FIRST, [FIRST]),
        (FIRST + 2, [FIRST, 2]),
        (FIRST + NEXT, [FIRST, NEXT]),
        (FIRST + 2 * NEXT + 7_680, [FIRST, NEXT, NEXT, 7_680]),
        (48_000, [FIRST, NEXT, NEXT, NEXT, 48_000 - FIRST - 3 * NEXT]),
    ],
)
def test_split_chunks_sizes(n_bytes: int, sizes: list[int]) -> None:
    chunks = split_chunks(numbered(n_bytes))
    assert [len(chunk) for chunk in chunks] == sizes


def test_split_chunks_concatenates_back_to_the_input() -> None:
    audio = numbered(5 * NEXT + 1234)
    chunks = split_chunks(audio)
    assert b"".join(chunks) == audio
    assert len(chunks[0]) == FIRST
    assert all(len(chunk) == NEXT for chunk in chunks[1:-1])
    assert 0 < len(chunks[-1]) <= NEXT


def test_split_chunks_of_one_second_of_tone() -> None:
    audio = pcm.tone(440, 1.0, pcm.OUTPUT_RATE)
    chunks = split_chunks(audio)
    durations = [pcm.duration_s(chunk, pcm.OUTPUT_RATE) for chunk in chunks]
    assert durations == pytest.approx([0.2, 0.24, 0.24, 0.24, 0.08])
    assert b"".join(chunks) == audio


def test_split_chunks_of_nothing_is_no_chunks() -> None:
    assert split_chunks(b"") == []


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("one two three four five six", 3),
        ("one two three four five six", 6),
        ("one two three four five six seven eight", 4),
        ("a b c d e f g h i j k l", 5),
        ("single", 4),
        ("two words", 5),
        ("Reply 1.", 1),
        ("  leading and  double spaces ", 3),
        ("", 2),
    ],
)
def test_split_words_joins_back_to_the_text(text: str, parts: int) -> None:
    pieces = split_words(text, parts)
    assert "".join(pieces) == text
    assert 1 <= len(pieces) <= max(parts, 1)


@pytest.mark.parametrize("parts", [0, -1])
def test_split_words_with_no_parts_keeps_the_text(parts: int) -> None:
    assert "".join(split_words("hello there world", parts)) == "hello there world"


def test_split_words_spreads_evenly_when_divisible() -> None:
    pieces = split_words("one two three four five six", 3)
    assert pieces == ["one two", " three four", " five six"]


def test_split_words_one_word_per_part() -> None:
    assert split_words("a b c", 3) == ["a", " b", " c"]


@pytest.mark.parametrize(
    ("n_words", "parts"), [(5, 4), (7, 6), (10, 4), (9, 9), (13, 5), (20, 6), (6, 5)]
)
def test_split_words_uses_every_part_when_there_are_enough_words(n_words: int, parts: int) -> None:
    # The transcript is interleaved with the audio chunks: with at least one word per chunk,
    # every chunk should carry a piece, not only the first few.
    text = " ".join(f"w{i}" for i in range(n_words))
    pieces = split_words(text, parts)
    assert "".join(pieces) == text
    assert len(pieces) == parts
    assert all(piece.strip() for piece in pieces)


def test_split_words_fewer_words_than_parts() -> None:
    pieces = split_words("hi there", 5)
    assert pieces == ["hi", " there"]


def test_render_parrot_is_the_user_audio_at_24k() -> None:
    said = pcm.tone(700, 0.5, pcm.INPUT_RATE)
    out = render_audio(Reply(), UserTurn(audio=said))
    assert out == resample(said, pcm.INPUT_RATE, pcm.OUTPUT_RATE)
    assert pcm.duration_s(out, pcm.OUTPUT_RATE) == pytest.approx(0.5, abs=1e-3)
    assert dominant_frequency(out, pcm.OUTPUT_RATE) == pytest.approx(700, abs=4)


def test_render_parrot_ignores_seconds_and_frequency() -> None:
    said = pcm.tone(700, 0.3, pcm.INPUT_RATE)
    out = render_audio(Reply(seconds=5.0, frequency_hz=200.0), UserTurn(audio=said))
    assert pcm.duration_s(out, pcm.OUTPUT_RATE) == pytest.approx(0.3, abs=1e-3)


def test_render_parrot_for_a_text_turn_falls_back_to_a_tone() -> None:
    reply = Reply(audio="parrot", seconds=0.5, frequency_hz=880.0)
    out = render_audio(reply, UserTurn(text="what time is it"))
    assert len(out) == pcm.byte_count(0.5, pcm.OUTPUT_RATE)
    assert pcm.rms_dbfs(out) > -20
    assert dominant_frequency(out, pcm.OUTPUT_RATE) == pytest.approx(880, abs=4)
    assert out == pcm.tone(880.0, 0.5, pcm.OUTPUT_RATE)


@pytest.mark.parametrize("seconds", [0.1, 0.75, 2.0])
def test_render_tone(seconds: float) -> None:
    reply = Reply(audio="tone", seconds=seconds, frequency_hz=300.0)
    out = render_audio(reply, UserTurn(audio=pcm.tone(1_000, 0.2, pcm.INPUT_RATE)))
    assert len(out) == pcm.byte_count(seconds, pcm.OUTPUT_RATE)
    assert dominant_frequency(out, pcm.OUTPUT_RATE) == pytest.approx(300, abs=1 / seconds + 2)


@pytest.mark.parametrize("seconds", [0.1, 1.5])
def test_render_silence(seconds: float) -> None:
    reply = Reply(audio="silence", seconds=seconds)
    out = render_audio(reply, UserTurn(audio=pcm.tone(1_000, 0.2, pcm.INPUT_RATE)))
    assert len(out) == pcm.byte_count(seconds, pcm.OUTPUT_RATE)
    assert pcm.rms_dbfs(out) == pcm.SILENCE_DBFS


def test_render_raw_bytes_pass_through() -> None:
    raw = numbered(4_802)
    assert render_audio(Reply(audio=raw), UserTurn(audio=b"\x01\x00" * 100)) == raw
    assert render_audio(Reply(audio=raw), UserTurn(text="hello")) == raw
    assert render_audio(Reply(audio=b""), UserTurn(text="hello")) == b""


def test_reply_defaults() -> None:
    reply = Reply()
    assert reply.audio == "parrot"
    assert reply.text is None
    assert reply.heard is None
    assert reply.tool_calls == ()


def test_tool_call_defaults_to_no_args() -> None:
    assert ToolCall("get_time").args == {}
    assert ToolCall("get_time").args is not ToolCall("get_time").args


def test_script_replies_in_push_order_then_default() -> None:
    script = Script()
    first, second, third = Reply(text="one"), Reply(text="two"), Reply(audio="tone")
    script.push(first, second)
    script.push(third)
    assert script.next_reply() is first
    assert script.next_reply() is second
    assert script.next_reply() is third
    assert script.next_reply() == Reply()
    assert script.next_reply() == Reply()


def test_script_custom_default() -> None:
    default = Reply(audio="silence", seconds=0.2)
    script = Script(default)
    assert script.next_reply() is default
    script.push(Reply(text="queued"))
    assert script.next_reply().text == "queued"
    assert script.next_reply() is default


def test_script_extend_from_an_iterable() -> None:
    script = Script()
    script.push(*(Reply(text=str(i)) for i in range(3)))
    script.push(Reply(text="3"))
    assert [script.next_reply().text for _ in range(5)] == ["0", "1", "2", "3", None]


def test_scripts_do_not_share_queues() -> None:
    a, b = Script(), Script()
    a.push(Reply(text="only a"))
    assert b.next_reply().text is None
    assert a.next_reply().text == "only a"


@pytest.mark.parametrize(
    ("seconds", "expected"), [(1.0, "[1.00 s of speech]"), (0.5, "[0.50 s of speech]")]
)
def test_user_turn_describe_audio(seconds: float, expected: str) -> None:
    turn = UserTurn(audio=pcm.silence(seconds, pcm.INPUT_RATE))
    assert turn.describe() == expected


def test_user_turn_describe_rounds_to_centiseconds() -> None:
    turn = UserTurn(audio=bytes(pcm.byte_count(1.234, pcm.INPUT_RATE)))
    assert turn.describe() == "[1.23 s of speech]"


def test_user_turn_describe_text() -> None:
    assert UserTurn(text="turn on the lights").describe() == "turn on the lights"
    assert UserTurn(text="").describe() == ""
    assert UserTurn().describe() == "[0.00 s of speech]"
