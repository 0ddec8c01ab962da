"""Hardware volume: a simple mixer control of an ALSA card."""

from collections.abc import Callable

import alsaaudio

from pispeaker.audio.alsa.device import quiet_libasound
from pispeaker.audio.ports import DeviceLostError


def open_mixer(control: str, device: str) -> Callable[[int], None]:
    """A setter of hardware volume control ``control`` on ``device``, 0-100 (percent of the
    control's range). Raises DeviceLostError listing the controls that device has."""
    quiet_libasound()
    try:
        mixer = alsaaudio.Mixer(control, device=device)
    except alsaaudio.ALSAAudioError as error:
        raise DeviceLostError(
            f"audio.mixer_control {control!r} on audio.mixer_device {device!r}: {error}; "
            f"controls there: {', '.join(mixer_controls(device)) or 'none'}"
        ) from error

    def set_level(level: int) -> None:
        mixer.setvolume(level)

    return set_level


def mixer_controls(device: str) -> list[str]:
    """The simple mixer controls of ``device`` (empty if it has none or is missing)."""
    quiet_libasound()
    try:
        return list(alsaaudio.mixers(device=device))
    except alsaaudio.ALSAAudioError:
        return []
