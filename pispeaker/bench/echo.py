"""The echo figures: pispeaker hearing its own replies through a simulated room, in real time.

The rig is that of the conversation figures (bench/conversation.py: the service's controller
built by app.py, real libasound on FIFOs, the emulator in its own process through the real
SDK), with a room (bench/room.py) between the bench speaker and the bench microphone: the
microphone hears the speaker's drained audio after a bulk delay, a room response, a coupling
gain and a drifting clock. The emulator answers every turn with REPLY_S of speech-like audio.

Scenarios, each a loop of replies in one conversation that goes on from reply to reply:

* nobody talking: every INTERRUPTED entered is the reply interrupting itself (the server's
  ``interrupted`` or a local stop), in several rooms (couplings and delays);
* barge-ins: the user starts talking at a random point of the reply: detected (INTERRUPTED
  within DETECT_S), the played level 20 dB down, the user's words reaching the server and
  their level in double talk;
* coughs and knocks during the reply: every INTERRUPTED is a false stop.
"""

import asyncio
import itertools
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from pispeaker.audio.echo import EchoCanceller
from pispeaker.audio.pcm import INPUT_RATE, OUTPUT_RATE, SAMPLE_WIDTH, silence
from pispeaker.audio.resample import resample
from pispeaker.audio.voice import VoiceDetector
from pispeaker.bench.conversation import (
    PATIENCE_S,
    SPEAKER_RATE,
    Running,
    now,
    running,
)
from pispeaker.bench.figures import Figure, figure_from
from pispeaker.bench.rig import BenchError, Echo, Microphone, Speaker
from pispeaker.bench.room import Room, RoomSettings
from pispeaker.bench.speech import (
    barge_in_words,
    burst,
    request_utterance,
    speech_like,
    wake_phrase,
)
from pispeaker.config import Config
from pispeaker.conversation.hearing import VoiceActivity
from pispeaker.states import PLAYING, State

#: The rooms of the replies with nobody talking: (coupling dB, bulk delay s); the clock drifts
#: by 100 ppm and the speaker clips softly in every one.
ROOMS = ((-6.0, 0.01), (-6.0, 0.3), (-15.0, 0.03), (-15.0, 0.15))
#: The room of the barge-ins and the coughs: the loud coupling, a near speaker.
TALK_ROOM = RoomSettings(coupling_db=-6.0, delay_s=0.03)
#: Every reply's length (the emulator's answer to every turn): a few seconds, and short
#: enough that the full bench's 300 replies take under 20 minutes.
REPLY_S = 2.5
#: At most this many replies with nobody talking let a new installation's canceller learn the
#: talk room before the barge-ins (a speaker that does not hear over its replies yet cannot
#: be talked over: that is its first replies, not its barge-in).
SETTLE_REPLIES = 6
#: How long the user's words over a reply last.
BARGE_IN_S = 1.2
#: The user's level at the microphone (aec.md's near-end: the echo of a -20 dBFS reply at
#: -6 dB coupling is 4 dB louder).
NEAR_DBFS = -30.0
#: An interruption this soon after the user's onset is the barge-in detected.
DETECT_S = 1.5
#: The follow-up window: long enough that the conversation carries on from reply to reply.
FOLLOW_UP_S = 4.0
#: No reply coming this long after the user's last words: ask for one.
QUIET_S = 1.0
#: How often the scenarios look at the controller's state.
POLL_S = 0.02
#: The played level is measured over windows of this length, this far apart.
WINDOW_S, STEP_S = 0.02, 0.005
#: The reply's level before the onset is measured over this long.
BEFORE_S = 0.3
#: A halt: the played level this far below the reply's before the onset.
DOWN_DB = 20.0


def reply_audio() -> bytes:
    """The emulator's answer to every turn: REPLY_S of speech-like 24 kHz audio whose pauses
    never dip 20 dB (so that only a halt or a duck can)."""
    return speech_like(REPLY_S, OUTPUT_RATE, pitch_hz=110.0, seed=5, murmur_db=-12.0)


def echo_config(config: Config) -> Config:
    """``config`` (the bench's) with the follow-up window of the echo scenarios."""
    conversation = config.conversation.model_copy(update={"follow_up_s": FOLLOW_UP_S})
    return config.model_copy(update={"conversation": conversation})


