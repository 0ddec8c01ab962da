"""The false-wake journal (``wake.journal``): for each wake-word detection, the audio around
it, the model and score, and what followed, kept on the device to tune thresholds with.

The journal stays out of the conversation core: it observes the controller's changes, and
hears the microphone audio exactly where the wake-word listener is fed (so nothing while
MUTED), on the listener's clock, into a preallocated ring. On a detection it waits for
``AFTER_S`` more audio, then a worker thread writes ``<name>.wav`` (16 kHz mono, from
``BEFORE_S`` before the end of the detecting frame to ``AFTER_S`` after) and ``<name>.json``
(the sidecar); once the conversation the wake word opened has ended, the sidecar gets its
outcome: did a user turn follow, did the model answer, and how it ended (the follow-up
window running out with nobody speaking: likely a false wake). The oldest entries are
removed first beyond ``max_files`` entries or ``max_bytes``.
"""

import asyncio
import contextlib
import json
import logging
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pispeaker.audio.pcm import INPUT_RATE, byte_count
from pispeaker.audio.ports import PrerollRing
from pispeaker.states import CONVERSATION, Effect, Event, State
from pispeaker.wake.detector import Detection

if TYPE_CHECKING:
    from pispeaker.controller import Controller
    from pispeaker.conversation.core import Change

log = logging.getLogger(__name__)

#: The journal's directory under the state directory.
DIRECTORY = "wake-journal"
#: Seconds of audio kept before the end of the detecting frame: the wake word and what came
#: before it (``pispeaker test-wake --wav`` ignores its warm-up at the start of a file).
BEFORE_S = 3.0
#: Seconds kept after it: what was said next.
AFTER_S = 1.0
#: The ring's length: the clip, and the wake-word listener's lag behind the microphone (its
#: backlog is 2 s at most).
RING_S = 8.0
#: Sidecar format.
VERSION = 1
#: How a journal entry is named: when (UTC, to the millisecond), then the model.
NAME = re.compile(r"^\d{8}-\d{6}-\d{3}-[\w.-]+$")
#: Ends of a conversation with nobody talking to the speaker.
_QUIET_ENDS = frozenset({Event.FOLLOW_UP_EXPIRED, Event.UNANSWERED_LIMIT, Event.TURN_COMPLETE})
#: How far above the highest likely-false score a suggested threshold goes.
MARGIN = 0.02
RULE = (
    f"suggested: {MARGIN} above the highest likely-false score, but no higher than halfway "
    "to the lowest score of a wake the model answered; no likely-false wake: keep it."
)


@dataclass
class _Entry:
    """A detection being journalled."""

    name: str
    record: dict[str, Any]
    start: int  # the clip, in bytes on the listener's clock
    end: int
    written: bool = False  # its audio and sidecar have been handed to the writer
    user_turn: bool = False
    user_speech: bool = False
    answered: bool = False


