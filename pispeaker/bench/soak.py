"""Soak: conversations back to back, faster than real time, with the service failing at
random moments of a random share of them (seeded): each must still end, and the run must
leave no asyncio task, thread or file descriptor behind, nor grow in memory.

Each conversation is a button press, a one-second request, the emulator's reply (sent at
once, played into /dev/null) and the end of the follow-up window, shortened here below what
the configuration allows so that the conversations follow each other at once. The
microphone runs faster than real time, and the wake word listens to all of it, as in the
service. A fault (:data:`FAULTS`) strikes a conversation at a random moment after it entered
a random one of LISTENING, THINKING and SPEAKING; one whose conversation ended first misses.

The emulator runs in a process of its own (``python -m pispeaker.bench.soak DIRECTORY``):
what it keeps of every session is not the daemon's memory. It reads the faults to inject
from its standard input, one name a line, and answers each with the number of connections
it struck.
"""

import asyncio
import json
import random
import sys
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from pispeaker.app import build_alsa_ports, build_controller, started, wake_maker
from pispeaker.audio.pcm import INPUT_RATE, silence
from pispeaker.bench.figures import Figure, figure_from
from pispeaker.bench.growth import NOTHING, Holdings, MemoryTrace, settled
from pispeaker.bench.rig import BenchError, Endpoint, Microphone
from pispeaker.bench.speech import request_utterance
from pispeaker.config import Config
from pispeaker.controller import Controller
from pispeaker.emulator import EmulatorOptions, Fault, LiveEmulator
from pispeaker.states import Event, State

#: The service's failures a conversation meets: closes (1011, 1000), a TCP drop, an early
#: goAway, a frame that is not JSON and a message the SDK cannot read.
FAULTS = (
    Fault.INTERNAL_ERROR,
    Fault.DROP,
    Fault.NORMAL_CLOSE,
    Fault.GO_AWAY,
    Fault.MALFORMED,
    Fault.UNKNOWN_ONLY,
)
#: The states a fault may strike in (from a random moment after entering it).
PHASES = (State.LISTENING, State.THINKING, State.SPEAKING)
#: The share of conversations a fault is planned for.
FAULT_SHARE = 0.3
#: The latest moment after its state was entered that a fault strikes (s): the states of
#: these conversations last from milliseconds (SPEAKING into /dev/null) to a few tenths.
MAX_DELAY_S = 0.15
#: The follow-up window of these conversations (s).
FOLLOW_UP_S = 0.05
#: How long one conversation may take (s): far beyond a reconnect's backoff and a resumed
#: session's reply; a hang guard, not a target.
PATIENCE_S = 30.0
#: How many times memory is sampled after the warm-up (at every tenth of the run).
MEMORY_SAMPLES = 10
#: How long the tasks, threads and file descriptors may take to settle (s).
SETTLE_S = 10.0
#: The emulator of the soak: replies at once and in full, goAway 5 s before the close.
EMULATOR = EmulatorOptions(pace=0.0, playback_hold=0.0, response_latency_s=0.0, go_away_lead_s=5.0)

#: Produce a fault on the emulator's open connections; returns how many it struck.
Inject = Callable[[Fault], Awaitable[int]]


@dataclass(frozen=True)
class Strike:
    """A fault ``delay_s`` after its conversation entered ``phase``."""

    fault: Fault
    phase: State
    delay_s: float


def plan(seed: int, conversations: int, share: float = FAULT_SHARE) -> list[Strike | None]:
    """The strikes of ``conversations`` conversations (None: no fault), from ``seed``."""
    chance = random.Random(seed)
    return [
        Strike(chance.choice(FAULTS), chance.choice(PHASES), chance.uniform(0.0, MAX_DELAY_S))
        if chance.random() < share
        else None
        for _ in range(conversations)
    ]


@dataclass
class SoakResult:
    """What a soak did and left behind (after its warm-up)."""

    ended: int = 0  # conversations that ended (back in IDLE)
    struck: Counter[Fault] = field(default_factory=Counter)  # faults that met a session
    missed: int = 0  # faults whose conversation ended first
    leaks: Holdings = NOTHING  # held at the end beyond what was after warm-up
    memory: MemoryTrace = field(default_factory=MemoryTrace)


