"""What one check found, and the report of them all: one line each for people, JSON for
machines (the fleet check reads it)."""

import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass

from pispeaker import __version__


class Outcome(enum.Enum):
    """A check's verdict. Only PROBLEM makes ``pispeaker doctor`` exit 1: a WARNING may be
    fine (a device the running service holds), SKIPPED means the check could not apply."""

    OK = "ok"
    PROBLEM = "problem"
    WARNING = "warning"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Result:
    """One check: ``detail`` says what was found, ``next_step`` what to do about it."""

    name: str
    outcome: Outcome
    detail: str
    next_step: str = ""


def ok(name: str, detail: str) -> Result:
    return Result(name, Outcome.OK, detail)


def problem(name: str, detail: str, next_step: str) -> Result:
    return Result(name, Outcome.PROBLEM, detail, next_step)


def warning(name: str, detail: str, next_step: str = "") -> Result:
    return Result(name, Outcome.WARNING, detail, next_step)


def skipped(name: str, detail: str) -> Result:
    return Result(name, Outcome.SKIPPED, detail)


def all_well(results: Sequence[Result]) -> bool:
    """No check found a problem."""
    return all(result.outcome is not Outcome.PROBLEM for result in results)


def as_text(results: Sequence[Result]) -> str:
    """One line per check (``ok       microphone: ...``), each next step indented below,
    and a last line with the verdict."""
    lines = []
    for result in results:
        lines.append(f"{result.outcome.value:<8} {result.name}: {result.detail}")
        if result.next_step:
            lines.append(f"{'':8} -> {result.next_step}")
    problems = sum(result.outcome is Outcome.PROBLEM for result in results)
    lines.append(
        "All is well." if not problems else f"{problems} problem{'s' if problems > 1 else ''}."
    )
    return "\n".join(lines) + "\n"


def as_json(results: Sequence[Result]) -> str:
    """``{"ok": bool, "version": str, "checks": [{"name", "result", "detail",
    "next_step"}]}`` on one line."""
    report = {
        "ok": all_well(results),
        "version": __version__,
        "checks": [
            {
                "name": result.name,
                "result": result.outcome.value,
                "detail": result.detail,
                "next_step": result.next_step,
            }
            for result in results
        ],
    }
    return json.dumps(report, ensure_ascii=False) + "\n"
