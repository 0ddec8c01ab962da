"""Fuzz the receive path: broken server messages must never crash or wedge the daemon.

The real google-genai SDK, the real ``LiveLink`` and the conversation core (a ``Controller``
with an in-memory microphone and speaker) talk to the emulator over its TLS websocket, and
the emulator sends generated and mutated server messages as-is on the open connection
(``LiveEmulator.send_raw``), many on one connection. Every ``probe_every`` messages, and at
the end, a probe checks that the conversation still works: a conformant server ends
whatever turn the messages left open, the user asks something, and the reply must play in
full (through a reconnect if a message ended the connection).

    .venv/bin/python tests/fuzz.py --messages 3000 --seed 1

The closing line is ``N messages, U unhandled, H hangs``: N messages sent; U failures that
escaped (the link reporting Crashed, a task's exception, the controller dying, an error
logged or a traceback); H probes or reconnects that did not complete within ``within_s``.
The exit status is 0 only when U and H are 0. Details go to stderr.
"""

import argparse
import asyncio
import contextlib
import copy
import itertools
import json
import logging
import random
import sys
import time
import warnings
from collections import Counter, deque
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any

from websockets.exceptions import ConnectionClosed

from pispeaker.audio.memory import MemorySink
from pispeaker.audio.pcm import INPUT_RATE, OUTPUT_RATE, byte_count, silence, tone
from pispeaker.audio.ports import DeviceLostError
from pispeaker.backoff import Backoff
from pispeaker.config import LiveConfig
from pispeaker.controller import Controller, Policy
from pispeaker.emulator import EmulatorOptions, Fault, LiveEmulator, Reply, wire
from pispeaker.emulator.script import UserTurn
from pispeaker.emulator.timeline import Event as TimelineEvent
from pispeaker.emulator.voice import usage_metadata
from pispeaker.live.link import LiveLink
from pispeaker.live.port import Crashed, LinkEvent, Report
from pispeaker.states import Event, State
from pispeaker.tools import Tool

#: Messages between two probes: many per connection, so a few thousand run in seconds.
PROBE_EVERY = 50
#: How long a probe, or the wait for the link to be back, may take. Generous on purpose: the
#: bound catches a daemon that never recovers, not a slow machine.
WITHIN_S = 20.0

Json = Any
#: A server message before serialisation: its kind, body and top-level companions.
Body = tuple[str, dict[str, Any], dict[str, Any]]
Sabotage = Callable[[Controller], None]

