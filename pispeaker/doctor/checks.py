"""One check per function, each returning its Result: the configuration, the API key, a Live
session, the sound devices, the wake models, the GPIO pins, the state directory and the MCP
servers. Each imports its hardware or cloud library only when it runs."""

import asyncio
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from pispeaker.config import (
    DEFAULT_CONFIG_PATH,
    AudioConfig,
    Config,
    LiveConfig,
    PanelConfig,
    WakeConfig,
    load_config,
)
from pispeaker.credentials import (
    HOW_TO_SET,
    KEY_FILE,
    PLACES,
    ApiKey,
    find_api_key,
    mcp_tokens,
)
from pispeaker.doctor.holders import Holder, holder_of
from pispeaker.doctor.results import Result, ok, problem, skipped, warning
from pispeaker.errors import ConfigError, CredentialError, PispeakerError
from pispeaker.live.models import known_models

#: The least microphone audio judged, in seconds.
MIN_SECONDS = 0.1
#: Said of a device or pin the running service holds.
STOP_SERVICE = (
    "this check needs the service stopped: sudo systemctl stop pispeaker, run "
    "`pispeaker doctor` again, then sudo systemctl start pispeaker"
)

# -- configuration and key -----------------------------------------------------------------


def check_config(path: Path | None) -> tuple[Result, Config | None]:
    """The configuration file (``path``, else the default one if it exists): every problem
    at once; the Config to check the rest with, None if it is unusable."""
    name = "configuration"
    if path is None and not DEFAULT_CONFIG_PATH.exists():
        return warning(
            name,
            f"no {DEFAULT_CONFIG_PATH}: using the built-in defaults",
            f"create {DEFAULT_CONFIG_PATH} from config/pispeaker.toml, or pass --config PATH",
        ), Config()
    path = path or DEFAULT_CONFIG_PATH
    try:
        config = load_config(path)
    except ConfigError as error:
        count = f"{len(error.problems)} problem{'s' if len(error.problems) != 1 else ''}"
        return problem(
            name,
            f"{path}: {count}: {'; '.join(error.problems)}",
            f"fix them in {path} (`pispeaker check-config` checks it again); the other checks "
            "need a valid configuration",
        ), None
    if config.warnings():
        return warning(name, f"{path}: valid, but {'; '.join(config.warnings())}"), config
    return ok(name, f"{path}: valid"), config


def check_key(live: LiveConfig, environ: Mapping[str, str]) -> tuple[Result, ApiKey | None]:
    """Where the API key comes from (never its value); outside the service, the service's
    key file when this user can read it."""
    name = "API key"
    try:
        key = find_api_key(live, environ) or _service_key_file(live)
    except CredentialError as error:
        return problem(name, str(error), HOW_TO_SET), None
    if key is not None:
        return ok(name, f"found in {key.source} (value hidden)"), key
    if KEY_FILE.exists():
        return problem(
            name,
            f"the service's key is in {KEY_FILE}, which this user cannot read",
            "run it as root (sudo pispeaker doctor), or with the service's credential as "
            "deploy/doctor.yml does",
        ), None
    return problem(
        name, f"no Gemini API key found; looked in {', '.join(PLACES)}", HOW_TO_SET
    ), None


def _service_key_file(live: LiveConfig) -> ApiKey | None:
    """The key the service loads (LoadCredential= from KEY_FILE), read directly: by hand,
    the credential is not there. None if the file is absent or unreadable to this user."""
    if not os.access(KEY_FILE, os.R_OK):
        return None
    return find_api_key(live.model_copy(update={"api_key_file": KEY_FILE}), {})


async def check_session(live: LiveConfig, key: ApiKey) -> Result:
    """Open a real session with the configured model and endpoint and close it at once."""
    from pispeaker.live import genai  # the SDK: only for this check

    name = "Live session"
    where = f"{live.model!r} at {live.base_url} ({live.api_version})"
    failure = await genai.try_session(live, key.value.get_secret_value())
    if failure is None:
        return ok(name, f"{where} accepted a session (closed at once, nothing sent)")
    what = failure.message.partition("; ")[0]  # its own next step is replaced by a fuller one
    if failure.cause == "key":
        return problem(
            name,
            f"the Live API rejected the API key from {key.source}: {what}",
            f"put a valid key there (Google AI Studio makes one). {HOW_TO_SET}",
        )
    if failure.cause == "model":
        return problem(
            name,
            f"{where}: {what}",
            f"set live.model to a Live model the key may use (pispeaker knows "
            f"{known_models()}); check live.api_version",
        )
    if failure.cause == "quota":
        return problem(
            name,
            f"{what}, for the key from {key.source}",
            "wait for the quota to refill (per minute or per day), or raise it: check the "
            "plan and billing of the key's project",
        )
    return problem(
        name,
        f"{where}: {failure.message}",
        "run `pispeaker doctor` again; if it persists, see the journal (journalctl -u pispeaker)",
    )