async def soak(
    controller: Controller,
    mic: Microphone,
    inject: Inject,
    strikes: Sequence[Strike | None],
    warmup: int,
) -> SoakResult:
    """Hold the conversations of ``strikes`` (the first ``warmup`` of them a warm-up, faults
    included: a path first taken later would count as growth); raise BenchError if one does
    not end within PATIENCE_S. Memory is sampled after the warm-up and after every tenth of
    the rest."""
    for strike in strikes[:warmup]:
        await _conversation(controller, mic, inject, strike)
    base = await settled(SETTLE_S)
    result = SoakResult()
    result.memory.sample(0)
    measured = strikes[warmup:]
    tenth = max(1, len(measured) // MEMORY_SAMPLES)
    for done, strike in enumerate(measured, start=1):
        hit = await _conversation(controller, mic, inject, strike)
        result.ended += 1
        if strike is not None and hit:
            result.struck[strike.fault] += 1
        result.missed += strike is not None and not hit
        if done % tenth == 0 and done < len(measured):
            result.memory.sample(done)
    result.leaks = (await settled(SETTLE_S, base)).beyond(base)
    result.memory.sample(len(measured))
    return result


async def _conversation(
    controller: Controller, mic: Microphone, inject: Inject, strike: Strike | None
) -> bool:
    """One conversation, struck by ``strike``; True if the fault met a session."""
    idle = controller.entries(State.IDLE)
    entered = {phase: controller.entries(phase) for phase in PHASES}
    controller.dispatch(Event.BUTTON_PRESS)
    mic.say(request_utterance(1.0) + silence(0.1, INPUT_RATE))
    striking, fired = None, asyncio.Event()
    try:
        async with asyncio.timeout(PATIENCE_S), asyncio.TaskGroup() as group:
            if strike is not None:
                when = entered[strike.phase] + 1
                striking = group.create_task(_strike(controller, inject, strike, when, fired))
            await controller.entered(State.IDLE, idle + 1)
            if striking is not None and not fired.is_set():
                striking.cancel()  # the conversation ended before the fault's moment
    except TimeoutError:
        raise BenchError(
            f"a conversation did not end within {PATIENCE_S:g} s (still "
            f"{controller.status.state.value}; {strike or 'no fault'})"
        ) from None
    return striking is not None and not striking.cancelled() and striking.result() > 0


async def _strike(
    controller: Controller, inject: Inject, strike: Strike, when: int, fired: asyncio.Event
) -> int:
    """Inject the fault once ``strike.phase`` was entered the ``when``-th time and its delay
    passed, if the conversation still goes on (then set ``fired``: from there on it runs to
    its end, as the emulator answers every fault it was sent); how many connections it
    struck."""
    await controller.entered(strike.phase, when)
    await asyncio.sleep(strike.delay_s)
    if controller.status.state is State.IDLE:
        return 0
    fired.set()
    return await inject(strike.fault)


def inject_into(emulator: LiveEmulator) -> Inject:
    """Inject faults into ``emulator``, in this process."""

    async def inject(fault: Fault) -> int:
        open_now = len(emulator.connections)
        await emulator.inject(fault)
        return open_now

    return inject


# -- the bench scenario ----------------------------------------------------------------------


def soak_config(config: Config) -> Config:
    """``config`` (the bench's) with the follow-up window of these conversations."""
    conversation = config.conversation.model_copy(update={"follow_up_s": FOLLOW_UP_S})
    return config.model_copy(update={"conversation": conversation})


async def measure_soak(
    config: Config,
    emulator: "EmulatorProcess",
    mic: Microphone,
    warmup: int,
    conversations: int,
    seed: int,
) -> list[Figure]:
    """Soak the daemon of ``config`` (the bench's) for ``warmup`` + ``conversations``
    conversations; the figures of memory and of what was left behind."""
    config = soak_config(config)
    source, sink = build_alsa_ports(config)
    make_wake = wake_maker(config.wake)
    controller = build_controller(
        config, emulator.endpoint.api_key, source, sink, make_wake=make_wake
    )
    strikes = plan(seed, warmup + conversations)
    async with started(controller):
        result = await soak(controller, mic, emulator.inject, strikes, warmup)
    return _figures(result, warmup, conversations)


def _figures(result: SoakResult, warmup: int, conversations: int) -> list[Figure]:
    struck = ", ".join(
        f"{fault.value} {count}"
        for fault, count in sorted(result.struck.items(), key=lambda item: item[0].value)
    )
    leaks = result.leaks
    return [
        figure_from(
            "rss_after_mb",
            f"soak: resident memory after {warmup + conversations} conversations",
            "MB",
            value=result.memory.last_mb,
        ),
        growth_figure(result.memory, warmup, conversations),
        figure_from(
            "soak_leaks",
            "soak: leaked tasks, threads, fds",
            "count",
            value=leaks.total,
            limit=0,
            note=f"tasks {leaks.tasks}, threads {leaks.threads}, fds {leaks.fds}; "
            f"{result.ended} conversations ended; faults that struck a session: "
            f"{struck or 'none'}; {result.missed} came after their conversation ended",
        ),
    ]


#: Conversations a soak needs before its memory growth is a rate: fewer (the short run's
#: ten) say what they grew by, without a per-1000 extrapolation or a verdict.
RATE_FROM = 100


def growth_figure(memory: MemoryTrace, warmup: int, conversations: int) -> Figure:
    """The soak's memory growth: a rate per 1000 conversations with its limit, or on fewer
    than RATE_FROM what they grew by, with no limit."""
    samples = " ".join(f"{mb:.1f}" for _, mb in memory.samples)
    if conversations < RATE_FROM:
        return figure_from(
            "soak_growth_mb",
            f"soak: memory growth over {conversations} conversations",
            "MB",
            value=memory.total_mb,
            note=f"after {warmup} of warm-up; too few for a rate per 1000 (that takes "
            f"{RATE_FROM} or more); resident memory after each: {samples} MB",
        )
    return figure_from(
        "soak_growth_mb_per_1000",
        "soak: memory growth per 1000 conversations",
        "MB",
        value=memory.per_1000(),
        limit=1.0,
        note=f"the median over the tenths of {conversations} conversations after {warmup} "
        f"of warm-up; in all {memory.total_mb or 0.0:+.2f} MB; resident memory "
        f"after each tenth: {samples} MB",
    )


class EmulatorProcess:
    """The soak's emulator in a process of its own, taking faults on its standard input;
    use with ``async with``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._process: asyncio.subprocess.Process | None = None
        self._endpoint: Endpoint | None = None

    @property
    def endpoint(self) -> Endpoint:
        """Where it listens and the key it takes."""
        assert self._endpoint is not None, "start it with async with"
        return self._endpoint

    async def __aenter__(self) -> "EmulatorProcess":
        command = [sys.executable, "-m", "pispeaker.bench.soak", str(self.directory)]
        with (self.directory / "emulator.log").open("w") as log:
            self._process = await asyncio.create_subprocess_exec(
                *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=log
            )
        said = json.loads(await self._line() or "null")
        if said is None:
            raise BenchError(f"the soak's emulator ended at start (see {self.directory})")
        self._endpoint = Endpoint(said["base_url"], Path(said["ca_file"]), said["api_key"])
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._process is None:
            return
        stdin, _ = self._pipes()
        stdin.close()  # its end of input: it stops
        process = self._process
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()

    async def inject(self, fault: Fault) -> int:
        """Produce ``fault`` on its open connections; how many it struck."""
        stdin, _ = self._pipes()
        stdin.write(f"{fault.value}\n".encode())
        await stdin.drain()
        answer = await self._line()
        if not answer:
            raise BenchError(f"the soak's emulator ended (see {self.directory})")
        return int(answer)

    async def _line(self) -> str:
        _, stdout = self._pipes()
        return (await stdout.readline()).decode().strip()

    def _pipes(self) -> tuple[asyncio.StreamWriter, asyncio.StreamReader]:
        process = self._process
        assert process is not None, "start it with async with"
        assert process.stdin is not None
        assert process.stdout is not None
        return process.stdin, process.stdout


async def _serve(directory: Path) -> None:
    """The emulator process: says where it listens (one JSON line), then injects each fault
    named on its standard input and answers how many connections it struck, until its input
    ends."""
    async with LiveEmulator(EMULATOR, state_dir=directory) as emulator:
        endpoint = {
            "base_url": emulator.base_url,
            "ca_file": str(emulator.ca_file),
            "api_key": emulator.api_key,
        }
        print(json.dumps(endpoint), flush=True)
        inject = inject_into(emulator)
        reader = asyncio.StreamReader()
        loop = asyncio.get_running_loop()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := (await reader.readline()).decode().strip():
            print(await inject(Fault(line)), flush=True)


if __name__ == "__main__":
    asyncio.run(_serve(Path(sys.argv[1])))
