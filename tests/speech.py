"""Deterministic synthetic speech fixtures for wake-word tests (espeak-ng + sox, no network).

Every fixture is a 16 kHz mono signed 16-bit little-endian WAV file, written with the stdlib
`wave` module into a cache directory (default `tests/.cache/speech`, git-ignored). A file's
name carries a hash of everything that determines its content (texts, voices, timings, seeds,
this module's FORMAT_VERSION and the espeak-ng and sox versions), so a change regenerates it
and an unchanged request reuses it. Same inputs and tool versions give the same bytes: espeak-ng
is deterministic, sox runs with `-D` (no dither) and `-R` (repeatable noise), and the segment
plan of `other_speech` comes from a seeded `random.Random`.

Silence is always real silence (zero samples), never unwritten padding. Files are written to a
temporary name and renamed, so concurrent test workers never read a half-written fixture.

Run as a script to regenerate everything and print a summary:

    .venv/bin/python tests/speech.py [--out DIR] [--minutes 10]
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

RATE = 16000
"""Sample rate of every fixture (Hz)."""
SAMPLE_WIDTH = 2
"""Bytes per sample: signed 16-bit little-endian."""
CHANNELS = 1
"""Fixtures are mono."""
FRAME = 1280
"""openWakeWord's frame: 80 ms at 16 kHz."""

DEFAULT_CACHE = Path(__file__).resolve().parent / ".cache" / "speech"
"""Where fixtures are cached unless a caller passes another directory."""

FORMAT_VERSION = 1
"""Bump to regenerate every cached fixture after a change this module's hashes do not see."""

WAKE_TEXT = "hey jarvis"
REQUEST_TEXT = "what is the weather like tomorrow"

Samples = npt.NDArray[np.int16]


@dataclass(frozen=True)
class Voice:
    """One espeak-ng speaker: `-v name -s speed -p pitch`."""

    name: str
    """espeak-ng voice, optionally with a variant: "en-us", "en+f3", "en-us+m3"."""
    speed: int
    """Words per minute (espeak-ng `-s`, default 175)."""
    pitch: int = 50
    """Base pitch 0-99 (espeak-ng `-p`, default 50)."""

    @property
    def label(self) -> str:
        """A file-name-safe label such as `en-us+m3-s155-p50`."""
        return f"{self.name}-s{self.speed}-p{self.pitch}"


# Measured with the real hey_jarvis.tflite (pyopen-wakeword 1.1.0, openwakeword 0.6.0, tflite
# runtime 2.14, x86-64): each `wake_phrases()` file peaks at 0.975-0.999 (>= 0.8 required).
# The score depends on the exact voice, speed and pitch, not smoothly: en+f4 at 145 wpm peaks
# at 0.41 while 130 and 160 pass, so measure before adding an entry here.
WAKE_VOICES: tuple[Voice, ...] = (
    Voice("en-us", 155),  # 0.996
    Voice("en-gb", 130),  # 0.997
    Voice("en+f3", 145, 60),  # 0.998
    Voice("en-us+m3", 160, 40),  # 0.975
    Voice("en+f2", 175, 65),  # 0.999
    Voice("en-gb-x-rp", 145),  # 0.995
    Voice("en-gb-scotland", 160),  # 0.998
    Voice("en-us+m7", 145, 35),  # 0.995
    Voice("en-us+f1", 130, 70),  # 0.996
    Voice("en+m5", 175),  # 0.998
)

REQUEST_VOICE = Voice("en-us", 155)
"""The voice of `wake_then_request` (wake word and request alike)."""

# Voices of the negative speech: several accents, variants, speeds and pitches.
OTHER_VOICES: tuple[Voice, ...] = (
    Voice("en-us", 160),
    Voice("en-gb", 150),
    Voice("en+f3", 165, 60),
    Voice("en-us+m3", 140, 40),
    Voice("en-gb-x-rp", 175),
    Voice("en+f2", 150, 70),
    Voice("en-029", 155),
    Voice("en-gb-scotland", 145),
    Voice("en-us+m7", 170, 35),
    Voice("en+f4", 135, 55),
)

