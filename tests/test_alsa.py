"""The ALSA adapter with the real libasound and pyalsaaudio, through file-backed PCMs."""

import asyncio
import itertools
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pispeaker.app import build_volume
from pispeaker.audio.alsa import AlsaSink, AlsaSource, Opened, Request, open_device
from pispeaker.audio.convert import FORMATS
from pispeaker.audio.pcm import (
    INPUT_RATE,
    OUTPUT_RATE,
    byte_count,
    duration_s,
    silence,
    to_samples,
    tone,
)
from pispeaker.audio.ports import DeviceLostError
from pispeaker.audio.resample import resample
from pispeaker.config import AudioConfig
from tests.alsa_rig import AlsaRig, PacedReader, PacedWriter, request
from tests.conftest import speech
from tests.signals import dominant_frequency


@pytest.fixture
def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AlsaRig:
    return AlsaRig(tmp_path, monkeypatch)


@pytest.fixture
def fifos(tmp_path: Path) -> Iterator[list[PacedWriter | PacedReader]]:
    helpers: list[PacedWriter | PacedReader] = []
    yield helpers
    for helper in helpers:
        if isinstance(helper, PacedWriter):
            helper.finish()
        else:
            helper.hang_up()


def feed(
    rig: AlsaRig,
    fifos: list[PacedWriter | PacedReader],
    name: str,
    data: bytes,
    period: int,
    speed: float = 10.0,
) -> str:
    """A capture PCM ``name`` whose FIFO gets ``data`` ``speed`` times faster than real
    time (``period`` bytes being 20 ms). Past the end of a plain file ALSA reads garbage as
    fast as it is asked, so the adapter's backlog would overflow: a FIFO blocks instead."""
    fifo = rig.directory / f"{name}.fifo"
    os.mkfifo(fifo)
    writer = PacedWriter(fifo, data, period=period, period_s=0.02 / speed)
    writer.start()
    fifos.append(writer)
    return rig.capture(name, fifo)


def device_frames(mono: bytes, format_name: str, channels: int, gains: tuple[float, ...]) -> bytes:
    """``mono`` s16le as ``channels`` interleaved channels of ``format_name``, channel i
    scaled by ``gains[i]``."""
    samples = to_samples(mono) / 32768.0
    frames = np.stack([samples * gain for gain in gains[:channels]], axis=1).astype(np.float32)
    return FORMATS[format_name].encode(frames.reshape(-1))


def correlation(a: bytes, b: bytes) -> float:
    """Pearson correlation of two s16le signals over their common length."""
    length = min(len(a), len(b)) // 2
    x, y = to_samples(a)[:length].astype(float), to_samples(b)[:length].astype(float)
    return float(np.corrcoef(x, y)[0, 1])


async def capture(source: AlsaSource, seconds: float) -> bytes:
    chunks = round(seconds * INPUT_RATE * 2 / source.chunk_bytes)
    await source.start()
    try:
        return b"".join([await source.read() for _ in range(chunks)])
    finally:
        await source.stop()


# -- capture -----------------------------------------------------------------------------------


async def test_capture_at_16k_mono_is_byte_exact(
    rig: AlsaRig, fifos: list[PacedWriter | PacedReader]
) -> None:
    said = speech(1.0) + silence(0.5, INPUT_RATE)
    device = feed(rig, fifos, "testmic", said, period=640)
    source = AlsaSource(request(device, INPUT_RATE), chunk_ms=20)
    heard = await capture(source, 1.0)
    assert source.opened is not None
    assert (source.opened.rate, source.opened.channels) == (INPUT_RATE, 1)
    assert heard == said[: len(heard)]
    assert len(heard) == byte_count(1.0, INPUT_RATE)


async def test_each_chunk_says_when_its_last_sample_was_captured(
    rig: AlsaRig, fifos: list[PacedWriter | PacedReader]
) -> None:
    """Chunks of 10 ms from periods of 20 ms: each read completes two chunks, the first of
    which ended 10 ms before the read's last sample (a read returns once its period is
    captured: no moment is later than when it is read)."""
    device = feed(rig, fifos, "testmic", speech(1.0), period=640)
    source = AlsaSource(request(device, INPUT_RATE), chunk_ms=10)
    await source.start()
    moments = []
    try:
        for _ in range(20):
            await source.read()
            moments.append(source.captured_at)
            assert source.captured_at <= time.monotonic()
    finally:
        await source.stop()
    for first, second in zip(moments[::2], moments[1::2], strict=True):
        assert second - first == pytest.approx(0.01, abs=1e-6)