# -- the messages ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """One message sent as-is: ``data`` in a binary (bytes) or text (str) frame; ``first``:
    on a new connection, before its setupComplete."""

    data: bytes | str
    kind: str
    first: bool = False


#: Tools the messages call. Not end_conversation (ending the conversation is a working
#: answer, not a failure) nor set_volume (it would change what the probes hear).
TOOL_NAMES = ("get_local_time", "no_such_function", "", "x" * 300)
#: Strings for any field; few (the SDK warns once of each unknown enum value it meets).
STRINGS = ("", "x", "IN_PROGRESS", "AUDIO", "🙂🙂", "\u0000", "null", "-1", "A" * 500)
BAD_BASE64: tuple[Json, ...] = (
    "!!!!",
    "A",
    "AAAAA",
    "====",
    "🙂",
    "AA==AA==",
    "-_ *",
    12,
    None,
    [],
)
BAD_DURATIONS = ("soon", "", "-5s", "nans", "infs", "1e400s", "12", "5m", "0.5.5s", 50, None)
SIZES = (0, 1, 2, 3, 479, 480, 4800, 9600, 11520)
VALUES: tuple[Json, ...] = (
    *(None, True, False, 0, -1, 2**70, 1.5, float("nan"), float("inf"), *STRINGS),
    *([], [1, "a"], {}, {"a": {"b": []}}, {"seconds": 5}),
)


class Messages:
    """Server messages to fuzz with, all drawn from ``rng``: valid ones as the emulator
    makes them, mutations of those, generated garbage, messages out of order, huge frames."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self._ids = itertools.count(1)
        self._makers: list[tuple[Callable[[], list[Frame]], float]] = [
            (self.valid, 20),
            (self.mutated, 40),
            (self.garbage, 14),
            (self.out_of_order, 24),
            (self.huge, 0.5),
            (self.before_setup, 0.5),
        ]

    def frames(self, count: int) -> Iterator[Frame]:
        """``count`` frames (a sequence out of order may be cut short at the end)."""
        makers, weights = zip(*self._makers, strict=True)
        made = 0
        while made < count:
            batch = self.rng.choices(makers, weights)[0]()[: count - made]
            made += len(batch)
            yield from batch

    # valid messages, as the emulator sends them

    def valid(self) -> list[Frame]:
        """A valid server message."""
        kind, data = self._valid()
        return [self._frame(data, f"valid {kind}")]

    def _valid(self) -> tuple[str, bytes]:
        kind, body, extra = self.rng.choice(self._TEMPLATES)(self)
        return kind, wire.server_message(kind, body, **extra)

    def _audio(self) -> Body:
        return "serverContent", {"modelTurn": {"parts": [self._audio_part()]}}, {}

    def _audio_part(self) -> dict[str, Any]:
        size = self.rng.choice((*SIZES, self.rng.randrange(1, 24000)))
        return wire.audio_part(self.rng.randbytes(size))

    def _spoken(self) -> Body:
        text = {"outputTranscription": {"text": self._text()}}
        return "serverContent", {"modelTurn": {"parts": [self._audio_part()]}} | text, {}

    def _transcript(self) -> Body:
        who = self.rng.choice(("inputTranscription", "outputTranscription"))
        return "serverContent", {who: {"text": self._text()}}, {}

    def _turn_end(self) -> Body:
        body = {self.rng.choice(("generationComplete", "turnComplete", "interrupted")): True}
        usage = usage_metadata(UserTurn(bytes(self.rng.choice(SIZES))), bytes(4800))
        return "serverContent", body, {"usageMetadata": usage} if self.rng.random() < 0.5 else {}

    def _reasoning(self) -> Body:
        status = self.rng.choice(("IN_PROGRESS", "IDLE"))
        return "serverContent", {"interactionStatus": status, "turnComplete": True}, {}

    def _grounding(self) -> Body:
        query = self._text()
        grounding = {"webSearchQueries": [query], "groundingChunks": [{"web": {"title": query}}]}
        return "serverContent", {"groundingMetadata": grounding}, {}

    def _tool_call(self) -> Body:
        call = {"id": self._id(), "name": self.rng.choice(TOOL_NAMES), "args": {"a": 1}}
        return "toolCall", {"functionCalls": [call]}, {}

    def _cancellation(self) -> Body:
        return "toolCallCancellation", {"ids": [self._id(), self._id()]}, {}

    def _go_away(self) -> Body:
        return "goAway", {"timeLeft": wire.duration_text(self.rng.uniform(0, 90))}, {}

    def _resumption(self) -> Body:
        update = {"newHandle": f"fuzz-handle-{next(self._ids)}", "resumable": True}
        return "sessionResumptionUpdate", update if self.rng.random() < 0.5 else {}, {}

    def _other(self) -> Body:
        kind = self.rng.choice(("setupComplete", "voiceActivity", "voiceActivityDetectionSignal"))
        body = {"voiceActivityType": "ACTIVITY_START"} if kind == "voiceActivity" else {}
        return kind, body, {}

    # Weights by repetition: mostly reply audio, as in a real session; goAway rarely (each
    # is a handover to a new connection).
    _TEMPLATES: tuple[Callable[["Messages"], "Body"], ...] = (
        *[_audio] * 6,
        *[_spoken, _transcript, _turn_end] * 2,
        _reasoning,
        _grounding,
        _tool_call,
        _cancellation,
        _resumption,
        _other,
        _go_away,
    )

    # mutations of valid messages

    def mutated(self) -> list[Frame]:
        """A valid message with one to three mutations, maybe truncated or corrupted."""
        kind, data = self._valid()
        message = json.loads(data)
        names = [self._mutate(message) for _ in range(self.rng.randint(1, 3))]
        text = json.dumps(message, ensure_ascii=self.rng.random() < 0.5)
        return [self._frame(self._damage(text.encode()), f"mutated {kind}: {', '.join(names)}")]

    def _mutate(self, message: dict[str, Any]) -> str:
        places = list(_places(message))
        if not places:  # an earlier mutation dropped its only key
            message["futureField"] = self._value()
            return "unknown field"
        container, key = self.rng.choice(places)
        operation = self.rng.choice(("drop", "retype", "unknown", "rename", "base64", "twice"))
        if operation == "base64" and _set_inline_data(message, self._pick(BAD_BASE64)):
            return "bad base64"
        if isinstance(container, dict) and operation in ("drop", "rename"):
            value = container.pop(key)
            if operation == "rename":
                container[self._renamed(str(key))] = value
            return f"{operation} {key}"
        if isinstance(container, dict) and operation == "unknown":
            container[self.rng.choice(("futureField", "x", "code", "server_content"))] = (
                self._value()
            )
            return "unknown field"
        if isinstance(container, list) and operation == "twice":
            container.append(container[key])
            return "item twice"
        container[key] = self._value()
        return f"wrong type at {key}"

    def _renamed(self, key: str) -> str:
        return self.rng.choice((wire.snake(key), key.upper(), key + "_", key[:-1]))

    def _damage(self, data: bytes) -> bytes:
        """Sometimes truncate the frame, or corrupt one of its bytes."""
        roll = self.rng.random()
        if roll < 0.15 and data:
            return data[: self.rng.randrange(len(data))]
        if roll < 0.25 and data:
            at = self.rng.randrange(len(data))
            return data[:at] + bytes([self.rng.randrange(256)]) + data[at + 1 :]
        return data

    # generated garbage

    def garbage(self) -> list[Frame]:
        """A frame that is not a server message at all."""
        kind, data = self.rng.choice(self._GARBAGE)(self)
        return [self._frame(data, f"garbage {kind}")]

    def _bytes(self) -> tuple[str, bytes]:
        return "random bytes", self.rng.randbytes(self.rng.randrange(2000))

    def _text_frame(self) -> tuple[str, bytes]:
        return "random text", self._text().encode()

    def _json_not_object(self) -> tuple[str, bytes]:
        value = self.rng.choice(
            ("null", "0", "-1.5", "true", '"x"', "[]", '[{"setupComplete":{}}]')
        )
        return "JSON that is not an object", value.encode()

    def _empty(self) -> tuple[str, bytes]:
        return "empty frame", b""

    def _deep(self) -> tuple[str, bytes]:
        depth = self.rng.choice((100, 1000, 10000, 100000))
        opening, closing = self.rng.choice((("[", "]"), ('{"serverContent":', "}")))
        return f"nested {depth} deep", (opening * depth + "{}" + closing * depth).encode()

    def _unknown_only(self) -> tuple[str, bytes]:
        key = self.rng.choice(("someFutureMessage", "server_content", "error", "code"))
        return "unknown top-level key", json.dumps({key: self._value()}).encode()

    def _error_report(self) -> tuple[str, bytes]:
        code = self.rng.choice((0, 400, 429, 500, 1007, 1008, 1011, "x", True, None))
        report = {"code": code, "message": "quota exhausted", "status": "RESOURCE_EXHAUSTED"}
        return "error report", json.dumps(report).encode()

    _GARBAGE: tuple[Callable[["Messages"], tuple[str, bytes]], ...] = (
        _bytes,
        _text_frame,
        _json_not_object,
        _empty,
        _deep,
        _unknown_only,
        _error_report,
    )

    # messages out of order, and fields the adapter must check itself

    def out_of_order(self) -> list[Frame]:
        """A sequence a conformant server never sends."""
        kind, messages = self.rng.choice(self._SEQUENCES)(self)
        return [self._frame(json.dumps(m).encode(), f"out-of-order {kind}") for m in messages]

    def _turn_complete_twice(self) -> tuple[str, list[Json]]:
        return "turnComplete twice", [{"serverContent": {"turnComplete": True}}] * 2

    def _audio_after_its_turn(self) -> tuple[str, list[Json]]:
        audio = {"serverContent": {"modelTurn": {"parts": [self._audio_part()]}}}
        return "audio after turnComplete", [{"serverContent": {"turnComplete": True}}, audio]

    def _call_without_id(self) -> tuple[str, list[Json]]:
        call = {"name": self.rng.choice(TOOL_NAMES), "args": {}}
        return "toolCall without an id", [{"toolCall": {"functionCalls": [call]}}]

    def _unknown_function(self) -> tuple[str, list[Json]]:
        call = {"id": self._id(), "name": f"unknown_function_{self.rng.randrange(99)}"}
        return "toolCall of an unknown function", [{"toolCall": {"functionCalls": [call]}}]

    def _cancel_unknown(self) -> tuple[str, list[Json]]:
        ids = ["never-called", "", self._id()]
        return "toolCallCancellation of unknown ids", [{"toolCallCancellation": {"ids": ids}}]

    def _interrupted(self) -> tuple[str, list[Json]]:
        return "interrupted with no reply", [{"serverContent": {"interrupted": True}}]

    def _bad_go_away(self) -> tuple[str, list[Json]]:
        return "goAway with a bad timeLeft", [{"goAway": {"timeLeft": self._bad_duration()}}]

    def _bad_resumption(self) -> tuple[str, list[Json]]:
        update = {"newHandle": self._value(), "resumable": self._value()}
        return "sessionResumptionUpdate of wrong types", [{"sessionResumptionUpdate": update}]

    def _usage_strings(self) -> tuple[str, list[Json]]:
        usage = {"promptTokenCount": self.rng.choice(("ten", "10", "", "1e3", "-1"))}
        message = {"serverContent": {"turnComplete": True}, "usageMetadata": usage}
        return "usageMetadata with strings", [message]

    def _setup_again(self) -> tuple[str, list[Json]]:
        return "setupComplete mid-session", [{"setupComplete": {}}]

    _SEQUENCES: tuple[Callable[["Messages"], tuple[str, list[Json]]], ...] = (
        _turn_complete_twice,
        _audio_after_its_turn,
        _call_without_id,
        _unknown_function,
        _cancel_unknown,
        _interrupted,
        _bad_go_away,
        _bad_resumption,
        _usage_strings,
        _setup_again,
    )

    def _bad_duration(self) -> Json:
        return self._pick(BAD_DURATIONS)

    # huge frames, and frames before setupComplete

    def huge(self) -> list[Frame]:
        """Several MB in one frame (the SDK's websocket takes at most 1 MiB), or just under."""
        size = self.rng.choice((700_000, 2_000_000, 5_000_000))
        if self.rng.random() < 0.5:
            body: dict[str, Any] = {"modelTurn": {"parts": [wire.audio_part(bytes(size))]}}
        else:
            body = {"outputTranscription": {"text": "x" * size}}
        data = wire.server_message("serverContent", body)
        return [self._frame(data, f"huge frame of {len(data)} bytes")]

    def before_setup(self) -> list[Frame]:
        """A message on a new connection before its setupComplete (audio, mostly)."""
        if self.rng.random() < 0.7:
            data = wire.server_message("serverContent", self._audio()[1])
            return [Frame(data, "before-setup audio", first=True)]
        frame = self.rng.choice(self.garbage() + self.mutated())
        return [Frame(frame.data, f"before-setup {frame.kind}", first=True)]

    # pieces

    def _frame(self, data: bytes, kind: str) -> Frame:
        """``data`` in a text frame (if it is UTF-8, half the time) or a binary frame."""
        if self.rng.random() < 0.5 and _is_utf8(data):
            return Frame(data.decode(), kind)
        return Frame(data, kind)

    def _id(self) -> str:
        return f"fuzz-call-{next(self._ids)}"

    def _text(self) -> str:
        return self.rng.choice((*STRINGS, "".join(self.rng.choices("abc XYZ.,é日", k=20))))

    def _value(self) -> Json:
        """Any JSON value, of any type, odd ones included."""
        return self._pick(VALUES)

    def _pick(self, values: tuple[Json, ...]) -> Json:
        """One of ``values``, a copy: a later mutation must not change the original."""
        return copy.deepcopy(self.rng.choice(values))


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


