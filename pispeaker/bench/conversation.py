"""The conversation figures, measured in this process on a pispeaker that runs in real time.

The controller, the wake-word listener and the ALSA adapters are the service's own, built by
app.py from a bench configuration. The microphone is a FIFO fed a period at a time (16 kHz
mono, so that every chunk sent can be found in what was said), the speaker a FIFO drained in
real time by another process (48 kHz stereo, as a USB speaker), the Live API the emulator in
a process of its own, replying in real time. Timing marks come from the link and the sink.

Each cycle is what a demanding user does: the wake word with a request straight after it;
the reply; talking over the reply (the server interrupts); the next reply; a button press
that stops it; the follow-up window passing.
"""

import asyncio
import contextlib
import resource
import time
from bisect import bisect_right
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from pispeaker.app import build_alsa_ports, build_controller, started, wake_maker
from pispeaker.audio.alsa import AlsaSink, AlsaSource
from pispeaker.audio.pcm import INPUT_RATE, SAMPLE_WIDTH, byte_count, silence
from pispeaker.bench.figures import Figure, figure_from
from pispeaker.bench.rig import BenchError, Microphone, Speaker
from pispeaker.bench.speech import request_utterance, wake_phrase
from pispeaker.config import Config
from pispeaker.controller import Controller
from pispeaker.conversation.history import History
from pispeaker.live.link import LiveLink
from pispeaker.states import PLAYING, Event, State, Status

#: The speaker: 48 kHz stereo s16le, as most USB speakers and DACs.
SPEAKER_RATE, SPEAKER_CHANNELS = 48_000, 2
#: How long the wake-word models settle before the first cycle (see wake.warmup_s).
SETTLE_S = 2.0
#: How long a cycle may wait for the next thing it expects.
PATIENCE_S = 20.0
#: A longer gap between reply chunks than this starts a new reply (the service sends them
#: every 200-240 ms of audio at most).
REPLY_GAP_S = 0.5
#: How far after a halt the speaker's output counts as the tail of the stopped reply.
TAIL_WINDOW_S = 0.25
#: A drop that began this little before an `interrupted` was for the same barge-in: the
#: on-device voice detector had already stopped the reply (the two race by a few ms).
ALREADY_HALTED_S = 0.3


@dataclass
class Marks:
    """Every timing mark and state change of a run, with the time it happened."""

    sent: list[tuple[float, bytes]] = field(default_factory=list)
    received: list[tuple[float, int]] = field(default_factory=list)  # (time, writes before)
    interrupted: list[float] = field(default_factory=list)
    written: dict[int, float] = field(default_factory=dict)  # write number -> time
    dropping: list[float] = field(default_factory=list)
    dropped: list[float] = field(default_factory=list)
    presses: list[float] = field(default_factory=list)
    states: list[tuple[float, State, float]] = field(default_factory=list)  # (time, state, CPU)
    history: History = field(default_factory=History)  # the wake words acted on, among others


async def measure_conversations(
    config: Config, api_key: str, mic: Microphone, speaker: Speaker, cycles: int
) -> list[Figure]:
    """Run ``cycles`` conversations on ``config`` (the bench's devices and emulator, which
    must be running) and return their figures."""
    async with running(config, api_key, mic, speaker) as run:
        for _ in range(cycles):
            await _cycle(run.controller, mic, run.marks)
    return _figures(
        run.marks, mic, speaker, run.controller, run.source.dropped + run.source.overruns
    )


@dataclass(frozen=True)
class Running:
    """A pispeaker running on the bench: its controller, the marks it leaves and its
    microphone port."""

    controller: Controller
    marks: Marks
    source: AlsaSource


@contextlib.asynccontextmanager
async def running(
    config: Config, api_key: str, mic: Microphone, speaker: Speaker
) -> AsyncIterator[Running]:
    """The service's controller built by app.py from ``config``, started, its wake-word
    models settled, every mark recorded, ``speaker`` told of drops; stopped after the
    block."""
    marks = Marks()
    clock = _cpu_clock(mic)
    source, sink = build_alsa_ports(config)

    def on_state(status: Status) -> None:
        marks.states.append((now(), status.state, clock()))

    controller = build_controller(
        config, api_key, source, sink, on_state, make_wake=wake_maker(config.wake)
    )
    assert isinstance(controller.link, LiveLink)  # build_controller's link
    controller.link.mark = _link_marker(marks, sink)
    controller.observe(marks.history)
    sink.mark = _sink_marker(marks, speaker)
    async with started(controller):
        await asyncio.sleep(SETTLE_S)
        yield Running(controller, marks, source)


