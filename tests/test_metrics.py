"""The Prometheus figures (pispeaker/service/metrics.py): a controller on in-memory ports and
a scripted link, scraped with prometheus_client's own text parser."""

import asyncio
import platform
import socket
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pispeaker.audio.memory import MemorySink, MemorySource
from pispeaker.audio.pcm import OUTPUT_RATE, silence
from pispeaker.backoff import Backoff
from pispeaker.controller import Controller, Policy
from pispeaker.errors import MetricsError
from pispeaker.live.port import (
    Failure,
    Interrupted,
    Kind,
    Lost,
    ModelAudio,
    Ready,
    Report,
    ToolRequest,
    Transcript,
    TurnComplete,
    Usage,
)
from pispeaker.service.metrics import SpeakerMetrics, serve_metrics
from pispeaker.states import Event, State
from pispeaker.tools import Tool
from pispeaker.wake.detector import Detection

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class ScriptedLink:
    """A Live link that does nothing on its own: the test reports its events."""

    def __init__(self, report: Report, _tools: Callable[[], list[Tool]]) -> None:
        self.report = report
        self.sent_bytes = 0
        self.dropped_bytes = 0

    def open(self, resume: bool = False) -> None:
        pass

    def stop(self) -> None:
        pass

    async def close(self) -> None:
        pass

    def send_audio(self, pcm: bytes) -> None:
        self.sent_bytes += len(pcm)

    async def respond(self, request: ToolRequest, response: dict[str, Any]) -> None:
        pass


class CountingSource(MemorySource):
    """A microphone that counts overruns, as the ALSA one does."""

    overruns = 3


@dataclass
class Bench:
    controller: Controller
    link: ScriptedLink
    sink: MemorySink
    metrics: SpeakerMetrics

    def scrape(self) -> Samples:
        return parse(generate_latest(self.metrics.registry).decode())

    async def heard(self) -> None:
        """Let the speaker take what was written (the tap tells the router)."""
        async with asyncio.timeout(2):
            await self.sink.drain()