def _places(value: Json) -> Iterator[tuple[Any, Any]]:
    """Every (container, key or index) in a JSON value, outermost first."""
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in list(items):
        yield value, key
        if isinstance(item, dict | list) and item:
            yield from _places(item)


def _set_inline_data(message: Json, data: Json) -> bool:
    """Replace the base64 audio of every inlineData in ``message``; whether there was one."""
    found = False
    for container, key in list(_places(message)):
        if key == "inlineData" and isinstance(container[key], dict):
            container[key]["data"] = data
            found = True
    return found


# -- the daemon under test --------------------------------------------------------------------

#: States in which a user turn is heard (the microphone goes to the session).
READY = frozenset({State.LISTENING, State.THINKING})
#: Timers long enough never to end the conversation while the fuzzer runs.
POLICY = Policy(follow_up_s=1e5, max_unanswered_s=2e5, max_session_s=1e6)
OPTIONS = EmulatorOptions(pace=0.0, playback_hold=0.0, response_latency_s=0.0)
CHUNK_S = 0.02
#: What the user asks at each probe: speech the emulator's VAD hears, then its end.
QUESTION = tone(300.0, 0.4, INPUT_RATE) + silence(0.5, INPUT_RATE)
#: What a conformant server sends to end the turn (and the background reasoning) the
#: messages may have left open.
SETTLE = Frame(
    wire.server_message("serverContent", {"turnComplete": True, "interactionStatus": "IDLE"}),
    "settle",
)


