"""``pispeaker devices``, ``test-mic`` and ``test-speaker``: find and check the sound hardware
with the same adapters and settings the service uses."""

import asyncio
import math
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from pispeaker.audio import alsa
from pispeaker.audio.pcm import (
    INPUT_RATE,
    OUTPUT_RATE,
    SILENCE_DBFS,
    rms_dbfs,
    silence,
    to_samples,
    tone,
)
from pispeaker.audio.volume import Volume
from pispeaker.audio.wavfile import write_wav
from pispeaker.config import AudioConfig

#: A microphone quieter than this at its loudest is probably the wrong one, or muted.
QUIET_PEAK_DBFS = -50.0
#: A peak this close to full scale means the signal is clipped.
CLIPPING_PEAK_DBFS = -0.5
#: What to do about a microphone that is too quiet, and about one that clips.
QUIET_NEXT_STEP = (
    "check that it is the right device (`pispeaker devices`) and that the microphone is "
    "unmuted with its gain up (alsamixer: F4 shows the capture controls)"
)
CLIPPING_NEXT_STEP = "turn the microphone gain down (alsamixer)"
#: The level meter's range, in dBFS.
METER_FLOOR_DBFS = -70.0
METER_WIDTH = 40
#: Notes of the chime (Hz) and their length (s).
CHIME = ((660.0, 0.15), (880.0, 0.15), (1320.0, 0.3))

# -- devices ---------------------------------------------------------------------------------


def show_devices(out: TextIO) -> int:
    """Print the cards, every capture and playback PCM with what it accepts, the mixer
    controls, and config lines to start from."""
    cards = alsa.cards()
    out.write("Sound cards:\n")
    for card in cards:
        out.write(f"  {card.index}: {card.id}  ({card.name})\n")
    if not cards:
        out.write("  none found: plug in a USB microphone and speaker (or check `lsusb`)\n")
    for capture in (True, False):
        out.write(f"\n{'Capture' if capture else 'Playback'} devices:\n")
        for name in alsa.device_names(capture):
            out.write(f"  {_describe(alsa.probe(name, capture))}\n")
    for card in cards:
        controls = alsa.mixer_controls(f"hw:CARD={card.id}")
        out.write(f"\nMixer controls on hw:CARD={card.id}: {', '.join(controls) or 'none'}\n")
    out.write("\n" + suggested_config(cards))
    return 0


def _describe(report: alsa.DeviceReport) -> str:
    if report.problem:
        return f"{report.name:<34} unavailable: {report.problem}"
    usable = [name for name in report.formats if name in alsa.PREFERRED_FORMATS]
    channels = ", ".join(str(count) for count in report.channels) or "?"
    return (
        f"{report.name:<34} {report.rates}; channels {channels}; "
        f"formats {', '.join(usable) or 'none pispeaker reads'}"
    )


def suggested_card(cards: list[alsa.Card]) -> alsa.Card | None:
    """The card to record from and play to: USB first (the Pi's own HDMI and headphone
    outputs have no microphone), then the lowest index."""
    ranked = sorted(
        cards, key=lambda card: ("usb" not in f"{card.id} {card.name}".lower(), card.index)
    )
    return ranked[0] if ranked else None


def suggested_config(cards: list[alsa.Card]) -> str:
    """Config lines for the suggested cards, by name (card numbers change between boots)."""
    card = suggested_card(cards)
    if card is None:
        return "No card to suggest; after plugging one in, run `pispeaker devices` again.\n"
    lines = [
        "Suggested lines for /etc/pispeaker/pispeaker.toml (check with test-mic/test-speaker):",
        "  [audio]",
        f'  capture_device = "plughw:CARD={card.id},DEV=0"',
        f'  playback_device = "plughw:CARD={card.id},DEV=0"',
    ]
    controls = alsa.mixer_controls(f"hw:CARD={card.id}")
    volume = next(
        (name for name in ("PCM", "Speaker", "Master", "Headphone") if name in controls), ""
    )
    if volume:
        lines += [
            f'  mixer_control = "{volume}"',
            f'  mixer_device = "hw:CARD={card.id}"',
        ]
    return "\n".join(lines) + "\n"


# -- test-mic --------------------------------------------------------------------------------


