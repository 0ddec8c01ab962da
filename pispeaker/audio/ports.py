"""The audio ports: what the controller needs from a microphone and a speaker.

Adapters (ALSA, WAV files, in-memory fakes) implement these Protocols; the contract suite in
tests/test_audio_contract.py runs against each of them.
"""

import os
from collections import deque
from collections.abc import Callable
from typing import Protocol

from pispeaker.audio.pcm import INPUT_RATE, byte_count
from pispeaker.errors import PispeakerError


class DeviceLostError(PispeakerError, OSError):
    """An audio device failed or disappeared; the message names it and the next step."""

    exit_code = os.EX_UNAVAILABLE


class AudioSource(Protocol):
    """A microphone: 16 kHz mono s16le in chunks of exactly ``chunk_bytes``."""

    chunk_bytes: int
    #: When the last sample of the chunk ``read`` returned last was captured
    #: (``time.monotonic()`` seconds): the echo canceller's capture clock.
    captured_at: float
    #: How many chunks the source may hold back and deliver together (1: each as soon as
    #: it is captured). The consumer raises it while no chunk is urgent, so that fewer
    #: wake-ups carry the same audio; lowering it delivers what is held with the next chunk.
    batch: int

    async def start(self) -> None:
        """Open the device; raise DeviceLostError if it cannot be opened."""

    async def read(self) -> bytes:
        """The next chunk, waiting for it; raise DeviceLostError if the device went away."""

    async def stop(self) -> None:
        """Close the device; safe to call twice."""


class AudioSink(Protocol):
    """A speaker: 24 kHz mono s16le."""

    #: Called with every piece of audio as it is handed to the device, and the moment
    #: (``time.monotonic()`` seconds) its first sample is heard: the reference signal an
    #: echo canceller needs.
    tap: Callable[[bytes, float], None] | None
    #: Linear gain on audio as it goes to the device (a ducked reply). A new gain takes
    #: effect at once on what plays: audio the device held is played again at it, and told
    #: to the tap again with when it is now heard; the tap hears the audio with it applied.
    gain: float

    async def start(self) -> None:
        """Open the device; raise DeviceLostError if it cannot be opened."""

    def write(self, pcm: bytes) -> None:
        """Queue audio to play; never blocks (control beats data)."""

    def flush(self) -> None:
        """Drop all queued audio and what the device holds, at once (barge-in)."""

    async def drain(self) -> None:
        """Return once everything queued before the call has played (or was flushed)."""

    async def wait_lost(self) -> str:
        """Return, with a message naming the device, once the open device has failed
        (unplugged); audio written after that is dropped until ``start`` succeeds again."""

    async def stop(self) -> None:
        """Close the device; safe to call twice."""


class PrerollRing:
    """The most recent ``seconds`` of audio, so that words spoken right after the wake word
    are not lost while the session connects (and what the speaker played, for echo
    cancellation).

    ``position`` counts every byte ever appended: the stream clock that ``since`` takes.
    """

    def __init__(self, seconds: float, rate: int = INPUT_RATE) -> None:
        self.capacity = byte_count(seconds, rate)
        self.position = 0
        self._chunks: deque[tuple[int, bytes]] = deque()  # (stream position, audio)
        self._size = 0

    def append(self, chunk: bytes) -> None:
        """Keep ``chunk``, forgetting the oldest audio beyond the capacity."""
        self._chunks.append((self.position, chunk))
        self.position += len(chunk)
        self._size += len(chunk)
        while self._size - len(self._chunks[0][1]) >= self.capacity:
            self._size -= len(self._chunks.popleft()[1])

    def take(self) -> bytes:
        """Everything kept, oldest first, as whole chunks (at most one chunk over capacity);
        the ring is empty afterwards."""
        audio = b"".join(chunk for _, chunk in self._chunks)
        self.clear()
        return audio

    def since(self, position: int) -> bytes:
        """The audio kept from stream byte ``position`` on (all of it if that is older);
        the ring is empty afterwards."""
        audio = self.between(position, self.position)
        self.clear()
        return audio

    def between(self, start: int, end: int) -> bytes:
        """The audio kept from stream byte ``start`` to ``end``, as far as it is kept; the
        ring keeps it."""
        audio = b"".join(chunk for _, chunk in self._chunks)
        oldest = self.oldest
        return audio[max(0, start - oldest) : max(0, end - oldest)]

    @property
    def oldest(self) -> int:
        """The stream position of the oldest byte kept."""
        return self.position - self._size

    def clear(self) -> None:
        """Forget everything (e.g. on mute: nothing captured then may be used)."""
        self._chunks.clear()
        self._size = 0

    def __len__(self) -> int:
        return self._size


class Canceller(Protocol):
    """An acoustic echo canceller: takes the speaker's voice out of the microphone."""

    @property
    def converged(self) -> bool:
        """Whether it has learnt this room's echo well enough to send the microphone while
        the speaker talks (measured on the reply's own audio)."""

    def reference(self, pcm: bytes, heard_at: float) -> None:
        """``pcm`` (24 kHz mono s16le) was handed to the speaker, as it was; its first
        sample is heard at ``heard_at`` (``time.monotonic()`` seconds). It replaces what was
        to be heard from ``heard_at`` on (the speaker plays it again at a new gain)."""

    def drop(self, at: float) -> None:
        """The speaker dropped what it held at ``at``: that audio will not be heard."""

    def clean(self, mic: bytes, captured_at: float) -> bytes:
        """One 16 kHz mono s16le microphone chunk, whose last sample was captured at
        ``captured_at``, without the echo, as long as it came; raise EchoCancellerError if
        the canceller failed."""

    def reset(self) -> None:
        """Forget the echo path learnt and the reference held: a device is new (its
        buffering, and so the echo's delay, is another), and ``converged`` is false again."""


class VoiceModel(Protocol):
    """An on-device voice activity model."""

    def probability(self, chunk: bytes) -> float:
        """How likely the latest 16 kHz mono s16le audio is speech, 0..1."""

    def reset(self) -> None:
        """Forget the audio heard so far."""
