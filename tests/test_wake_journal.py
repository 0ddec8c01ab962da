"""The false-wake journal (wake.journal): the real hey_jarvis model on espeak-ng speech, in
whole conversations against the emulator (the controller, the real listener, the Live link);
its caps on a journal fed directly; ``pispeaker wake-journal`` on a prepared directory."""

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import wave
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pispeaker.app import build_journal, wake_maker
from pispeaker.audio.memory import MemorySink, MemorySource
from pispeaker.audio.pcm import INPUT_RATE, byte_count
from pispeaker.config import Config, LiveConfig, WakeConfig
from pispeaker.controller import Policy
from pispeaker.conversation.core import Change
from pispeaker.emulator import LiveEmulator
from pispeaker.live.link import LiveLink
from pispeaker.live.port import LinkEvent
from pispeaker.states import Effect, Event, State, Status
from pispeaker.tools import Tool
from pispeaker.wake.detector import Detection
from pispeaker.wake.journal import (
    AFTER_S,
    BEFORE_S,
    WakeJournal,
    entry_names,
    read_entries,
    suggest,
)
from pispeaker.wakecheck import test_wake as score_wav
from tests import speech
from tests.alsa_rig import AlsaRig
from tests.conftest import RecordedController
from tests.service_rig import has, service_rig, status_is

#: The journal's own settings, as in config; the real hey_jarvis model at 0.5.
WAKE = WakeConfig(journal=True)


class SaidSource(MemorySource):
    """A real-time microphone that says ``audio`` and sets ``said`` once all of it is read."""

    def __init__(self, audio: bytes) -> None:
        super().__init__(audio, realtime=True)
        self.length = len(audio)
        self.said = asyncio.Event()

    async def read(self) -> bytes:
        chunk = await super().read()
        if self._position >= self.length:
            self.said.set()
        return chunk


@asynccontextmanager
async def speaker(
    emulator: LiveEmulator,
    audio: bytes,
    state: Path,
    wake: WakeConfig = WAKE,
    follow_up_s: float = 1.5,
) -> AsyncIterator[tuple[RecordedController, SaidSource]]:
    """A controller hearing ``audio`` with the real wake word and the journal of ``wake``
    in ``state`` (as the daemon builds it), talking to ``emulator``; the journal is closed
    once the controller has stopped."""
    live = LiveConfig().model_copy(
        update={
            "base_url": emulator.base_url,
            "ca_file": emulator.ca_file,
            "silence_duration_ms": 300,
        }
    )

    def make_link(report: Callable[[LinkEvent], None], tools: Callable[[], list[Tool]]) -> Any:
        return LiveLink(live, emulator.api_key, report, tools)

    source, sink = SaidSource(audio), MemorySink(realtime=True)
    controller = RecordedController(
        source, sink, make_link, Policy(follow_up_s=follow_up_s), make_wake=wake_maker(wake)
    )
    journal = build_journal(wake, {"STATE_DIRECTORY": str(state)}, controller)
    assert (journal is None) == (not wake.journal)
    await source.start()
    await sink.start()
    task = asyncio.create_task(controller.run())
    try:
        async with asyncio.timeout(30):
            yield controller, source
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if journal is not None:
            await journal.close()


def entries_in(state: Path) -> list[dict[str, Any]]:
    entries, problems = read_entries(state / "wake-journal")
    assert problems == []
    return entries


def wav_pcm(path: Path) -> bytes:
    with wave.open(str(path)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 16000)
        return wav.readframes(wav.getnframes())


def wake_alone(lead_s: float = 3.0, tail_s: float = 3.0) -> bytes:
    """The wake word after ``lead_s`` of silence, then ``tail_s`` of it."""
    said: bytes = speech.read_pcm(speech.say(speech.WAKE_TEXT, speech.REQUEST_VOICE))
    return bytes(byte_count(lead_s, INPUT_RATE)) + said + bytes(byte_count(tail_s, INPUT_RATE))


