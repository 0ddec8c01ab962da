"""Tests for pispeaker.emulator.timeline: recording, querying, awaiting and JSON lines."""

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path

import pytest

from pispeaker.emulator.timeline import Event, Timeline


def fake_clock(start: float = 100.0, step: float = 0.5) -> Callable[[], float]:
    ticks: Iterator[float] = (start + step * n for n in range(1_000_000))
    return lambda: next(ticks)


def test_record_appends_events_with_clock_time() -> None:
    timeline = Timeline(clock=fake_clock())
    first = timeline.record("connect", 1)
    second = timeline.record("audio.in", 1, "session-1", bytes=640)
    assert timeline.events == [first, second]
    assert first == Event(100.0, "connect", 1, None, {})
    assert second == Event(100.5, "audio.in", 1, "session-1", {"bytes": 640})
    assert timeline.now() == 101.0


def test_now_uses_monotonic_by_default() -> None:
    timeline = Timeline()
    before = time.monotonic()
    event = timeline.record("x", 0)
    after = time.monotonic()
    assert before <= event.t <= after
    assert before <= timeline.now()


def test_of_filters_by_kind_and_connection() -> None:
    timeline = Timeline(clock=fake_clock())
    a1 = timeline.record("audio.in", 1, bytes=1)
    timeline.record("connect", 2)
    a2 = timeline.record("audio.in", 2, bytes=2)
    a3 = timeline.record("audio.in", 1, bytes=3)
    assert timeline.of("audio.in") == [a1, a2, a3]
    assert timeline.of("audio.in", connection=1) == [a1, a3]
    assert timeline.of("audio.in", connection=2) == [a2]
    assert timeline.of("audio.in", connection=3) == []
    assert timeline.of("missing") == []


def test_of_connection_zero_is_not_treated_as_no_filter() -> None:
    timeline = Timeline(clock=fake_clock())
    zero = timeline.record("x", 0)
    timeline.record("x", 1)
    assert timeline.of("x", connection=0) == [zero]


async def test_wait_for_returns_an_already_recorded_event() -> None:
    timeline = Timeline()
    timeline.record("other", 1)
    event = timeline.record("setup", 1)
    assert await timeline.wait_for("setup", within_s=0.05) is event


async def test_wait_for_returns_the_first_match() -> None:
    timeline = Timeline()
    first = timeline.record("turn", 1, n=1)
    timeline.record("turn", 1, n=2)
    assert await timeline.wait_for("turn", within_s=0.05) is first


async def test_wait_for_waits_for_a_future_event() -> None:
    timeline = Timeline()
    timeline.record("other", 1)
    loop = asyncio.get_running_loop()
    loop.call_soon(timeline.record, "turn.complete", 1)
    event = await timeline.wait_for("turn.complete", within_s=1.0)
    assert event.kind == "turn.complete"
    assert timeline.events[-1] is event


async def test_wait_for_skips_events_of_other_kinds_that_arrive_first() -> None:
    timeline = Timeline()
    loop = asyncio.get_running_loop()

    def noise_then_target() -> None:
        timeline.record("noise", 1)
        loop.call_soon(timeline.record, "target", 1)

    loop.call_soon(noise_then_target)
    event = await timeline.wait_for("target", within_s=1.0)
    assert event.kind == "target"
    assert [e.kind for e in timeline.events] == ["noise", "target"]


async def test_wait_for_sees_every_event_of_a_burst() -> None:
    timeline = Timeline()
    loop = asyncio.get_running_loop()

    def burst() -> None:
        for kind in ("a", "b", "c"):
            timeline.record(kind, 1)

    loop.call_soon(burst)
    # All three are recorded before the waiter runs again; the middle one must still be found.
    event = await timeline.wait_for("b", within_s=1.0)
    assert event is timeline.events[1]


async def test_wait_for_honours_where() -> None:
    timeline = Timeline()
    timeline.record("audio.out", 1, bytes=100)
    loop = asyncio.get_running_loop()
    loop.call_soon(timeline.record, "audio.out", 2, None)
    loop.call_soon(lambda: timeline.record("audio.out", 1, bytes=9_600))
    event = await timeline.wait_for(
        "audio.out",
        where=lambda e: e.connection == 1 and e.data.get("bytes", 0) > 1_000,
        within_s=1,
    )
    assert event.data == {"bytes": 9_600}
    assert event is timeline.events[-1]