class WakeJournal:
    """Journals the detections of one controller's wake-word listener into ``directory``.

    ``attach`` it to a controller before the controller runs; ``close`` it after (what is
    still waiting is written with what there is, and the writer thread ends).
    """

    def __init__(
        self,
        directory: Path,
        max_files: int,
        max_bytes: int,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.directory = directory
        self.max_files, self.max_bytes = max_files, max_bytes
        self._now = now
        self._ring = PrerollRing(RING_S)  # what the wake word heard lately
        self._offset = 0  # the wake-word listener's clock when the ring began (a reload)
        self._kept_from = 0  # the oldest position that may go in a clip (after a gap)
        self._waiting: list[_Entry] = []  # for the audio after the detection
        self._due: int | None = None  # the position the first of them needs
        self._following: list[_Entry] = []  # their conversation goes on
        self._thresholds: Mapping[str, float] = {}
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="wake-journal")
        self._closed = False

    def attach(self, controller: "Controller") -> None:
        """Hear what ``controller``'s wake-word listener hears and observe its changes
        (nothing to journal without a listener)."""
        wake = controller.wake
        if wake is None:
            return
        self._thresholds = wake.detector.thresholds
        # A detector may have heard a stream before (a configuration reloaded): its clock
        # goes on from there.
        self._offset = self._kept_from = byte_count(wake.detector.position_s, INPUT_RATE)
        controller.router.wake_tap = self
        controller.conversation.observers.append(self.on_change)

    # -- audio in (on the event loop, every chunk the wake word hears) ----------------------

    def hear(self, chunk: bytes) -> None:
        """Keep ``chunk`` in the ring (by reference: nothing is copied)."""
        self._ring.append(chunk)
        if self._due is not None and self._position >= self._due:
            self._finish_clips()

    @property
    def _position(self) -> int:
        """Bytes heard, on the wake-word listener's clock."""
        return self._offset + self._ring.position

    def gap(self) -> None:
        """The microphone was away: what came before does not join what comes next."""
        self._finish_clips(everything=True)
        self._kept_from = self._position

    # -- what happened (observer of the controller's changes) -------------------------------

    def on_change(self, change: "Change") -> None:
        """Journal a detection; follow what comes after one until its conversation ends."""
        if self._following:
            self._follow(change)
        if change.event is Event.WAKE_WORD and isinstance(change.cause, Detection):
            self._detected(change, change.cause)
        if change.moved and change.after.state is State.MUTED:
            # Nothing heard from now on is kept, nor what was heard before with it.
            self._finish_clips(everything=True)
            self._kept_from = self._position

    def _detected(self, change: "Change", detection: Detection) -> None:
        when = self._now()
        safe = re.sub(r"[^\w.-]", "_", detection.model)
        name = f"{when:%Y%m%d-%H%M%S}-{when.microsecond // 1000:03d}-{safe}"
        detected = byte_count(detection.end_s, INPUT_RATE)
        acted_on = bool(change.effects)
        record: dict[str, Any] = {
            "version": VERSION,
            "time": when.astimezone().isoformat(timespec="milliseconds"),
            "model": detection.model,
            "score": round(detection.score, 4),
            "threshold": self._thresholds.get(detection.model),
            "acted_on": acted_on,
            "state": change.before.state.value,
            "audio": None,
            "outcome": None,
        }
        entry = _Entry(
            name,
            record,
            detected - byte_count(BEFORE_S, INPUT_RATE),
            detected + byte_count(AFTER_S, INPUT_RATE),
        )
        if not acted_on:
            ignored = f"ignored while {change.before.state.value}"
            record["outcome"] = _outcome(entry, None, ignored)
        elif change.after.state in CONVERSATION:
            self._following.append(entry)
        self._waiting.append(entry)
        self._due = min(e.end for e in self._waiting)
        if self._position >= self._due:
            self._finish_clips()

    def _follow(self, change: "Change") -> None:
        event = change.event
        for entry in self._following:
            if event is Event.USER_TURN_ENDED:
                entry.user_turn = True
            elif event is Event.USER_SPEECH:
                entry.user_speech = True
            elif _answers(change):
                entry.answered = True
        if change.after.state not in CONVERSATION:
            self._conclude(event)

    def _conclude(self, event: Event | None) -> None:
        """The conversation ended with ``event`` (None: the speaker stopped)."""
        for entry in self._following:
            entry.record["outcome"] = _outcome(entry, event)
            if entry.written:
                self._submit(_write_sidecar, self.directory, entry.name, dict(entry.record))
        self._following.clear()

    # -- writing (on the writer thread) -----------------------------------------------------

    def _finish_clips(self, everything: bool = False) -> None:
        """Hand the writer every waiting clip whose audio is in; with ``everything`` (a gap,
        mute, the end) all of them, with the audio there is."""
        ready = [e for e in self._waiting if everything or e.end <= self._position]
        for entry in ready:
            self._waiting.remove(entry)
            oldest = max(self._kept_from, self._offset + self._ring.oldest)
            start, end = max(entry.start, oldest), min(entry.end, self._position)
            pcm = self._ring.between(start - self._offset, end - self._offset)
            # Too little audio before it (start, unmute, a gap): silence stands for it, so
            # the detection stays BEFORE_S into the clip, after test-wake's warm-up.
            lead = max(0, start - entry.start)
            entry.record["audio"] = {
                "file": f"{entry.name}.wav",
                "rate": INPUT_RATE,
                "detected_at_s": BEFORE_S,
                "seconds": round((lead + len(pcm)) / 2 / INPUT_RATE, 3),
                "silence_before_s": round(lead / 2 / INPUT_RATE, 3),
            }
            entry.written = True
            self._submit(
                _write_entry,
                self.directory,
                entry.name,
                bytes(lead) + pcm,
                dict(entry.record),
                self.max_files,
                self.max_bytes,
            )
        self._due = min((e.end for e in self._waiting), default=None)

    def _submit(self, job: Callable[..., None], *args: Any) -> None:
        if not self._closed:
            self._writer.submit(_logged, job, *args)

    async def close(self) -> None:
        """Write what is waiting with the audio there is, mark conversations still going
        as cut short by the stop, and end the writer thread once it has written it all."""
        if self._closed:
            return
        self._finish_clips(everything=True)
        self._conclude(None)
        self._closed = True
        await asyncio.to_thread(self._writer.shutdown, True)


