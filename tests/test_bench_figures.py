"""Tests for pispeaker.bench.figures: statistics, targets, the table, the JSON document and
the machine description."""

import json
import math
import re
import socket
from datetime import datetime
from pathlib import Path

import pytest

from pispeaker.bench.figures import Figure, Report, _number, figure_from, machine, now_utc

MACHINE = {
    "cpu": "Raspberry Pi 5 Model B Rev 1.0",
    "cores": "4",
    "arch": "aarch64",
    "os": "Debian GNU/Linux 12 (bookworm)",
    "kernel": "6.6.51+rpt-rpi-2712",
    "python": "3.11.2",
    "memory": "7.9 GiB",
}


def one_to_hundred(limit: float | None = None) -> Figure:
    return figure_from("uplink_ms", "uplink", "ms", samples=range(1, 101), limit=limit)


def report(*figures: Figure) -> Report:
    return Report(figures=figures, machine=MACHINE, mode="full", date="2026-11-21T10:03:04Z")


def sample_report() -> Report:
    return report(
        one_to_hundred(limit=25),
        figure_from("idle_x", "idle CPU / openWakeWord floor", "x", value=1.05, limit=1.2),
        figure_from("rss_mb", "resident memory", "MB", value=219.4, limit=200),
        figure_from("wake_ms", "wake word -> earcon", "ms", samples=[], limit=300),
        figure_from("pcm_bytes", "bytes", "bytes", value=float("nan"), note="no device"),
    )


# -- statistics and targets ------------------------------------------------------------------


def test_percentiles_of_one_to_hundred() -> None:
    figure = one_to_hundred()
    assert figure.is_distribution
    assert figure.p50 == pytest.approx(50.5)
    assert figure.p95 == pytest.approx(95.05)
    assert figure.max == 100.0
    assert figure.headline == pytest.approx(95.05)
    assert figure.n == 100


def test_percentiles_interpolate_between_few_samples() -> None:
    figure = figure_from("k", "l", "ms", samples=[4, 1, 3, 2])
    assert figure.p50 == pytest.approx(2.5)
    assert figure.p95 == pytest.approx(3.85)
    assert figure.max == 4.0


def test_value_figure_has_no_percentiles() -> None:
    figure = figure_from("k", "l", "x", value=1.05, limit=1.2)
    assert not figure.is_distribution
    assert (figure.p50, figure.p95, figure.max) == (None, None, None)
    assert figure.headline == 1.05
    assert figure.met is True
    assert figure.n == 1


def test_met_compares_the_p95_of_a_distribution() -> None:
    # max (100) is above 96 but p95 (95.05) is not: the target is on p95.
    assert one_to_hundred(limit=96).met is True
    assert one_to_hundred(limit=95).met is False


def test_met_for_a_value_includes_the_limit_itself() -> None:
    assert figure_from("k", "l", "s", value=2.0, limit=2.0).met is True
    assert figure_from("k", "l", "s", value=2.01, limit=2.0).met is False


def test_a_floor_is_met_at_or_above_it_and_reads_as_such() -> None:
    share = figure_from("detected", "detected", "%", value=95.0, floor=95.0)
    assert share.met is True
    assert share.target_text == ">= 95"
    assert figure_from("detected", "detected", "%", value=94.9, floor=95.0).met is False


def test_met_is_none_without_a_limit_or_a_measurement() -> None:
    assert one_to_hundred().met is None
    assert figure_from("k", "l", "s", value=None, limit=1).met is None
    assert figure_from("k", "l", "s", samples=[], limit=1).met is None


@pytest.mark.parametrize(
    "figure",
    [
        figure_from("k", "l", "ms", samples=[]),
        figure_from("k", "l", "ms", value=None),
        figure_from("k", "l", "ms", value=float("nan")),
        figure_from("k", "l", "ms", value=float("inf")),
    ],
)
def test_not_produced(figure: Figure) -> None:
    assert not figure.produced
    assert figure.n == 0


def test_produced() -> None:
    assert figure_from("k", "l", "ms", samples=[0.0]).produced
    assert figure_from("k", "l", "ms", value=0.0).produced


def test_derived_target_text() -> None:
    assert one_to_hundred(limit=25).target_text == "p95 <= 25"
    assert figure_from("k", "l", "x", value=1, limit=1.2).target_text == "<= 1.2"
    assert Figure("k", "l", "ms", samples=(1.0,), limit=2.5).target_text == "p95 <= 2.5"
    # A distribution that got no sample still reads as one.
    assert figure_from("k", "l", "ms", samples=[], limit=25).target_text == "p95 <= 25"
    assert figure_from("k", "l", "ms", value=1).target_text == ""
    given = figure_from("k", "l", "ms", samples=[1], limit=25, target_text="p95 <= 25 (Pi 5)")
    assert given.target_text == "p95 <= 25 (Pi 5)"


