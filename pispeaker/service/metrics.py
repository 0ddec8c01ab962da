"""The Prometheus endpoint (``[metrics] listen``): what the speaker did, in the standard
exposition format, served by the official client library. This is the one module that
imports prometheus_client, and only a configuration that sets ``metrics.listen`` imports it.

Events are counted as the controller's observers hear them: conversations, wake-word
detections, barge-ins, lost sessions, reconnect durations and the reply latency (the user's
turn ended -> the reply's first sample heard). Figures the core keeps anyway (tokens, xruns,
uplink bytes, lost devices) and the current state are read when Prometheus scrapes, so
nothing is added to the audio path. Everything lives in the endpoint's own registry, and
starts afresh with a new controller (a reload, SIGHUP): Prometheus takes that as a counter
reset, as it does a restart.
"""

import asyncio
import contextlib
import errno
import logging
import platform
import threading
import time
from collections.abc import AsyncIterator, Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from pispeaker import __version__
from pispeaker.config import listen_address
from pispeaker.controller import Controller
from pispeaker.conversation.core import Change
from pispeaker.conversation.devices import MICROPHONE, SPEAKER
from pispeaker.errors import MetricsError
from pispeaker.live.port import Failure
from pispeaker.states import CONVERSATION, PLAYING, Effect, Event, State
from pispeaker.wake.detector import Detection

log = logging.getLogger(__name__)

# No *_created series beside each counter and histogram: Prometheus's text format does not
# need them, and they would double the exposition. (A setting of the library, which nothing
# else in pispeaker uses.)
disable_created_metrics()  # type: ignore[no-untyped-call]

#: Seconds from the end of the user's turn to the reply's first sample heard.
LATENCY_BUCKETS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0)
#: Seconds from a lost session to the next one ready (the backoff is most of it).
RECONNECT_BUCKETS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0)
#: Longest a stop waits for the server's thread after asking it to end.
STOP_TIMEOUT_S = 2.0

#: How a conversation starts.
_TRIGGERS = {Event.WAKE_WORD: "wake_word", Event.BUTTON_PRESS: "button"}
#: What stops a reply that plays: the user's voice (heard on the device, by the service, or
#: taken as a turn of its own), the wake word or the button.
_BARGE_INS = {
    Event.USER_SPEECH: "voice",
    Event.SERVER_INTERRUPTED: "voice",
    Event.USER_TURN_ENDED: "voice",
    Event.WAKE_WORD: "wake_word",
    Event.BUTTON_PRESS: "button",
}
#: The events that end a session: counted as "stalled" for REPLY_STALLED, by the kind of
#: the ``Failure`` they carry for the others.
_LOSSES = {Event.CONNECTION_LOST, Event.FATAL_ERROR, Event.REPLY_STALLED}