class Microphone:
    """A microphone in a quiet room (silence, in real time) that says what it is given at
    once: a probe's question reaches the service without waiting for the clock."""

    def __init__(self) -> None:
        self.chunk_bytes = byte_count(CHUNK_S, INPUT_RATE)
        self.captured_at = 0.0
        self.batch = 1
        self.running = False
        self._said = bytearray()

    async def start(self) -> None:
        self.running = True

    async def read(self) -> bytes:
        if not self.running:
            raise DeviceLostError("fuzz microphone is not started")
        if self._said:
            chunk = bytes(self._said[: self.chunk_bytes]).ljust(self.chunk_bytes, b"\0")
            del self._said[: self.chunk_bytes]
            await asyncio.sleep(0)  # a read is a suspension point
        else:
            await asyncio.sleep(CHUNK_S)  # room silence comes at the pace of the clock
            chunk = bytes(self.chunk_bytes)
        self.captured_at = time.monotonic()
        return chunk

    def say(self, pcm: bytes) -> None:
        """Say ``pcm`` (16 kHz s16le) now."""
        self._said.extend(pcm)

    async def stop(self) -> None:
        self.running = False


class DaemonDied(Exception):
    """The controller under test ended (the watch has counted why)."""


class Daemon:
    """A controller with a fuzz microphone and an instant in-memory speaker, whose LiveLink
    talks to ``emulator`` through the real SDK; what escapes goes to ``watch``."""

    def __init__(self, emulator: LiveEmulator, watch: "Watch", sabotage: Sabotage | None) -> None:
        self.watch = watch
        self.live = LiveConfig().model_copy(
            update={
                "base_url": emulator.base_url,
                "ca_file": emulator.ca_file,
                "silence_duration_ms": 300,
            }
        )
        self.api_key = emulator.api_key
        self.microphone = Microphone()
        self.speaker = MemorySink()  # plays at once: megabytes of reply audio take no time
        self._changed = asyncio.Event()
        self.ended = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        backoff = Backoff(initial_s=0.01, cap_s=0.5)
        self.controller = Controller(self.microphone, self.speaker, self._link, POLICY, backoff)
        self.controller.conversation.observers.append(lambda _change: self._changed.set())
        if sabotage is not None:
            sabotage(self.controller)

    @property
    def state(self) -> State:
        """The conversation's state."""
        return self.controller.status.state

    @property
    def dead(self) -> bool:
        """Whether the controller has ended."""
        return self._task is not None and self._task.done()

    async def start(self, within_s: float) -> None:
        """Run the controller and start a conversation; return once it listens."""
        await self.controller.open_ports()
        self._task = asyncio.create_task(self.controller.run(), name="fuzzed-controller")
        self._task.add_done_callback(self._ended)
        self.controller.dispatch(Event.BUTTON_PRESS)
        async with asyncio.timeout(within_s):
            await self.until(lambda: self.state in READY)

    async def until(self, ready: Callable[[], bool]) -> None:
        """Return once ``ready()`` holds, checked at each change of the conversation; raise
        DaemonDied if the controller ends first."""
        while not ready():
            if self.dead:
                raise DaemonDied
            self._changed.clear()
            await self._changed.wait()

    async def stop(self) -> None:
        """Stop the controller (it closes the link) and the audio ports."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])
        await self.speaker.stop()
        await self.microphone.stop()

    def _link(self, report: Report, tools: list[Tool]) -> LiveLink:
        def tapped(event: LinkEvent) -> None:
            if isinstance(event, Crashed):
                self.watch.escaped(event.error, "the link crashed")
            report(event)

        return LiveLink(self.live, self.api_key, tapped, tools)

    def _ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and (error := task.exception()) is not None:
            self.watch.escaped(error, "the controller died")
        self.ended.set()
        self._changed.set()


class Watch(logging.Handler):
    """Collects what escaped: an error or a traceback logged by the daemon (or by asyncio,
    for a task nobody awaited), a crash reported by the link, the controller's end; each
    exception once. Counts the daemon's warnings."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.problems: list[str] = []
        self.warnings = 0
        self._seen: list[BaseException] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(("pispeaker.emulator", "websockets.server")):
            return  # the emulator belongs to the fuzzer, not to the daemon
        error = record.exc_info[1] if record.exc_info else None
        if error is not None or record.levelno >= logging.ERROR:
            self.escaped(error, f"{record.name}: {record.getMessage()}")
        elif record.name.startswith("pispeaker"):
            self.warnings += 1

    def escaped(self, error: BaseException | None, where: str) -> None:
        """Count one escaped failure (an exception already counted is not counted again)."""
        if error is not None and any(error is seen for seen in self._seen):
            return
        if error is not None:
            self._seen.append(error)
        self.problems.append(f"{where}: {error!r}" if error is not None else where)


