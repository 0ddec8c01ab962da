"""The results model of ``pispeaker bench``: each measured figure with its statistics and
target, the report of a run, its printed table and its JSON document.

Pure: nothing here measures anything. :func:`machine` only reads a few files under /proc and
/etc, and :func:`now_utc` the clock.
"""

import json
import math
import os
import platform
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

#: The width a number column has at least.
NUMBER_WIDTH = 9
#: The width the label column has at least.
LABEL_WIDTH = 30


@dataclass(frozen=True)
class Figure:
    """One measured figure: a distribution (``samples``) or a single ``value``.

    ``limit`` is the target: the headline (p95 of a distribution, else the value) must be at
    most ``limit``; or ``floor``: it must be at least that (a share that must be high).
    ``target_text`` is how the target reads in the table; left empty, it is derived from
    ``limit`` ("p95 <= 25" for a distribution, "<= 1.2" for a value) or ``floor`` (">= 95").
    """

    key: str
    label: str
    unit: str
    samples: tuple[float, ...] = ()
    value: float | None = None
    limit: float | None = None
    target_text: str = ""
    note: str = ""
    floor: float | None = None

    def __post_init__(self) -> None:
        prefix = "p95 " if self.is_distribution else ""
        if not self.target_text and self.limit is not None:
            object.__setattr__(self, "target_text", f"{prefix}<= {self.limit:g}")
        if not self.target_text and self.floor is not None:
            object.__setattr__(self, "target_text", f"{prefix}>= {self.floor:g}")

    @property
    def is_distribution(self) -> bool:
        """True when samples were given."""
        return len(self.samples) > 0

    @property
    def p50(self) -> float | None:
        """The median of the samples; None without samples."""
        return self._percentile(50.0)

    @property
    def p95(self) -> float | None:
        """The 95th percentile of the samples (linear interpolation); None without samples."""
        return self._percentile(95.0)

    @property
    def max(self) -> float | None:
        """The largest sample; None without samples."""
        return max(self.samples) if self.samples else None

    @property
    def headline(self) -> float | None:
        """What the target is checked against: p95 for a distribution, else the value."""
        return self.p95 if self.is_distribution else self.value

    @property
    def produced(self) -> bool:
        """Whether the run measured this figure: at least one sample, or a finite value."""
        if self.is_distribution:
            return True
        return self.value is not None and math.isfinite(self.value)

    @property
    def met(self) -> bool | None:
        """Whether the headline is within the limit (or at the floor or above); None without
        a target or a measurement."""
        headline = self.headline
        if not self.produced or headline is None:
            return None
        if self.floor is not None:
            return headline >= self.floor
        return None if self.limit is None else headline <= self.limit

    @property
    def n(self) -> int:
        """How many measurements the figure holds: the samples, or 1 for a produced value."""
        if self.is_distribution:
            return len(self.samples)
        return 1 if self.produced else 0

    def _percentile(self, q: float) -> float | None:
        if not self.samples:
            return None
        return float(np.percentile(self.samples, q, method="linear"))


def figure_from(
    key: str,
    label: str,
    unit: str,
    samples: Iterable[float] | None = None,
    value: float | None = None,
    limit: float | None = None,
    target_text: str = "",
    note: str = "",
    floor: float | None = None,
) -> Figure:
    """A :class:`Figure`, with ``samples`` taken from any iterable of numbers.

    Passing ``samples`` (even empty) marks the figure as a distribution, so its derived target
    reads "p95 <= ..." even when no sample arrived.
    """
    if samples is not None and not target_text and limit is not None:
        target_text = f"p95 <= {limit:g}"
    return Figure(
        key=key,
        label=label,
        unit=unit,
        samples=tuple(float(sample) for sample in samples or ()),
        value=None if value is None else float(value),
        limit=None if limit is None else float(limit),
        target_text=target_text,
        note=note,
        floor=floor,
    )


@dataclass(frozen=True)
class Report:
    """The results of one ``pispeaker bench`` run."""

    figures: tuple[Figure, ...]
    machine: dict[str, str] = field(hash=False)
    mode: str
    date: str

    def missing(self) -> list[str]:
        """The keys of the figures the run did not produce, in order."""
        return [figure.key for figure in self.figures if not figure.produced]

    def to_json(self) -> str:
        """The report as a JSON document; absent or non-finite numbers are null."""
        document = {
            "date": self.date,
            "mode": self.mode,
            "machine": dict(self.machine),
            "figures": [_figure_json(figure) for figure in self.figures],
        }
        return json.dumps(document, indent=2, allow_nan=False)

    def table(self) -> str:
        """The report as the fixed-width text table ``pispeaker bench`` prints."""
        lines = [self._title(), *_rows(self.figures)]
        notes = [f"  * {figure.key}: {figure.note}" for figure in self.figures if figure.note]
        if notes:
            lines += ["notes:", *notes]
        if missing := self.missing():
            lines.append(f"missing: {', '.join(missing)}")
        return "\n".join(lines) + "\n"

    def _title(self) -> str:
        get = self.machine.get
        parts = [
            " ".join(part for part in (get("cpu", ""), get("arch", "")) if part),
            f"{get('cores', '?')} cores",
            get("os", ""),
            f"Python {get('python', '?')}",
            f"{get('memory')} RAM" if get("memory") else "",
        ]
        where = ", ".join(part for part in parts if part)
        return f"pispeaker bench ({self.mode}) {self.date} on {where}"


