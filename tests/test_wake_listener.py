"""The wake-word listener's worker thread: delivery on the loop, order, back-pressure and
failures."""

import asyncio
import threading

import pytest

from pispeaker.wake import listener as listener_module
from pispeaker.wake.detector import FRAME_BYTES, Frame, Samples, WakeDetector
from pispeaker.wake.listener import WakeListener
from tests.wake_fakes import ScriptedScorer

QUIET = b"\0" * FRAME_BYTES


class Collector:
    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.detections: list[Frame] = []
        self.changed = asyncio.Event()
        self.threads: set[str] = set()

    def on_frame(self, frame: Frame) -> None:
        self.threads.add(threading.current_thread().name)
        self.frames.append(frame)
        self.changed.set()

    def report(self, frame: Frame) -> None:
        self.detections.append(frame)

    async def until(self, frames: int) -> None:
        async with asyncio.timeout(5):
            while len(self.frames) < frames:
                self.changed.clear()
                await self.changed.wait()


async def test_detections_and_scores_arrive_on_the_event_loop_in_order() -> None:
    script = [{"a": 0.1}, {"a": 0.9}, {"a": 0.1}]
    collector = Collector()
    detector = WakeDetector(ScriptedScorer(script), {"a": 0.5}, warmup_s=0.0)
    listener = WakeListener(detector, collector.report, collector.on_frame)
    await listener.start()
    for _ in script:
        listener.feed(QUIET)
    await collector.until(3)
    await listener.stop()
    assert [round(f.end_s, 2) for f in collector.frames] == [0.08, 0.16, 0.24]
    assert [f.detection.model for f in collector.detections if f.detection] == ["a"]
    assert collector.threads == {threading.main_thread().name}


async def test_reset_applies_in_order_with_the_audio() -> None:
    scorer = ScriptedScorer([{"a": 0.1}] * 4)
    collector = Collector()
    listener = WakeListener(WakeDetector(scorer, {"a": 0.5}), collector.report, collector.on_frame)
    await listener.start()
    listener.feed(QUIET)
    listener.reset()
    listener.feed(QUIET)
    await collector.until(2)
    await listener.stop()
    assert scorer.resets == 1
    assert scorer.frames == 2


async def test_a_part_frame_before_a_reset_stays_on_the_clock() -> None:
    scorer = ScriptedScorer([{"a": 0.1}])
    collector = Collector()
    listener = WakeListener(WakeDetector(scorer, {"a": 0.5}), collector.report, collector.on_frame)
    await listener.start()
    listener.feed(QUIET[: FRAME_BYTES // 2])
    listener.reset()
    listener.feed(QUIET)
    await collector.until(1)
    await listener.stop()
    assert scorer.resets == 1
    assert [round(f.end_s, 2) for f in collector.frames] == [0.12]


class GatedScorer(ScriptedScorer):
    """Holds every frame until the gate opens: inference that cannot keep up."""

    def __init__(self) -> None:
        super().__init__([])
        self.gate = threading.Event()
        self.holding = threading.Event()  # a frame is held at the gate

    def score(self, frame: Samples) -> dict[str, float]:
        self.holding.set()
        assert self.gate.wait(5)
        return super().score(frame)


async def test_audio_reaches_the_worker_a_whole_frame_at_a_time() -> None:
    scorer = GatedScorer()  # the worker holds on to the first frame it gets
    collector = Collector()
    listener = WakeListener(WakeDetector(scorer, {"a": 0.5}), collector.report, collector.on_frame)
    await listener.start()
    quarter = FRAME_BYTES // 4  # a 20 ms capture chunk
    for _ in range(7):
        listener.feed(QUIET[:quarter])
    waiting = listener._queue.qsize()  # what the worker is woken for
    scorer.gate.set()
    await collector.until(1)
    await listener.stop()
    assert waiting <= 1  # one frame (or none: the worker took it), never chunks
    assert [round(f.end_s, 2) for f in collector.frames] == [0.08]


async def test_audio_beyond_the_backlog_is_dropped_counted_and_kept_on_the_clock() -> None:
    scorer = GatedScorer()
    collector = Collector()
    detector = WakeDetector(scorer, {"a": 0.5})
    listener = WakeListener(detector, collector.report, collector.on_frame, backlog_s=0.4)
    await listener.start()
    for _ in range(10):  # 0.8 s while the first frame is stuck: about half fits
        listener.feed(QUIET)
    assert 0 < listener.dropped_bytes < 10 * FRAME_BYTES
    kept = 10 - listener.dropped_bytes // FRAME_BYTES
    scorer.gate.set()
    await collector.until(kept)
    listener.feed(QUIET)  # after the gap: the detector learns how much it missed
    await collector.until(kept + 1)
    await listener.stop()
    assert detector.position_s == pytest.approx(11 * 0.08)
    assert scorer.resets == 1  # the models restart after the gap


def test_a_worker_still_busy_when_stop_gives_up_leaves_a_closed_loop_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A busy machine: stop() stops waiting for a worker stuck in a frame, and the loop
    closes. The worker then scores nothing more and hands nothing to the closed loop."""
    monkeypatch.setattr(listener_module, "STOP_TIMEOUT_S", 0.01)
    failures: list[threading.ExceptHookArgs] = []
    monkeypatch.setattr(threading, "excepthook", failures.append)
    scorer, collector = GatedScorer(), Collector()

    async def listen_then_stop() -> threading.Thread:
        listener = WakeListener(
            WakeDetector(scorer, {"a": 0.5}), collector.report, collector.on_frame
        )
        await listener.start()
        for _ in range(5):
            listener.feed(QUIET)
        worker = listener._thread
        assert worker is not None
        assert await asyncio.to_thread(scorer.holding.wait, 5)
        await listener.stop()  # gives up at once: the worker is held in its first frame
        return worker

    worker = asyncio.run(listen_then_stop())  # the loop is closed now
    assert worker.is_alive()
    scorer.gate.set()
    worker.join(5)
    assert not worker.is_alive()
    assert failures == []  # no "Event loop is closed" from the thread
    assert collector.frames == []
    assert scorer.frames <= 1  # the frame it was in; the queued ones are not scored


class BrokenScorer(ScriptedScorer):
    def score(self, frame: Samples) -> dict[str, float]:
        raise RuntimeError("inference bug")


async def test_a_failing_worker_is_raised_on_the_loop_not_swallowed() -> None:
    listener = WakeListener(WakeDetector(BrokenScorer([]), {"a": 0.5}), lambda frame: None)
    await listener.start()
    listener.feed(QUIET)
    async with asyncio.timeout(5):
        with pytest.raises(RuntimeError, match="inference bug"):
            await listener.wait_failed()
    await listener.stop()
    await listener.stop()  # twice is harmless