def now() -> float:
    """The bench's clock: that of every process (marks come from threads too)."""
    return time.monotonic()


def _cpu_clock(mic: Microphone) -> Callable[[], float]:
    """CPU seconds of this process, less the bench microphone thread's."""

    def clock() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime - mic.cpu_s

    return clock


def _link_marker(marks: Marks, sink: AlsaSink) -> Callable[[str, object], None]:
    def mark(point: str, detail: object) -> None:
        moment = now()
        if point == "uplink.sent":
            assert isinstance(detail, bytes)  # the link marks the chunk it sent
            marks.sent.append((moment, detail))
        elif point == "downlink.audio":
            marks.received.append((moment, sink.writes))
        elif point == "downlink.interrupted":
            marks.interrupted.append(moment)

    return mark


def _sink_marker(marks: Marks, speaker: Speaker) -> Callable[[str, object], None]:
    def mark(point: str, detail: object) -> None:  # called by the writer thread
        moment = now()
        if point == "playback.written":
            assert isinstance(detail, int)  # the sink marks the number of the write
            marks.written[detail] = moment
        elif point == "playback.dropping":
            marks.dropping.append(moment)
        elif point == "playback.dropped":
            marks.dropped.append(moment)
        if point in ("playback.dropping", "playback.regain"):
            assert isinstance(detail, int)  # the bytes written to the device so far
            speaker.drop(detail)

    return mark


# -- one cycle -------------------------------------------------------------------------------


async def _cycle(controller: Controller, mic: Microphone, marks: Marks) -> None:
    mic.say(wake_phrase() + silence(0.15, INPUT_RATE) + request_utterance(2.0))
    await next_state(controller, State.SPEAKING, "a reply to the request after the wake word")
    await next_state(controller, State.LISTENING, "the end of the reply")
    mic.say(request_utterance(2.0))  # a follow-up question
    await next_state(controller, State.SPEAKING, "a reply to the follow-up question")
    await asyncio.sleep(0.6)
    mic.say(request_utterance(1.2))  # talking over the reply: the server interrupts it
    await next_state(controller, State.INTERRUPTED, "the server interrupting the reply")
    await next_state(controller, State.SPEAKING, "a reply to what was said over the last")
    await asyncio.sleep(0.4)
    marks.presses.append(now())
    controller.dispatch(Event.BUTTON_PRESS)  # stop that reply
    await next_state(controller, State.IDLE, "the end of the conversation")


async def next_state(controller: Controller, state: State, what: str) -> None:
    """Wait until ``state`` is entered once more."""
    count = controller.entries(state) + 1
    try:
        async with asyncio.timeout(PATIENCE_S):
            await controller.entered(state, count)
    except TimeoutError:
        raise BenchError(
            f"no {what} within {PATIENCE_S:g} s (still {controller.status.state.value})"
        ) from None


# -- the figures -----------------------------------------------------------------------------


def _figures(
    marks: Marks, mic: Microphone, speaker: Speaker, controller: Controller, capture_lost: int
) -> list[Figure]:
    sent = _place_sent(marks, mic)
    return [
        *_uplink(marks, mic, sent),
        *_downlink(marks),
        *_barge_in(marks, speaker),
        *_wake(marks, mic, controller, sent, capture_lost),
        _conversation_cpu(marks),
    ]


@dataclass(frozen=True)
class _Sent:
    """An uplink chunk: when it was handed to the websocket, and which bytes of what the
    microphone said it holds."""

    at: float
    start: int
    end: int