async def test_wait_for_honours_start() -> None:
    timeline = Timeline()
    timeline.record("turn", 1, n=1)
    second = timeline.record("turn", 1, n=2)
    assert await timeline.wait_for("turn", start=1, within_s=0.05) is second


async def test_wait_for_with_start_at_the_end_waits_for_a_new_event() -> None:
    timeline = Timeline()
    timeline.record("turn", 1, n=1)
    mark = len(timeline.events)
    loop = asyncio.get_running_loop()
    loop.call_soon(lambda: timeline.record("turn", 1, n=2))
    event = await timeline.wait_for("turn", start=mark, within_s=1.0)
    assert event.data == {"n": 2}


async def test_wait_for_times_out() -> None:
    timeline = Timeline()
    timeline.record("other", 1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        await timeline.wait_for("never", within_s=0.05)
    assert loop.time() - started < 1.0


async def test_wait_for_times_out_when_where_never_matches() -> None:
    timeline = Timeline()
    timeline.record("turn", 1)
    loop = asyncio.get_running_loop()
    loop.call_soon(timeline.record, "turn", 2)
    with pytest.raises(TimeoutError):
        await timeline.wait_for("turn", where=lambda e: e.connection == 3, within_s=0.05)


async def test_wait_for_times_out_when_the_match_is_before_start() -> None:
    timeline = Timeline()
    timeline.record("turn", 1)
    with pytest.raises(TimeoutError):
        await timeline.wait_for("turn", start=1, within_s=0.05)


async def test_several_waiters_are_all_woken() -> None:
    timeline = Timeline()
    waiters = [
        asyncio.ensure_future(timeline.wait_for("x", within_s=1.0)),
        asyncio.ensure_future(timeline.wait_for("x", within_s=1.0)),
        asyncio.ensure_future(timeline.wait_for("y", within_s=1.0)),
    ]
    # The waiters' first steps were scheduled before these records, so they block first.
    asyncio.get_running_loop().call_soon(timeline.record, "x", 1)
    asyncio.get_running_loop().call_soon(timeline.record, "y", 1)
    x1, x2, y = await asyncio.gather(*waiters)
    assert x1 is x2 is timeline.events[0]
    assert y is timeline.events[1]


def test_jsonl_has_one_object_per_event(tmp_path: Path) -> None:
    path = tmp_path / "timeline.jsonl"
    timeline = Timeline(path, clock=fake_clock())
    events = [
        timeline.record("connect", 1),
        timeline.record("setup", 1, "session-1", model="models/x"),
        timeline.record("audio.in", 1, "session-1", bytes=640, nested={"a": [1, 2]}),
    ]
    # Each line is flushed as it is recorded, before close.
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3
    timeline.close()
    objects = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert objects == [asdict(event) for event in events]
    assert objects[1] == {
        "t": 100.5,
        "kind": "setup",
        "connection": 1,
        "session": "session-1",
        "data": {"model": "models/x"},
    }


def test_jsonl_appends_and_close_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "timeline.jsonl"
    first = Timeline(path, clock=fake_clock())
    first.record("a", 1)
    first.close()
    first.close()
    second = Timeline(path, clock=fake_clock())
    second.record("b", 2)
    second.close()
    kinds = [json.loads(line)["kind"] for line in path.read_text(encoding="utf-8").splitlines()]
    assert kinds == ["a", "b"]


def test_record_after_close_stays_in_memory_only(tmp_path: Path) -> None:
    path = tmp_path / "timeline.jsonl"
    timeline = Timeline(path, clock=fake_clock())
    timeline.record("a", 1)
    timeline.close()
    timeline.record("b", 1)
    assert [e.kind for e in timeline.events] == ["a", "b"]
    assert len(path.read_text(encoding="utf-8").splitlines()) == 1


def test_no_file_without_a_path(tmp_path: Path) -> None:
    timeline = Timeline(clock=fake_clock())
    timeline.record("a", 1)
    timeline.close()
    assert list(tmp_path.iterdir()) == []
