"""Memory growth over many conversations, run back to back faster than real time in this
process: does anything pile up per conversation (sessions, tasks, buffers, TLS state)?

Each conversation is a button press, a one-second request, the emulator's reply (sent at
once, played into /dev/null) and the end of the follow-up window, which is shortened here
below what the configuration allows so that the conversations follow each other at once.
The microphone runs ``speed`` times faster than real time, and the wake word listens to all
of it, as in the service.
"""

import asyncio
import gc

from pispeaker.app import build_alsa_ports, build_controller, started, wake_maker
from pispeaker.audio.pcm import INPUT_RATE, silence
from pispeaker.bench.figures import Figure, figure_from
from pispeaker.bench.rig import BenchError, Microphone
from pispeaker.bench.service import rss_mb
from pispeaker.bench.speech import request_utterance
from pispeaker.config import Config
from pispeaker.controller import Controller
from pispeaker.states import Event, State

#: The follow-up window of these conversations (seconds).
FOLLOW_UP_S = 0.05
#: How long one conversation may take.
PATIENCE_S = 20.0


async def measure_growth(
    config: Config, api_key: str, mic: Microphone, warmup: int, conversations: int
) -> list[Figure]:
    """Run ``warmup`` conversations, then ``conversations`` more; return the growth of this
    process's resident memory over the latter."""
    source, sink = build_alsa_ports(config)
    conversation = config.conversation.model_copy(update={"follow_up_s": FOLLOW_UP_S})
    config = config.model_copy(update={"conversation": conversation})
    controller = build_controller(config, api_key, source, sink, make_wake=wake_maker(config.wake))
    async with started(controller):
        for _ in range(warmup):
            await _conversation(controller, mic)
        gc.collect()
        before = rss_mb()
        for _ in range(conversations):
            await _conversation(controller, mic)
        gc.collect()
        after = rss_mb()
    growth = after - before
    return [
        figure_from(
            "rss_after_mb",
            f"resident memory after {warmup + conversations} conversations (bench process)",
            "MB",
            value=after,
        ),
        figure_from(
            "rss_growth_mb_per_1000",
            f"memory growth per 1000 conversations (over {conversations})",
            "MB",
            value=growth / conversations * 1000,
            limit=2.0,
        ),
    ]


async def _conversation(controller: Controller, mic: Microphone) -> None:
    idle = controller.entries(State.IDLE)
    controller.dispatch(Event.BUTTON_PRESS)
    mic.say(request_utterance(1.0) + silence(0.1, INPUT_RATE))
    try:
        async with asyncio.timeout(PATIENCE_S):
            await controller.entered(State.IDLE, idle + 1)
    except TimeoutError:
        raise BenchError(
            f"a conversation did not end within {PATIENCE_S:g} s (still "
            f"{controller.status.state.value})"
        ) from None