@pytest.mark.parametrize(
    ("format_name", "channels", "gains"),
    [("S16_LE", 2, (0.9, 0.5)), ("S32_LE", 1, (0.9,)), ("S24_3LE", 2, (0.7, 0.7))],
)
async def test_capture_at_48k_is_resampled_to_16k_mono_with_content_preserved(
    rig: AlsaRig,
    fifos: list[PacedWriter | PacedReader],
    format_name: str,
    channels: int,
    gains: tuple[float, ...],
) -> None:
    original = tone(1000, 1.5, 48_000, amplitude=0.5) + speech(1.0, 300.0)
    original += silence(0.5, 48_000)
    frames = device_frames(original, format_name, channels, gains)
    period = 960 * FORMATS[format_name].width * channels
    device = feed(rig, fifos, "usbmic", frames, period)
    heard = await capture(AlsaSource(request(device, 48_000, channels, format_name)), 2.0)
    reference = resample(original, 48_000, INPUT_RATE)
    mix = sum(gains) / len(gains)
    assert dominant_frequency(heard[: byte_count(1.0, INPUT_RATE)], INPUT_RATE) == pytest.approx(
        1000, abs=2
    )
    assert correlation(heard, reference) > 0.999
    level = np.std(to_samples(heard)[:16_000]) / np.std(to_samples(reference)[:16_000])
    assert level == pytest.approx(mix, rel=0.01)  # channels are averaged


async def test_capture_channel_picks_one_microphone(
    rig: AlsaRig, fifos: list[PacedWriter | PacedReader]
) -> None:
    left, right = tone(500, 1.0, 48_000), tone(1500, 1.0, 48_000)
    frames = np.stack([to_samples(left), to_samples(right)], axis=1).astype("<i2").tobytes()
    device = feed(rig, fifos, "usbmic", frames + bytes(4 * 48_000), period=3840)
    heard = await capture(AlsaSource(request(device, 48_000, 2), channel=2), 0.8)
    assert dominant_frequency(heard, INPUT_RATE) == pytest.approx(1500, abs=2)


async def test_a_missing_device_names_itself_and_the_next_step(
    rig: AlsaRig, capfd: pytest.CaptureFixture[str]
) -> None:
    source = AlsaSource(Request("audio.capture_device", "plughw:CARD=Nope,DEV=0"))
    with pytest.raises(DeviceLostError) as caught:
        await source.start()
    message = str(caught.value)
    assert "audio.capture_device 'plughw:CARD=Nope,DEV=0' cannot be opened" in message
    assert "pispeaker devices" in message
    sink = AlsaSink(Request("audio.playback_device", "nope"))
    with pytest.raises(DeviceLostError, match=r"audio\.playback_device 'nope' cannot be opened"):
        await sink.start()
    assert capfd.readouterr().err == ""  # libasound's own complaints went to the debug log


# -- playback ----------------------------------------------------------------------------------


async def play(sink: AlsaSink, audio: bytes, piece_ms: int = 100) -> None:
    await sink.start()
    piece = byte_count(piece_ms / 1000, OUTPUT_RATE)
    for offset in range(0, len(audio), piece):
        sink.write(audio[offset : offset + piece])
    await sink.drain()
    await sink.stop()


async def test_playback_at_24k_mono_is_byte_exact(rig: AlsaRig, tmp_path: Path) -> None:
    reply = speech(1.3, 220.0) + tone(880, 0.25, OUTPUT_RATE)
    device = rig.playback("testspk", tmp_path / "out.raw")
    sink = AlsaSink(request(device, OUTPUT_RATE))
    tapped = bytearray()
    sink.tap = lambda pcm, _heard_at: tapped.extend(pcm)
    await play(sink, reply, piece_ms=77)
    assert (tmp_path / "out.raw").read_bytes() == reply
    assert bytes(tapped) == reply
    assert sink.underruns == 0


