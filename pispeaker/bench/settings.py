"""The configuration pispeaker runs with on the bench: the owner's (or the defaults), pointed
at the bench's devices and emulator, with the bench's wake word and quick turns."""

from pispeaker.bench.rig import MIC, SPEAKER, Endpoint
from pispeaker.bench.speech import WAKE_MODEL
from pispeaker.config import Config


def bench_config(
    config: Config,
    endpoint: Endpoint,
    capture: tuple[int, int],
    playback: tuple[int, int],
    duplex: str = "hardware",
) -> Config:
    """``config`` on the bench: ``capture`` and ``playback`` are (rate, channels) of s16le.

    The period, the uplink chunk, the voice detection and the wake-word settings stay the
    owner's; earcons, the mixer and the panel are off (they are not what is measured)."""
    live = config.live.model_copy(
        update={
            "base_url": endpoint.base_url,
            "ca_file": endpoint.ca_file,
            "api_key_file": None,
            "silence_duration_ms": 300,
        }
    )
    audio = config.audio.model_copy(
        update={
            "capture_device": MIC,
            "capture_rate": capture[0],
            "capture_channels": capture[1],
            "capture_format": "S16_LE",
            "capture_channel": 0,
            "playback_device": SPEAKER,
            "playback_rate": playback[0],
            "playback_channels": playback[1],
            "playback_format": "S16_LE",
            "volume": 100,
            "mixer_control": "",
        }
    )
    conversation = config.conversation.model_copy(
        update={"earcons": False, "follow_up_s": 1.0, "duplex": duplex}
    )
    wake = config.wake.model_copy(update={"models": [WAKE_MODEL], "thresholds": {}})
    panel = config.panel.model_copy(update={"button_pin": 0, "led_pins": []})
    return config.model_copy(
        update={
            "live": live,
            "audio": audio,
            "conversation": conversation,
            "wake": wake,
            "panel": panel,
        }
    )