async def test_a_wake_word_the_model_answered_is_kept_with_the_audio_around_it(
    emulator: LiveEmulator, tmp_path: Path
) -> None:
    said = speech.wake_then_request(lead=3.0)
    audio = speech.read_pcm(said.path)
    async with speaker(emulator, audio, tmp_path) as (controller, _):
        await controller.entered(State.SPEAKING)
        await controller.entered(State.IDLE, 2)  # the follow-up window ran out after it
    [entry] = entries_in(tmp_path)
    assert entry["model"] == "hey_jarvis"
    assert entry["score"] >= 0.5
    assert entry["threshold"] == 0.5
    assert entry["acted_on"] is True
    assert entry["state"] == "idle"
    outcome = entry["outcome"]
    assert outcome["user_turn"] is True
    assert outcome["answered"] is True
    assert outcome["likely_false"] is False
    assert outcome["summary"] == "answered"
    assert outcome["ended_by"] == "follow-up expired"
    # The clip is the microphone's audio from BEFORE_S before the detecting frame's end to
    # AFTER_S after, exactly: the wake word is in it, the request starts after it.
    clip = wav_pcm(Path(entry["wav"]))
    assert entry["audio"]["silence_before_s"] == 0.0
    assert len(clip) == byte_count(BEFORE_S + AFTER_S, INPUT_RATE)
    start = audio.find(clip)
    assert start > 0
    detected = start + byte_count(BEFORE_S, INPUT_RATE)
    assert said.wake_start * 2 < detected <= said.request_start * 2
    # test-wake's scoring finds the wake word in it.
    out = io.StringIO()
    assert await score_wav(Config(), Path(entry["wav"]), 0.0, out) == 0
    assert "DETECTED hey_jarvis" in out.getvalue()
    assert "1 detection(s)." in out.getvalue()


async def test_a_wake_word_nobody_followed_is_likely_false(
    emulator: LiveEmulator, tmp_path: Path
) -> None:
    async with speaker(emulator, wake_alone(), tmp_path) as (controller, _):
        await controller.entered(State.LISTENING)
        await controller.entered(State.IDLE, 2)
    assert controller.record.states == [State.IDLE, State.CONNECTING, State.LISTENING, State.IDLE]
    [entry] = entries_in(tmp_path)
    assert entry["outcome"] == {
        "user_turn": False,
        "user_speech": False,
        "answered": False,
        "ended_by": "follow-up expired",
        "likely_false": True,
        "summary": "nobody spoke",
    }
    out = io.StringIO()
    assert await score_wav(Config(), Path(entry["wav"]), 0.0, out) == 0
    assert "DETECTED hey_jarvis" in out.getvalue()


async def test_muting_deletes_nothing_and_records_nothing(
    emulator: LiveEmulator, tmp_path: Path
) -> None:
    twice = wake_alone(tail_s=1.0) + wake_alone(lead_s=1.0)
    async with speaker(emulator, twice, tmp_path, follow_up_s=30.0) as (controller, source):
        await controller.entered(State.CONNECTING)
        controller.dispatch(Event.BUTTON_HOLD)  # muted before the second "hey jarvis"
        await source.said.wait()
        assert controller.status.state is State.MUTED
    assert len(controller.record.wakes) == 1
    [entry] = entries_in(tmp_path)  # the first, kept
    assert entry["outcome"]["ended_by"] == "button hold"
    assert entry["outcome"]["likely_false"] is False
    # Its clip is what was heard before muting: none of the second "hey jarvis" is in it.
    clip = wav_pcm(Path(entry["wav"]))
    second = len(wake_alone(tail_s=1.0)) + byte_count(1.0, INPUT_RATE)
    start = twice.find(clip)
    assert 0 < start < start + len(clip) <= second


async def test_off_writes_nothing(emulator: LiveEmulator, tmp_path: Path) -> None:
    off = WakeConfig()
    assert off.journal is False
    async with speaker(emulator, wake_alone(), tmp_path, wake=off) as (controller, _):
        await controller.entered(State.LISTENING)
        assert controller.router.wake_tap is None
        await controller.entered(State.IDLE, 2)
    assert len(controller.record.wakes) == 1
    assert not any(tmp_path.iterdir())  # noqa: ASYNC240