async def test_tap_gets_each_period_of_each_write_as_given(rig: AlsaRig, tmp_path: Path) -> None:
    reply = tone(440, 0.05, OUTPUT_RATE)  # periods of 20, 20 and 10 ms
    device = rig.playback("usbspk", tmp_path / "out.raw")
    sink = AlsaSink(request(device, 48_000))  # the tap hears the audio before conversion
    tapped: list[bytes] = []
    sink.tap = lambda pcm, _heard_at: tapped.append(pcm)
    await play(sink, reply, piece_ms=50)
    period = byte_count(0.02, OUTPUT_RATE)
    assert tapped == [reply[:period], reply[period : 2 * period], reply[2 * period :]]


async def test_tap_says_when_each_period_is_heard_one_after_another(
    rig: AlsaRig, tmp_path: Path
) -> None:
    """The card plays what it holds first: a period written into a holding buffer is heard
    after the one before it, not when it was written."""
    reply = speech(0.5, 220.0)
    sink = AlsaSink(request(rig.playback("testspk", tmp_path / "out.raw"), OUTPUT_RATE))
    tapped: list[tuple[bytes, float]] = []
    sink.tap = lambda pcm, heard_at: tapped.append((pcm, heard_at))
    before = time.monotonic()
    await play(sink, reply, piece_ms=100)
    assert before <= tapped[0][1] <= time.monotonic()
    for (pcm, heard_at), (_, next_heard_at) in itertools.pairwise(tapped):
        assert next_heard_at >= heard_at + duration_s(pcm, OUTPUT_RATE) - 1e-9


async def test_write_refuses_a_partial_sample(rig: AlsaRig, tmp_path: Path) -> None:
    sink = AlsaSink(request(rig.playback("testspk", tmp_path / "out.raw"), OUTPUT_RATE))
    await sink.start()
    with pytest.raises(ValueError, match="not a whole number of samples"):
        sink.write(bytes(3))
    await sink.stop()
    assert sink.writes == 0


@pytest.mark.parametrize(("format_name", "channels"), [("S16_LE", 2), ("S32_LE", 1)])
async def test_playback_at_48k_is_resampled_and_correct(
    rig: AlsaRig, tmp_path: Path, format_name: str, channels: int
) -> None:
    reply = tone(700, 1.0, OUTPUT_RATE, amplitude=0.5)
    device = rig.playback("usbspk", tmp_path / "out.raw")
    sink = AlsaSink(request(device, 48_000, channels, format_name))
    await play(sink, reply)
    frames = FORMATS[format_name].decode((tmp_path / "out.raw").read_bytes())
    frames = frames.reshape(-1, channels)
    assert all(np.array_equal(frames[:, 0], frames[:, c]) for c in range(channels))
    played = FORMATS["S16_LE"].encode(frames[:, 0])
    assert dominant_frequency(played, 48_000) == pytest.approx(700, abs=2)
    assert correlation(played, resample(reply, OUTPUT_RATE, 48_000)) > 0.999
    assert abs(len(played) - 2 * len(reply)) <= 2 * 64  # soxr's tail is all that may differ


async def test_flush_stops_the_reply_at_once(rig: AlsaRig, tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "speaker")
    speaker = PacedReader(tmp_path / "speaker", bytes_per_s=2 * OUTPUT_RATE)
    speaker.start()
    sink = AlsaSink(request(rig.playback("spk", tmp_path / "speaker"), OUTPUT_RATE))
    await sink.start()
    reply = speech(3.0, 200.0)
    sink.write(reply)
    await asyncio.sleep(0.6)
    sink.flush()
    flushed_at = len(speaker.received)
    marker = tone(1000, 0.2, OUTPUT_RATE)
    sink.write(marker)
    await sink.drain()
    await sink.stop()
    played = speaker.wait_for(flushed_at + len(marker))
    speaker.hang_up()
    before_marker = played[: played.index(marker[:400])]
    assert reply.startswith(before_marker)  # nothing but a prefix of the reply...
    # ...and at most the device buffer (4 x 20 ms) plus the pipe's page past the flush point
    assert len(before_marker) - flushed_at <= byte_count(0.08, OUTPUT_RATE) + 4096
    assert len(before_marker) < len(reply) // 2


# -- xruns: file PCMs never run dry, so a real PCM is wrapped to report some -----------------


