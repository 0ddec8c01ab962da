"""The bench's simulated room: the echo path's delay, level, drift and clipping (no real time:
every moment is given); and one short run in real time through real libasound."""

import asyncio
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from pispeaker.audio.alsa import AlsaSink
from pispeaker.audio.pcm import INPUT_RATE, OUTPUT_RATE
from pispeaker.audio.resample import resample
from pispeaker.bench.rig import SPEAKER, Echo, Microphone, Speaker, alsa_config, fifo
from pispeaker.bench.room import Room, RoomSettings, impulse_response, soft_clip
from tests.alsa_rig import request

PERIOD = 320  # 20 ms at 16 kHz, as the bench microphone writes
START = 1000.0  # any clock will do


def played_noise(seconds: float, rms: float = 3000.0, seed: int = 1) -> npt.NDArray[np.int16]:
    """Noise as the speaker plays it: made at 16 kHz (so the microphone hears all of it)."""
    noise = np.random.default_rng(seed).normal(0.0, rms, round(seconds * INPUT_RATE))
    return np.clip(noise, -32768, 32767).astype(np.int16)


def through_room(
    played: npt.NDArray[np.int16], settings: RoomSettings, rate: int = 48_000
) -> npt.NDArray[np.float64]:
    """What the microphone hears (no near-end) while the speaker plays ``played`` (16 kHz)
    at ``rate`` stereo, in 20 ms pieces from START; the microphone a period at a time."""
    device = np.frombuffer(resample(played.tobytes(), INPUT_RATE, rate), "<i2")
    stereo, piece = np.repeat(device, 2), rate // 50
    room, heard = Room(settings), []
    for k in range(len(played) // PERIOD):
        at = START + k * 0.02
        room.played(stereo[2 * k * piece : 2 * (k + 1) * piece].tobytes(), rate, 2, at)
        last_captured = at + (PERIOD - 1) / INPUT_RATE
        heard.append(room.microphone(np.zeros(PERIOD, np.int16), last_captured))
    return np.concatenate(heard).astype(np.float64)


def lag_of(heard: npt.NDArray[np.float64], played: npt.NDArray[np.int16]) -> int:
    """The lag (16 kHz samples) at which ``heard`` correlates best with ``played``."""
    size = 1 << (len(heard) + len(played)).bit_length()
    spectrum = np.fft.rfft(heard, size) * np.conj(np.fft.rfft(played.astype(np.float64), size))
    correlation = np.fft.irfft(spectrum, size)[: len(heard)]
    return int(np.argmax(np.abs(correlation)))


def level_db(signal: npt.NDArray[np.float64] | npt.NDArray[np.int16]) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(np.asarray(signal, np.float64) ** 2))))


QUIET = {"drift_ppm": 0.0, "soft_clip": False}


@pytest.mark.parametrize("delay_s", [0.01, 0.03, 0.3])
def test_a_sample_played_at_t_is_heard_a_bulk_delay_later(delay_s: float) -> None:
    played = played_noise(2.0)
    heard = through_room(played, RoomSettings(delay_s=delay_s, **QUIET))
    assert abs(lag_of(heard, played) - delay_s * INPUT_RATE) <= INPUT_RATE / 1000  # 1 ms


@pytest.mark.parametrize("coupling_db", [-6.0, -15.0])
def test_the_echo_is_the_coupling_below_what_was_played(coupling_db: float) -> None:
    played = played_noise(3.0)
    heard = through_room(played, RoomSettings(delay_s=0.05, coupling_db=coupling_db, **QUIET))
    settled = round(0.5 * INPUT_RATE)  # past the delay and the room's tail
    echo_db = level_db(heard[settled:]) - level_db(played[settled:])
    assert echo_db == pytest.approx(coupling_db, abs=1.0)


def test_a_fast_microphone_clock_makes_the_delay_grow() -> None:
    ppm, seconds = 500.0, 8.0  # 4 ms over the run: measurable to the sample
    played = played_noise(seconds)
    heard = through_room(played, RoomSettings(delay_s=0.02, drift_ppm=ppm, soft_clip=False))

    def lag_around(moment_s: float) -> int:  # over half a second (the delay grows 4 samples)
        window = slice(round((moment_s - 0.25) * INPUT_RATE), round((moment_s + 0.25) * INPUT_RATE))
        return lag_of(heard[window], played[window])

    growth = ppm * 1e-6 * 5.0 * INPUT_RATE
    assert lag_around(6.5) - lag_around(1.5) == pytest.approx(growth, abs=2)


def test_nothing_played_is_no_echo() -> None:
    room = Room(RoomSettings())
    near = np.arange(PERIOD, dtype=np.int16)
    assert np.array_equal(room.microphone(near, START), near)


def test_a_pause_in_playback_is_silence_in_the_room() -> None:
    played = played_noise(0.4)
    settings = RoomSettings(delay_s=0.02, **QUIET)
    device = np.repeat(np.frombuffer(resample(played.tobytes(), INPUT_RATE, 48_000), "<i2"), 2)
    room = Room(settings)
    room.played(device.tobytes(), 48_000, 2, START)
    room.played(device.tobytes(), 48_000, 2, START + 1.0)  # 0.6 s later than the end
    heard = [room.microphone(np.zeros(PERIOD, np.int16), START + (k + 1) * 0.02) for k in range(75)]
    levels = [level_db(period) if period.any() else -200.0 for period in heard]
    assert max(levels[35:50]) < -60  # the tail has died out well before the second play
    assert min(levels[52:70]) > 50  # the echo of the second play (~ -6 dB of 70 dB)


