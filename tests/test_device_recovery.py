"""Lost audio devices: the controller shows ERROR, reopens the device with backoff until it
is back, then shows IDLE. In-memory ports scripted to vanish, and the ALSA adapters on real
libasound (file PCMs on FIFOs fed and drained in real time by stand-ins for the hardware)."""

import asyncio
import logging
import math
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from pispeaker.app import started
from pispeaker.audio.alsa import AlsaSink, AlsaSource
from pispeaker.audio.memory import MemorySink, MemorySource
from pispeaker.audio.pcm import INPUT_RATE, OUTPUT_RATE, silence, tone
from pispeaker.audio.ports import AudioSink, AudioSource, DeviceLostError
from pispeaker.config import LiveConfig
from pispeaker.controller import Controller
from pispeaker.conversation.core import Duplex, Policy
from pispeaker.live.link import LiveLink
from pispeaker.live.port import LinkEvent
from pispeaker.states import Effect, Event, State
from pispeaker.tools import Tool
from tests.alsa_rig import AlsaRig, PacedReader, PacedWriter, request
from tests.conftest import RecordedController
from tests.test_hearing import Converging

IDLE, ERROR = State.IDLE, State.ERROR

# -- helpers -----------------------------------------------------------------------------------


class Clock:
    """The controller's ``sleep``: records every delay asked for and waits a twentieth of it,
    once ``gate`` is open (a test closes it to hold the next retry back)."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self._asked = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)
        self._asked.set()
        await self.gate.wait()
        await asyncio.sleep(seconds / 20)

    async def asked(self, count: int) -> None:
        """Return once ``count`` delays have been asked for."""
        async with asyncio.timeout(3):
            while len(self.delays) < count:
                self._asked.clear()
                await self._asked.wait()


def assert_backs_off(delays: list[float]) -> None:
    """Retry n waited 2**n s (capped at 30 s) less its jitter of up to a half: never nothing,
    and never shorter than the retry before (until the cap, where jitter bands overlap)."""
    assert delays
    for attempt, delay in enumerate(delays):
        ceiling = min(30.0, 2.0**attempt)
        assert ceiling / 2 <= delay <= ceiling, f"retry {attempt} waited {delay:.2f} s: {delays}"
    assert delays[:5] == sorted(delays[:5])


async def reach(controller: Controller, state: State, count: int = 1) -> None:
    """Wait until ``state`` has been entered ``count`` times (IDLE at start counts)."""
    async with asyncio.timeout(3):
        await controller.entered(state, count)


async def until(condition: Callable[[], bool], within_s: float = 3.0) -> None:
    """Wait until ``condition()`` holds."""
    async with asyncio.timeout(within_s):
        while True:
            if condition():
                return
            await asyncio.sleep(0.005)


def idle_link(report: Callable[[LinkEvent], None], tools: list[Tool]) -> LiveLink:
    """A Live link that is never opened: these tests never start a conversation."""
    return LiveLink(LiveConfig(), "unused-key", report, tools)


class Plug:
    """A test device's cable: counts starts; a start fails while ``refusals`` remain, as
    opening a missing device does."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.starts = self.opens = 0
        self.refusals = 0.0

    def pull(self, refusals: float = math.inf) -> None:
        self.refusals = refusals

    def insert(self) -> None:
        self.refusals = 0.0

    def check(self) -> None:
        """Called by ``start``."""
        self.starts += 1
        if self.refusals > 0:
            self.refusals -= 1
            raise DeviceLostError(f"test {self.device} cannot be opened")
        self.opens += 1


class Mic(MemorySource):
    """A real-time memory microphone that can be unplugged: reads then fail, and so do the
    next ``refusals`` starts."""

    def __init__(self, lose_after_s: float | None = None) -> None:
        super().__init__(realtime=True, lose_after_s=lose_after_s)
        self.plug = Plug("microphone")
        self.gone = False
        self.reads = 0

    def unplug(self, refusals: float = math.inf) -> None:
        self.gone = True
        self.plug.pull(refusals)

    async def start(self) -> None:
        self.plug.check()
        self.gone = False
        await super().start()

    async def read(self) -> bytes:
        if self.gone:
            raise DeviceLostError("test microphone unplugged")
        chunk = await super().read()
        self.reads += 1
        return chunk