@dataclass
class EchoRig:
    """What the scenarios drive and look at."""

    run: Running
    mic: Microphone
    speaker: Speaker
    echo: Echo
    dice: random.Random = field(default_factory=lambda: random.Random(15))

    @property
    def state(self) -> State:
        return self.run.controller.status.state

    def entries(self, state: State) -> int:
        return self.run.controller.entries(state)

    def install_in(self, settings: RoomSettings) -> None:
        """Put the speaker in another room as a new installation: the canceller learns the
        echo path from the start, as after a device comes back (one speaker's echo delay
        does not jump by a hundred milliseconds while it stays plugged in)."""
        self.echo.room = Room(settings)
        self.run.controller.ear.new_device()

    def last_entered(self, state: State) -> float:
        """When ``state`` was last entered."""
        states = self.run.marks.states
        for (moment, entered, _), (_, before, _) in zip(states[::-1], states[-2::-1], strict=False):
            if entered is state and before is not state:
                return moment
        raise BenchError(f"{state.value} was never entered")


@dataclass(frozen=True)
class BargeIn:
    """The user talking over a reply: the onset as captured, its 16 kHz byte offsets in the
    microphone, when (if) an interruption followed within DETECT_S, and whether the reply
    was still playing when the user began (it may have stopped itself)."""

    onset: float
    start: int
    end: int
    interrupted: float | None
    over_reply: bool


@dataclass(frozen=True)
class QuietRoom:
    """The replies with nobody talking in one room: how many, and how many of them
    interrupted themselves or were turned down."""

    settings: RoomSettings
    replies: int
    stops: int
    ducks: int


@dataclass
class Results:
    """What the scenarios saw."""

    rooms: list["QuietRoom"] = field(default_factory=list)
    barge_ins: list[BargeIn] = field(default_factory=list)
    coughs: list[bool] = field(default_factory=list)  # a stop followed
    quiet: tuple[int, int] = (0, 0)  # the microphone's bytes of the replies with nobody talking
    quiet_span: tuple[float, float] = (0.0, 0.0)  # when they began and ended


async def measure_echo(
    config: Config, api_key: str, mic: Microphone, speaker: Speaker, echo: Echo, replies: int
) -> list[Figure]:
    """Run the scenarios (``replies`` replies each) on ``config`` (the bench's devices and the
    emulator answering with :func:`reply_audio`, which must be running)."""
    results = Results()
    async with running(echo_config(config), api_key, mic, speaker) as run:
        rig = EchoRig(run, mic, speaker, echo)
        quiet_start, began = mic.offset, now()
        for settings in _rooms():
            rig.install_in(settings)
            per_room = max(1, round(replies / len(ROOMS)))
            results.rooms.append(QuietRoom(settings, *await _quiet_replies(rig, per_room)))
        results.quiet, results.quiet_span = (quiet_start, mic.offset), (began, now())
        rig.install_in(TALK_ROOM)
        await _settle(rig)
        for _ in range(replies):
            results.barge_ins.append(await _barge_in(rig))
        for index in range(replies):
            results.coughs.append(await _cough(rig, index))
    return _figures(results, mic, speaker, run)


def _rooms() -> list[RoomSettings]:
    return [RoomSettings(coupling_db=coupling, delay_s=delay) for coupling, delay in ROOMS]


# -- the scenarios ---------------------------------------------------------------------------


async def _quiet_replies(rig: EchoRig, count: int) -> tuple[int, int, int]:
    """``count`` replies with nobody talking; return (replies, interruptions, ducks). Every
    reply counts, those to the echo the speaker heard of itself too."""
    counted = (State.SPEAKING, State.INTERRUPTED, State.DUCKED)
    before = [rig.entries(state) for state in counted]
    for _ in range(count):
        await _reply_started(rig)
        await _reply_over(rig)
    replies, stops, ducks = (rig.entries(s) - was for s, was in zip(counted, before, strict=True))
    return replies, stops, ducks


async def _settle(rig: EchoRig) -> None:
    """Replies with nobody talking until the canceller hears over them (SETTLE_REPLIES at
    most; then the barge-ins find out what is missing)."""
    for _ in range(SETTLE_REPLIES):
        if rig.run.controller.ear.hears_over_reply:
            return
        await _quiet_replies(rig, 1)