def test_the_soft_clipping_speaker_is_bounded() -> None:
    loud = np.linspace(-1.0, 1.0, 2001)
    assert np.max(np.abs(soft_clip(loud))) <= 0.4
    assert soft_clip(np.array([0.001]))[0] == pytest.approx(0.001, rel=1e-3)
    t = np.arange(INPUT_RATE) / INPUT_RATE
    full_scale = np.round(32767 * np.sin(2 * np.pi * 200 * t)).astype(np.int16)
    settings = RoomSettings(delay_s=0.02, drift_ppm=0.0, soft_clip=False)
    clean = through_room(full_scale, settings)[INPUT_RATE // 2 :]
    clipped = through_room(full_scale, replace(settings, soft_clip=True))[INPUT_RATE // 2 :]
    assert level_db(clipped) < level_db(clean) - 4  # a sine at full scale: tanh flattens it
    assert np.max(np.abs(clipped)) < np.max(np.abs(clean)) / 2


def test_the_room_response_decays_and_keeps_the_level() -> None:
    response = impulse_response(RoomSettings(rt60_s=0.2, tail_db=-3.0))
    assert np.sum(response**2) == pytest.approx(1.0)
    tail = response[1:]
    assert 10 * np.log10(np.sum(tail**2) / response[0] ** 2) == pytest.approx(-3.0, abs=0.01)
    early, late = tail[: INPUT_RATE // 50], tail[INPUT_RATE // 5 - INPUT_RATE // 50 :][:320]
    decay_db = 20 * np.log10(np.std(early) / np.std(late))
    assert decay_db == pytest.approx(60 * 0.19 / 0.2, abs=6)


def test_the_noise_is_minus_50_dbfs_by_default() -> None:
    assert 20 * np.log10(RoomSettings().noise_rms / 32768) == pytest.approx(-50.0)


# -- in real time, through real libasound ----------------------------------------------------


@pytest.mark.timeout(30)
async def test_the_bench_microphone_hears_what_alsa_played_a_bulk_delay_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mic_path, speaker_path = fifo(tmp_path / "mic"), fifo(tmp_path / "speaker")
    monkeypatch.setenv("ALSA_CONFIG_PATH", str(alsa_config(tmp_path, mic_path, speaker_path)))
    speaker = Speaker(speaker_path, 48_000 * 4, tmp_path / "log", tmp_path / "content")
    speaker.start()
    delay_s = 0.12
    room = Room(RoomSettings(delay_s=delay_s, drift_ppm=0.0, soft_clip=False))
    mic = Microphone(mic_path, keep=True, echo=Echo(room, speaker.reader(4), 48_000, 2))
    drain = threading.Thread(target=lambda: mic_path.read_bytes(), daemon=True)  # the "card"
    drain.start()
    mic.start()
    sink = AlsaSink(request(SPEAKER, 48_000, 2))
    try:
        await sink.start()
        sink.write(resample(played_noise(0.8).tobytes(), INPUT_RATE, OUTPUT_RATE))
        await sink.drain()
        await asyncio.sleep(delay_s + 0.3)
    finally:
        await sink.stop()
        mic.stop()
        speaker.stop()
    played, heard = played_timeline(speaker), heard_timeline(mic)
    start = min(played[0], heard[0])
    lag = lag_of(at_origin(heard, start), at_origin(played, start).astype(np.int16))
    assert abs(lag - delay_s * INPUT_RATE) <= 2 * INPUT_RATE / 1000  # 2 ms: the reads jitter


Timeline = tuple[float, npt.NDArray[np.float64]]  # the moment of the first sample, 16 kHz


def played_timeline(speaker: Speaker) -> Timeline:
    """What the speaker drained, each read at its moment, at 16 kHz (channel 0)."""
    records, content = speaker.records(), speaker.content
    assert content is not None
    data = np.frombuffer(content.read_bytes(), "<i2")[0::2].astype(np.float64)
    first = records[0][0]
    timeline = np.zeros(round((records[-1][0] - first + 1) * 48_000))
    offset = 0
    for moment, count in records:
        frames = count // 4
        at = round((moment - first) * 48_000)
        timeline[at : at + frames] = data[offset : offset + frames]
        offset += frames
    pcm = np.round(timeline).astype(np.int16).tobytes()
    return first, np.frombuffer(resample(pcm, 48_000, INPUT_RATE), "<i2").astype(np.float64)


def heard_timeline(mic: Microphone) -> Timeline:
    """The echo the microphone wrote (what it wrote less what it heard without the room)."""
    echo = np.frombuffer(mic.written, "<i2").astype(np.float64)
    echo -= np.frombuffer(mic.near, "<i2")
    first = mic.moments[0] - (PERIOD - 1) / INPUT_RATE
    periods = np.arange(len(mic.moments)) * PERIOD / INPUT_RATE
    assert np.allclose(np.array(mic.moments) - mic.moments[0], periods)  # a card's clock
    return first, echo


def at_origin(timeline: Timeline, origin: float) -> npt.NDArray[np.float64]:
    """The timeline's samples with silence before them from ``origin``."""
    first, samples = timeline
    return np.concatenate([np.zeros(round((first - origin) * INPUT_RATE)), samples])