def _place_sent(marks: Marks, mic: Microphone) -> list[_Sent]:
    """Find every sent chunk in what the microphone wrote (its room noise makes every
    stretch unique); a chunk that is not there would be a bug, and raises."""
    placed, after = [], 0
    for moment, chunk in marks.sent:
        start = mic.written.find(chunk, after)
        if start < 0:
            raise BenchError("an uplink chunk is not audio the microphone captured")
        placed.append(_Sent(moment, start, start + len(chunk)))
        after = start + 1
    return placed


def _ready_times(marks: Marks) -> list[float]:
    """When each session became ready (CONNECTING -> LISTENING)."""
    return [
        moment
        for (_, before, _), (moment, after, _) in zip(marks.states, marks.states[1:], strict=False)
        if before is State.CONNECTING and after is State.LISTENING
    ]


def _uplink(marks: Marks, mic: Microphone, sent: list[_Sent]) -> list[Figure]:
    """Chunks captured while a session was ready and the microphone went out live: the
    audio kept while connecting is the wake figures' business, and what the user says over
    a reply is held on the device until the voice detector is sure (the echo figures')."""
    ready = _ready_times(marks)
    times = [moment for moment, _, _ in marks.states]
    latencies, held = [], 0
    for chunk in sent:
        captured = mic.seconds_at(chunk.end)
        if not ready or captured < ready[0]:
            continue
        state = marks.states[bisect_right(times, captured) - 1][1]
        if state in PLAYING:
            held += 1
        else:
            latencies.append((chunk.at - captured) * 1000)
    return [
        figure_from(
            "uplink_ms",
            "uplink: period's last sample -> handed to the websocket",
            "ms",
            latencies,
            limit=25.0,
            note=f"{held} chunks said over a reply, held until the voice detector was sure, "
            "are left out",
        )
    ]


def _downlink(marks: Marks) -> list[Figure]:
    """Received -> in ALSA, for the first chunk of each reply (what delays the answer) and
    for the later ones (which wait behind the audio of the chunk before, still playing)."""
    first: list[float] = []
    later: list[float] = []
    received = sorted(marks.received, key=lambda pair: pair[1])
    arrivals = sorted(moment for moment, _ in marks.received)
    for write, written_at in marks.written.items():
        candidates = [moment for moment, before in received if before == write - 1]
        if not candidates or candidates[-1] > written_at:
            continue
        moment = candidates[-1]
        index = arrivals.index(moment)
        starts_reply = index == 0 or moment - arrivals[index - 1] > REPLY_GAP_S
        (first if starts_reply else later).append((written_at - moment) * 1000)
    return [
        figure_from(
            "downlink_ms",
            "downlink: a reply's first chunk received -> in ALSA",
            "ms",
            first,
            limit=5.0,
        ),
        figure_from(
            "downlink_later_ms",
            "downlink: later chunks received -> in ALSA (queued)",
            "ms",
            later,
        ),
    ]


def _barge_in(marks: Marks, speaker: Speaker) -> list[Figure]:
    server, button = halts_of(marks, marks.interrupted), halts_of(marks, marks.presses)
    return [
        figure_from(
            "interrupted_halt_ms",
            "barge-in: `interrupted` received -> playback halted",
            "ms",
            [halt.halted_ms for halt in server],
            limit=10.0,
            note=f"{sum(halt.before for halt in server)} of {len(server)} replies were "
            "stopped by the on-device voice detector before the `interrupted` came",
        ),
        figure_from(
            "button_halt_ms",
            "barge-in: button press -> playback halted",
            "ms",
            [halt.halted_ms for halt in button],
            limit=10.0,
        ),
        figure_from(
            "drop_ms",
            "barge-in: of which the device's drop()",
            "ms",
            [halt.drop_ms for halt in server + button],
        ),
        figure_from(
            "audible_tail_ms",
            "barge-in: audio the speaker still played after the halt",
            "ms",
            [
                speaker.heard_between(halt.halted, halt.halted + TAIL_WINDOW_S) * 1000
                for halt in server + button
            ],
            limit=30.0,
        ),
    ]


@dataclass(frozen=True)
class _Halt:
    """A barge-in: when it was asked for, when the drop began and when it was done."""

    asked: float
    dropping: float
    halted: float

    @property
    def halted_ms(self) -> float:
        return max(0.0, self.halted - self.asked) * 1000

    @property
    def before(self) -> bool:
        """The drop began before it was asked for: the device had stopped the reply."""
        return self.dropping < self.asked

    @property
    def drop_ms(self) -> float:
        return (self.halted - self.dropping) * 1000