async def _barge_in(rig: EchoRig) -> BargeIn:
    """Talk over a reply from a random point of it; the next reply answers that."""
    started = await _reply_started(rig)
    await _sleep_until(started + rig.dice.uniform(0.3, REPLY_S - 1.0))
    stops, over_reply = rig.entries(State.INTERRUPTED), rig.state in PLAYING
    words = barge_in_words(BARGE_IN_S, len(rig.mic.said), NEAR_DBFS)
    start, end = await _say(rig.mic, words)
    onset = rig.mic.captured_at(start)
    await _until(lambda: rig.entries(State.INTERRUPTED) > stops, onset + DETECT_S)
    stopped = rig.entries(State.INTERRUPTED) > stops
    interrupted = rig.last_entered(State.INTERRUPTED) if stopped else None
    return BargeIn(onset, start, end, interrupted, over_reply)


async def _cough(rig: EchoRig, index: int) -> bool:
    """A cough or a knock at a random point of a reply; return whether a stop followed."""
    started = await _reply_started(rig)
    await _sleep_until(started + rig.dice.uniform(0.3, REPLY_S - 0.6))
    stops = rig.entries(State.INTERRUPTED)
    await _say(rig.mic, burst("knock" if index % 2 else "cough", index))
    await _reply_over(rig)
    return rig.entries(State.INTERRUPTED) > stops


async def _reply_started(rig: EchoRig) -> float:
    """Wait for the next reply to start, asking for one (the wake word and a request, or a
    request alone) when none is on its way; return when it started."""
    count = rig.entries(State.SPEAKING) + 1
    deadline = now() + PATIENCE_S
    while rig.entries(State.SPEAKING) < count:
        if rig.state in (State.IDLE, State.LISTENING) and rig.mic.silent_s() >= QUIET_S:
            _ask(rig)
        if now() > deadline:
            raise BenchError(f"no reply within {PATIENCE_S:g} s (still {rig.state.value})")
        await asyncio.sleep(POLL_S)
    return rig.last_entered(State.SPEAKING)


def _ask(rig: EchoRig) -> None:
    request = request_utterance(0.5)
    if rig.state is State.IDLE:
        request = wake_phrase() + silence(0.15, INPUT_RATE) + request
    rig.mic.say(request)


async def _reply_over(rig: EchoRig) -> None:
    """Wait until the reply playing has ended: played out, stopped, or the conversation
    over (it lasts ``max_session_s`` at most)."""
    await _until(lambda: rig.state is not State.SPEAKING, now() + PATIENCE_S)
    if rig.state is State.SPEAKING:
        raise BenchError(f"a reply still playing after {PATIENCE_S:g} s")


async def _say(mic: Microphone, pcm: bytes) -> tuple[int, int]:
    """Say ``pcm`` now; return its byte offsets in the microphone once it starts."""
    said = len(mic.said)
    mic.say(pcm)
    await _until(lambda: len(mic.said) > said, now() + 1.0)
    return mic.said[said]


async def _until(condition: Callable[[], bool], deadline: float) -> None:
    """Until ``condition`` holds or ``deadline`` passes (it is a plain callable: polled)."""
    while True:
        if condition() or now() >= deadline:
            return
        await asyncio.sleep(POLL_S)


def _sleep_until(moment: float) -> Awaitable[None]:
    return asyncio.sleep(max(0.0, moment - now()))


# -- what the speaker played -----------------------------------------------------------------


