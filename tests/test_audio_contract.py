"""The audio port contract, run against every adapter: the in-memory fakes and the ALSA
adapter on real libasound (file PCMs fed and drained in real time through FIFOs)."""

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from pispeaker.audio.alsa import AlsaSink, AlsaSource
from pispeaker.audio.memory import MemorySink, MemorySource
from pispeaker.audio.pcm import (
    INPUT_RATE,
    OUTPUT_RATE,
    byte_count,
    scale,
    silence,
    to_samples,
    tone,
)
from pispeaker.audio.ports import AudioSink, AudioSource, DeviceLostError, PrerollRing
from tests.alsa_rig import AlsaRig, PacedReader, PacedWriter, request

REPLY = tone(440, 1.0, OUTPUT_RATE)
PIECE = byte_count(0.1, OUTPUT_RATE)
#: How far the reply may be off where a new gain resumes it: the sink's idea of what the
#: device has played against what it has (a card's is exact; the rig's pipe adds some).
SEAM_S = 0.03


@dataclass
class SinkUnderTest:
    """A started sink, how to read what it played, and how to unplug it."""

    sink: AudioSink
    played: Callable[[Callable[[bytes], bool]], bytes]  # waits until the check holds
    unplug: Callable[[], None]


def memory_sink(_rig: AlsaRig) -> SinkUnderTest:
    sink = MemorySink(realtime=True)
    return SinkUnderTest(sink, lambda _done: bytes(sink.played), sink.lose)


def alsa_sink(rig: AlsaRig) -> SinkUnderTest:
    fifo = rig.directory / "speaker.fifo"
    os.mkfifo(fifo)
    speaker = PacedReader(fifo, bytes_per_s=2 * OUTPUT_RATE)  # plays in real time
    speaker.start()
    sink = AlsaSink(request(rig.playback("speaker", fifo), OUTPUT_RATE))
    speaker.card_like(sink)

    def played(done: Callable[[bytes], bool]) -> bytes:
        deadline = time.monotonic() + 5
        while not done(speaker.received) and time.monotonic() < deadline:
            time.sleep(0.01)  # the pipe and the pacing hold some back after a drain
        return speaker.received

    return SinkUnderTest(sink, played, speaker.hang_up)


def alsa_source(rig: AlsaRig, audio: bytes) -> AudioSource:
    fifo = rig.directory / "mic.fifo"
    os.mkfifo(fifo)
    writer = PacedWriter(fifo, audio + silence(1.0, INPUT_RATE), period=640, period_s=0.002)
    writer.start()
    rig.cleanups.append(writer.finish)
    return AlsaSource(request(rig.capture("mic", fifo), INPUT_RATE))


SINKS: dict[str, Callable[[AlsaRig], SinkUnderTest]] = {
    "memory-realtime": memory_sink,
    "alsa": alsa_sink,
}
SOURCES: dict[str, Callable[[AlsaRig, bytes], AudioSource]] = {
    "memory": lambda _rig, audio: MemorySource(audio),
    "alsa": alsa_source,
}


@pytest.fixture
def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AlsaRig]:
    rig = AlsaRig(tmp_path, monkeypatch)
    yield rig
    for cleanup in rig.cleanups:
        cleanup()


@pytest.fixture(params=list(SINKS))
async def under_test(request: pytest.FixtureRequest, rig: AlsaRig) -> AsyncIterator[SinkUnderTest]:
    adapter = SINKS[request.param](rig)
    await adapter.sink.start()
    yield adapter
    await adapter.sink.stop()
    adapter.unplug()


def _write_pieces(sink: AudioSink, pcm: bytes) -> None:
    for offset in range(0, len(pcm), PIECE):
        sink.write(pcm[offset : offset + PIECE])


async def test_sink_plays_everything_in_order_and_taps_it(under_test: SinkUnderTest) -> None:
    tapped = bytearray()
    under_test.sink.tap = lambda pcm, _heard_at: tapped.extend(pcm)
    _write_pieces(under_test.sink, REPLY[: 3 * PIECE])
    await asyncio.wait_for(under_test.sink.drain(), 5)
    played = under_test.played(lambda played: len(played) >= 3 * PIECE)
    assert played == REPLY[: 3 * PIECE]
    assert bytes(tapped) == played


async def test_drain_waits_for_what_was_written_before_it_not_after(
    under_test: SinkUnderTest,
) -> None:
    sink = under_test.sink
    tapped = bytearray()
    sink.tap = lambda pcm, _heard_at: tapped.extend(pcm)
    _write_pieces(sink, REPLY[:PIECE])
    drained = asyncio.ensure_future(sink.drain())
    await asyncio.sleep(0)  # the drain begins (it runs up to its first wait)
    _write_pieces(sink, REPLY[PIECE:])  # 0.9 s more, written after the drain began
    await asyncio.wait_for(drained, 5)
    assert len(tapped) < len(REPLY)  # the rest is still to play
    await asyncio.wait_for(sink.drain(), 5)
    assert bytes(tapped) == REPLY