class Xrunning:
    """A real PCM whose ``read``/``write`` number ``at`` reports an xrun (-EPIPE) without
    moving any audio, as pyalsaaudio does after re-preparing the stream."""

    def __init__(self, opened: Opened, at: int) -> None:
        self.pcm, self.at, self.calls = opened.pcm, at, 0

    def read(self) -> tuple[int, bytes]:
        self.calls += 1
        return (-32, b"") if self.calls == self.at else self.pcm.read()

    def write(self, data: bytes) -> int:
        self.calls += 1
        return -32 if self.calls == self.at else self.pcm.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pcm, name)


def xrun_opener(at: int) -> Any:
    def opener(kind: int, request: Request, rate: int) -> Opened:
        opened = open_device(kind, request, rate)
        return Opened(Xrunning(opened, at), opened.rate, opened.channels, opened.format_name)

    return opener


class Gated:
    """A real PCM whose every ``read`` waits for the test to let one period through."""

    def __init__(self, opened: Opened) -> None:
        self.pcm, self.calls, self.allowed = opened.pcm, 0, 0
        self.changed = threading.Condition()

    def read(self) -> tuple[int, bytes]:
        with self.changed:
            self.calls += 1
            self.changed.notify_all()
            self.changed.wait_for(lambda: self.allowed >= self.calls, timeout=10)
        return self.pcm.read()

    def let_through(self, periods: int) -> None:
        """Let ``periods`` more reads pass; return once the reader waits at the gate again
        (what it read is converted and handed on by then)."""
        with self.changed:
            self.allowed += periods
            self.changed.notify_all()
            assert self.changed.wait_for(lambda: self.calls > self.allowed, timeout=10)

    def open_wide(self) -> None:
        with self.changed:
            self.allowed += 1_000_000
            self.changed.notify_all()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pcm, name)


async def test_a_batch_holds_chunks_back_and_delivers_them_together_unchanged(
    rig: AlsaRig, fifos: list[PacedWriter | PacedReader]
) -> None:
    said = speech(1.0) + silence(0.5, INPUT_RATE)
    device = feed(rig, fifos, "testmic", said, period=640)
    gated: list[Gated] = []

    def opener(kind: int, request: Request, rate: int) -> Opened:
        opened = open_device(kind, request, rate)
        gated.append(Gated(opened))
        return Opened(gated[-1], opened.rate, opened.channels, opened.format_name)

    source = AlsaSource(request(device, INPUT_RATE), chunk_ms=20, opener=opener)
    source.batch = 4

    async def let_through(periods: int) -> None:
        await asyncio.to_thread(gated[0].let_through, periods)
        await asyncio.sleep(0)  # what the reader handed to the loop has arrived

    await source.start()
    try:
        await let_through(3)
        assert source._chunks is not None
        assert source._chunks.empty()  # three held back
        await let_through(1)
        heard = [await source.read() for _ in range(4)]  # the fourth brings all four
        source.batch = 1
        await let_through(1)
        heard.append(await source.read())
    finally:
        gated[0].open_wide()
        await source.stop()
    assert b"".join(heard) == said[: 5 * 640]


async def test_a_batch_converts_a_usb_microphone_s_periods_together_to_the_same_audio(
    rig: AlsaRig, fifos: list[PacedWriter | PacedReader]
) -> None:
    """At 48 kHz stereo a batch converts its periods in one go (cheaper): the audio is the
    same as period by period, and the chunks of a batch still say when their last samples
    were captured."""
    original = speech(1.0, 300.0) + silence(3.0, 48_000)
    frames = device_frames(original, "S16_LE", 2, (0.8, 0.6))

    async def heard(batch: int, name: str) -> tuple[bytes, list[float]]:
        source = AlsaSource(request(feed(rig, fifos, name, frames, 3840), 48_000, 2))
        source.batch = batch
        await source.start()
        chunks, moments = [], []
        try:
            for _ in range(80):
                chunks.append(await source.read())
                moments.append(source.captured_at)
        finally:
            await source.stop()
        return b"".join(chunks), moments

    one_by_one, _ = await heard(1, "usbmic1")
    batched, moments = await heard(4, "usbmic4")
    assert batched == one_by_one
    # Within a batch the chunks end 20 ms apart; between batches the gap is how fast the
    # rig's FIFO delivered (faster than real time here), so only the former is exact.
    within = [step for step in np.diff(moments) if step == pytest.approx(0.02, abs=1e-6)]
    assert len(within) >= 3 * len(moments) // 4 - 2