# Said sparingly in `other_speech`, each by one fixed voice: close to the wake word, and none
# may trigger it. Peak hey_jarvis score of each pair alone is in the comment. Other voices
# score higher ("hey travis" reaches 0.50 with en+f3 at 145 wpm, "hey service" 0.44), and
# some phrases are no near misses at all for this model: "hey java", "hey jarvie", "hey jervis",
# "hey jump", "hey jasmine" and "ok jar" score 0.93-1.0 with most voices, and "hey alexis"
# fires alexa (0.55). None of those is used.
NEAR_MISSES: tuple[tuple[str, Voice], ...] = (
    ("hey travis", Voice("en-029", 155)),  # 0.06
    ("hey service", Voice("en-gb", 150)),  # 0.04
    ("jars of jam", Voice("en+f3", 165, 60)),  # 0.00
    ("hey marvin", Voice("en-gb-x-rp", 175)),  # 0.00
    ("hey davis", Voice("en-us+m3", 140, 40)),  # 0.00
    ("hey travis", Voice("en+f4", 135, 55)),  # 0.08
    ("hey mavis", Voice("en+f2", 150, 70)),  # 0.00
    ("a jar of pickles", Voice("en-us+m7", 170, 35)),  # 0.00
    ("hey service", Voice("en-gb-scotland", 145)),  # 0.00
    ("hey computer", Voice("en-us", 160)),  # 0.00
)

# Fixed paragraphs of ordinary speech. None says the wake word (checked when planning).
PARAGRAPHS: tuple[str, ...] = (
    "Good morning. The kettle is on and the bread is in the toaster. If you want eggs, "
    "tell me now, because the pan is still hot.",
    "Could you set a timer for twelve minutes? The pasta needs a little longer than the "
    "packet says, and I always forget to check it.",
    "What time does the pharmacy on the corner close on Saturdays? I think it is six, but "
    "last week the door was locked at five.",
    "The train to the city was twenty minutes late again. A signal failed near the bridge, "
    "and everybody had to wait on the platform in the rain.",
    "Please add milk, rice, two lemons and a bag of apples to the shopping list. We are "
    "also out of washing powder.",
    "My grandmother grew tomatoes, beans and courgettes in a small garden behind the house. "
    "Every summer there were far too many to eat.",
    "Turn the music down a little, the baby has just fallen asleep. Maybe play something "
    "quiet, like a piano concert.",
    "The museum opens at ten, and the guided tour starts at half past. Tickets are cheaper "
    "if you book them online the day before.",
    "I read that the bridge will be closed for repairs from Monday to Thursday, so the bus "
    "takes the long way around the lake.",
    "Remind me to call the dentist tomorrow morning. The appointment needs to move to next "
    "week, because I am travelling on Friday.",
    "How far is it from here to the coast? If the weather holds, we could drive down on "
    "Sunday and have lunch by the harbour.",
    "The football match ended two all after extra time. The home team missed a penalty in "
    "the last minute, and the crowd went quiet.",
    "Hey, have you seen my keys? I put them on the table next to the door, and now they are "
    "gone. Maybe they are in my coat.",
    "Our neighbour is painting the fence green. He says it will take three weekends, but he "
    "said that about the shed as well.",
    "Switch off the lights in the kitchen and lock the back door, please. It is getting late "
    "and I want to go to bed.",
    "The recipe needs two cups of flour, one egg, a pinch of salt and some warm water. Knead "
    "the dough for ten minutes and let it rest.",
    "Tell me a joke about penguins. The last one was terrible, but the children laughed "
    "anyway, so let us try another.",
    "In the autumn the leaves turn red and yellow, and the park is full of people walking "
    "their dogs in the afternoon sun.",
    "What is seventeen times twenty three? I need it for the invoice, and my calculator has "
    "run out of battery again.",
    "The library has a new reading room on the second floor. It is quiet, warm, and the "
    "chairs are much better than the old ones.",
    "Can you play the news? I missed the headlines this morning because the radio in the car "
    "is still broken.",
    "Harvey and Mavis are coming for dinner on Thursday. Harvey does not eat fish, so we "
    "should make the vegetable curry.",
    "The river flooded the lower fields last winter. This year the farmers built a wall of "
    "sandbags along the bank.",
    "Open the curtains, please. It looks like a bright day, and I would like to see the "
    "mountains before the clouds come in.",
)