# -- sound ---------------------------------------------------------------------------------


async def check_microphone(audio: AudioConfig, seconds: float, service: int | None) -> Result:
    """Open the capture device at the configured format, record ``seconds`` and judge the
    level: silence (wrong device or muted), very quiet, clipping. ``service`` is the pid of
    the running service, if it runs."""
    from pispeaker.audio import alsa
    from pispeaker.audio.pcm import INPUT_RATE
    from pispeaker.audio.ports import DeviceLostError
    from pispeaker.soundcheck import Levels

    name = "microphone"
    held = holder_of(audio.capture_device, True, service)
    if held is not None:
        return _held(name, f"audio.capture_device {audio.capture_device!r}", held, service)
    source = alsa.AlsaSource(
        alsa.capture_request(audio), chunk_ms=100, channel=audio.capture_channel
    )
    levels = Levels()
    try:
        await source.start()
        while levels.samples < max(seconds, MIN_SECONDS) * INPUT_RATE:
            levels.add(await source.read())
    except DeviceLostError as error:
        return _device_failed(name, "audio.capture_device", error, service is not None)
    finally:
        await source.stop()
    assert source.opened is not None
    heard = (
        f"{audio.capture_device!r} ({source.opened.describe()}): {levels.seconds:.1f} s, "
        f"peak {levels.peak_dbfs:.1f} dBFS, average {levels.average_dbfs:.1f} dBFS"
    )
    return _judge_level(name, heard, levels.peak_dbfs)


def _judge_level(name: str, heard: str, peak_dbfs: float) -> Result:
    from pispeaker.audio.pcm import SILENCE_DBFS
    from pispeaker.soundcheck import (
        CLIPPING_NEXT_STEP,
        CLIPPING_PEAK_DBFS,
        QUIET_NEXT_STEP,
        QUIET_PEAK_DBFS,
    )

    if peak_dbfs <= SILENCE_DBFS:
        return problem(
            name, f"{heard}: silence, every sample 0 (wrong device, or muted)", QUIET_NEXT_STEP
        )
    if peak_dbfs < QUIET_PEAK_DBFS:
        return warning(name, f"{heard}: very quiet (wrong device, or muted?)", QUIET_NEXT_STEP)
    if peak_dbfs > CLIPPING_PEAK_DBFS:
        return warning(name, f"{heard}: the signal clips", CLIPPING_NEXT_STEP)
    return ok(name, heard)


async def check_speaker(
    audio: AudioConfig, play: bool, environ: Mapping[str, str], service: int | None
) -> Result:
    """Open the playback device at the configured format; with ``play``, play the chime at
    the speaker's volume. ``service`` is the pid of the running service, if it runs."""
    from pispeaker.app import build_volume
    from pispeaker.audio import alsa
    from pispeaker.audio.ports import DeviceLostError
    from pispeaker.soundcheck import chime

    name = "speaker"
    held = holder_of(audio.playback_device, False, service)
    if held is not None:
        return _held(name, f"audio.playback_device {audio.playback_device!r}", held, service)
    sink = alsa.AlsaSink(alsa.playback_request(audio))
    volume = build_volume(audio, environ)
    try:
        await sink.start()
        if play:
            sink.write(volume.apply(chime()))
            await sink.drain()
    except DeviceLostError as error:
        return _device_failed(name, "audio.playback_device", error, service is not None)
    finally:
        await sink.stop()
    assert sink.opened is not None
    played = f"; played the chime at volume {volume.level}" if play else " (--play plays a chime)"
    opens = f"{audio.playback_device!r} opens ({sink.opened.describe()}){played}"
    mixer = _mixer_problem(audio)
    if mixer:
        return warning(
            name,
            f"{opens}; but {mixer}: the volume is set in software instead",
            'set audio.mixer_control to one of those controls, or to "" for software volume',
        )
    return ok(name, opens)


def _mixer_problem(audio: AudioConfig) -> str | None:
    """Why the configured hardware volume control cannot be used (None if it can, or if
    there is none)."""
    if not audio.mixer_control:
        return None
    from pispeaker.audio.alsa import open_mixer
    from pispeaker.audio.ports import DeviceLostError

    try:
        open_mixer(audio.mixer_control, audio.mixer_device)
    except DeviceLostError as error:
        return str(error)
    return None


