"""``pispeaker wake-journal``: the false-wake journal's entries, newest first, the likely
false ones marked, and a threshold per model suggested from their scores."""

import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from pispeaker.wake.journal import DIRECTORY, RULE, likely_false, read_entries, suggest

#: Where the systemd service keeps its state (StateDirectory=pispeaker).
SERVICE_DIRECTORY = Path("/var/lib/pispeaker") / DIRECTORY
FALSE_MARK = "!"


def show_journal(
    directory: Path,
    enabled: bool,
    thresholds: Mapping[str, float],
    as_json: bool,
    out: TextIO,
) -> int:
    """List the journal in ``directory`` (``enabled``: wake.journal is on in the config;
    ``thresholds``: those configured, per model) as text or JSON."""
    entries, problems = read_entries(directory)
    suggestions = suggest(entries, thresholds)
    if as_json:
        document = {
            "directory": str(directory),
            "enabled": enabled,
            "entries": entries,
            "suggestions": [suggestion.as_dict() for suggestion in suggestions],
            "rule": RULE,
            "problems": problems,
        }
        out.write(json.dumps(document, indent=2) + "\n")
        return 0
    for problem in problems:
        out.write(f"skipped {problem}\n")
    if not entries:
        out.write(_empty(directory, enabled))
        return 0
    marked = sum(map(likely_false, entries))
    out.write(
        f"Wake journal in {directory}: {len(entries)} detection(s), {marked} likely false "
        f"(marked {FALSE_MARK}), newest first.\n"
    )
    out.write(f"  {'time':19}  {'model':14} {'score':>5}  {'threshold':>9}  outcome\n")
    for entry in entries:
        out.write(_line(entry) + "\n")
    out.write("Suggested thresholds:\n")
    for suggestion in suggestions:
        out.write(f"  {_suggestion_line(suggestion.as_dict())}\n")
    out.write(f"  ({RULE})\n")
    newest = next((entry["wav"] for entry in entries if entry["wav"]), None)
    if newest:
        out.write(f"Replay one with: pispeaker test-wake --wav {newest}\n")
    return 0


def _empty(directory: Path, enabled: bool) -> str:
    if not enabled:
        why = (
            "The journal is off: set journal = true in [wake] (it keeps, on this device "
            "only, the audio around each detection) and restart pispeaker."
        )
    else:
        why = "The journal is on: each wake word heard from now on is listed here."
    hint = ""
    if directory != SERVICE_DIRECTORY and SERVICE_DIRECTORY.parent.exists():
        hint = f"\nThe service keeps its journal in {SERVICE_DIRECTORY} (--dir; may need sudo)."
    return f"No wake-journal entries in {directory}.\n{why}{hint}\n"


def _line(entry: Mapping[str, Any]) -> str:
    mark = FALSE_MARK if likely_false(entry) else " "
    outcome = entry.get("outcome")
    said = outcome.get("summary", "?") if isinstance(outcome, dict) else "conversation going on"
    if likely_false(entry):
        said += " (likely false)"
    score, threshold = entry.get("score"), entry.get("threshold")
    return (
        f"{mark} {_time(entry.get('time'))}  {entry.get('model')!s:14} "
        f"{_number(score):>5}  {_number(threshold):>9}  {said}  [{entry['name']}]"
    )


def _time(text: object) -> str:
    try:
        return datetime.fromisoformat(str(text)).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return f"{str(text)[:19]:19}"


def _number(value: object) -> str:
    return f"{value:.2f}" if isinstance(value, int | float) else "?"


def _suggestion_line(suggestion: Mapping[str, Any]) -> str:
    model, threshold = suggestion["model"], suggestion["threshold"]
    found = f"{suggestion['likely_false']} likely false"
    if suggestion["likely_false"]:
        found += f" (highest {suggestion['highest_false_score']:.2f})"
    found += f", {suggestion['answered']} answered"
    if suggestion["answered"]:
        found += f" (lowest {suggestion['lowest_answered_score']:.2f})"
    if not suggestion["likely_false"] or suggestion["suggested"] == threshold:
        return f"{model}: keep {_number(threshold)} ({found})"
    line = f"{model}: {_number(threshold)} -> {_number(suggestion['suggested'])} ({found})"
    if suggestion["answered_lost"]:
        line += f"; {suggestion['answered_lost']} answered wake(s) would have been missed"
    return line