# Words for the generated sentences that fill `other_speech` beyond the paragraphs.
_SUBJECTS = (
    "the teacher", "my brother", "a tall woman", "the old farmer", "our cat", "the pilot",
    "a small boy", "the doctor", "my aunt", "the driver", "a friendly waiter", "the gardener",
)  # fmt: skip
_VERBS = (
    "carried", "painted", "found", "sold", "opened", "cleaned", "borrowed", "described",
    "forgot", "repaired", "counted", "photographed",
)  # fmt: skip
_OBJECTS = (
    "a blue bicycle", "the broken window", "three wooden chairs", "a basket of pears",
    "the heavy suitcase", "an old map", "the kitchen table", "a letter from abroad",
    "the garden gate", "a box of candles", "the silver spoons", "a paper boat",
)  # fmt: skip
_PLACES = (
    "near the station", "in the village", "behind the school", "at the market",
    "on the hill", "by the river", "in the attic", "under the bridge", "at the airport",
    "in the car park",
)  # fmt: skip
_TIMES = (
    "yesterday", "last night", "before breakfast", "on Sunday", "after the storm",
    "in the spring", "this afternoon", "every morning", "two years ago", "at midnight",
)  # fmt: skip

_SEED = 20240611
_TRIM_THRESHOLD = 64  # |sample| that counts as sound when trimming espeak's own silence
_TRIM_MARGIN = 0.02  # seconds of espeak's audio kept around the sound
_NOISE_BED_SECONDS = 60.0
_RAW_S16 = ("-t", "raw", "-e", "signed-integer", "-b", "16")  # sox: headerless s16le


class ToolMissing(RuntimeError):
    """espeak-ng or sox is not installed."""


def _run(args: Sequence[str], stdin: bytes | None = None) -> bytes:
    """Run a tool and return its stdout; raise with its stderr when it fails."""
    if shutil.which(args[0]) is None:
        raise ToolMissing(f"{args[0]} is not installed: run `bash deploy/setup.sh --test`")
    done = subprocess.run(list(args), input=stdin, capture_output=True, check=False)
    if done.returncode != 0:
        err = done.stderr.decode(errors="replace").strip()
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): {err}")
    return done.stdout


@functools.cache
def tool_versions() -> dict[str, str]:
    """`espeak-ng --version` (without its data path) and `sox --version`: part of every key."""
    return {
        "espeak-ng": _run(["espeak-ng", "--version"]).decode().split("Data at")[0].strip(),
        "sox": _run(["sox", "--version"]).decode().splitlines()[0].strip(),
    }