def halts_of(marks: Marks, asked: list[float]) -> list[_Halt]:
    """The drop of each barge-in asked for at a moment in ``asked``: the first after it, or
    one that began at most ALREADY_HALTED_S before it (the reply was stopped on the device
    first: halted at once, as far as that moment is concerned)."""
    halts = []
    for moment in asked:
        index = bisect_right(marks.dropping, moment)
        if index and moment - marks.dropping[index - 1] <= ALREADY_HALTED_S:
            index -= 1
        if index < len(marks.dropping) and index < len(marks.dropped):
            halts.append(_Halt(moment, marks.dropping[index], marks.dropped[index]))
    return halts


def _wake(
    marks: Marks,
    mic: Microphone,
    controller: Controller,
    sent: list[_Sent],
    capture_lost: int,
) -> list[Figure]:
    detected_after, first_byte, beyond_connect, lost = [], [], [], []
    wakes = marks.history.wakes
    connects = _connects(marks)
    for index, (woke, ready) in enumerate(connects[: len(wakes)]):
        wake_end = byte_count(wakes[index].end_s, INPUT_RATE)
        spoken = _wake_spoken_end(mic, wake_end)
        detected_after.append((woke - mic.seconds_at(spoken)) * 1000)
        first = next((chunk.at for chunk in sent if chunk.at >= woke), None)
        if first is not None:
            first_byte.append((first - woke) * 1000)
            beyond_connect.append((first - woke - (ready - woke)) * 1000)
        lost.append(_uncovered(sent, wake_end, mic.offset_at(ready)))
    return [
        figure_from(
            "wake_detect_ms",
            "wake word's last sample captured -> detected",
            "ms",
            detected_after,
        ),
        figure_from("wake_first_byte_ms", "wake -> first uplink byte", "ms", first_byte),
        figure_from(
            "wake_beyond_connect_ms",
            "wake -> first uplink byte, beyond the session connect",
            "ms",
            beyond_connect,
            limit=10.0,
        ),
        figure_from(
            "lost_bytes",
            "user audio lost between wake and session ready",
            "bytes",
            value=float(sum(lost) + capture_lost),
            limit=0.0,
        ),
    ]


def _connects(marks: Marks) -> list[tuple[float, float]]:
    """(wake, session ready) times of each conversation woken by the wake word."""
    pairs: list[tuple[float, float]] = []
    woke: float | None = None
    for moment, state, _ in marks.states:
        if state is State.CONNECTING:
            woke = moment
        elif state is State.LISTENING and woke is not None:
            pairs.append((woke, moment))
            woke = None
    return pairs


def _wake_spoken_end(mic: Microphone, wake_end: int) -> int:
    """Where the wake phrase said last before ``wake_end`` ended (its sound, not the frame
    the detector fired on)."""
    starts = [start for start, _ in mic.said if start <= wake_end]
    start = starts[-1] if starts else wake_end
    return min(wake_end, start + len(wake_phrase()))


def _uncovered(sent: list[_Sent], start: int, end: int) -> int:
    """Bytes of [start, end) that no sent chunk holds."""
    covered, cursor = 0, start
    for chunk in sorted(sent, key=lambda c: c.start):
        low, high = max(chunk.start, cursor), min(chunk.end, end)
        if high > low:
            covered += high - low
            cursor = high
    return max(0, end - start - covered) // SAMPLE_WIDTH * SAMPLE_WIDTH


def _conversation_cpu(marks: Marks) -> Figure:
    """CPU seconds per second from each wake to the end of its conversation."""
    cpu = wall = 0.0
    start: tuple[float, float] | None = None
    for moment, state, used in marks.states:
        if state is State.CONNECTING and start is None:
            start = (moment, used)
        elif state is State.IDLE and start is not None:
            wall += moment - start[0]
            cpu += used - start[1]
            start = None
    return figure_from(
        "conversation_cpu",
        "CPU in conversation (process, less the bench microphone)",
        "CPU-s/s",
        value=cpu / wall if wall else None,
    )