def _answers(change: "Change") -> bool:
    """Whether the model answered with this change: reply audio that plays (not the rest of
    a reply the user cut off), or a tool call."""
    if change.event is Event.MODEL_AUDIO:
        return Effect.PLAY_AUDIO in change.effects
    return change.event is Event.MODEL_TOOL_CALL and not change.before.dropping


def _outcome(entry: _Entry, event: Event | None, ignored: str | None = None) -> dict[str, Any]:
    """What followed a detection, with a one-line summary."""
    if ignored:
        summary, likely_false = ignored, False
    elif entry.answered:
        summary, likely_false = "answered", False
    elif event in _QUIET_ENDS and not entry.user_turn:
        summary, likely_false = "nobody spoke", True
    elif event in _QUIET_ENDS:
        summary, likely_false = "declined: the talk was not for it", True
    elif event is None:
        summary, likely_false = "unknown: the speaker stopped", False
    else:
        summary, likely_false = f"unknown: ended by {event.value}", False
    return {
        "user_turn": entry.user_turn,
        "user_speech": entry.user_speech,
        "answered": entry.answered,
        "ended_by": None if event is None else event.value,
        "likely_false": likely_false,
        "summary": summary,
    }


def _logged(job: Callable[..., None], *args: Any) -> None:
    """Run ``job``; a full disk or a lost directory is logged, never raised."""
    try:
        job(*args)
    except OSError as error:
        log.warning("wake journal: cannot write: %s", error)
    except Exception:  # a bug in this optional record must not stop the speaker
        log.exception("wake journal: writing failed")  # with its traceback, for a report


