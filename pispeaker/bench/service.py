"""The figures of the service itself: ``pispeaker run`` started as systemd starts it (with a
``$NOTIFY_SOCKET``), on the bench's devices: how long until READY=1, and its CPU time and
resident memory while it listens for the wake word.

The microphone is a FIFO fed in real time at 48 kHz stereo, as a USB microphone delivers
(so the resampling to 16 kHz is counted); the speaker writes into /dev/null.
"""

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from pispeaker.bench.figures import Figure, figure_from
from pispeaker.bench.notify import NotifyListener
from pispeaker.bench.rig import BenchError, Endpoint
from pispeaker.config import Config, redacted_toml

#: How long the daemon may take to say READY=1.
START_PATIENCE_S = 60.0
#: How long it listens before its idle CPU time is measured (wake-word warm-up, first GC).
SETTLE_S = 3.0


def rss_mb(pid: int | str = "self") -> float:
    """Resident memory of process ``pid`` in MB (MiB), from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise BenchError(f"/proc/{pid}/status has no VmRSS")


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure_service(
    config: Config, endpoint: Endpoint, environ: Mapping[str, str], directory: Path, idle_s: float
) -> list[Figure]:
    """Start ``pispeaker run`` on ``config`` (with ``environ``: the bench's ALSA config) and
    return start -> READY, idle CPU per audio second and resident memory while idle."""
    path = directory / "pispeaker.toml"
    path.write_text(redacted_toml(config, "GEMINI_API_KEY: the emulator's"))
    listener = NotifyListener()
    env = dict(environ, NOTIFY_SOCKET=str(listener.path), GEMINI_API_KEY=endpoint.api_key)
    command = [sys.executable, "-m", "pispeaker", "--config", str(path), "run"]
    started = time.monotonic()
    with (directory / "service.log").open("w") as log:
        daemon = await asyncio.create_subprocess_exec(
            *command, env=env, stderr=log, stdout=subprocess.DEVNULL
        )
    try:
        ready = await _ready(listener, daemon, directory / "service.log")
        await asyncio.sleep(SETTLE_S)
        cpu_before, idle_from = cpu_s(daemon.pid), time.monotonic()
        await asyncio.sleep(idle_s)
        idle_cpu = (cpu_s(daemon.pid) - cpu_before) / (time.monotonic() - idle_from)
        resident = rss_mb(daemon.pid)
    finally:
        await _stop(daemon)
        listener.close()
    return [
        figure_from("start_ready_s", "start -> READY=1", "s", value=ready - started, limit=1.0),
        figure_from("idle_cpu", "CPU while listening for the wake word", "CPU-s/s", value=idle_cpu),
        figure_from("steady_rss_mb", "resident memory, listening", "MB", value=resident, limit=130),
    ]


async def _ready(listener: NotifyListener, daemon: asyncio.subprocess.Process, log: Path) -> float:
    """When READY=1 arrived; a daemon that exits first or takes too long raises."""
    deadline = time.monotonic() + START_PATIENCE_S
    while time.monotonic() < deadline:
        ready = [note.at for note in listener.notes if note.fields.get("READY") == "1"]
        if ready:
            return ready[0]
        if daemon.returncode is not None:
            raise BenchError(f"pispeaker run exited with {daemon.returncode}: see {log}")
        await asyncio.sleep(0.01)
    raise BenchError(f"pispeaker run sent no READY=1 within {START_PATIENCE_S:g} s: see {log}")


async def _stop(daemon: asyncio.subprocess.Process) -> None:
    if daemon.returncode is None:
        daemon.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(15):
                await daemon.wait()
        except TimeoutError:
            daemon.kill()
            await daemon.wait()