def test_figure_from_converts_to_floats() -> None:
    figure = figure_from("k", "l", "ms", samples=(n for n in [1, 2]), value=None, limit=3)
    assert figure.samples == (1.0, 2.0)
    assert all(type(sample) is float for sample in figure.samples)
    assert type(figure.limit) is float


# -- the report ------------------------------------------------------------------------------


def test_missing_lists_unproduced_keys_in_order() -> None:
    assert sample_report().missing() == ["wake_ms", "pcm_bytes"]
    assert report(one_to_hundred()).missing() == []


def test_json_round_trips_with_the_documented_keys() -> None:
    text = sample_report().to_json()
    assert "NaN" not in text
    assert "Infinity" not in text
    document = json.loads(text)
    assert set(document) == {"date", "mode", "machine", "figures"}
    assert document["date"] == "2026-11-21T10:03:04Z"
    assert document["mode"] == "full"
    assert document["machine"] == MACHINE
    keys = {"key", "label", "unit", "n", "p50", "p95", "max", "value", "limit", "target"}
    assert all(set(entry) == keys | {"met", "note"} for entry in document["figures"])
    uplink, idle, rss, wake, pcm = document["figures"]
    assert uplink["p50"] == pytest.approx(50.5)
    assert uplink["p95"] == pytest.approx(95.05)
    assert (uplink["max"], uplink["n"], uplink["value"]) == (100.0, 100, None)
    assert (uplink["limit"], uplink["target"], uplink["met"]) == (25.0, "p95 <= 25", False)
    assert (idle["value"], idle["p50"], idle["p95"], idle["max"]) == (1.05, None, None, None)
    assert idle["met"] is True
    assert rss["met"] is False
    assert (wake["n"], wake["p50"], wake["met"]) == (0, None, None)
    assert (pcm["value"], pcm["limit"], pcm["met"], pcm["note"]) == (None, None, None, "no device")


def test_json_nulls_non_finite_samples() -> None:
    figure = figure_from("k", "l", "ms", samples=[1.0, float("nan")])
    text = report(figure).to_json()
    assert "NaN" not in text
    assert json.loads(text)["figures"][0]["p95"] is None


def table_rows(text: str) -> list[str]:
    lines = text.splitlines()
    end = lines.index("notes:") if "notes:" in lines else len(lines)
    return lines[2:end]


def test_table_has_a_title_a_header_and_one_row_per_figure() -> None:
    text = sample_report().table()
    lines = text.splitlines()
    assert lines[0].startswith("pispeaker bench (full) 2026-11-21T10:03:04Z on Raspberry Pi 5")
    assert "4 cores" in lines[0]
    assert "Python 3.11.2" in lines[0]
    assert "7.9 GiB RAM" in lines[0]
    assert lines[1].split() == ["figure", "unit", "p50|value", "p95", "max", "n", "target", "ok"]
    rows = table_rows(text)
    assert len(rows) == 5
    labels = ["uplink", "idle CPU / openWakeWord floor", "resident memory", "wake word -> earcon"]
    for row, label in zip(rows, [*labels, "bytes"], strict=True):
        assert row.startswith(label)
    assert "≤" not in text
    assert text.isascii()


def test_table_cells() -> None:
    rows = table_rows(sample_report().table())
    assert rows[0].split()[1:] == ["ms", "50.5", "95.0", "100.0", "100", "p95", "<=", "25", "NO"]
    idle = rows[1].removeprefix("idle CPU / openWakeWord floor").split()
    assert idle == ["x", "1.05", "-", "-", "1", "<=", "1.2", "yes"]
    assert rows[2].split()[-1] == "NO"
    assert rows[3].split()[-1] == "missing"
    assert rows[4].split()[-1] == "missing"


def test_table_columns_line_up() -> None:
    lines = sample_report().table().splitlines()[1:7]
    # Each row's unit starts under the header's, and its count ends under the header's "n".
    unit_at = lines[0].index("unit")
    n_end = lines[0].index(" n ") + 2
    assert {line[unit_at:].split()[0] for line in lines[1:]} == {"ms", "x", "MB", "bytes"}
    assert all(line[unit_at - 2 : unit_at] == "  " for line in lines)
    assert [line[:n_end].split()[-1] for line in lines[1:]] == ["100", "1", "1", "0", "0"]
    assert all(line[n_end] == " " for line in lines[1:])


def test_table_label_column_fits_the_longest_label_without_truncating() -> None:
    label = "uplink: period's last sample -> websocket, measured over the whole run"
    text = report(figure_from("k", label, "ms", samples=[1.0]), one_to_hundred()).table()
    rows = table_rows(text)
    assert rows[0].startswith(label + "  ms")
    assert rows[1].index("ms") == rows[0].index("ms")


def test_table_label_column_is_at_least_thirty_wide() -> None:
    rows = table_rows(report(figure_from("k", "x", "ms", value=1.0)).table())
    assert rows[0].index("ms") == 32


def test_table_ok_column_is_empty_without_a_target() -> None:
    rows = table_rows(report(figure_from("k", "label", "ms", value=1.0)).table())
    assert rows[0].split() == ["label", "ms", "1.00", "-", "-", "1"]