async def test_the_daemon_keeps_its_journal_in_the_state_directory(
    tmp_path: Path, emulator: LiveEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``pispeaker run`` as systemd runs it, with wake.journal on; SIGTERM writes it out."""
    said = speech.wake_then_request()
    audio = speech.to_rate(said.path, speech.RATE, speech.CHANNELS, raw=True).read_bytes()
    async with service_rig(tmp_path, emulator, AlsaRig(tmp_path, monkeypatch)) as rig:
        daemon = await rig.start(rig.config(wake={"journal": True}), audio)
        notes = daemon.notes
        ready = await notes.wait_for(has("READY", "1"), within_s=30)
        idle = notes.notes[ready].fields["STATUS"]
        await notes.wait_for(status_is(idle), after=ready + 1, within_s=30)  # after it all
        daemon.send(signal.SIGTERM)
        assert await daemon.exit_code() == 0
    state = tmp_path / "state"
    [entry] = entries_in(state)
    assert entry["model"] == "hey_jarvis"
    assert entry["outcome"]["summary"] == "answered"
    assert f"wake journal on: each detection is kept in {state / 'wake-journal'}" in daemon.log
    environ = os.environ | {"STATE_DIRECTORY": str(state)}
    listing = await asyncio.to_thread(run_cli, "wake-journal", environ=environ)
    assert listing.returncode == 0, listing.stderr
    assert f"Wake journal in {state / 'wake-journal'}: 1 detection(s), 0 likely false" in (
        listing.stdout
    )


# -- the journal fed directly: caps, order, ignored detections --------------------------------


class Clock:
    def __init__(self) -> None:
        self.at = datetime(2025, 5, 1, 12, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.at += timedelta(seconds=10)
        return self.at


def detect(journal: WakeJournal, seconds: float, score: float, effects: bool = True) -> None:
    """Feed ``seconds`` of audio (a ramp, so every clip differs), then a detection at its end
    that opened a conversation (or, without ``effects``, was ignored)."""
    count = byte_count(seconds, INPUT_RATE) // 2
    ramp = (np.arange(count) % 30000).astype("<i2").tobytes()
    for offset in range(0, len(ramp), 640):
        journal.hear(ramp[offset : offset + 640])
    end_s = journal._position / 2 / INPUT_RATE
    detection = Detection("hey_jarvis", score, end_s - 0.08, end_s)
    after = Status(State.CONNECTING) if effects else Status(State.LISTENING)
    before = Status() if effects else Status(State.LISTENING)
    journal.on_change(
        Change(before, Event.WAKE_WORD, after, (Effect.OPEN_SESSION,) if effects else (), detection)
    )


def hear_silence(journal: WakeJournal, seconds: float) -> None:
    silence = bytes(640)
    for _ in range(byte_count(seconds, INPUT_RATE) // 640):
        journal.hear(silence)


async def test_the_caps_remove_the_oldest_entries_first(tmp_path: Path) -> None:
    journal = WakeJournal(tmp_path, max_files=2, max_bytes=10_000_000, now=Clock())
    for score in (0.6, 0.7, 0.8):
        detect(journal, 4.0, score)
        hear_silence(journal, AFTER_S)
    await journal.close()
    names = entry_names(tmp_path)
    assert names == ["20250501-120020-000-hey_jarvis", "20250501-120030-000-hey_jarvis"]
    assert [entry["score"] for entry in read_entries(tmp_path)[0]] == [0.8, 0.7]
    assert sorted(p.name for p in tmp_path.iterdir()) == [  # noqa: ASYNC240
        f"{name}{suffix}" for name in names for suffix in (".json", ".wav")
    ]
    # Each clip: 3 s before the detection and 1 s after.
    for name in names:
        assert len(wav_pcm(tmp_path / f"{name}.wav")) == byte_count(4.0, INPUT_RATE)
    (tmp_path / "notes.txt").write_text("not the journal's")
    one = sum(p.stat().st_size for p in tmp_path.glob("2025*")) // 2  # noqa: ASYNC240
    newer = datetime(2025, 5, 2, tzinfo=UTC)
    journal = WakeJournal(tmp_path, max_files=100, max_bytes=one * 2 + 100, now=lambda: newer)
    detect(journal, 4.0, 0.9)
    hear_silence(journal, AFTER_S)
    await journal.close()
    assert entry_names(tmp_path) == [
        "20250501-120030-000-hey_jarvis",
        "20250502-000000-000-hey_jarvis",
    ]
    assert (tmp_path / "notes.txt").exists()  # not the journal's to remove


async def test_an_ignored_detection_is_kept_as_ignored_and_a_stop_leaves_the_outcome_open(
    tmp_path: Path,
) -> None:
    journal = WakeJournal(tmp_path, max_files=10, max_bytes=10_000_000, now=Clock())
    detect(journal, 1.0, 0.55, effects=False)  # too little audio before it: silence
    detect(journal, 3.5, 0.9)  # a conversation still going when the speaker stops
    await journal.close()  # before the second's AFTER_S of audio: what there is
    new, old = read_entries(tmp_path)[0]
    assert old["outcome"]["summary"] == "ignored while listening"
    assert old["acted_on"] is False
    assert old["audio"]["silence_before_s"] == 2.0
    assert len(wav_pcm(Path(old["wav"]))) == byte_count(4.0, INPUT_RATE)
    assert new["outcome"]["summary"] == "unknown: the speaker stopped"
    assert len(wav_pcm(Path(new["wav"]))) == byte_count(BEFORE_S, INPUT_RATE)


async def test_nothing_heard_before_a_mute_or_a_gap_joins_a_later_clip(tmp_path: Path) -> None:
    journal = WakeJournal(tmp_path, max_files=10, max_bytes=10_000_000, now=Clock())
    hear_silence(journal, 2.0)
    journal.on_change(Change(Status(), Event.BUTTON_HOLD, Status(State.MUTED), ()))
    journal.on_change(Change(Status(State.MUTED), Event.BUTTON_HOLD, Status(), ()))
    detect(journal, 2.0, 0.9, effects=False)
    hear_silence(journal, 1.0)
    journal.gap()  # the microphone was away
    detect(journal, 2.5, 0.8, effects=False)
    hear_silence(journal, 1.0)
    await journal.close()
    after_gap, after_mute = read_entries(tmp_path)[0]
    assert after_mute["audio"]["silence_before_s"] == 1.0
    assert after_gap["audio"]["silence_before_s"] == 0.5
    for entry in (after_mute, after_gap):
        clip = wav_pcm(Path(entry["wav"]))
        assert len(clip) == byte_count(BEFORE_S + AFTER_S, INPUT_RATE)
        lead = byte_count(entry["audio"]["silence_before_s"], INPUT_RATE)
        assert not any(clip[:lead])
        assert clip[lead : lead + 2] == bytes(2)  # the ramp starts at 0, then rises
        assert clip[lead + 2 : lead + 4] == (1).to_bytes(2, "little")


# -- pispeaker wake-journal -------------------------------------------------------------------


def prepared(directory: Path, entries: list[tuple[str, float, str]]) -> None:
    """Entries (model, score, "answered" | "false" | "cut"), a minute apart, oldest first."""
    directory.mkdir()
    for minute, (model, score, kind) in enumerate(entries):
        name = f"20250501-12{minute:02d}00-000-{model}"
        with wave.open(str(directory / f"{name}.wav"), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(16000)
            wav.writeframes(bytes(byte_count(4.0, INPUT_RATE)))
        outcome = {
            "user_turn": kind == "answered",
            "user_speech": kind == "answered",
            "answered": kind == "answered",
            "ended_by": {"answered": "follow-up expired", "false": "follow-up expired"}.get(
                kind, "button press"
            ),
            "likely_false": kind == "false",
            "summary": {"answered": "answered", "false": "nobody spoke"}.get(
                kind, "unknown: ended by button press"
            ),
        }
        record = {
            "version": 1,
            "time": f"2025-05-01T12:{minute:02d}:00.000+00:00",
            "model": model,
            "score": score,
            "threshold": 0.5,
            "acted_on": True,
            "state": "idle",
            "audio": {"file": f"{name}.wav", "rate": 16000, "detected_at_s": 3.0},
            "outcome": outcome,
        }
        (directory / f"{name}.json").write_text(json.dumps(record))


def run_cli(
    *args: str, config: Path | None = None, environ: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``pispeaker [--config CONFIG] ARGS`` in a subprocess, with ``environ`` if given."""
    command = [sys.executable, "-m", "pispeaker"]
    command += ["--config", str(config)] if config else []
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=60, check=False, env=environ
    )


