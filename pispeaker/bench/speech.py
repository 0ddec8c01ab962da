"""What the bench's microphone says: the wake word (espeak-ng's "hey jarvis", shipped as a
WAV file: the bench must not need a speech synthesizer), requests (espeak-ng too),
speech-like talk (for replies and for talking over them) and coughs and knocks."""

from functools import cache
from importlib.resources import files
from pathlib import Path

import numpy as np
import numpy.typing as npt

from pispeaker.audio.pcm import INPUT_RATE
from pispeaker.audio.wavfile import read_wav

FloatArray = npt.NDArray[np.float64]
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


@cache
def _barge_in() -> npt.NDArray[np.int16]:
    """espeak-ng's "no, stop. I meant tomorrow morning, not today. And what about the
    weekend" (en+f3, 165 wpm, pitch 70: another voice than the request's), 5.2 s."""
    pcm = read_wav(Path(str(files("pispeaker.bench") / "barge_in.wav")), INPUT_RATE)
    return np.frombuffer(pcm, "<i2")


def _word_starts(samples: npt.NDArray[np.int16], frame: int = INPUT_RATE // 50) -> list[int]:
    """Where a 20 ms frame is louder than -50 dBFS after two that are not (or at the very
    start): the first sample of each word after a pause, and of the first."""
    frames = samples[: len(samples) // frame * frame].astype(np.float64).reshape(-1, frame)
    loud = np.sqrt(np.mean(frames**2, axis=1)) > 32768 * 10 ** (-50 / 20)
    return [k * frame for k in range(len(loud)) if loud[k] and not loud[max(0, k - 2) : k].any()]


def barge_in_words(seconds: float, seed: int, level_dbfs: float) -> bytes:
    """``seconds`` of the recorded barge-in (16 kHz mono s16le) from the start of one of its
    words (picked by ``seed``), at ``level_dbfs`` RMS over the sound: the user talking over
    a reply begins with a word, not a pause."""
    samples = _barge_in()
    length = round(seconds * INPUT_RATE)
    starts = [start for start in _word_starts(samples) if start + length <= len(samples)]
    start = starts[seed % len(starts)]
    words = samples[start : start + length].astype(np.float64)
    sound = words[np.abs(words) > 64]
    words *= 32768 * 10 ** (level_dbfs / 20) / float(np.sqrt(np.mean(sound**2)))
    return bytes(np.clip(np.round(words), -32768, 32767).astype("<i2").tobytes())


def speech_like(
    seconds: float,
    rate: int,
    pitch_hz: float = 120.0,
    seed: int = 0,
    level_dbfs: float = -20.0,
    murmur_db: float | None = None,
) -> bytes:
    """Speech-like s16le mono at ``rate`` (no synthesizer needed): syllables of 120-300 ms,
    each voiced harmonics of a wandering pitch with a timbre of its own, with short gaps and
    now and then a pause; ``level_dbfs`` the RMS over the syllables. With ``murmur_db`` a
    steady voiced murmur that much below the syllables fills the gaps (so that a reply's
    pauses never pass for its halt)."""
    random = np.random.default_rng(seed)
    total = round(seconds * rate)
    out = np.zeros(total)
    at = 0
    while at < total:
        length = min(total - at, round(random.uniform(0.12, 0.3) * rate))
        pitch = pitch_hz * random.uniform(0.85, 1.2)
        out[at : at + length] = _voice(length, rate, pitch, random) * np.hanning(length)
        pause = 0.3 if random.random() < 0.15 else random.uniform(0.03, 0.1)
        at += length + round(pause * rate)
    out /= float(np.sqrt(np.mean(out[np.abs(out) > 0] ** 2)))
    if murmur_db is not None:
        murmur = _voice(total, rate, pitch_hz * 0.9, random)
        out += murmur * 10 ** (murmur_db / 20) / float(np.sqrt(np.mean(murmur**2)))
    out *= 32768 * 10 ** (level_dbfs / 20)
    return bytes(np.clip(np.round(out), -32768, 32767).astype("<i2").tobytes())


def _voice(length: int, rate: int, pitch_hz: float, random: np.random.Generator) -> FloatArray:
    """Harmonics of a pitch wandering by 10 %, with a random timbre, and a little breath."""
    t = np.arange(length) / rate
    pitch = pitch_hz * (1 + 0.1 * np.sin(2 * np.pi * random.uniform(1.0, 3.0) * t))
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    harmonics = np.arange(1, int(min(4000, rate / 2) // (pitch_hz * 1.1)) + 1)
    weights = random.uniform(0.2, 1.0, len(harmonics)) / harmonics
    voice = weights @ np.sin(np.outer(harmonics, phase))
    breath = random.normal(0.0, 0.02, length)
    return np.asarray(voice + breath)


def burst(kind: str, seed: int) -> bytes:
    """A cough or a knock as 16 kHz mono s16le: a "knock" is broadband noise of 80-150 ms
    striking at once and dying fast (peak about -6 dBFS), a "cough" 200-300 ms of noise in
    the voice band (300-3000 Hz) rising in 20 ms and dying more slowly."""
    random = np.random.default_rng(seed)
    knock = kind == "knock"
    length = round((random.uniform(0.08, 0.15) if knock else random.uniform(0.2, 0.3)) * INPUT_RATE)
    t = np.arange(length) / INPUT_RATE
    noise = random.normal(0.0, 1.0, length)
    if not knock:
        spectrum = np.fft.rfft(noise)
        frequencies = np.fft.rfftfreq(length, 1 / INPUT_RATE)
        spectrum[(frequencies < 300) | (frequencies > 3000)] = 0
        noise = np.fft.irfft(spectrum, length)
    attack = np.minimum(1.0, t / (0.001 if knock else 0.02))
    shaped = noise * attack * np.exp(-t / (0.02 if knock else 0.06))
    shaped *= 0.5 * 32767 / float(np.max(np.abs(shaped)))
    return bytes(np.round(shaped).astype("<i2").tobytes())


def background_talk(seconds: float, seed: int = 0) -> bytes:
    """Other people talking in the room, ``seconds`` of 16 kHz mono s16le: two voices (the
    recorded request and barge-in, espeak-ng en-us and en+f3) taking turns in phrases of
    1-3 s at -26 to -34 dBFS with pauses of 0.2-1.2 s between them, over a radio-like bed of
    speech-like murmur at -52 dBFS (below what a voice detector hears)."""
    random = np.random.default_rng(seed)
    voices = [np.frombuffer(_request(), "<i2"), _barge_in()]
    total = round(seconds * INPUT_RATE)
    out = np.zeros(total)
    at = 0
    while at < total:
        voice = voices[int(random.integers(len(voices)))]
        length = min(total - at, round(random.uniform(1.0, 3.0) * INPUT_RATE))
        start = int(random.integers(0, len(voice) - length)) if len(voice) > length else 0
        phrase = voice[start : start + length].astype(np.float64)
        sound = phrase[np.abs(phrase) > 64]
        level = 32768 * 10 ** (random.uniform(-34.0, -26.0) / 20)
        out[at : at + len(phrase)] = phrase * level / float(np.sqrt(np.mean(sound**2)))
        at += len(phrase) + round(random.uniform(0.2, 1.2) * INPUT_RATE)
    bed = np.frombuffer(speech_like(seconds, INPUT_RATE, seed=seed, level_dbfs=-52.0), "<i2")
    out[: len(bed)] += bed
    return bytes(np.clip(np.round(out), -32768, 32767).astype("<i2").tobytes())