class Speaker(MemorySink):
    """A memory speaker that can be unplugged: it reports itself lost, and the next
    ``refusals`` starts fail."""

    def __init__(self) -> None:
        super().__init__()
        self.plug = Plug("speaker")

    def unplug(self, refusals: float = math.inf) -> None:
        self.plug.pull(refusals)
        self.lose("test speaker unplugged")

    async def start(self) -> None:
        self.plug.check()
        await super().start()


class Harness:
    """Starts ports and runs controllers on a fast ``clock``; ``close`` cancels the
    controllers, stops their ports, then ends the stand-ins for ALSA hardware."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.writers: list[PacedWriter] = []
        self.readers: list[PacedReader] = []
        self._ports: list[AudioSource | AudioSink] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def run(self, source: AudioSource, sink: AudioSink) -> Controller:
        controller = RecordedController(source, sink, idle_link, sleep=self.clock.sleep)
        for port in (source, sink):
            await port.start()
            self._ports.append(port)
        self._tasks.append(asyncio.create_task(controller.run(), name="controller"))
        return controller

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
            await asyncio.wait([task], timeout=2.0)
            assert task.done(), "the controller ignored its cancellation"
        for port in self._ports:
            await port.stop()
        for writer in self.writers:
            writer.finish()
        for reader in self.readers:
            reader.hang_up()
        crashes = [task.exception() for task in self._tasks if not task.cancelled()]
        assert not crashes, f"the controller crashed: {crashes}"

    @property
    def task(self) -> asyncio.Task[None]:
        """The last controller's task."""
        return self._tasks[-1]


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    harness = Harness()
    yield harness
    await harness.close()


# -- in memory ---------------------------------------------------------------------------------


