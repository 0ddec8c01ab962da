"""A short seeded soak on the real parts: the daemon (real libasound on file PCMs, the real SDK)
against the emulator in this process, conversations back to back with the service failing
at random moments. Every conversation must end, and nothing may be left behind: no asyncio
task, thread or file descriptor beyond those held after the warm-up. (Memory is the bench's
to measure: ``pispeaker bench``.)"""

from collections.abc import Iterator
from pathlib import Path

import pytest

from pispeaker.app import build_alsa_ports, build_controller, started
from pispeaker.bench.growth import NOTHING, MemoryTrace
from pispeaker.bench.rig import Endpoint, Microphone, alsa_config, fifo
from pispeaker.bench.settings import bench_config
from pispeaker.bench.soak import FAULTS, growth_figure, inject_into, plan, soak, soak_config
from pispeaker.config import Config
from pispeaker.emulator import LiveEmulator
from tests.conftest import StartEmulator

WARMUP, CONVERSATIONS = 4, 30
#: Half of them struck: every fault several times over, in a run short enough for a test.
SHARE = 0.5


@pytest.fixture
def microphone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Microphone]:
    """The bench's microphone, 4x faster than real time, behind an ALSA file PCM."""
    mic_path = fifo(tmp_path / "mic")
    monkeypatch.setenv("ALSA_CONFIG_PATH", str(alsa_config(tmp_path, mic_path, Path("/dev/null"))))
    mic = Microphone(mic_path, speed=4.0)
    mic.start()
    yield mic
    mic.stop()


def daemon_config(emulator: LiveEmulator) -> Config:
    endpoint = Endpoint(emulator.base_url, emulator.ca_file, emulator.api_key)
    return soak_config(bench_config(Config(), endpoint, (16_000, 1), (16_000, 1)))


@pytest.mark.timeout(240)  # a hang guard: about 20 s here, alone
async def test_a_seeded_soak_with_faults_ends_every_conversation_and_leaves_nothing_behind(
    start_emulator: StartEmulator, microphone: Microphone
) -> None:
    emulator = await start_emulator(go_away_lead_s=5.0)
    config = daemon_config(emulator)
    controller = build_controller(config, emulator.api_key, *build_alsa_ports(config))
    strikes = plan(seed=7, conversations=WARMUP + CONVERSATIONS, share=SHARE)
    async with started(controller):
        result = await soak(controller, microphone, inject_into(emulator), strikes, WARMUP)
    assert result.ended == CONVERSATIONS  # each within the patience bound, or soak raised
    assert result.leaks == NOTHING
    planned = sum(strike is not None for strike in strikes[WARMUP:])
    assert sum(result.struck.values()) + result.missed == planned
    assert sum(result.struck.values()) >= planned // 4  # the faults met sessions (10 of 17 here)
    assert len(result.struck) >= len(FAULTS) // 2  # of several kinds


def test_the_plan_is_seeded() -> None:
    assert plan(seed=3, conversations=50) == plan(seed=3, conversations=50)
    assert plan(seed=3, conversations=50) != plan(seed=4, conversations=50)
    strikes = [strike for strike in plan(seed=3, conversations=400) if strike is not None]
    assert 80 < len(strikes) < 160  # about FAULT_SHARE of them
    assert {strike.fault for strike in strikes} == set(FAULTS)


def test_memory_growth_is_the_median_rate_so_a_single_step_is_not_a_leak() -> None:
    step = MemoryTrace([(0, 100.0), (100, 100.1), (200, 105.1), (300, 105.2), (400, 105.3)])
    assert step.per_1000() == pytest.approx(1.0)  # 0.1 MB per 100, most tenths
    assert step.total_mb == pytest.approx(5.3)
    leak = MemoryTrace([(0, 100.0), (100, 102.0), (200, 104.0), (300, 106.0), (400, 108.0)])
    assert leak.per_1000() == pytest.approx(20.0)
    assert MemoryTrace([(0, 100.0)]).per_1000() is None


def test_a_short_soak_says_what_it_grew_by_without_a_rate_or_a_verdict() -> None:
    trace = MemoryTrace([(0, 100.0), (5, 100.4), (10, 100.6)])
    short = growth_figure(trace, warmup=3, conversations=10)
    assert short.label == "soak: memory growth over 10 conversations"
    assert short.value == pytest.approx(0.6)
    assert short.limit is None  # nothing to pass or fail on ten conversations
    full = growth_figure(MemoryTrace([(0, 100.0), (500, 100.1), (1000, 100.2)]), 20, 1000)
    assert full.label == "soak: memory growth per 1000 conversations"
    assert full.value == pytest.approx(0.2)
    assert full.limit == 1.0
