"""What sound hardware there is and what it accepts (for ``pispeaker devices``), and the
device requests the [audio] config section makes."""

from dataclasses import dataclass
from typing import Any

import alsaaudio

from pispeaker.audio.alsa.device import Request, quiet_libasound
from pispeaker.config import AudioConfig

#: Channel counts probed (asking a plug device for every count it "supports" never ends).
PROBED_CHANNELS = (1, 2, 4, 6, 8)
#: Above this, a rate range means "anything": ALSA's plug layer converts.
MAX_REAL_RATE = 768_000


# -- what the config asks for ------------------------------------------------------------------


def capture_request(audio: AudioConfig) -> Request:
    """The capture device request from the [audio] section."""
    return _request(audio, "capture")


def playback_request(audio: AudioConfig) -> Request:
    """The playback device request from the [audio] section."""
    return _request(audio, "playback")


def _request(audio: AudioConfig, direction: str) -> Request:
    def setting(name: str) -> Any:
        return getattr(audio, f"{direction}_{name}")

    return Request(
        f"audio.{direction}_device",
        setting("device"),
        setting("rate"),
        setting("channels"),
        setting("format"),
        audio.period_ms,
        audio.periods,
    )


# -- what is there -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Card:
    """A sound card: its index, short id (as in CARD=...) and long name."""

    index: int
    id: str
    name: str


@dataclass(frozen=True)
class DeviceReport:
    """What one ALSA PCM accepts, or why it could not be opened."""

    name: str
    rates: str = ""
    channels: tuple[int, ...] = ()
    formats: tuple[str, ...] = ()
    problem: str = ""


def cards() -> list[Card]:
    """The sound cards the kernel knows."""
    quiet_libasound()
    return [
        Card(index, alsaaudio.cards()[position], str(alsaaudio.card_name(index)[0]))
        for position, index in enumerate(alsaaudio.card_indexes())
    ]


def device_names(capture: bool) -> list[str]:
    """The PCM names ALSA's configuration offers for capture or playback."""
    quiet_libasound()
    return list(alsaaudio.pcms(alsaaudio.PCM_CAPTURE if capture else alsaaudio.PCM_PLAYBACK))


def probe(name: str, capture: bool) -> DeviceReport:
    """Open ``name`` without waiting (a busy device says so) and ask what it accepts."""
    quiet_libasound()
    kind = alsaaudio.PCM_CAPTURE if capture else alsaaudio.PCM_PLAYBACK
    try:
        pcm = alsaaudio.PCM(kind, alsaaudio.PCM_NONBLOCK, device=name)
    except alsaaudio.ALSAAudioError as error:
        return DeviceReport(name, problem=str(error))
    try:
        formats = tuple(pcm.getformats())
        rates = _describe_rates(pcm.getrates())
    finally:
        pcm.close()
    return DeviceReport(name, rates, _channels(kind, name), formats)


def _describe_rates(rates: int | tuple[int, int] | list[int]) -> str:
    if isinstance(rates, int):
        return f"{rates} Hz"
    if isinstance(rates, tuple):
        low, high = rates
        if high > MAX_REAL_RATE:
            return "any rate (ALSA converts)"
        return f"{low}-{high} Hz"
    return ", ".join(str(rate) for rate in rates) + " Hz"


def _channels(kind: int, name: str) -> tuple[int, ...]:
    accepted = []
    for count in PROBED_CHANNELS:
        try:
            pcm = alsaaudio.PCM(kind, alsaaudio.PCM_NONBLOCK, device=name, channels=count)
        except alsaaudio.ALSAAudioError:
            continue
        if int(pcm.info()["channels"]) == count:
            accepted.append(count)
        pcm.close()
    return tuple(accepted)