JOURNAL = [
    ("hey_jarvis", 0.97, "answered"),
    ("hey_jarvis", 0.62, "false"),
    ("hey_jarvis", 0.99, "answered"),
    ("hey_jarvis", 0.55, "false"),
    ("alexa", 0.91, "answered"),
    ("hey_jarvis", 0.71, "cut"),
]


def test_the_listing_marks_the_likely_false_and_suggests_thresholds(tmp_path: Path) -> None:
    journal = tmp_path / "wake-journal"
    prepared(journal, JOURNAL)
    done = run_cli("wake-journal", "--dir", str(tmp_path))  # the state directory will do
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == (
        f"Wake journal in {journal}: 6 detection(s), 2 likely false (marked !), newest first."
    )
    listed = lines[2:8]
    scores = [line[2:].split()[3] for line in listed]
    assert scores == ["0.71", "0.91", "0.55", "0.99", "0.62", "0.97"]
    marked = [line for line in listed if line.startswith("!")]
    assert len(marked) == 2
    assert all("nobody spoke (likely false)" in line for line in marked)
    assert "unknown: ended by button press" in listed[0]
    assert lines[8] == "Suggested thresholds:"
    assert lines[9] == "  alexa: keep 0.50 (0 likely false, 1 answered (lowest 0.91))"
    assert lines[10] == (
        "  hey_jarvis: 0.50 -> 0.64 (2 likely false (highest 0.62), 2 answered (lowest 0.97))"
    )
    assert lines[11].startswith("  (suggested: 0.02 above the highest likely-false score")
    assert lines[12] == (
        f"Replay one with: pispeaker test-wake --wav {journal}/20250501-120500-000-hey_jarvis.wav"
    )