def _key(kind: str, params: object) -> str:
    """A 16-hex-digit hash of the parameters, the format version and the tool versions."""
    blob = json.dumps(
        {"kind": kind, "params": params, "format": FORMAT_VERSION, "tools": tool_versions()},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _cache_dir(cache: Path | None) -> Path:
    directory = DEFAULT_CACHE if cache is None else Path(cache)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _write_atomic(path: Path, data: bytes) -> Path:
    """Write `data` to a temporary file next to `path`, then rename it to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_wav(path: Path, samples: Samples | bytes, rate: int = RATE, channels: int = 1) -> Path:
    """Write s16le PCM (interleaved when `channels` > 1) as a WAV file, atomically; return it."""
    data = samples if isinstance(samples, bytes) else np.asarray(samples, "<i2").tobytes()
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(SAMPLE_WIDTH)
        out.setframerate(rate)
        out.writeframes(data)
    return _write_atomic(path, buffer.getvalue())


def read_pcm(path: Path, rate: int = RATE, channels: int = 1) -> bytes:
    """The s16le PCM of a WAV file; raise ValueError unless it has this rate and channels."""
    with wave.open(str(path), "rb") as wav:
        found = (wav.getframerate(), wav.getnchannels(), wav.getsampwidth())
        if found != (rate, channels, SAMPLE_WIDTH):
            raise ValueError(f"{path}: (rate, channels, width) {found}, wanted {rate, channels, 2}")
        return wav.readframes(wav.getnframes())


def read_samples(path: Path) -> Samples:
    """The samples of a 16 kHz mono s16 WAV file as int16 (ValueError for any other format)."""
    return np.frombuffer(read_pcm(path), dtype="<i2").astype(np.int16)


def frames(path: Path, size: int = FRAME) -> Iterator[Samples]:
    """A fixture in consecutive `size`-sample int16 frames; a short last frame is zero-filled."""
    samples = read_samples(path)
    for start in range(0, len(samples), size):
        frame = samples[start : start + size]
        if len(frame) < size:
            frame = np.concatenate([frame, np.zeros(size - len(frame), np.int16)])
        yield frame


def silence(seconds: float) -> Samples:
    """Real silence: `seconds` of zero samples at 16 kHz."""
    return np.zeros(round(seconds * RATE), np.int16)


def _trim(samples: Samples) -> Samples:
    """Cut espeak-ng's leading and trailing silence, keeping `_TRIM_MARGIN` around the sound."""
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > _TRIM_THRESHOLD)
    if len(loud) == 0:
        return samples[:0]
    margin = round(_TRIM_MARGIN * RATE)
    return samples[max(0, loud[0] - margin) : loud[-1] + 1 + margin]


def say(text: str, voice: Voice, cache: Path | None = None) -> Path:
    """`text` spoken by `voice`, resampled by sox to 16 kHz, espeak's own silence trimmed.

    The file starts and ends within `_TRIM_MARGIN` (20 ms) of the first and last sound, so
    concatenating utterances gives exact offsets. Cached under `<cache>/utterances/`.
    """
    params = {"text": text, "voice": asdict(voice), "trim": [_TRIM_THRESHOLD, _TRIM_MARGIN]}
    path = _cache_dir(cache) / "utterances" / f"{voice.label}-{_key('say', params)}.wav"
    if path.exists():
        return path
    if text.startswith("-"):
        raise ValueError(f"espeak-ng would read {text!r} as an option")
    espeak = ["espeak-ng", "-v", voice.name, "-s", str(voice.speed), "-p", str(voice.pitch)]
    wav_22k = _run([*espeak, "--stdout", text])
    raw = _run(
        ["sox", "-D", "-t", "wav", "-", *_RAW_S16, "-c", "1", "-r", str(RATE), "-"],
        stdin=wav_22k,
    )
    return write_wav(path, _trim(np.frombuffer(raw, "<i2").astype(np.int16)))


@functools.cache
def _noise_bed(kind: str) -> Samples:
    """`_NOISE_BED_SECONDS` of sox noise (`pinknoise`, `brownnoise`, `whitenoise`) at vol 0.9.

    sox `-R` seeds its generator with a fixed number: the same bed on every run."""
    synth = ["synth", str(_NOISE_BED_SECONDS), kind, "vol", "0.9"]
    raw = _run(["sox", "-R", "-D", "-n", *_RAW_S16, "-c", "1", "-r", str(RATE), "-", *synth])
    return np.frombuffer(raw, "<i2").astype(np.int16)


def noise(
    seconds: float, volume: float = 0.05, kind: str = "pinknoise", skip: float = 0.0
) -> Samples:
    """`seconds` of sox `kind` noise scaled to `volume` (of full scale), starting `skip` seconds
    into a fixed repeatable noise bed (different skips give different-looking noise)."""
    bed = _noise_bed(kind)
    start = round(skip * RATE) % len(bed)
    count = round(seconds * RATE)
    index = (start + np.arange(count)) % len(bed)
    return _scale(bed[index], volume / 0.9)


def _scale(samples: Samples, gain: float) -> Samples:
    """Multiply by `gain`, round to nearest, clip to int16."""
    out: npt.NDArray[np.float64] = np.rint(samples.astype(np.float64) * gain)
    return np.clip(out, -32768, 32767).astype(np.int16)