# -- the fuzzer ---------------------------------------------------------------------------


@dataclass
class Result:
    """What a run found."""

    messages: int = 0
    unhandled: int = 0
    hangs: int = 0
    probes: int = 0
    warnings: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        """The closing line."""
        return f"{self.messages} messages, {self.unhandled} unhandled, {self.hangs} hangs"


class Fuzzer:
    """Sends frames to the daemon's connection and probes it; restarts a daemon that died
    or hangs, so that one failure does not hide the next."""

    def __init__(self, emulator: LiveEmulator, within_s: float, sabotage: Sabotage | None) -> None:
        self.emulator = emulator
        self.within_s = within_s
        self.sabotage = sabotage
        self.watch = Watch()
        self.result = Result()
        self.recent: deque[str] = deque(maxlen=12)
        self._current: int | None = None  # the emulator connection the link is served on
        self._seen = 0  # timeline events already searched for a new connection
        self._daemon: Daemon | None = None
        self._reply = b""  # what the probe in progress waits to hear

    @property
    def daemon(self) -> Daemon:
        assert self._daemon is not None, "start() first"
        return self._daemon

    async def run(self, frames: Iterator[Frame], probe_every: int) -> Result:
        """Send every frame, probing every ``probe_every`` and at the end."""
        await self.start()
        for index, frame in enumerate(frames, 1):
            self.recent.append(frame.kind)
            await self._step(self.deliver(frame), f"sending {frame.kind!r}")
            self.result.messages += 1
            self.result.kinds[frame.kind.split(" ")[0]] += 1
            if index % probe_every == 0:
                await self._step(self.probe(), "probe")
        await self._step(self.probe(), "final probe")
        await self.daemon.stop()
        self.result.unhandled = len(self.watch.problems)
        self.result.warnings = self.watch.warnings
        return self.result

    async def _step(self, work: Coroutine[Any, Any, None], what: str) -> None:
        """Run ``work`` within the bound; a daemon that died or hangs is replaced."""
        escaped = len(self.watch.problems)
        hung = not await _unless(self.daemon.ended, work, self.within_s)
        if hung:
            self._hang(what)
        if len(self.watch.problems) > escaped:
            self._report("unhandled", self.watch.problems[escaped:])
        if hung or self.daemon.dead:
            await self._restart()

    def _hang(self, what: str) -> None:
        self.result.hangs += 1
        state = self.daemon.state.value
        error = self.daemon.controller.last_error
        heard = _heard(bytes(self.daemon.speaker.played), self._reply) if self._reply else ""
        self._report("hang", [f"{what} took over {self.within_s} s ({state}; {error}){heard}"])

    def _report(self, kind: str, lines: list[str]) -> None:
        context = f"after: {' | '.join(self.recent)}"
        self.result.problems += [f"{kind}: {line} -- {context}" for line in lines]
        for line in lines:
            print(f"fuzz: {kind}: {line}\n  {context}", file=sys.stderr)

    async def start(self) -> None:
        """Start a daemon and its conversation."""
        self._daemon = Daemon(self.emulator, self.watch, self.sabotage)
        await self.daemon.start(self.within_s)

    async def _restart(self) -> None:
        """Replace the daemon; one that cannot even start a conversation hangs too."""
        script = self.emulator.script
        for _attempt in range(3):
            await self.daemon.stop()
            while script.next_reply() is not script.default:
                continue  # a probe that failed left its reply queued: drop it
            self._current = None
            try:
                await self.start()
            except (TimeoutError, DaemonDied):
                self._hang("starting a conversation")
            else:
                return
        raise RuntimeError("the daemon cannot start a conversation: the fuzzer gives up")

    async def deliver(self, frame: Frame) -> None:
        """Send ``frame`` on the link's connection (the next one if that closes first); a
        frame before setupComplete goes to the next connection, which a close brings."""
        if frame.first:
            self.emulator.send_raw_first(frame.data)
            await self.emulator.inject(Fault.INTERNAL_ERROR)
            return
        while not await self._send(frame.data):
            self._current = None  # closed before the frame went out: the next one takes it

    async def _send(self, data: bytes | str) -> bool:
        """Send ``data`` on the link's connection and wait until the client has read it (a
        ping's pong follows it): the fuzzer keeps step with the daemon, so that a message
        that ends the connection loses no messages sent behind it. False if it was closed."""
        number = await self._connection()
        if not await self.emulator.send_raw(data, number):
            return False
        if (connection := self.emulator.connections.get(number)) is not None:
            # Closed before the pong: the client read the frame and ended the connection.
            with contextlib.suppress(ConnectionClosed):
                await (await connection.channel.ws.ping())
        return True

    async def _connection(self) -> int:
        """The connection the link is served on: the newest open one whose setup is done."""
        if self._current not in self.emulator.connections:
            timeline = self.emulator.timeline
            event = await timeline.wait_for("setup", self._open, self.within_s, self._seen)
            self._current = event.connection
            self._seen = timeline.events.index(event, self._seen) + 1
        assert self._current is not None
        return self._current

    def _open(self, event: TimelineEvent) -> bool:
        return event.connection in self.emulator.connections

    async def probe(self, settle: bool = True) -> None:
        """End the turn the messages left open, as a conformant server would (unless not
        ``settle``); then the user asks something, and the reply must play in full."""
        self.result.probes += 1
        daemon = self.daemon
        if settle:
            await self.deliver(SETTLE)
        await daemon.until(lambda: daemon.state in READY)
        self._reply = reply = tone(500.0 + 10 * (self.result.probes % 40), 0.1, OUTPUT_RATE)
        daemon.speaker.played.clear()
        daemon.speaker.heard.clear()  # what played before: kept, it would grow without end
        self.emulator.script.push(Reply(audio=reply))
        daemon.microphone.say(QUESTION)
        played = daemon.speaker.played
        await daemon.until(lambda: daemon.state in READY and played.endswith(reply))
        self._reply = b""