class SpeakerMetrics:
    """The figures of one controller, in ``registry``; ``attach`` starts counting."""

    def __init__(self, controller: Controller) -> None:
        self.registry = CollectorRegistry()
        self._controller = controller
        registry = self.registry
        Info("pispeaker_build", "The running pispeaker.", registry=registry).info(
            {"version": __version__, "python": platform.python_version()}
        )
        self.conversations = Counter(
            "pispeaker_conversations_total",
            "Conversations started, by what started them (wake_word, button).",
            ["trigger"],
            registry=registry,
        )
        self.wake_detections = Counter(
            "pispeaker_wake_detections_total",
            "Wake words detected, by model, and whether the speaker acted on them.",
            ["model", "acted_on"],
            registry=registry,
        )
        self.barge_ins = Counter(
            "pispeaker_barge_ins_total",
            "Replies stopped while they played, by cause (voice, wake_word, button).",
            ["cause"],
            registry=registry,
        )
        self.sessions_lost = Counter(
            "pispeaker_sessions_lost_total",
            "Live sessions lost, by cause (transient, fatal, stalled) and close code "
            "(the websocket close code or HTTP status; none if there was none).",
            ["cause", "code"],
            registry=registry,
        )
        self.reconnects = Histogram(
            "pispeaker_reconnect_duration_seconds",
            "Time from a lost session to the next one ready, for reconnects that worked.",
            buckets=RECONNECT_BUCKETS,
            registry=registry,
        )
        self.reply_latency = Histogram(
            "pispeaker_reply_latency_seconds",
            "Time from the end of the user's turn to the first sample of the reply heard.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        for trigger in _TRIGGERS.values():
            self.conversations.labels(trigger)
        for cause in sorted(set(_BARGE_INS.values())):
            self.barge_ins.labels(cause)
        registry.register(_Kept(controller))
        ProcessCollector(registry=registry)  # memory, CPU, open files: process_*
        PlatformCollector(registry=registry)  # python_info
        self._turn_ended: float | None = None  # when the turn awaiting its reply ended
        self._lost_at: float | None = None  # when the session being reconnected was lost

    def attach(self) -> None:
        """Count from now on what the controller does."""
        self._controller.conversation.observers.append(self.on_change)
        self._controller.router.reply_observers.append(self.on_reply_heard)

    def detach(self) -> None:
        """Stop counting (the figures stay as they are)."""
        with contextlib.suppress(ValueError):
            self._controller.conversation.observers.remove(self.on_change)
        with contextlib.suppress(ValueError):
            self._controller.router.reply_observers.remove(self.on_reply_heard)

    def on_change(self, change: Change) -> None:
        """One change of the conversation, after its effects."""
        before, after, event = change.before, change.after, change.event
        acted = bool(change.effects) or change.moved
        if event is Event.WAKE_WORD and isinstance(change.cause, Detection):
            self.wake_detections.labels(change.cause.model, "true" if acted else "false").inc()
        if before.state not in CONVERSATION and after.state in CONVERSATION:
            self.conversations.labels(_TRIGGERS.get(event, "other")).inc()
        flushed = before.state in PLAYING and Effect.FLUSH_PLAYBACK in change.effects
        if flushed and event in _BARGE_INS:
            self.barge_ins.labels(_BARGE_INS[event]).inc()
        if event in _LOSSES and acted:
            self.sessions_lost.labels(*_loss(event, change.cause)).inc()
        self._time_reconnect(change)
        if event is Event.USER_TURN_ENDED and after.state is State.THINKING:
            self._turn_ended = time.monotonic()
        elif after.state not in CONVERSATION:
            self._turn_ended = None

    def _time_reconnect(self, change: Change) -> None:
        before, after = change.before.reconnects, change.after.reconnects
        if before == 0 and after > 0:
            self._lost_at = time.monotonic()
        elif before > 0 and after == 0:
            if change.event is Event.SESSION_READY and self._lost_at is not None:
                self.reconnects.observe(time.monotonic() - self._lost_at)
            self._lost_at = None  # back, or given up (ERROR), or the conversation ended

    def on_reply_heard(self, heard_at: float) -> None:
        """A reply's first sample is heard at ``heard_at`` (monotonic seconds)."""
        if self._turn_ended is not None and heard_at >= self._turn_ended:
            self.reply_latency.observe(heard_at - self._turn_ended)
        self._turn_ended = None


def _loss(event: Event, cause: object) -> tuple[str, str]:
    """The cause and code labels of a lost session."""
    if event is Event.REPLY_STALLED:
        return "stalled", "none"
    if isinstance(cause, Failure):
        return cause.kind.value, "none" if cause.code is None else str(cause.code)
    return ("fatal" if event is Event.FATAL_ERROR else "transient"), "none"


class _Kept(Collector):
    """What the core counts anyway, and the current state, read at each scrape (from the
    server's thread: plain reads of numbers the event loop writes)."""

    def __init__(self, controller: Controller) -> None:
        self._controller = controller

    def collect(self) -> Iterator[Metric]:
        controller = self._controller
        state = GaugeMetricFamily(
            "pispeaker_state", "The speaker's state: 1 for the current one.", labels=["state"]
        )
        current = controller.status.state
        for each in State:
            state.add_metric([each.value], 1.0 if each is current else 0.0)
        yield state

        usage = controller.session.usage_total
        tokens = CounterMetricFamily(
            "pispeaker_tokens_total",
            "Tokens the Live API counted (usageMetadata), by kind: prompt, response, and "
            "other (thinking, tool use: the rest of the total).",
            labels=["kind"],
        )
        tokens.add_metric(["prompt"], usage.prompt)
        tokens.add_metric(["response"], usage.response)
        tokens.add_metric(["other"], max(0, usage.total - usage.prompt - usage.response))
        yield tokens

        lost = CounterMetricFamily(
            "pispeaker_audio_devices_lost_total",
            "Audio devices lost (unplugged, hung) or missing at start, by port.",
            labels=["port"],
        )
        for port in (MICROPHONE, SPEAKER):
            lost.add_metric([port], controller.devices.losses[port])
        yield lost

        xruns = CounterMetricFamily(
            "pispeaker_xruns_total",
            "ALSA xruns: capture overruns (microphone) and playback underruns (speaker).",
            labels=["port"],
        )
        for port, device, count in (
            (MICROPHONE, controller.source, "overruns"),
            (SPEAKER, controller.sink, "underruns"),
        ):
            value = getattr(device, count, None)
            if isinstance(value, int):  # ALSA devices count them; others have none
                xruns.add_metric([port], value)
        yield xruns

        uplink = CounterMetricFamily(
            "pispeaker_uplink_bytes_total",
            "Microphone audio (16 kHz s16le) bytes for the Live API, by outcome: sent, or "
            "dropped (held too long while no session was ready).",
            labels=["outcome"],
        )
        for outcome in ("sent", "dropped"):
            value = getattr(controller.link, f"{outcome}_bytes", None)
            if isinstance(value, int):
                uplink.add_metric([outcome], value)
        yield uplink


@contextlib.asynccontextmanager
async def serve_metrics(listen: str, controller: Controller) -> AsyncIterator[SpeakerMetrics]:
    """Count what ``controller`` does and serve it at http://``listen``/metrics until the
    block ends; then the port is free again. Raise MetricsError if it cannot listen there."""
    host, port = listen_address(listen)
    metrics = SpeakerMetrics(controller)
    try:
        server, thread = start_http_server(port, host, registry=metrics.registry)
    except OSError as error:
        raise MetricsError(_cannot_listen(listen, error)) from error
    metrics.attach()
    log.info("serving metrics at http://%s/metrics", listen)
    try:
        yield metrics
    finally:
        metrics.detach()
        await _shut_down(server, thread)


async def _shut_down(server: WSGIServer, thread: threading.Thread) -> None:
    """Stop serving and close the socket (``shutdown`` waits for the serving loop's next
    poll: off the event loop)."""
    await asyncio.to_thread(server.shutdown)
    server.server_close()
    await asyncio.to_thread(thread.join, STOP_TIMEOUT_S)


def _cannot_listen(listen: str, error: OSError) -> str:
    """Why the endpoint cannot listen on ``listen``, and what to do."""
    reason = error.strerror or str(error)
    if error.errno == errno.EADDRINUSE:
        step = (
            "another program (or another pispeaker) holds the port: stop it, or choose "
            "another port in metrics.listen"
        )
    elif error.errno == errno.EADDRNOTAVAIL:
        step = (
            "no network interface of this machine has that address: use one it has, "
            '"0.0.0.0" for all of them, or "127.0.0.1" for this machine only'
        )
    elif error.errno == errno.EACCES:
        step = "ports below 1024 need privileges pispeaker does not have: use 9460"
    else:
        step = "check the host and port in metrics.listen"
    return f"metrics.listen: cannot serve metrics on {listen} ({reason}); {step}"
