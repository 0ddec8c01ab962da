"""``pispeaker bench --short`` on the real parts: it must produce every figure (what the
figures are is for the README's table, not for a test on a shared machine to judge)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

#: Every figure the bench reports, in its JSON.
FIGURES = {
    "start_ready_s",
    "idle_cpu",
    "steady_rss_mb",
    "uplink_ms",
    "downlink_ms",
    "downlink_later_ms",
    "interrupted_halt_ms",
    "button_halt_ms",
    "drop_ms",
    "audible_tail_ms",
    "wake_detect_ms",
    "wake_first_byte_ms",
    "wake_beyond_connect_ms",
    "lost_bytes",
    "conversation_cpu",
    "echo_self_interruptions",
    "echo_false_ducks",
    "echo_false_duck_time",
    "echo_barge_in_detected",
    "echo_onset_down_ms",
    "echo_barge_in_words",
    "echo_double_talk_loss_db",
    "echo_false_stops",
    "echo_canceller_cpu",
    "echo_erle_db",
    "background_uploaded_s",
    "background_ended_s",
    "rss_after_mb",
    "soak_growth_mb",  # --short: what ten conversations grew by; the full run: per 1000
    "soak_leaks",
    "floor_wake_cpu",
    "floor_rss_mb",
    "idle_cpu_ratio",
    "conversation_cpu_beyond_floor",
    "rss_above_floor_mb",
}


@pytest.mark.timeout(300)
def test_short_bench_produces_every_figure(tmp_path: Path) -> None:
    report = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "pispeaker", "bench", "--short", "--output", str(report)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    figures = {figure["key"]: figure for figure in json.loads(report.read_text())["figures"]}
    assert set(figures) == FIGURES
    for key, figure in figures.items():
        produced = figure["n"] >= 1 and (figure["value"] is not None or figure["p50"] is not None)
        assert produced, key
    for key in FIGURES:
        assert key in done.stdout or figures[key]["label"] in done.stdout  # the printed table
    assert "missing" not in done.stdout