def _heard(played: bytes, reply: bytes) -> str:
    """What the speaker played of the probe's ``reply``, when that is not all of it."""
    if not played:
        return "; nothing played"
    if played.endswith(reply[:-1]) or reply[1:] in played:
        return "; the reply played a byte off its samples (noise)"
    return f"; {len(played)} bytes played, not the reply ({len(reply)} bytes)"


async def _unless(ended: asyncio.Event, work: Coroutine[Any, Any, None], within_s: float) -> bool:
    """Run ``work`` until it is done, ``ended`` is set (the daemon died: DaemonDied), or
    ``within_s`` passed; whether it did not take that long."""
    task = asyncio.create_task(work)
    waiter = asyncio.create_task(ended.wait())
    done, _ = await asyncio.wait(
        {task, waiter}, timeout=within_s, return_when=asyncio.FIRST_COMPLETED
    )
    for pending in (task, waiter):
        pending.cancel()
    await asyncio.wait({task, waiter})
    if task in done and not isinstance(task.exception(), DaemonDied):
        task.result()  # a failure of the fuzzer itself
    return bool(done)


async def run_fuzz(
    messages: int,
    seed: int,
    probe_every: int = PROBE_EVERY,
    within_s: float = WITHIN_S,
    sabotage: Sabotage | None = None,
) -> Result:
    """Fuzz the daemon with ``messages`` messages drawn from ``seed``. ``sabotage`` may break
    the controller first (to show that the fuzzer notices)."""
    root = logging.getLogger()
    async with LiveEmulator(OPTIONS) as emulator:
        fuzzer = Fuzzer(emulator, within_s, sabotage)
        root.addHandler(fuzzer.watch)
        try:
            return await fuzzer.run(Messages(random.Random(seed)).frames(messages), probe_every)
        finally:
            root.removeHandler(fuzzer.watch)


def main(argv: list[str] | None = None) -> int:
    """The command line: run, print details to stderr and the closing line to stdout."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=3000, help="messages to send")
    parser.add_argument("--seed", type=int, default=1, help="seed of the messages")
    parser.add_argument("--probe-every", type=int, default=PROBE_EVERY, help="messages a probe")
    parser.add_argument("--verbose", action="store_true", help="show the daemon's warnings")
    args = parser.parse_args(argv)
    # The SDK's note on an enum value it does not know (forward compatible: it goes on), one
    # per value: the daemon's own warnings are what this run counts.
    warnings.filterwarnings("ignore", message=".* is not a valid ", category=UserWarning)
    handler = logging.StreamHandler()
    handler.setLevel(logging.WARNING if args.verbose else logging.ERROR)
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    started = time.monotonic()
    result = asyncio.run(run_fuzz(args.messages, args.seed, args.probe_every))
    kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(result.kinds.items()))
    print(
        f"fuzz: {kinds}; {result.probes} probes; {result.warnings} warnings logged; "
        f"{time.monotonic() - started:.1f} s",
        file=sys.stderr,
    )
    print(result.line())
    return 0 if result.unhandled == result.hangs == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
