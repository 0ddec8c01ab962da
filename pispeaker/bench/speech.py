"""What the bench's microphone says: the wake word (espeak-ng's "hey jarvis", shipped as a
WAV file: the bench must not need a speech synthesizer) and requests (espeak-ng too)."""

from functools import cache
from importlib.resources import files
from pathlib import Path

from pispeaker.audio.pcm import INPUT_RATE
from pispeaker.audio.wavfile import read_wav

#: The wake-word model the bench's phrase is for.
WAKE_MODEL = "hey_jarvis"


@cache
def wake_phrase() -> bytes:
    """ "Hey Jarvis" as 16 kHz mono s16le (0.85 s, no silence around it)."""
    return read_wav(Path(str(files("pispeaker.bench") / "hey_jarvis.wav")), INPUT_RATE)


@cache
def _request() -> bytes:
    """espeak-ng's "what will the weather be like tomorrow in the morning and could you
    also tell me about the traffic" (en-us, 155 wpm), 5.06 s: real speech, because the
    on-device voice detector tells speech from voice-like noise."""
    return read_wav(Path(str(files("pispeaker.bench") / "request.wav")), INPUT_RATE)


def request_utterance(seconds: float) -> bytes:
    """A request of ``seconds`` (at most 5 s), as 16 kHz mono s16le: the start of the
    recorded one (its words have no pause a voice detector would end the turn in)."""
    return _request()[: round(seconds * INPUT_RATE) * 2]
