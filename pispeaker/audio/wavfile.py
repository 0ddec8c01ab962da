"""WAV files as audio for the demo and tests (standard library ``wave``)."""

import wave
from pathlib import Path

import numpy as np

from pispeaker.audio.pcm import SAMPLE_WIDTH, to_samples
from pispeaker.audio.resample import resample
from pispeaker.errors import PispeakerError


class WavError(PispeakerError, ValueError):
    """A WAV file that pispeaker cannot use."""


def read_wav(path: Path, rate: int) -> bytes:
    """Read a 16-bit PCM WAV as mono s16le at ``rate`` Hz (channels averaged, resampled)."""
    try:
        with wave.open(str(path), "rb") as wav:
            if wav.getsampwidth() != SAMPLE_WIDTH:
                raise WavError(
                    f"{path}: {8 * wav.getsampwidth()}-bit samples; convert it to "
                    "16-bit PCM, e.g. with: sox IN -b 16 OUT.wav"
                )
            channels, source_rate = wav.getnchannels(), wav.getframerate()
            frames = wav.readframes(wav.getnframes())
    except (OSError, EOFError, wave.Error) as error:
        raise WavError(f"cannot read WAV file {path}: {error}") from error
    samples = to_samples(frames).reshape(-1, channels).mean(axis=1)
    mono = np.round(samples).astype("<i2").tobytes()
    return resample(mono, source_rate, rate)


def write_wav(path: Path, pcm: bytes, rate: int) -> None:
    """Write mono s16le PCM as a WAV file."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(SAMPLE_WIDTH)
        wav.setframerate(rate)
        wav.writeframes(pcm)
