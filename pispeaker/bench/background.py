"""The background-talk figures: a conversation that other people's talk must not keep open.

The rig is that of the conversation figures (bench/conversation.py). After one exchange (the
wake word, a request, the reply played out) the microphone hears people talking among
themselves over a radio-like bed (bench/speech.py: background_talk); the emulator, in a
process of its own, answers the first turn and declines every later one, as a model with
proactive audio does with talk that is not for it. Measured: how long after the answer had
played the conversation ended, and how many seconds of microphone audio were sent to the
service after the answer (nothing may be sent once the conversation has ended).
"""

import asyncio

from pispeaker.audio.pcm import INPUT_RATE, SAMPLE_WIDTH, silence
from pispeaker.bench.conversation import Running, next_state, now, running
from pispeaker.bench.figures import Figure, figure_from
from pispeaker.bench.rig import Microphone, Speaker
from pispeaker.bench.speech import background_talk, request_utterance, wake_phrase
from pispeaker.config import Config
from pispeaker.states import State

#: How much longer than the follow-up window a conversation may last after its last answer
#: with people talking (the target).
BEYOND_FOLLOW_UP_S = 3.0
#: How long after the talk has ended the end of the conversation is waited for.
AFTER_TALK_S = 5.0


async def measure_background(
    config: Config, api_key: str, mic: Microphone, speaker: Speaker, talk_s: float
) -> list[Figure]:
    """One exchange on ``config`` (the bench's devices, and the emulator answering only
    the first turn), then ``talk_s`` of background talk; return the figures."""
    async with running(config, api_key, mic, speaker) as run:
        mic.say(wake_phrase() + silence(0.15, INPUT_RATE) + request_utterance(1.5))
        await next_state(run.controller, State.SPEAKING, "a reply to the request")
        await next_state(run.controller, State.LISTENING, "the end of the reply")
        answered = now()
        mic.say(background_talk(talk_s))
        ended = await _ended(run, talk_s + AFTER_TALK_S)
        await asyncio.sleep(max(0.0, answered + talk_s - now()))  # the talk goes on
    limit = config.conversation.follow_up_s + BEYOND_FOLLOW_UP_S
    return [_uploaded(run, answered, ended, limit), _ended_after(answered, ended, limit, talk_s)]


async def _ended(run: Running, within_s: float) -> float | None:
    """When the conversation went back to IDLE, if it did within ``within_s``."""
    count = run.controller.entries(State.IDLE) + 1
    try:
        async with asyncio.timeout(within_s):
            await run.controller.entered(State.IDLE, count)
    except TimeoutError:
        return None
    return max(moment for moment, state, _ in run.marks.states if state is State.IDLE)


def _seconds_sent(run: Running, start: float, end: float = float("inf")) -> float:
    """Seconds of microphone audio handed to the service from ``start`` to ``end``."""
    sent = sum(len(chunk) for moment, chunk in run.marks.sent if start <= moment < end)
    return sent / (SAMPLE_WIDTH * INPUT_RATE)


def _uploaded(run: Running, answered: float, ended: float | None, limit: float) -> Figure:
    after_end = f"{_seconds_sent(run, ended):g} s" if ended is not None else "it never ended"
    return figure_from(
        "background_uploaded_s",
        "background talk: seconds uploaded after the last answer",
        "s",
        value=_seconds_sent(run, answered),
        limit=limit,
        note=f"of the talk, until the conversation ended; after its end: {after_end}",
    )


def _ended_after(answered: float, ended: float | None, limit: float, talk_s: float) -> Figure:
    return figure_from(
        "background_ended_s",
        "background talk: conversation ended after (s)",
        "s",
        value=None if ended is None else ended - answered,
        limit=limit,
        note=f"from the end of the answer, {talk_s:g} s of talk the model declines "
        "(follow_up_s + 3 s at most)",
    )