async def test_flush_drops_queued_audio_at_once(under_test: SinkUnderTest) -> None:
    first_played = asyncio.Event()
    under_test.sink.tap = lambda _pcm, _heard_at: first_played.set()
    _write_pieces(under_test.sink, REPLY)
    await asyncio.wait_for(first_played.wait(), 5)
    await asyncio.sleep(0.1)
    under_test.sink.flush()
    await asyncio.wait_for(under_test.sink.drain(), 1)  # nothing left to play: returns promptly
    marker = tone(1000, 0.1, OUTPUT_RATE)
    under_test.sink.write(marker)
    await asyncio.wait_for(under_test.sink.drain(), 5)
    played = under_test.played(lambda played: played.endswith(marker))
    assert played.endswith(marker)
    before_marker = played[: -len(marker)]
    assert REPLY.startswith(before_marker)  # a prefix of the reply: nothing after the flush
    assert len(before_marker) < len(REPLY) // 2


async def test_a_new_gain_takes_effect_at_once_on_what_plays(under_test: SinkUnderTest) -> None:
    """A duck is heard at once, not once the device's buffer has played out: what plays is
    the reply at full level up to about the moment of the change, then the rest of it at the
    new gain, in order; the tap is told the rest again, at the gain."""
    sink = under_test.sink
    tapped: list[bytes] = []
    playing = asyncio.Event()

    def tap(pcm: bytes, _heard_at: float) -> None:
        tapped.append(pcm)
        playing.set()

    sink.tap = tap
    reply = _noise(1.0)
    _write_pieces(sink, reply)
    await asyncio.wait_for(playing.wait(), 5)
    await asyncio.sleep(0.35)  # in the middle of a piece
    sink.gain = 0.1
    await asyncio.wait_for(sink.drain(), 5)
    ducked = scale(reply, 0.1)
    played = under_test.played(lambda played: played.endswith(ducked[-PIECE:]))
    loud = _common_prefix(played, reply)
    # Where the ducked rest begins in the reply: skipped (> 0) or repeated (< 0) bytes.
    resumed = ducked.index(played[loud : loud + 480])
    assert played[loud:] == ducked[resumed:]
    assert abs(resumed - loud) <= byte_count(SEAM_S, OUTPUT_RATE)
    # The tap: the audio the device held was told again at the gain (it replaces what was
    # told of it), and so was everything after it.
    loud_tapped = b"".join(pcm for pcm in tapped if pcm in reply)
    first = next(index for index, pcm in enumerate(tapped) if pcm in ducked)
    again = b"".join(tapped[first:])
    told_again_from = ducked.index(again)
    assert reply.startswith(loud_tapped)
    assert told_again_from + len(again) == len(ducked)
    assert told_again_from < len(loud_tapped)  # told again: it had been told loud


def _noise(seconds: float) -> bytes:
    """Audio no stretch of which looks like another (so where it resumes is unambiguous)."""
    samples = np.random.default_rng(3).normal(0.0, 3000.0, round(seconds * OUTPUT_RATE))
    return samples.astype("<i2").tobytes()


def _common_prefix(a: bytes, b: bytes) -> int:
    """Bytes (whole samples) ``a`` and ``b`` begin with alike."""
    length = min(len(a), len(b)) // 2
    differ = np.flatnonzero(to_samples(a)[:length] != to_samples(b)[:length])
    return 2 * int(differ[0]) if len(differ) else 2 * length


async def test_sink_stop_is_idempotent_and_write_after_stop_fails(
    under_test: SinkUnderTest,
) -> None:
    await under_test.sink.stop()
    await under_test.sink.stop()
    with pytest.raises(DeviceLostError):
        under_test.sink.write(REPLY[:PIECE])


async def test_an_unplugged_sink_reports_it_and_drops_audio(under_test: SinkUnderTest) -> None:
    _write_pieces(under_test.sink, REPLY)
    await asyncio.sleep(0.2)
    under_test.unplug()
    message = await asyncio.wait_for(under_test.sink.wait_lost(), 5)
    assert message
    under_test.sink.write(REPLY[:PIECE])  # no error: the audio has nowhere to go
    await asyncio.wait_for(under_test.sink.drain(), 1)


@pytest.mark.parametrize("name", list(SOURCES))
async def test_source_gives_exact_chunks_then_silence(name: str, rig: AlsaRig) -> None:
    said = tone(300, 0.05, INPUT_RATE)  # 2.5 chunks of 20 ms
    source = SOURCES[name](rig, said)
    await source.start()
    chunks = [await source.read() for _ in range(5)]
    await source.stop()
    await source.stop()
    assert {len(chunk) for chunk in chunks} == {source.chunk_bytes}
    audio = b"".join(chunks)
    assert audio.startswith(said)
    assert audio[len(said) :] == bytes(len(audio) - len(said))


@pytest.mark.parametrize("name", list(SOURCES))
async def test_source_read_when_stopped_raises_device_lost(name: str, rig: AlsaRig) -> None:
    source = SOURCES[name](rig, b"")
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


def test_preroll_ring_between_reads_a_stretch_of_the_stream_and_keeps_it() -> None:
    ring = PrerollRing(seconds=0.1)  # 3200 bytes
    chunks = [bytes([i]) * 640 for i in range(10)]
    for chunk in chunks:
        ring.append(chunk)
    stream = b"".join(chunks)
    assert ring.oldest == ring.position - len(ring)
    assert ring.between(5000, 5500) == stream[5000:5500]
    assert ring.between(0, 4000) == stream[ring.oldest : 4000]  # only what is kept
    assert ring.between(6000, 9000) == stream[6000:]
    assert len(ring) >= ring.capacity  # nothing was taken


def test_preroll_ring_clear_forgets_everything() -> None:
    ring = PrerollRing(seconds=1.0)
    ring.append(b"\1" * 640)
    ring.clear()
    assert ring.take() == b""