@dataclass
class Levels:
    """What the microphone heard."""

    samples: int = 0
    peak_dbfs: float = SILENCE_DBFS
    energy: float = 0.0  # sum of squared samples, for the average level

    def add(self, chunk: bytes) -> None:
        samples = to_samples(chunk).astype(float)
        self.samples += samples.size
        self.energy += float((samples * samples).sum())
        peak = float(abs(samples).max()) if samples.size else 0.0
        if peak:
            self.peak_dbfs = max(self.peak_dbfs, 20 * math.log10(peak / 32768))

    @property
    def seconds(self) -> float:
        return self.samples / INPUT_RATE

    @property
    def average_dbfs(self) -> float:
        if not self.energy:
            return SILENCE_DBFS
        return 10 * math.log10(self.energy / self.samples) - 20 * math.log10(32768)


def meter(dbfs: float) -> str:
    """A text bar for a level in dBFS."""
    filled = round(
        METER_WIDTH * (max(dbfs, METER_FLOOR_DBFS) - METER_FLOOR_DBFS) / -METER_FLOOR_DBFS
    )
    return "[" + "#" * filled + "." * (METER_WIDTH - filled) + f"] {dbfs:6.1f} dBFS"


async def test_mic(audio: AudioConfig, seconds: float, record: Path | None, out: TextIO) -> int:
    """Show the microphone level live for ``seconds`` (0: until Ctrl-C), optionally saving
    what it heard as a 16 kHz WAV."""
    source = alsa.AlsaSource(
        alsa.capture_request(audio), chunk_ms=100, channel=audio.capture_channel
    )
    await source.start()
    assert source.opened is not None
    out.write(
        f"Listening on {audio.capture_device!r} ({source.opened.describe()}); "
        f"speak: the bar should reach about -30 to -10 dBFS. Ctrl-C stops.\n"
    )
    levels, heard = Levels(), bytearray()
    live = out.isatty()
    stop = asyncio.Event()  # Ctrl-C ends the meter and shows what was heard
    asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop.set)
    try:
        while not stop.is_set() and (not seconds or levels.samples < seconds * INPUT_RATE):
            chunk = await source.read()
            levels.add(chunk)
            if record:
                heard += chunk
            if live:
                out.write("\r" + meter(rms_dbfs(chunk)))
            elif round(levels.seconds * 10) % 5 == 0:
                out.write(f"{levels.seconds:5.1f}s {meter(rms_dbfs(chunk))}\n")
            out.flush()
    finally:
        asyncio.get_running_loop().remove_signal_handler(signal.SIGINT)
        await source.stop()
    if record:
        write_wav(record, bytes(heard), INPUT_RATE)
    out.write(("\n" if live else "") + _mic_summary(levels, source, record))
    return 0


def _mic_summary(levels: Levels, source: alsa.AlsaSource, record: Path | None) -> str:
    lines = [
        f"Heard {levels.seconds:.1f} s: average {levels.average_dbfs:.1f} dBFS, "
        f"peak {levels.peak_dbfs:.1f} dBFS; {source.overruns} overruns."
    ]
    if levels.peak_dbfs < QUIET_PEAK_DBFS:
        lines.append(f"That is very quiet: {QUIET_NEXT_STEP}.")
    if levels.peak_dbfs > CLIPPING_PEAK_DBFS:
        lines.append(f"The signal clips: {CLIPPING_NEXT_STEP}.")
    if record:
        lines.append(f"Recorded to {record} (16 kHz mono, as the Live API hears it).")
    return "\n".join(lines) + "\n"


# -- test-speaker ----------------------------------------------------------------------------


def chime() -> bytes:
    """Three rising notes with short gaps."""
    notes = (tone(hz, length, OUTPUT_RATE) + silence(0.04, OUTPUT_RATE) for hz, length in CHIME)
    return b"".join(notes)


async def test_speaker(
    audio: AudioConfig,
    volume: Volume,
    frequency_hz: float,
    seconds: float,
    use_chime: bool,
    out: TextIO,
) -> int:
    """Play a tone (or the chime) at the current volume through the configured speaker."""
    sound = chime() if use_chime else tone(frequency_hz, seconds, OUTPUT_RATE)
    sink = alsa.AlsaSink(alsa.playback_request(audio))
    await sink.start()
    assert sink.opened is not None
    what = "the chime" if use_chime else f"a {frequency_hz:g} Hz tone for {seconds:g} s"
    out.write(
        f"Playing {what} on {audio.playback_device!r} ({sink.opened.describe()}) "
        f"at volume {volume.level}.\n"
    )
    try:
        sink.write(volume.apply(sound))
        await sink.drain()
    finally:
        await sink.stop()
    out.write(
        f"Done; {sink.underruns} underruns. Heard nothing? Check the volume and cable, "
        "and run `pispeaker devices`.\n"
    )
    return 0