async def test_a_microphone_that_opens_but_keeps_failing_stays_in_error_backing_off(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    # MemorySource's scripted loss is tied to its position, which a restart keeps: every
    # reopen succeeds and the first read fails, like a hung device. That is not "back":
    # the state stays ERROR (no IDLE/ERROR flapping) and the reopens back off.
    mic = Mic(lose_after_s=0.1)
    controller = await harness.run(mic, Speaker())
    await reach(controller, ERROR)
    await harness.clock.asked(4)  # four reopens, each opening and failing its first read
    assert mic.plug.opens >= 4
    assert controller.record.states == [IDLE, ERROR]
    assert controller.record.errors == ["memory microphone disappeared (as scripted)"]
    assert_backs_off(harness.clock.delays)
    said = [r.getMessage() for r in caplog.records if "disappeared" in r.getMessage()]
    assert len(said) == 1  # the same reason at every reopen is said once, not each time


@pytest.mark.parametrize("missing", ["microphone", "speaker"])
async def test_a_device_missing_at_boot_is_shown_and_waited_for(missing: str) -> None:
    # Not plugged in when the service starts: it starts anyway, shows ERROR and retries.
    mic, speaker = Mic(), Speaker()
    (mic if missing == "microphone" else speaker).plug.pull(refusals=2)
    clock = Clock()
    controller = RecordedController(mic, speaker, idle_link, sleep=clock.sleep)
    async with started(controller):
        await reach(controller, IDLE, count=2)
    assert controller.record.states == [IDLE, ERROR, IDLE]
    assert controller.record.errors == [f"test {missing} cannot be opened"]
    assert len(clock.delays) == 2
    assert not mic.running  # stopped with the controller


async def test_microphone_back_after_failed_reopens_ends_the_error(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    mic = Mic()
    controller = await harness.run(mic, Speaker())
    mic.unplug(refusals=3)
    await reach(controller, ERROR)
    assert controller.record.errors == ["test microphone unplugged"]
    await reach(controller, IDLE, count=2)
    assert controller.record.states == [IDLE, ERROR, IDLE]
    assert (mic.plug.starts, mic.plug.opens) == (1 + 3 + 1, 2)
    assert len(harness.clock.delays) == 4
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned == ["test microphone cannot be opened; still retrying"]  # a new reason, once
    assert_backs_off(harness.clock.delays)
    reads = mic.reads
    await until(lambda: mic.reads > reads + 5)  # the pump reads the reopened microphone
    assert controller.record.states == [IDLE, ERROR, IDLE]


async def test_a_device_back_is_a_new_echo_path_for_the_canceller_to_learn() -> None:
    # Another microphone, or a speaker plugged into another port, has other buffering: the
    # echo's delay is not the one learnt, so the microphone is withheld over replies again.
    mic, canceller = Mic(), Converging()
    canceller.converged = True
    policy = Policy(duplex=Duplex.AUTO)
    controller = RecordedController(
        mic, Speaker(), idle_link, policy, sleep=Clock().sleep, canceller=canceller
    )
    async with started(controller):
        assert controller.ear.hears_over_reply
        mic.unplug(refusals=1)
        await reach(controller, IDLE, count=2)
    assert not controller.ear.hears_over_reply


async def test_speaker_lost_and_back_plays_again(harness: Harness) -> None:
    speaker = Speaker()
    controller = await harness.run(Mic(), speaker)
    before, during, after = (tone(hz, 0.1, OUTPUT_RATE) for hz in (440.0, 550.0, 660.0))
    controller.sink.write(before)
    await until(lambda: len(speaker.played) == len(before))
    harness.clock.gate.clear()  # hold the reopen back, to write while the speaker is gone
    speaker.lose("USB speaker vanished")
    await reach(controller, ERROR)
    assert controller.record.errors == ["USB speaker vanished"]
    controller.sink.write(during)  # dropped, not queued for later
    harness.clock.gate.set()
    await reach(controller, IDLE, count=2)
    assert speaker.plug.starts == 2
    assert_backs_off(harness.clock.delays)
    controller.sink.write(after)
    await until(lambda: len(speaker.played) >= len(before + after))
    assert bytes(speaker.played) == before + after
    assert controller.reference.take() == before + after  # the echo reference follows it


@pytest.mark.parametrize("first_back", ["microphone", "speaker"])
async def test_idle_only_once_both_lost_devices_are_back(harness: Harness, first_back: str) -> None:
    mic, speaker = Mic(), Speaker()
    controller = await harness.run(mic, speaker)
    mic.unplug()
    speaker.unplug()
    await reach(controller, ERROR)
    await until(lambda: mic.plug.starts > 1 and speaker.plug.starts > 1)  # both retried
    assert sorted(controller.record.errors) == [
        "test microphone unplugged",
        "test speaker unplugged",
    ]
    early, late = (
        (mic.plug, speaker.plug) if first_back == "microphone" else (speaker.plug, mic.plug)
    )
    early.insert()
    opens, starts = early.opens, late.starts
    await until(lambda: early.opens > opens and late.starts > starts + 1)
    assert controller.record.states == [IDLE, ERROR]  # still one device missing
    late.insert()
    await reach(controller, IDLE, count=2)
    assert controller.record.states == [IDLE, ERROR, IDLE]
    assert min(harness.clock.delays) >= 0.5


@pytest.mark.parametrize("missing", ["microphone", "speaker"])
async def test_button_dismisses_the_error_until_the_next_failed_reopen(
    harness: Harness, missing: str
) -> None:
    mic, speaker = Mic(), Speaker()
    controller = await harness.run(mic, speaker)
    device = mic if missing == "microphone" else speaker
    device.unplug()
    await reach(controller, ERROR)
    controller.dispatch(Event.BUTTON_PRESS)
    assert controller.status.state is IDLE
    starts = device.plug.starts
    await reach(controller, ERROR, count=2)
    assert device.plug.starts == starts + 1  # the very next failed reopen
    assert controller.record.states == [IDLE, ERROR, IDLE, ERROR]
    assert Effect.OPEN_SESSION not in controller.record.effects
    device.plug.insert()
    await reach(controller, IDLE, count=3)
    assert_backs_off(harness.clock.delays)  # the dismissal did not restart the backoff


# -- ALSA: real libasound, file PCMs on FIFOs ---------------------------------------------------


class AlsaDevices:
    """PCM "mic" reads a FIFO that a writer thread feeds like a microphone (640 bytes every
    20 ms); PCM "spk" writes a FIFO that a speaker process drains at 24 kHz mono s16le."""

    def __init__(self, rig: AlsaRig, harness: Harness) -> None:
        self.rig, self.harness = rig, harness
        self.mic_fifo = rig.directory / "mic.fifo"
        self.spk_fifo = rig.directory / "spk.fifo"
        os.mkfifo(self.spk_fifo)

    def plug_mic(self) -> PacedWriter:
        """(Re)define "mic" on a new FIFO with a new writer; the old writer is finished."""
        for old in self.harness.writers:
            old.finish()
        self.mic_fifo.unlink(missing_ok=True)
        os.mkfifo(self.mic_fifo)
        writer = PacedWriter(self.mic_fifo, silence(20.0, INPUT_RATE), 640, period_s=0.02)
        writer.start()
        self.harness.writers.append(writer)
        self.rig.capture("mic", self.mic_fifo)
        return writer

    async def plug_speaker(self) -> PacedReader:
        """(Re)define "spk" with a new speaker process draining its FIFO."""
        reader = PacedReader(self.spk_fifo, bytes_per_s=2 * OUTPUT_RATE)
        await asyncio.to_thread(reader.start)
        self.harness.readers.append(reader)
        self.rig.playback("spk", self.spk_fifo)
        return reader

    async def run(self) -> tuple[Controller, PacedWriter, PacedReader]:
        """A controller on AlsaSource("mic") and AlsaSink("spk"), both plugged in."""
        writer, reader = self.plug_mic(), await self.plug_speaker()
        source = AlsaSource(request("mic", INPUT_RATE), stall_s=0.5)
        sink = AlsaSink(request("spk", OUTPUT_RATE))
        return await self.harness.run(source, sink), writer, reader


@pytest.fixture
def alsa(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, harness: Harness) -> AlsaDevices:
    return AlsaDevices(AlsaRig(tmp_path, monkeypatch), harness)


def logged(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    return any(text in record.getMessage() for record in caplog.records)


async def pull_speaker_while_playing(
    alsa: AlsaDevices, controller: Controller, speaker: PacedReader
) -> None:
    """Play, then pull the speaker's cable (its card disappears) and wait for the error and
    a failed reopen."""
    controller.sink.write(tone(440, 2.0, OUTPUT_RATE))
    await until(lambda: len(speaker.received) > 0)
    speaker.hang_up()
    alsa.rig.unplug("spk")
    await reach(controller, ERROR)
    await until(lambda: len(alsa.harness.clock.delays) > 1)  # the first reopen failed


async def test_alsa_microphone_hangs_vanishes_and_returns(
    alsa: AlsaDevices, harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="pispeaker.conversation.devices")
    controller, writer, _ = await alsa.run()
    await asyncio.sleep(0.2)  # capturing
    harness.clock.gate.clear()  # no reopen before the unplug below
    writer.pause()  # the device hangs
    await reach(controller, ERROR)
    [message] = controller.record.errors
    assert "audio.capture_device 'mic' delivered no audio for 0.5 s" in message
    alsa.rig.unplug("mic")  # and is gone
    harness.clock.gate.set()
    await until(lambda: logged(caplog, "audio.capture_device 'mic' cannot be opened"))
    assert controller.status.state is ERROR
    alsa.plug_mic()  # plugged back in
    await reach(controller, IDLE, count=2)
    await asyncio.sleep(0.7)  # longer than stall_s: the reopened microphone delivers
    assert controller.record.states == [IDLE, ERROR, IDLE]
    assert_backs_off(harness.clock.delays)


async def test_alsa_speaker_unplugged_while_playing_then_back(
    alsa: AlsaDevices, harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="pispeaker.conversation.devices")
    controller, _, speaker = await alsa.run()
    await pull_speaker_while_playing(alsa, controller, speaker)
    [message] = controller.record.errors
    assert "audio.playback_device 'spk' failed" in message
    assert logged(caplog, "audio.playback_device 'spk' cannot be opened")
    assert controller.status.state is ERROR
    back = await alsa.plug_speaker()
    await reach(controller, IDLE, count=2)
    assert controller.record.states == [IDLE, ERROR, IDLE]
    marker = tone(1000, 0.2, OUTPUT_RATE)
    controller.sink.write(marker)
    await until(lambda: len(back.received) >= len(marker))
    assert back.received == marker
    assert_backs_off(harness.clock.delays)


async def test_alsa_audio_written_while_the_speaker_is_still_missing_is_dropped(
    alsa: AlsaDevices,
) -> None:
    controller, _, speaker = await alsa.run()
    await pull_speaker_while_playing(alsa, controller, speaker)
    controller.sink.write(tone(880, 0.1, OUTPUT_RATE))  # e.g. an earcon, or reply audio


async def test_alsa_controller_stops_when_cancelled_with_audio_waiting(
    alsa: AlsaDevices, harness: Harness
) -> None:
    await alsa.run()
    await asyncio.sleep(0.2)
    time.sleep(0.1)  # noqa: ASYNC251 - the event loop is busy for a moment: chunks queue up
    harness.task.cancel()
    done, _ = await asyncio.wait([harness.task], timeout=1.0)
    assert done, "the controller ignored the cancel"