def parse(text: str) -> Samples:
    """Every sample of an exposition, by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


@pytest.fixture
async def bench() -> AsyncIterator[Bench]:
    links: list[ScriptedLink] = []

    def make_link(report: Report, tools: Callable[[], list[Tool]]) -> ScriptedLink:
        links.append(ScriptedLink(report, tools))
        return links[-1]

    sink = MemorySink()
    controller = Controller(
        CountingSource(), sink, make_link, Policy(), backoff=Backoff(initial_s=0.01)
    )
    await sink.start()
    metrics = SpeakerMetrics(controller)
    metrics.attach()
    yield Bench(controller, links[0], sink, metrics)
    await controller._tasks.close()
    await sink.stop()


def wake(model: str = "hey_jarvis") -> Detection:
    return Detection(model, 0.9, 0.0, 0.08)


REPLY = silence(0.2, OUTPUT_RATE)


async def test_a_conversation_counts_its_trigger_wake_words_latency_and_barge_in(
    bench: Bench,
) -> None:
    controller, report = bench.controller, bench.link.report
    controller.dispatch(Event.WAKE_WORD, wake())
    report(Ready(resumed=False))
    controller.dispatch(Event.WAKE_WORD, wake())  # already listening: not acted on
    report(Transcript("user", "what time is it"))
    assert controller.status.state is State.THINKING
    await asyncio.sleep(0.05)  # the model takes its time
    report(ModelAudio(REPLY))
    await bench.heard()
    report(Usage(prompt=120, response=80, total=230))
    controller.dispatch(Event.BUTTON_PRESS)  # the user stops the reply
    assert controller.status.state is State.INTERRUPTED

    samples = bench.scrape()
    assert value(samples, "pispeaker_conversations_total", trigger="wake_word") == 1
    assert value(samples, "pispeaker_conversations_total", trigger="button") == 0
    assert (
        value(samples, "pispeaker_wake_detections_total", model="hey_jarvis", acted_on="true") == 1
    )
    assert (
        value(samples, "pispeaker_wake_detections_total", model="hey_jarvis", acted_on="false") == 1
    )
    assert value(samples, "pispeaker_barge_ins_total", cause="button") == 1
    assert value(samples, "pispeaker_barge_ins_total", cause="voice") == 0
    assert value(samples, "pispeaker_reply_latency_seconds_count") == 1
    latency = value(samples, "pispeaker_reply_latency_seconds_sum")
    assert latency >= 0.05  # at least the model's pause: timed from the turn's end
    assert value(samples, "pispeaker_reply_latency_seconds_bucket", le="+Inf") == 1
    assert value(samples, "pispeaker_tokens_total", kind="prompt") == 120
    assert value(samples, "pispeaker_tokens_total", kind="response") == 80
    assert value(samples, "pispeaker_tokens_total", kind="other") == 30
    assert value(samples, "pispeaker_state", state="interrupted") == 1
    assert value(samples, "pispeaker_state", state="speaking") == 0
    assert (
        value(samples, "pispeaker_build_info", version="0.1.0", python=platform.python_version())
        == 1
    )


async def test_voice_and_wake_word_barge_ins_are_told_apart(bench: Bench) -> None:
    controller, report = bench.controller, bench.link.report
    controller.dispatch(Event.BUTTON_PRESS)
    report(Ready(resumed=False))
    for stop in (
        lambda: report(Interrupted()),
        lambda: controller.dispatch(Event.WAKE_WORD, wake()),
    ):
        report(ModelAudio(REPLY))
        await bench.heard()
        stop()
        assert controller.status.state is State.INTERRUPTED
        report(TurnComplete())
        controller.dispatch(Event.FLASH_DONE)
    samples = bench.scrape()
    assert value(samples, "pispeaker_conversations_total", trigger="button") == 1
    assert value(samples, "pispeaker_barge_ins_total", cause="voice") == 1
    assert value(samples, "pispeaker_barge_ins_total", cause="wake_word") == 1
    assert value(samples, "pispeaker_barge_ins_total", cause="button") == 0
    # No turn of the user's ended (no transcript): no latency to measure.
    assert value(samples, "pispeaker_reply_latency_seconds_count") == 0


async def test_lost_sessions_count_their_cause_and_code_and_reconnects_are_timed(
    bench: Bench,
) -> None:
    controller, report = bench.controller, bench.link.report
    controller.dispatch(Event.BUTTON_PRESS)
    report(Ready(resumed=False))
    report(Lost(Failure(Kind.TRANSIENT, "session closed (1011: internal error)", 1011)))
    assert controller.status.state is State.CONNECTING
    await asyncio.sleep(0.05)
    report(Ready(resumed=True))
    report(ModelAudio(REPLY))
    controller.dispatch(Event.REPLY_STALLED)  # the service went silent with its socket open
    report(Lost(Failure(Kind.TRANSIENT, "connection failed: OSError()")))
    report(Lost(Failure(Kind.FATAL, "API key rejected (...)", 1007)))
    assert controller.status.state is State.ERROR
    report(Lost(Failure(Kind.TRANSIENT, "late news of a closed session", 1000)))  # ignored

    samples = bench.scrape()
    lost = {
        labels: count
        for (name, labels), count in samples.items()
        if name == "pispeaker_sessions_lost_total"
    }
    assert lost == {
        (("cause", "transient"), ("code", "1011")): 1,
        (("cause", "stalled"), ("code", "none")): 1,
        (("cause", "transient"), ("code", "none")): 1,
        (("cause", "fatal"), ("code", "1007")): 1,
    }
    # Timed: the first reconnect, which came back; not the run the fatal error ended.
    assert value(samples, "pispeaker_reconnect_duration_seconds_count") == 1
    assert value(samples, "pispeaker_reconnect_duration_seconds_sum") >= 0.05
    assert value(samples, "pispeaker_state", state="error") == 1


async def test_what_the_core_counts_is_read_at_each_scrape(bench: Bench) -> None:
    samples = bench.scrape()
    assert value(samples, "pispeaker_uplink_bytes_total", outcome="sent") == 0
    assert value(samples, "pispeaker_audio_devices_lost_total", port="microphone") == 0
    assert value(samples, "pispeaker_state", state="idle") == 1
    bench.link.sent_bytes, bench.link.dropped_bytes = 6400, 640
    bench.controller.devices.losses["speaker"] += 2
    samples = bench.scrape()
    assert value(samples, "pispeaker_uplink_bytes_total", outcome="sent") == 6400
    assert value(samples, "pispeaker_uplink_bytes_total", outcome="dropped") == 640
    assert value(samples, "pispeaker_audio_devices_lost_total", port="speaker") == 2
    assert value(samples, "pispeaker_xruns_total", port="microphone") == 3
    # A speaker that keeps no count shows none (not a zero that would be a lie).
    assert ("pispeaker_xruns_total", (("port", "speaker"),)) not in samples
    assert value(samples, "process_resident_memory_bytes") > 0


async def test_a_lost_microphone_is_counted_by_the_device_supervisor() -> None:
    source = MemorySource(realtime=True, lose_after_s=0.1)
    sink = MemorySink()
    controller = Controller(
        source, sink, lambda report, tools: ScriptedLink(report, tools), sleep=_sleep_long
    )
    metrics = SpeakerMetrics(controller)
    metrics.attach()
    await controller.open_ports()
    running = asyncio.create_task(controller.run())
    async with asyncio.timeout(5):
        await controller.entered(State.ERROR)
    samples = parse(generate_latest(metrics.registry).decode())
    assert value(samples, "pispeaker_audio_devices_lost_total", port="microphone") == 1
    assert value(samples, "pispeaker_audio_devices_lost_total", port="speaker") == 0
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    await sink.stop()


async def _sleep_long(_seconds: float) -> None:
    await asyncio.sleep(60)  # the reopen backoff: the test has seen what it needs by then


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


async def test_the_endpoint_serves_until_its_block_ends_and_frees_the_port(
    bench: Bench,
) -> None:
    port = free_port()
    listen = f"127.0.0.1:{port}"
    observers = list(bench.controller.conversation.observers)
    for _ in range(2):  # the same address again: nothing of the first server is left
        async with serve_metrics(listen, bench.controller):
            bench.controller.dispatch(Event.BUTTON_PRESS)
            text = await asyncio.to_thread(fetch, f"http://{listen}/metrics")
            samples = parse(text)
            assert value(samples, "pispeaker_conversations_total", trigger="button") == 1
            bench.controller.dispatch(Event.BUTTON_PRESS)  # and it ends
        with pytest.raises(urllib.error.URLError, match="Connection refused"):
            await asyncio.to_thread(fetch, f"http://{listen}/metrics")
    # Neither endpoint hears the controller's changes any longer.
    assert bench.controller.conversation.observers == observers
    assert bench.controller.router.reply_observers == [bench.metrics.on_reply_heard]


async def test_a_port_in_use_is_an_error_naming_the_address_and_the_way_out(
    bench: Bench,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        listen = f"127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(MetricsError) as raised:
            async with serve_metrics(listen, bench.controller):
                pass
    message = str(raised.value)
    assert message.startswith(f"metrics.listen: cannot serve metrics on {listen} (")
    assert "holds the port: stop it, or choose another port in metrics.listen" in message
    assert raised.value.exit_code == 69  # EX_UNAVAILABLE: a restart may find it free