def test_the_listing_as_json(tmp_path: Path) -> None:
    prepared(tmp_path / "journal", JOURNAL)
    done = run_cli("wake-journal", "--dir", str(tmp_path / "journal"), "--json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert [entry["score"] for entry in document["entries"]] == [
        0.71, 0.91, 0.55, 0.99, 0.62, 0.97
    ]  # fmt: skip
    assert document["entries"][2]["wav"].endswith("20250501-120300-000-hey_jarvis.wav")
    jarvis = next(s for s in document["suggestions"] if s["model"] == "hey_jarvis")
    assert jarvis == {
        "model": "hey_jarvis",
        "threshold": 0.5,
        "suggested": 0.64,
        "likely_false": 2,
        "highest_false_score": 0.62,
        "answered": 2,
        "lowest_answered_score": 0.97,
        "answered_lost": 0,
    }
    assert document["enabled"] is False


def test_the_suggestion_stays_below_the_answered_and_says_what_an_overlap_costs() -> None:
    def record(score: float, kind: str) -> dict[str, Any]:
        outcome = {"likely_false": kind == "false", "answered": kind == "answered"}
        return {"model": "m", "score": score, "threshold": 0.5, "outcome": outcome}

    [close] = suggest([record(0.70, "false"), record(0.73, "answered")])
    assert close.suggested == 0.71  # halfway, rounded down, still above the false one
    [overlap] = suggest([record(0.80, "false"), record(0.75, "answered")], {"m": 0.6})
    assert (overlap.threshold, overlap.suggested, overlap.answered_lost) == (0.6, 0.82, 1)
    [none] = suggest([record(0.9, "answered")])
    assert none.suggested == 0.5


def test_an_empty_or_missing_journal_says_how_to_turn_it_on(tmp_path: Path) -> None:
    done = run_cli("wake-journal", "--dir", str(tmp_path / "nowhere"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"No wake-journal entries in {tmp_path / 'nowhere'}.\n")
    assert "The journal is off: set journal = true in [wake]" in done.stdout
    config = tmp_path / "pispeaker.toml"
    config.write_text("[wake]\njournal = true\n")
    done = run_cli("wake-journal", "--dir", str(tmp_path), config=config)
    assert "The journal is on: each wake word heard from now on is listed here." in done.stdout


def test_the_default_directory_is_the_daemons(tmp_path: Path) -> None:
    prepared(tmp_path / "wake-journal", JOURNAL[:1])
    environ = {"STATE_DIRECTORY": str(tmp_path), "PATH": "/usr/bin:/bin"}
    done = run_cli("wake-journal", environ=environ)
    assert done.returncode == 0, done.stderr
    assert f"Wake journal in {tmp_path / 'wake-journal'}: 1 detection(s)" in done.stdout