def test_table_notes_and_missing() -> None:
    text = sample_report().table()
    assert "notes:\n  * pcm_bytes: no device\n" in text
    assert text.endswith("missing: wake_ms, pcm_bytes\n")


def test_table_without_notes_or_missing_has_neither() -> None:
    text = report(one_to_hundred(limit=100)).table()
    assert "notes:" not in text
    assert "missing" not in text
    assert table_rows(text)[0].split()[-1] == "yes"


@pytest.mark.parametrize(
    ("number", "text"),
    [
        (None, "-"),
        (float("nan"), "-"),
        (0.0, "0.00"),
        (0.0123, "0.0123"),
        (1.5, "1.50"),
        (9.87, "9.87"),
        (-2.0, "-2.00"),
        (10.0, "10.0"),
        (219.44, "219.4"),
        (999.9, "999.9"),
        (1000.0, "1000"),
        (48213.6, "48214"),
    ],
)
def test_number(number: float | None, text: str) -> None:
    assert _number(number) == text


# -- the machine and the date ----------------------------------------------------------------

CPUINFO_X86 = """\
processor\t: 0
vendor_id\t: GenuineIntel
model\t\t: 85
model name\t: Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz

processor\t: 1
model name\t: Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz
"""

CPUINFO_PI = """\
processor\t: 0
BogoMIPS\t: 108.00
CPU implementer\t: 0x41

Revision\t: d04170
Serial\t\t: 10000000abcdef01
Model\t\t: Raspberry Pi 5 Model B Rev 1.0
"""


def fake_root(tmp_path: Path, cpuinfo: str) -> Path:
    (tmp_path / "proc").mkdir()
    (tmp_path / "etc").mkdir()
    (tmp_path / "proc" / "cpuinfo").write_text(cpuinfo, encoding="utf-8")
    (tmp_path / "etc" / "os-release").write_text(
        'NAME="Debian GNU/Linux"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n',
        encoding="utf-8",
    )
    (tmp_path / "proc" / "meminfo").write_text(
        "MemTotal:        8245616 kB\nMemFree:         1234 kB\n", encoding="utf-8"
    )
    return tmp_path


def test_machine_reads_the_fake_files(tmp_path: Path) -> None:
    found = machine(root=fake_root(tmp_path, CPUINFO_X86))
    assert set(found) == {"cpu", "cores", "arch", "os", "kernel", "python", "memory"}
    assert found["cpu"] == "Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz"
    assert found["os"] == "Debian GNU/Linux 12 (bookworm)"
    assert found["memory"] == "7.9 GiB"
    host = socket.gethostname()
    if len(host) > 3:
        assert all(host not in value for value in found.values())


def test_machine_names_a_pi_by_its_model(tmp_path: Path) -> None:
    assert machine(root=fake_root(tmp_path, CPUINFO_PI))["cpu"] == "Raspberry Pi 5 Model B Rev 1.0"


def test_machine_falls_back_to_hardware(tmp_path: Path) -> None:
    root = fake_root(tmp_path, "processor\t: 0\nHardware\t: BCM2835\n")
    assert machine(root=root)["cpu"] == "BCM2835"


def test_machine_without_the_files(tmp_path: Path) -> None:
    found = machine(root=tmp_path)
    assert found["cpu"]
    assert found["os"]
    assert found["memory"] == ""


def test_machine_here() -> None:
    found = machine()
    assert set(found) == {"cpu", "cores", "arch", "os", "kernel", "python", "memory"}
    assert all(value for key, value in found.items() if key != "memory")
    assert int(found["cores"]) >= 1
    host = socket.gethostname()
    if len(host) > 3:
        assert all(host not in value for value in found.values())


def test_now_utc_format() -> None:
    text = now_utc()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", text)
    parsed = datetime.fromisoformat(text)
    assert parsed.utcoffset() is not None
    assert math.isclose(parsed.timestamp(), datetime.now().timestamp(), abs_tol=5)


def test_a_reply_the_device_stopped_first_is_halted_at_once_for_the_interrupted_after_it() -> None:
    """The on-device voice detector and the server's `interrupted` race: a drop that began
    just before the `interrupted` is its halt (0 ms), not the next barge-in's drop."""
    from pispeaker.bench.conversation import Marks, halts_of

    marks = Marks(dropping=[10.000, 14.0], dropped=[10.001, 14.02], interrupted=[10.003])
    marks.presses.append(13.98)
    [server] = halts_of(marks, marks.interrupted)
    assert server.before
    assert server.halted_ms == 0.0
    [button] = halts_of(marks, marks.presses)
    assert not button.before
    assert button.halted_ms == pytest.approx(40.0)
    late = Marks(dropping=[10.5], dropped=[10.52], interrupted=[10.0])
    [halt] = halts_of(late, late.interrupted)
    assert halt.halted_ms == pytest.approx(520.0)  # the first drop after it, however late