def _replace(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all."""
    temporary = path.with_name(path.name + ".new")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def _write_sidecar(directory: Path, name: str, record: dict[str, Any]) -> None:
    if (directory / f"{name}.wav").exists():  # not removed by the cap meanwhile
        text = json.dumps(record, indent=2) + "\n"
        _replace(directory / f"{name}.json", text.encode())


def _write_entry(
    directory: Path,
    name: str,
    pcm: bytes,
    record: dict[str, Any],
    max_files: int,
    max_bytes: int,
) -> None:
    import io
    import wave

    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(INPUT_RATE)
        wav.writeframes(pcm)
    _replace(directory / f"{name}.wav", buffer.getvalue())
    _write_sidecar(directory, name, record)
    prune(directory, max_files, max_bytes)


def entry_names(directory: Path) -> list[str]:
    """The journal's entries in ``directory``, oldest first (other files are not its own)."""
    if not directory.is_dir():
        return []
    names = {path.stem for path in directory.iterdir() if path.suffix in (".wav", ".json")}
    return sorted(name for name in names if NAME.match(name))


def prune(directory: Path, max_files: int, max_bytes: int) -> list[str]:
    """Remove the oldest entries until at most ``max_files`` are left in at most
    ``max_bytes``; return the names removed."""
    names = entry_names(directory)
    sizes = {name: _size(directory, name) for name in names}
    total = sum(sizes.values())
    removed: list[str] = []
    for name in names:
        if len(names) - len(removed) <= max_files and total <= max_bytes:
            break
        for suffix in (".wav", ".json"):
            with contextlib.suppress(FileNotFoundError):
                (directory / f"{name}{suffix}").unlink()
        total -= sizes[name]
        removed.append(name)
    return removed


def _size(directory: Path, name: str) -> int:
    size = 0
    for suffix in (".wav", ".json"):
        with contextlib.suppress(FileNotFoundError):
            size += (directory / f"{name}{suffix}").stat().st_size
    return size


# -- reading it back (``pispeaker wake-journal``) ---------------------------------------------


def read_entries(directory: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The sidecars in ``directory``, newest first (each with ``name`` and ``wav``, the
    clip's path), and the problems met (an unreadable sidecar is skipped)."""
    entries, problems = [], []
    for name in reversed(entry_names(directory)):
        path = directory / f"{name}.json"
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except FileNotFoundError:
            continue  # its clip is being written, or was pruned
        except (OSError, ValueError) as error:
            problems.append(f"{path}: {error}")
            continue
        wav = directory / f"{name}.wav"
        entries.append(record | {"name": name, "wav": str(wav) if wav.exists() else None})
    return entries, problems


def likely_false(record: Mapping[str, Any]) -> bool:
    """Whether the entry's outcome marks it as a likely false wake."""
    outcome = record.get("outcome")
    return isinstance(outcome, dict) and bool(outcome.get("likely_false"))


def answered(record: Mapping[str, Any]) -> bool:
    """Whether the model answered what followed the entry's wake word."""
    outcome = record.get("outcome")
    return isinstance(outcome, dict) and bool(outcome.get("answered"))


@dataclass
class Suggestion:
    """A threshold for one model from the scores of its journalled detections."""

    model: str
    threshold: float | None  # the one in force (configured, else the latest recorded)
    suggested: float | None  # None: nothing to go on
    false_scores: list[float] = field(default_factory=list)
    answered_scores: list[float] = field(default_factory=list)

    @property
    def answered_lost(self) -> int:
        """Answered wakes the suggestion would have missed."""
        if self.suggested is None:
            return 0
        return sum(score < self.suggested for score in self.answered_scores)

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "threshold": self.threshold,
            "suggested": self.suggested,
            "likely_false": len(self.false_scores),
            "highest_false_score": max(self.false_scores, default=None),
            "answered": len(self.answered_scores),
            "lowest_answered_score": min(self.answered_scores, default=None),
            "answered_lost": self.answered_lost,
        }


def suggest(
    entries: Iterable[Mapping[str, Any]], thresholds: Mapping[str, float] | None = None
) -> list[Suggestion]:
    """Per model, by RULE: just above its highest likely-false score, but no higher than
    halfway to the lowest answered score; its threshold if nothing was likely false."""
    thresholds = thresholds or {}
    found: dict[str, Suggestion] = {}
    for record in entries:  # newest first: the first threshold seen is the latest
        model = str(record.get("model"))
        score = record.get("score")
        recorded = record.get("threshold")
        current = thresholds.get(model, recorded if isinstance(recorded, float) else None)
        suggestion = found.setdefault(model, Suggestion(model, current, current))
        if not isinstance(score, int | float):
            continue
        if likely_false(record):
            suggestion.false_scores.append(float(score))
        elif answered(record):
            suggestion.answered_scores.append(float(score))
    for suggestion in found.values():
        if suggestion.false_scores:
            suggestion.suggested = _above(suggestion)
    return sorted(found.values(), key=lambda s: s.model)


def _above(suggestion: Suggestion) -> float:
    highest = max(suggestion.false_scores)
    value = math.ceil((highest + MARGIN) * 100 - 1e-9) / 100
    lowest = min(suggestion.answered_scores, default=None)
    if lowest is not None and lowest > highest:
        value = min(value, math.floor((highest + lowest) / 2 * 100 + 1e-9) / 100)
        value = max(value, math.floor(highest * 100 + 1e-9) / 100 + 0.01)
    if suggestion.threshold is not None:
        value = max(value, suggestion.threshold)
    return round(min(0.99, max(0.05, value)), 2)