def _held(name: str, device: str, held: Holder, service: int | None) -> Result:
    """A device another process holds: not opened (the open would wait for it)."""
    if held.pid == service:
        return warning(name, f"{device} is in use by the running service ({held})", STOP_SERVICE)
    return problem(
        name,
        f"{device} is in use by {held}",
        "stop that program, or let programs share the device (dsnoop/dmix, see config/alsa/)",
    )


def _device_failed(name: str, key: str, error: PispeakerError, service_active: bool) -> Result:
    """A device that would not open: held by the running service (a warning: the check needs
    it stopped), or a problem."""
    from pispeaker.audio.alsa.device import NEXT_STEP

    message = str(error).removesuffix(f"; {NEXT_STEP}")
    if service_active and _busy(message):
        return warning(name, f"{message} (the running service holds it)", STOP_SERVICE)
    return problem(
        name,
        message,
        f"plug in the {name}, find its name with `pispeaker devices` and set {key} (by card name, "
        "e.g. plughw:CARD=Device,DEV=0)",
    )


def _busy(message: str) -> bool:
    return any(word in message.lower() for word in ("busy", "did not open within"))


# -- wake word and panel -------------------------------------------------------------------


async def check_wake(wake: WakeConfig) -> Result:
    """Load the wake-word models as the service does."""
    from pispeaker.app import wake_detector

    name = "wake word"
    if not wake.models:
        return skipped(name, "none configured (wake.models is empty): only the button starts")
    try:
        detector = await asyncio.to_thread(wake_detector, wake)
    except (PispeakerError, ValueError, OSError) as error:
        return problem(
            name,
            f"the models {wake.models} do not load: {error}",
            "fix wake.models (a built-in name such as hey_jarvis, or a .tflite/.onnx file "
            "readable by the service)",
        )
    return ok(name, f"loaded {', '.join(detector.scorer.names)}")


async def check_panel(panel: PanelConfig, service_active: bool) -> Result:
    """Claim the button's and the LEDs' pins, as the service does, and free them."""
    name = "GPIO"
    pins = ([panel.button_pin] if panel.button_pin else []) + list(panel.led_pins)
    if not pins:
        return skipped(name, "no button or LEDs configured (panel.button_pin, panel.led_pins)")
    from pispeaker.panel.gpio import ButtonInput, PanelError, StatusLeds

    try:
        if panel.button_pin:
            async with ButtonInput(panel, lambda _gesture: None):
                pass
        if panel.led_pins:
            async with StatusLeds(panel):
                pass
    except PanelError as error:
        if service_active and _busy(str(error)):
            return warning(name, f"{error} (the running service holds them)", STOP_SERVICE)
        return problem(
            name,
            str(error),
            "free the pins or change panel.button_pin/panel.led_pins; then check the wiring "
            "with `pispeaker test-button` and `pispeaker test-leds`",
        )
    return ok(name, f"{', '.join(f'GPIO{pin}' for pin in pins)} free and usable")


# -- state and tools -----------------------------------------------------------------------


def check_state_dir(environ: Mapping[str, str]) -> Result:
    """Write and remove a file where pispeaker keeps its state (the volume)."""
    from pispeaker.audio.volume import state_dir

    name = "state directory"
    path = state_dir(environ)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".doctor-"):
            pass
    except OSError as error:
        return problem(
            name,
            f"{path} is not writable ({error.strerror or error}): the volume is not remembered",
            f"give it to the user that runs pispeaker (for the service: sudo chown -R "
            f"pispeaker:pispeaker {path}, which systemd's StateDirectory= normally does)",
        )
    return ok(name, f"{path} is writable")


async def check_mcp(config: Config, environ: Mapping[str, str]) -> Result:
    """Connect to every configured MCP server and list its tools, as a session would."""
    from pispeaker.app import tool_servers

    name = "MCP servers"
    if not config.tools.mcp:
        return skipped(name, "none configured ([[tools.mcp]])")
    try:
        tokens = mcp_tokens(config.tools.mcp, environ)
    except CredentialError as error:
        return problem(name, str(error), "run as root (sudo pispeaker doctor), or fix the file")
    async with tool_servers(config.tools.mcp, tokens) as hub:
        assert hub is not None
        states = hub.states()
    down = [state for state in states if not state.reachable]
    if down:
        return problem(
            name,
            "; ".join(f"{state.name}: {state.reason}" for state in down),
            "check each server's url or command and token; `pispeaker tools` shows them all",
        )
    return ok(
        name, "; ".join(f"{state.name}: reachable, {len(state.tools)} tools" for state in states)
    )
