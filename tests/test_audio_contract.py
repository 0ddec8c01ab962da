"""The audio port contract, run against every adapter (the ALSA adapter joins with issue 4)."""

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from pispeaker.audio.memory import MemorySink, MemorySource
from pispeaker.audio.pcm import INPUT_RATE, OUTPUT_RATE, byte_count, tone
from pispeaker.audio.ports import AudioSink, AudioSource, DeviceLostError, PrerollRing

REPLY = tone(440, 1.0, OUTPUT_RATE)
PIECE = byte_count(0.1, OUTPUT_RATE)

SINKS: dict[str, Callable[[], AudioSink]] = {"memory-realtime": lambda: MemorySink(realtime=True)}
SOURCES: dict[str, Callable[[bytes], AudioSource]] = {"memory": lambda audio: MemorySource(audio)}


@pytest.fixture(params=list(SINKS))
async def sink(request: pytest.FixtureRequest) -> AsyncIterator[AudioSink]:
    adapter = SINKS[request.param]()
    await adapter.start()
    yield adapter
    await adapter.stop()


def _write_pieces(sink: AudioSink, pcm: bytes) -> None:
    for offset in range(0, len(pcm), PIECE):
        sink.write(pcm[offset : offset + PIECE])


def _played(sink: AudioSink) -> bytes:
    assert isinstance(sink, MemorySink)  # each adapter gets its own way to read the output
    return bytes(sink.played)


async def test_sink_plays_everything_in_order_and_taps_it(sink: AudioSink) -> None:
    tapped = bytearray()
    sink.tap = tapped.extend
    _write_pieces(sink, REPLY[: 3 * PIECE])
    await asyncio.wait_for(sink.drain(), 5)
    assert _played(sink) == REPLY[: 3 * PIECE]
    assert bytes(tapped) == _played(sink)


async def test_flush_drops_queued_audio_at_once(sink: AudioSink) -> None:
    first_played = asyncio.Event()
    sink.tap = lambda _pcm: first_played.set()
    _write_pieces(sink, REPLY)
    await asyncio.wait_for(first_played.wait(), 5)
    sink.flush()
    await asyncio.wait_for(sink.drain(), 1)  # nothing left to play: returns promptly
    marker = tone(1000, 0.1, OUTPUT_RATE)
    sink.write(marker)
    await asyncio.wait_for(sink.drain(), 5)
    played = _played(sink)
    assert played.endswith(marker)
    before_marker = played[: -len(marker)]
    assert REPLY.startswith(before_marker)  # a prefix of the reply: nothing after the flush
    assert len(before_marker) < len(REPLY) // 2


async def test_sink_stop_is_idempotent_and_write_after_stop_fails(sink: AudioSink) -> None:
    await sink.stop()
    await sink.stop()
    with pytest.raises(DeviceLostError):
        sink.write(REPLY[:PIECE])


@pytest.mark.parametrize("name", list(SOURCES))
async def test_source_gives_exact_chunks_then_silence(name: str) -> None:
    said = tone(300, 0.05, INPUT_RATE)  # 2.5 chunks of 20 ms
    source = SOURCES[name](said)
    await source.start()
    chunks = [await source.read() for _ in range(5)]
    await source.stop()
    await source.stop()
    assert {len(chunk) for chunk in chunks} == {source.chunk_bytes}
    audio = b"".join(chunks)
    assert audio.startswith(said)
    assert audio[len(said) :] == bytes(len(audio) - len(said))


@pytest.mark.parametrize("name", list(SOURCES))
async def test_source_read_when_stopped_raises_device_lost(name: str) -> None:
    source = SOURCES[name](b"")
    with pytest.raises(DeviceLostError):
        await source.read()


async def test_memory_source_can_disappear() -> None:
    source = MemorySource(lose_after_s=0.04)
    await source.start()
    await source.read()
    await source.read()
    with pytest.raises(DeviceLostError, match="disappeared"):
        await source.read()


def test_preroll_ring_keeps_the_newest_audio_in_order() -> None:
    ring = PrerollRing(seconds=0.1)  # 3200 bytes
    chunks = [bytes([i]) * 640 for i in range(10)]
    for chunk in chunks:
        ring.append(chunk)
    assert ring.capacity <= len(ring) < ring.capacity + 640
    kept = ring.take()
    assert kept == b"".join(chunks[-len(kept) // 640 :])
    assert len(ring) == 0
    assert ring.take() == b""


def test_preroll_ring_clear_forgets_everything() -> None:
    ring = PrerollRing(seconds=1.0)
    ring.append(b"\1" * 640)
    ring.clear()
    assert ring.take() == b""