async def test_capture_overrun_is_counted_and_reading_goes_on(
    rig: AlsaRig, fifos: list[PacedWriter | PacedReader]
) -> None:
    said = speech(0.6) + silence(0.5, INPUT_RATE)
    device = feed(rig, fifos, "testmic", said, period=640)
    source = AlsaSource(request(device, INPUT_RATE), opener=xrun_opener(at=3))
    heard = await capture(source, 0.6)
    assert source.overruns == 1
    assert heard == said[: len(heard)]


async def test_playback_underrun_is_counted_and_the_audio_rewritten(
    rig: AlsaRig, tmp_path: Path
) -> None:
    reply = speech(0.5, 250.0)
    device = rig.playback("testspk", tmp_path / "out.raw")
    sink = AlsaSink(request(device, OUTPUT_RATE), opener=xrun_opener(at=4))
    await play(sink, reply)
    assert sink.underruns == 1
    assert (tmp_path / "out.raw").read_bytes() == reply


# -- a device that disappears and comes back ---------------------------------------------------


async def test_speaker_unplugged_is_reported_and_reopens_when_back(
    rig: AlsaRig, tmp_path: Path, fifos: list[PacedWriter | PacedReader]
) -> None:
    os.mkfifo(tmp_path / "speaker")
    speaker = PacedReader(tmp_path / "speaker", bytes_per_s=2 * OUTPUT_RATE)
    speaker.start()
    fifos.append(speaker)
    sink = AlsaSink(request(rig.playback("spk", tmp_path / "speaker"), OUTPUT_RATE))
    await sink.start()
    sink.write(speech(2.0))
    await asyncio.sleep(0.3)
    speaker.hang_up()  # the cable is pulled
    message = await asyncio.wait_for(sink.wait_lost(), 5)
    assert "audio.playback_device 'spk' failed" in message
    assert "Input/output error" in message
    sink.write(speech(0.1))  # dropped, not an error: the controller is recovering
    await asyncio.wait_for(sink.drain(), 1)

    back = PacedReader(tmp_path / "speaker", bytes_per_s=2 * OUTPUT_RATE)
    back.start()
    fifos.append(back)
    await sink.start()
    marker = tone(1000, 0.2, OUTPUT_RATE)
    sink.write(marker)
    await sink.drain()
    await sink.stop()
    assert back.wait_for(len(marker)) == marker


async def test_microphone_that_stops_then_vanishes_then_returns(
    rig: AlsaRig, tmp_path: Path, fifos: list[PacedWriter | PacedReader]
) -> None:
    fifo = tmp_path / "mic"
    os.mkfifo(fifo)
    first = PacedWriter(fifo, speech(10.0), period=640, period_s=0.02)
    first.start()
    fifos.append(first)
    device = rig.capture("mic", fifo)
    source = AlsaSource(request(device, INPUT_RATE), stall_s=0.5)
    await source.start()
    await source.read()
    first.pause()  # the device hangs: no more periods
    with pytest.raises(DeviceLostError, match=r"'mic' delivered no audio for 0\.5 s"):
        while True:
            await source.read()

    rig.unplug("mic")  # and is gone
    with pytest.raises(DeviceLostError, match="'mic' cannot be opened"):
        await source.start()

    first.finish()
    fifo.unlink()
    os.mkfifo(fifo)
    said = tone(440, 1.0, INPUT_RATE)
    second = PacedWriter(fifo, said + silence(1.0, INPUT_RATE), period=640, period_s=0.01)
    second.start()
    fifos.append(second)
    rig.capture("mic", fifo)  # plugged back in
    heard = await capture(source, 0.5)
    assert heard == said[: len(heard)]


# -- volume on a mixer control -------------------------------------------------------------------


def test_a_missing_mixer_control_falls_back_to_software_volume(
    rig: AlsaRig, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    audio = AudioConfig(mixer_control="PCM", mixer_device="hw:CARD=Nope", volume=40)
    volume = build_volume(audio, {"STATE_DIRECTORY": str(tmp_path)})
    assert "audio.mixer_control 'PCM' on audio.mixer_device 'hw:CARD=Nope'" in caplog.text
    assert "controls there: none; using software volume instead" in caplog.text
    assert volume.gain == pytest.approx(10 ** (-24 / 20))  # 40 is -24 dB in software
    volume.set(55)
    assert (tmp_path / "volume").read_text() == "55\n"
