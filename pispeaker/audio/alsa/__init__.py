"""ALSA sound cards through pyalsaaudio: this package alone imports alsaaudio.

Each open device belongs to one thread that opens, reads or writes, and closes it, so no
PCM is ever touched by two threads (and a read stuck on a dead device cannot block the event
loop). Capture and playback run at whatever rate, channel count and sample format the device
accepts; convert.py turns that into pispeaker's 16 kHz and 24 kHz mono s16le.

A device that fails, vanishes (USB unplug) or stops delivering audio raises, or reports
through ``wait_lost``, a DeviceLostError that names the config key, the device and the next
step; the controller then shows ERROR and calls ``start`` again with backoff.

Modules: device (requests, opening, the thread that owns a device), capture (AlsaSource),
playback (AlsaSink), mixer (hardware volume), probing (what is there; config requests).
"""

from pispeaker.audio.alsa.capture import STALL_S, AlsaSource
from pispeaker.audio.alsa.device import (
    PREFERRED_FORMATS,
    Opened,
    Opener,
    Pcm,
    Request,
    open_device,
)
from pispeaker.audio.alsa.mixer import mixer_controls, open_mixer
from pispeaker.audio.alsa.playback import AlsaSink
from pispeaker.audio.alsa.probing import (
    Card,
    DeviceReport,
    capture_request,
    cards,
    device_names,
    playback_request,
    probe,
)

__all__ = [
    "PREFERRED_FORMATS",
    "STALL_S",
    "AlsaSink",
    "AlsaSource",
    "Card",
    "DeviceReport",
    "Opened",
    "Opener",
    "Pcm",
    "Request",
    "capture_request",
    "cards",
    "device_names",
    "mixer_controls",
    "open_device",
    "open_mixer",
    "playback_request",
    "probe",
]