def _figure_json(figure: Figure) -> dict[str, Any]:
    return {
        "key": figure.key,
        "label": figure.label,
        "unit": figure.unit,
        "n": figure.n,
        "p50": _finite(figure.p50),
        "p95": _finite(figure.p95),
        "max": _finite(figure.max),
        "value": _finite(figure.value),
        "limit": _finite(figure.limit),
        "target": figure.target_text,
        "met": figure.met,
        "note": figure.note,
    }


def _finite(number: float | None) -> float | None:
    return number if number is not None and math.isfinite(number) else None


# -- the table -------------------------------------------------------------------------------

_HEADER = ("figure", "unit", "p50|value", "p95", "max", "n", "target", "ok")
#: Which columns are right-aligned (the numbers).
_RIGHT = (False, False, True, True, True, True, False, False)


def _rows(figures: Iterable[Figure]) -> list[str]:
    cells = [_HEADER, *(_cells(figure) for figure in figures)]
    widths = [max(len(row[column]) for row in cells) for column in range(len(_HEADER))]
    widths[0] = max(widths[0], LABEL_WIDTH)
    for column in (2, 3, 4):
        widths[column] = max(widths[column], NUMBER_WIDTH)
    return [_line(row, widths) for row in cells]


def _line(row: tuple[str, ...], widths: list[int]) -> str:
    padded = (
        cell.rjust(width) if right else cell.ljust(width)
        for cell, width, right in zip(row, widths, _RIGHT, strict=True)
    )
    return "  ".join(padded).rstrip()


def _cells(figure: Figure) -> tuple[str, ...]:
    if figure.is_distribution:
        numbers = (figure.p50, figure.p95, figure.max)
    else:
        numbers = (figure.value, None, None)
    return (
        figure.label,
        figure.unit,
        *(_number(number) for number in numbers),
        str(figure.n),
        figure.target_text,
        _verdict(figure),
    )


def _verdict(figure: Figure) -> str:
    if not figure.produced:
        return "missing"
    return {True: "yes", False: "NO", None: ""}[figure.met]


def _number(number: float | None) -> str:
    """A number as the table shows it: three significant digits below 10, one decimal below
    1000, none above; "-" for no number (or a non-finite one)."""
    if number is None or not math.isfinite(number):
        return "-"
    size = abs(number)
    if size < 10:
        return f"{number:#.3g}"
    if size < 1000:
        return f"{number:.1f}"
    return f"{number:.0f}"


# -- the machine and the date ----------------------------------------------------------------


def machine(root: Path = Path("/")) -> dict[str, str]:
    """This machine, for the report: cpu, cores, arch, os, kernel, python and memory.

    ``root`` is where /proc and /etc are looked up (tests point it elsewhere). The host name
    is deliberately left out: reports get shared.
    """
    return {
        "cpu": _cpu(root / "proc" / "cpuinfo"),
        "cores": str(os.cpu_count() or "?"),
        "arch": platform.machine(),
        "os": _os_name(root / "etc" / "os-release"),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "memory": _memory(root / "proc" / "meminfo"),
    }


def now_utc() -> str:
    """The current time as :attr:`Report.date` has it, e.g. "2026-11-21T10:03:04Z"."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cpu(cpuinfo: Path) -> str:
    fields = _colon_fields(_read(cpuinfo))
    # A Pi's "Model" names the board ("Raspberry Pi 5 Model B Rev 1.0"), which says more than
    # its 32-bit kernel's "model name" ("ARMv7 Processor rev 3 (v7l)"); x86 has no "Model".
    for name in ("Model", "model name", "Hardware"):
        if fields.get(name):
            return fields[name]
    return platform.processor() or platform.machine()


def _os_name(os_release: Path) -> str:
    for line in _read(os_release).splitlines():
        name, _, value = line.partition("=")
        if name.strip() == "PRETTY_NAME" and value.strip():
            return value.strip().strip("\"'")
    return platform.platform()


def _memory(meminfo: Path) -> str:
    total = _colon_fields(_read(meminfo)).get("MemTotal", "")
    amount, _, unit = total.partition(" ")
    if not amount.isdigit() or unit.strip() != "kB":
        return ""
    return f"{int(amount) * 1024 / 2**30:.1f} GiB"


def _colon_fields(text: str) -> dict[str, str]:
    """The first value of each ``name: value`` line (cpuinfo repeats them per core)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        name, colon, value = line.partition(":")
        if colon:
            fields.setdefault(name.strip(), value.strip())
    return fields


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