def _mix(a: Samples, b: Samples) -> Samples:
    """Sum two signals (the shorter zero-extended), clipped to int16."""
    n = max(len(a), len(b))
    total = np.zeros(n, np.int32)
    total[: len(a)] += a
    total[: len(b)] += b
    return np.clip(total, -32768, 32767).astype(np.int16)


def wake_phrase(voice: Voice, cache: Path | None = None, pad: float = 1.0) -> Path:
    """Say "hey jarvis" with `voice`, `pad` seconds of zero samples before and after."""
    params = {"voice": asdict(voice), "pad": pad, "text": WAKE_TEXT}
    path = _cache_dir(cache) / f"wake-{voice.label}-{_key('wake', params)}.wav"
    if not path.exists():
        spoken = read_samples(say(WAKE_TEXT, voice, cache))
        write_wav(path, np.concatenate([silence(pad), spoken, silence(pad)]))
    return path


def wake_phrases(cache: Path | None = None) -> list[Path]:
    """One file per `WAKE_VOICES` entry (same order): "hey jarvis" alone, 1 s of zero samples
    before and after. Every one scores >= 0.8 on the real hey_jarvis model."""
    with ThreadPoolExecutor(_workers()) as pool:
        return list(pool.map(lambda v: wake_phrase(v, cache), WAKE_VOICES))


@dataclass(frozen=True)
class WakeThenRequest:
    """A wake word followed by a request, with sample offsets (16 kHz) into `path`.

    Offsets come from the lengths of the concatenated segments. A speech segment starts at
    most 20 ms (`_TRIM_MARGIN`) before its first sound and ends at most 20 ms after its last.
    """

    path: Path
    wake_start: int
    """First sample of the "hey jarvis" segment (after the leading silence)."""
    wake_end: int
    """One past the last sample of the "hey jarvis" segment (start of the pause)."""
    request_start: int
    """First sample of the request segment ("what is the weather like tomorrow")."""
    request_end: int
    """One past the last sample of the request segment (start of the trailing silence)."""
    total: int
    """Number of samples in the file."""


def wake_then_request(
    cache: Path | None = None, lead: float = 1.5, pause: float = 0.2, tail: float = 1.5
) -> WakeThenRequest:
    """`lead` s of silence, "hey jarvis", a `pause` s gap, "what is the weather like tomorrow",
    `tail` s of silence; all by `REQUEST_VOICE`, silences are zero samples."""
    wake = read_samples(say(WAKE_TEXT, REQUEST_VOICE, cache))
    request = read_samples(say(REQUEST_TEXT, REQUEST_VOICE, cache))
    parts = [silence(lead), wake, silence(pause), request, silence(tail)]
    bounds = np.cumsum([0] + [len(p) for p in parts]).tolist()
    params = {"voice": asdict(REQUEST_VOICE), "lead": lead, "pause": pause, "tail": tail}
    params |= {"wake": WAKE_TEXT, "request": REQUEST_TEXT}
    path = _cache_dir(cache) / f"wake-then-request-{_key('wake_then_request', params)}.wav"
    if not path.exists():
        write_wav(path, np.concatenate(parts))
    return WakeThenRequest(path, bounds[1], bounds[2], bounds[3], bounds[4], bounds[5])


@dataclass(frozen=True)
class _Segment:
    """One planned piece of `other_speech`: speech (optionally over noise), noise or silence."""

    kind: str  # "speech", "noise" or "silence"
    seconds: float = 0.0  # noise and silence length
    text: str = ""
    voice: Voice | None = None
    noise_kind: str = "pinknoise"
    volume: float = 0.0  # noise volume; 0 means speech without noise
    skip: float = 0.0  # where in the noise bed the noise starts

    def estimate(self) -> float:
        """Rough length in seconds (speech: words at the voice's speed), for planning only."""
        if self.kind == "speech" and self.voice is not None:
            return len(self.text.split()) * 60.0 / self.voice.speed + 0.3
        return self.seconds


