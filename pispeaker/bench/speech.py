"""What the bench's microphone says: the wake word (espeak-ng's "hey jarvis", shipped as a
WAV file: the bench must not need a speech synthesizer) and requests (a voice-like signal)."""

from functools import cache
from importlib.resources import files
from pathlib import Path

import numpy as np

from pispeaker.audio.pcm import INPUT_RATE
from pispeaker.audio.wavfile import read_wav

#: The wake-word model the bench's phrase is for.
WAKE_MODEL = "hey_jarvis"


@cache
def wake_phrase() -> bytes:
    """ "Hey Jarvis" as 16 kHz mono s16le (0.85 s, no silence around it)."""
    return read_wav(Path(str(files("pispeaker.bench") / "hey_jarvis.wav")), INPUT_RATE)


def request_utterance(seconds: float) -> bytes:
    """A request of ``seconds``, as 16 kHz mono s16le: voiced syllables (harmonics of 140 Hz)
    that never dip so low that a voice detector would end the turn inside it."""
    t = np.arange(round(seconds * INPUT_RATE)) / INPUT_RATE
    voice = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 8))
    syllables = 0.75 + 0.25 * np.sin(2 * np.pi * 3.0 * t)
    return bytes(np.round(0.2 * 32767 * voice / 2.6 * syllables).astype("<i2").tobytes())