class Played:
    """What the bench speaker drained (its log and content), as levels over time."""

    def __init__(self, speaker: Speaker, frame_bytes: int = 4) -> None:
        if speaker.content is None:
            raise BenchError("the echo figures need the speaker's content")
        data = speaker.log.read_bytes()
        records = np.frombuffer(data[: len(data) // 12 * 12], dtype=[("t", "<f8"), ("n", "<u4")])
        self.moments, counts = records["t"], records["n"].astype(np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(counts)])
        self.content, self.frame_bytes = speaker.content, frame_bytes

    def energies(self, start: float, end: float) -> tuple[npt.NDArray[np.float64], ...]:
        """(moments, energy, frames) of every read between two moments (channel 0)."""
        first, last = np.searchsorted(self.moments, [start, end])
        with self.content.open("rb") as content:
            content.seek(int(self.offsets[first]))
            data = content.read(int(self.offsets[last] - self.offsets[first]))
        samples = np.frombuffer(data[: len(data) // 4 * 4], "<i2")[0::2].astype(np.float64)
        bounds = (self.offsets[first : last + 1] - self.offsets[first]) // self.frame_bytes
        squares = np.concatenate([[0.0], np.cumsum(samples**2)])
        bounds = np.minimum(bounds, len(samples))
        return self.moments[first:last], np.diff(squares[bounds]), np.diff(bounds).astype(float)

    def references(self, moments: list[float], rate: int) -> list[bytes]:
        """Channel 0 of what was played between consecutive ``moments``, at ``rate`` mono."""
        first, last = np.searchsorted(self.moments, [moments[0], moments[-1]])
        with self.content.open("rb") as content:
            content.seek(int(self.offsets[first]))
            data = content.read(int(self.offsets[last] - self.offsets[first]))
        mono = np.frombuffer(data[: len(data) // 4 * 4], "<i2")[0::2].tobytes()
        audio = resample(mono, SPEAKER_RATE, rate)
        cuts = np.searchsorted(self.moments, moments)
        samples = (self.offsets[cuts] - self.offsets[first]) // self.frame_bytes
        at = np.minimum(samples * rate // SPEAKER_RATE, len(audio) // 2) * 2
        return [audio[a:b] for a, b in itertools.pairwise(at.tolist())]

    def down_after(self, onset: float, frames_per_s: int) -> float | None:
        """Seconds from ``onset`` to the end of the first WINDOW_S after it whose played
        level is DOWN_DB below the level over BEFORE_S before it (nothing played is silence);
        None if that does not happen within DETECT_S."""
        moments, energy, _ = self.energies(onset - BEFORE_S, onset + DETECT_S + WINDOW_S)
        before = energy[moments < onset].sum() / (BEFORE_S * frames_per_s)
        if before <= 0:
            return None
        for step in range(round(DETECT_S / STEP_S)):
            low = onset + step * STEP_S
            inside = (moments >= low) & (moments < low + WINDOW_S)
            level = energy[inside].sum() / (WINDOW_S * frames_per_s)
            if level <= before * 10 ** (-DOWN_DB / 10):
                return low + WINDOW_S - onset
        return None


# -- the figures -----------------------------------------------------------------------------


def _figures(results: Results, mic: Microphone, speaker: Speaker, run: Running) -> list[Figure]:
    played = Played(speaker)
    uplink = _uplink(run, mic)
    return [
        _self_interruptions(results),
        _false_ducks(results),
        _ducked_share(run.marks.states, results.quiet_span),
        *_barge_in_figures(results.barge_ins, played, uplink, mic),
        _false_stops(results.coughs),
        *_canceller_figures(mic, played, results.quiet),
    ]


def _self_interruptions(results: Results) -> Figure:
    return _per_100_replies(
        results,
        lambda room: room.stops,
        ("echo_self_interruptions", "echo: self-interruptions per 100 replies"),
        "interruptions/replies by room",
        limit=0.0,
    )


def _false_ducks(results: Results) -> Figure:
    return _per_100_replies(
        results,
        lambda room: room.ducks,
        ("echo_false_ducks", "echo: replies turned down with nobody talking, per 100 replies"),
        "DUCKED entered/replies by room (what is left of the echo passed the level gate; the "
        "reply dips 20 dB until the voice detector gives up)",
    )


def _ducked_share(states: list[tuple[float, State, float]], span: tuple[float, float]) -> Figure:
    """The share of the replies' playing time with nobody talking that they spent ducked."""
    playing = ducked = 0.0
    for (moment, state, _), (after, _, _) in itertools.pairwise(
        [*states, (span[1], State.IDLE, 0.0)]
    ):
        low, high = max(moment, span[0]), min(after, span[1])
        if state in PLAYING and high > low:
            playing += high - low
            ducked += high - low if state is State.DUCKED else 0.0
    return figure_from(
        "echo_false_duck_time",
        "echo: reply time turned down with nobody talking (%)",
        "%",
        value=100 * ducked / playing if playing else None,
        note=f"{ducked:.1f} s ducked of {playing:.1f} s played",
    )


def _per_100_replies(
    results: Results,
    count: Callable[["QuietRoom"], int],
    name: tuple[str, str],
    what: str,
    limit: float | None = None,
) -> Figure:
    """``count`` of the replies with nobody talking, per 100 replies, room by room in the
    note."""
    replies = sum(room.replies for room in results.rooms)
    counted = sum(count(room) for room in results.rooms)
    note = "; ".join(f"{r.settings.describe()}: {count(r)}/{r.replies}" for r in results.rooms)
    return figure_from(
        *name,
        "per 100",
        value=100 * counted / replies if replies else None,
        limit=limit,
        note=f"{what}: {note}",
    )


def _barge_in_figures(
    barge_ins: list[BargeIn], played: Played, uplink: "Uplink", mic: Microphone
) -> list[Figure]:
    frames_per_s = SPEAKER_RATE
    # A reply that had stopped itself before the user began gives no barge-in to detect nor
    # to halt: a miss for the detection figure, and no sample for the halt.
    detected = [b for b in barge_ins if b.interrupted is not None and b.over_reply]
    void = len(barge_ins) - sum(b.over_reply for b in barge_ins)
    down = [played.down_after(b.onset, frames_per_s) if b.over_reply else None for b in barge_ins]
    halts = [seconds * 1000 for seconds in down if seconds is not None]
    reached = [uplink.reached(mic, b.start, b.end) for b in barge_ins]
    double_talk = [
        uplink.level_loss_db(mic, b.start, b.start + _bytes(seconds))
        for b, seconds in zip(barge_ins, down, strict=True)
        if seconds is not None
    ]
    loss = [db for db in double_talk if db is not None]
    return [
        figure_from(
            "echo_barge_in_detected",
            "echo: voice barge-ins detected (%)",
            "%",
            value=100 * len(detected) / len(barge_ins) if barge_ins else None,
            floor=95.0,
            note=f"an interruption within {DETECT_S:g} s of the onset; {len(barge_ins)} tries, "
            f"{void} over a reply that had stopped itself already",
        ),
        figure_from(
            "echo_onset_down_ms",
            f"echo: speech onset -> reply {DOWN_DB:g} dB down",
            "ms",
            halts,
            limit=150.0,
            note=f"{len(barge_ins) - void - len(halts)} of {len(barge_ins) - void} not down "
            f"within {DETECT_S:g} s",
        ),
        figure_from(
            "echo_barge_in_words",
            "echo: barge-in words reaching the server (%)",
            "%",
            value=100 * float(np.mean(reached)) if reached else None,
        ),
        figure_from(
            "echo_double_talk_loss_db",
            "echo: near-end level loss in double talk",
            "dB",
            loss,
            note=f"{len(double_talk) - len(loss)} of {len(double_talk)} double talks sent nothing",
        ),
    ]


def _false_stops(coughs: list[bool]) -> Figure:
    return figure_from(
        "echo_false_stops",
        "echo: false stops per 100 replies",
        "per 100",
        value=100 * sum(coughs) / len(coughs) if coughs else None,
        limit=1.0,
        note=f"one cough or knock (80-300 ms) in each of {len(coughs)} replies",
    )


def _bytes(seconds: float) -> int:
    return round(seconds * INPUT_RATE) * SAMPLE_WIDTH


@dataclass(frozen=True)
class Uplink:
    """What was sent to the server, laid out on the microphone's 16 kHz bytes (a chunk sent
    at a moment ends with what the microphone had written then: exact to a period)."""

    audio: npt.NDArray[np.float64]  # the samples sent, 0 where none was
    sent: npt.NDArray[np.bool_]  # which samples were sent

    def reached(self, mic: Microphone, start: int, end: int) -> float:
        """The share of the voiced frames of mic bytes [start, end) that were sent."""
        voiced = _voiced_frames(mic, start, end)
        sent = [bool(self.sent[frame].all()) for frame in voiced]
        return float(np.mean(sent)) if sent else 0.0

    def level_loss_db(self, mic: Microphone, start: int, end: int) -> float | None:
        """How much quieter the sent audio is than the near-end over mic bytes [start, end)
        (positive: a loss); None if none of it was sent."""
        span = slice(start // SAMPLE_WIDTH, end // SAMPLE_WIDTH)
        near = np.frombuffer(mic.near, "<i2")[span].astype(np.float64)
        sent = self.audio[span][self.sent[span]]
        if not len(sent):
            return None
        near = near[self.sent[span]]
        return float(10 * np.log10(np.mean(near**2) / max(np.mean(sent**2), 1e-9)))


def _uplink(run: Running, mic: Microphone) -> Uplink:
    """Lay the sent chunks out, the last first: each ends where the microphone was when it
    was sent, or where the next one starts if that is sooner (the words held over a reply
    go out in a burst, ahead of the chunks that follow them)."""
    total = len(mic.written) // SAMPLE_WIDTH
    audio, sent = np.zeros(total), np.zeros(total, dtype=bool)
    next_start = total
    for moment, chunk in reversed(run.marks.sent):
        end = min(mic.offset_at(moment) // SAMPLE_WIDTH, next_start)
        samples = np.frombuffer(chunk, "<i2")
        count = min(len(samples), end)
        audio[end - count : end] = samples[len(samples) - count :]
        sent[end - count : end] = True
        next_start = end - count
    return Uplink(audio, sent)


def _voiced_frames(mic: Microphone, start: int, end: int) -> list[slice]:
    """The 20 ms frames of mic bytes [start, end) where the near-end is well above the
    microphone's noise (the words, not their gaps)."""
    near = np.frombuffer(mic.near, "<i2").astype(np.float64)
    frame = INPUT_RATE // 50
    frames = []
    for low in range(start // SAMPLE_WIDTH, end // SAMPLE_WIDTH - frame + 1, frame):
        level = float(np.sqrt(np.mean(near[low : low + frame] ** 2)))
        if level > 10 * mic.noise_rms:  # 20 dB above the noise
            frames.append(slice(low, low + frame))
    return frames


# -- the canceller offline -------------------------------------------------------------------

#: Offline, the reference is given this long before it is heard, as the playback buffer
#: gives it to the canceller live (it is tapped at the card write).
REFERENCE_LEAD_S = 0.1


def _canceller_figures(mic: Microphone, played: Played, span: tuple[int, int]) -> list[Figure]:
    """The canceller and the voice activity detector (with its model) run again over what
    the microphone wrote in ``span`` (16 kHz bytes: the replies with nobody talking), with
    what the speaker played as the reference: their CPU time per audio second, and the
    canceller's ERLE."""
    canceller, activity = EchoCanceller(), VoiceActivity(VoiceDetector())
    period = mic.period_frames * SAMPLE_WIDTH
    first, last = span[0] // period, span[1] // period
    references = played.references(
        [mic.moments[k] + REFERENCE_LEAD_S for k in range(first - 1, last)], OUTPUT_RATE
    )
    erle: list[float] = []
    started = time.thread_time()  # the canceller and the detector work on this thread
    for k, reference in zip(range(first, last), references, strict=True):
        canceller.reference(reference, mic.moments[k - 1] + REFERENCE_LEAD_S)
        heard = bytes(mic.written[k * period : (k + 1) * period])
        activity.feed(canceller.clean(heard, mic.moments[k]))
        if canceller.erle_db is not None:
            erle.append(canceller.erle_db)
    cpu = time.thread_time() - started
    seconds = (last - first) * mic.period_frames / INPUT_RATE
    return [
        figure_from(
            "echo_canceller_cpu",
            "echo: canceller CPU",
            "CPU-s/s",
            value=cpu / seconds if seconds else None,
            limit=0.02,
            note="the canceller with the voice detector, offline over the microphone and the "
            "played audio of the replies with nobody talking",
        ),
        figure_from(
            "echo_erle_db",
            "echo: echo return loss enhancement",
            "dB",
            value=float(np.mean(erle)) if erle else None,
            note="the canceller's ERLE, averaged over those replies",
        ),
    ]


def scratch_reply(directory: Path) -> Path:
    """Write :func:`reply_audio` into ``directory`` for the emulator; return its path."""
    path = directory / "reply.raw"
    path.write_bytes(reply_audio())
    return path