def _sentences(rng: random.Random, count: int) -> str:
    """`count` generated sentences from the fixed word lists."""
    out = []
    for _ in range(count):
        words = [rng.choice(_SUBJECTS), rng.choice(_VERBS), rng.choice(_OBJECTS)]
        words.append(rng.choice(_PLACES))
        if rng.random() < 0.6:
            words.append(rng.choice(_TIMES))
        sentence = " ".join(words)
        out.append(sentence[0].upper() + sentence[1:] + ".")
    return " ".join(out)


def _plan(seconds: float) -> list[_Segment]:
    """A deterministic segment plan whose estimated length exceeds `seconds`.

    A longer plan starts with a shorter one: the seed and the order of draws are fixed."""
    rng = random.Random(_SEED)
    plan: list[_Segment] = []
    paragraph = 0
    near_miss = 0
    voice_index = 0
    total = 0.0
    target = seconds + 10.0
    while total < target:
        plan.append(_Segment("silence", round(rng.uniform(0.3, 1.2), 2)))
        roll = rng.random()
        if len(plan) % 14 == 13:  # sparingly: about once a minute
            text, voice = NEAR_MISSES[near_miss % len(NEAR_MISSES)]
            near_miss += 1
            seg = _Segment("speech", text=text, voice=voice)
        elif roll < 0.12:
            kind = rng.choice(("pinknoise", "pinknoise", "brownnoise", "whitenoise"))
            volume = round(rng.uniform(0.02, 0.15), 3)
            skip = round(rng.uniform(0, _NOISE_BED_SECONDS), 2)
            seg = _Segment("noise", round(rng.uniform(2.0, 8.0), 2), "", None, kind, volume, skip)
        elif roll < 0.18:
            seg = _Segment("silence", round(rng.uniform(1.5, 4.0), 2))
        else:
            if roll < 0.55:
                text = PARAGRAPHS[paragraph % len(PARAGRAPHS)]
                paragraph += 1
            else:
                text = _sentences(rng, rng.randint(2, 4))
            voice = OTHER_VOICES[voice_index % len(OTHER_VOICES)]
            voice_index += 1
            volume = round(rng.uniform(0.01, 0.05), 3) if rng.random() < 0.3 else 0.0
            skip = round(rng.uniform(0, _NOISE_BED_SECONDS), 2)
            seg = _Segment("speech", 0.0, text, voice, "pinknoise", volume, skip)
        if "jarvis" in seg.text.lower():
            raise AssertionError(f"negative speech must not say the wake word: {seg.text!r}")
        plan.append(seg)
        total += sum(s.estimate() for s in plan[-2:])
    return plan


def _workers() -> int:
    return max(2, os.cpu_count() or 2)


