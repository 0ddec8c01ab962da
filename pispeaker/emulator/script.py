"""The emulator's scripted "model": what it answers to each user turn.

Tests push :class:`Reply` objects; each user turn consumes the next one, and when the script
runs dry the default reply answers. A reply is audio (the user's own words played back,
a tone, or given PCM), optional transcripts, optional tool calls (a blocking call must be
answered before the audio follows; the model talks on through a non-blocking one and says
its ``follow_up`` once answered), optional search queries, or a decision not to answer.
"""

import itertools
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

from pispeaker.audio.pcm import INPUT_RATE, OUTPUT_RATE, byte_count, silence, tone
from pispeaker.audio.resample import resample

#: Reply audio chunk sizes of the real service: 200 ms first, then 240 ms.
FIRST_CHUNK_S = 0.200
CHUNK_S = 0.240


@dataclass(frozen=True)
class ToolCall:
    """A function call the model makes; ``name`` need not be declared (to test bad tools)."""

    name: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    """One model turn.

    ``audio``: "parrot" plays the user's utterance back resampled to 24 kHz (for a text turn,
    a short tone instead), "tone" a sine of ``seconds`` at ``frequency_hz``, "silence" nothing
    audible for ``seconds``, or raw 24 kHz s16le bytes. ``text`` is the output transcription
    (default: "Reply <n>.", where n counts turns across resumptions); ``heard`` the input
    transcription (default: a description of the user's audio).

    ``follow_up`` is what the model says once its NON_BLOCKING calls are answered (default
    :data:`FOLLOW_UP`). ``declined``: under proactive audio the model chooses not to answer
    (ignored by a model without it). ``search_queries`` ground the reply in Google Search
    results (only if the setup declared googleSearch). ``think_s`` is how long a
    background-reasoning model thinks after acknowledging the request.
    """

    audio: Literal["parrot", "tone", "silence"] | bytes = "parrot"
    seconds: float = 1.0
    frequency_hz: float = 440.0
    text: str | None = None
    heard: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    follow_up: "Reply | None" = None
    declined: bool = False
    search_queries: tuple[str, ...] = ()
    think_s: float = 0.5


#: What the model says about a NON_BLOCKING call's result unless the reply says otherwise.
FOLLOW_UP = Reply(audio="tone", seconds=0.4, frequency_hz=660.0, text="Here is the result.")


@dataclass(frozen=True)
class UserTurn:
    """What the user said: 16 kHz audio (server VAD or manual activity) or text."""

    audio: bytes = b""
    text: str | None = None

    def describe(self) -> str:
        """The default input transcription: the emulator cannot recognise speech."""
        if self.text is not None:
            return self.text
        return f"[{len(self.audio) / (2 * INPUT_RATE):.2f} s of speech]"


def render_audio(reply: Reply, turn: UserTurn) -> bytes:
    """The reply's 24 kHz s16le audio."""
    if isinstance(reply.audio, bytes):
        return reply.audio
    if reply.audio == "parrot" and turn.audio:
        return resample(turn.audio, INPUT_RATE, OUTPUT_RATE)
    if reply.audio == "silence":
        return silence(reply.seconds, OUTPUT_RATE)
    return tone(reply.frequency_hz, reply.seconds, OUTPUT_RATE)


def split_chunks(pcm: bytes) -> list[bytes]:
    """Cut reply audio into the service's chunk sizes (200 ms, then 240 ms)."""
    first = byte_count(FIRST_CHUNK_S, OUTPUT_RATE)
    size = byte_count(CHUNK_S, OUTPUT_RATE)
    chunks = [pcm[:first]] if pcm else []
    chunks += [pcm[i : i + size] for i in range(first, len(pcm), size)]
    return chunks


def split_words(text: str, parts: int) -> list[str]:
    """Spread a transcript over ``parts`` pieces, as the service interleaves it with audio."""
    words = text.split(" ")
    count = min(max(parts, 1), len(words))
    share, extra = divmod(len(words), count)
    bounds = [i * share + min(i, extra) for i in range(count + 1)]
    pieces = [" ".join(words[a:b]) for a, b in itertools.pairwise(bounds)]
    return [piece if i == 0 else " " + piece for i, piece in enumerate(pieces)]


class Script:
    """A queue of replies shared by every connection of one emulator."""

    def __init__(self, default: Reply | None = None) -> None:
        self.default = default or Reply()
        self._queue: deque[Reply] = deque()

    def push(self, *replies: Reply) -> None:
        """Append replies for the next user turns."""
        self._queue.extend(replies)

    def next_reply(self) -> Reply:
        """The reply for the next user turn."""
        return self._queue.popleft() if self._queue else self.default