def other_speech(cache: Path | None = None, minutes: float = 10.0) -> Path:
    """Exactly `minutes` of varied English speech that never says "jarvis" (16 kHz mono s16).

    Paragraphs from `PARAGRAPHS` and sentences generated from fixed word lists, spoken by the
    `OTHER_VOICES` in turn, some over quiet noise, alternate with silences (zero samples) and
    pink, brown or white noise; about once a minute comes a `NEAR_MISSES` phrase. The plan is
    seeded, so the file is the same on every run. The last segment is cut (with a 10 ms fade)
    where the file reaches its length.
    """
    target = round(minutes * 60 * RATE)
    # Planned generously (espeak-ng talks faster than its words-per-minute setting suggests);
    # the segments past `target` are synthesised but not used.
    plan = _plan(minutes * 60 * 1.5 + 20)
    key = _key("other_speech", {"target": target, "plan": [asdict(s) for s in plan]})
    path = _cache_dir(cache) / f"other-speech-{minutes:g}min-{key}.wav"
    if path.exists():
        return path
    parts = _render(plan, target, cache)
    if parts is None:
        raise AssertionError(f"the plan for {minutes} min is too short: plan more generously")
    audio = np.concatenate(parts)[:target]
    fade = min(len(audio), RATE // 100)
    tail = audio[len(audio) - fade :].astype(np.float64) * np.linspace(1.0, 0.0, fade)
    audio[len(audio) - fade :] = np.rint(tail).astype(np.int16)
    return write_wav(path, audio)


def _render(plan: list[_Segment], target: int, cache: Path | None) -> list[Samples] | None:
    """The audio of the plan's segments up to `target` samples, or None if it falls short."""
    texts = list(dict.fromkeys((s.text, s.voice) for s in plan if s.kind == "speech" and s.voice))
    with ThreadPoolExecutor(_workers()) as pool:
        spoken = dict(zip(texts, pool.map(lambda tv: say(tv[0], tv[1], cache), texts), strict=True))
    parts: list[Samples] = []
    length = 0
    for seg in plan:
        if seg.kind == "silence":
            part = silence(seg.seconds)
        elif seg.kind == "noise":
            part = noise(seg.seconds, seg.volume, seg.noise_kind, seg.skip)
        else:
            assert seg.voice is not None
            part = read_samples(spoken[(seg.text, seg.voice)])
            if seg.volume:
                part = _mix(part, noise(len(part) / RATE, seg.volume, seg.noise_kind, seg.skip))
        parts.append(part)
        length += len(part)
        if length >= target:
            return parts
    return None


def to_rate(
    path: Path, rate: int = 48000, channels: int = 2, raw: bool = False, cache: Path | None = None
) -> Path:
    """A copy of a 16 kHz mono fixture at `rate` and `channels` (mono duplicated), s16le,
    resampled by sox without dither: a WAV file, or headerless PCM when `raw` (e.g. to feed
    an ALSA capture device at 48 kHz stereo S16_LE). Cached next to the other fixtures."""
    pcm = read_pcm(path)
    params = {"source": hashlib.sha256(pcm).hexdigest(), "rate": rate, "channels": channels}
    suffix = "raw" if raw else "wav"
    name = f"{Path(path).stem}.{rate}x{channels}-{_key('to_rate', params)}.{suffix}"
    out = _cache_dir(cache) / "converted" / name
    if out.exists():
        return out
    source = ["-D", *_RAW_S16, "-r", str(RATE), "-c", "1", "-"]
    target = [*_RAW_S16, "-r", str(rate), "-c", str(channels), "-"]
    converted = _run(["sox", *source, *target], stdin=pcm)
    return _write_atomic(out, converted) if raw else write_wav(out, converted, rate, channels)


def main(argv: Sequence[str] | None = None) -> int:
    """Regenerate every fixture into `--out` (default the test cache) and print a summary."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_CACHE, help="cache directory")
    parser.add_argument("--minutes", type=float, default=10.0, help="length of other_speech")
    args = parser.parse_args(argv)
    print(f"tools: {tool_versions()}; cache: {args.out}")

    def show(label: str, path: Path, took: float | None = None) -> None:
        seconds = len(read_pcm(path)) / SAMPLE_WIDTH / RATE
        made = "" if took is None else f"{took:6.2f} s to make"
        print(f"{label:<30} {seconds:7.2f} s audio {made:>16}  {path.name}")

    since = time.perf_counter()
    wakes = wake_phrases(args.out)
    took = time.perf_counter() - since
    for voice, path in zip(WAKE_VOICES, wakes, strict=True):
        show(f"wake {voice.label}", path)
    print(f"{'wake_phrases':<30} {len(wakes):7d} files {took:9.2f} s to make")
    since = time.perf_counter()
    wtr = wake_then_request(args.out)
    show("wake_then_request", wtr.path, time.perf_counter() - since)
    print(
        f"{'':<30} wake {wtr.wake_start}-{wtr.wake_end}, "
        f"request {wtr.request_start}-{wtr.request_end} of {wtr.total} samples"
    )
    since = time.perf_counter()
    other = other_speech(args.out, args.minutes)
    show("other_speech", other, time.perf_counter() - since)
    since = time.perf_counter()
    stereo = to_rate(wtr.path, 48000, 2, cache=args.out)
    took = time.perf_counter() - since
    print(f"{'to_rate 48 kHz stereo':<30} {'':15} {took:6.2f} s to make  {stereo.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
