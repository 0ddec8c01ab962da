"""The composition root: builds the controller from config and runs it with its ports,
started in dependency order and stopped in reverse within a bounded time."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING

from pispeaker.audio.ports import AudioSink, AudioSource, Canceller, DeviceLostError, VoiceModel
from pispeaker.audio.volume import Volume, state_dir
from pispeaker.config import AudioConfig, Config, McpServerConfig, PanelConfig, WakeConfig
from pispeaker.controller import Controller, MakeWake, Policy
from pispeaker.conversation.core import Duplex
from pispeaker.credentials import McpToken
from pispeaker.errors import ConfigError, EchoCancellerError, VoiceDetectorError
from pispeaker.live.instruction import session_instruction
from pispeaker.live.port import Report
from pispeaker.panel.gestures import Gesture
from pispeaker.states import Event, Status
from pispeaker.tools import Tool, ToolSource
from pispeaker.wake.detector import Frame
from pispeaker.wake.listener import WakeListener

if TYPE_CHECKING:
    from pispeaker.audio.alsa import AlsaSink, AlsaSource
    from pispeaker.mcphub import McpHub
    from pispeaker.panel.gpio import Panel
    from pispeaker.wake.detector import WakeDetector
    from pispeaker.wake.journal import WakeJournal

log = logging.getLogger(__name__)

#: How long stopping may take before it is abandoned.
STOP_TIMEOUT_S = 5.0


def policy_from(config: Config) -> Policy:
    """The controller's policy from the [conversation] and [logging] sections."""
    conversation = config.conversation
    return Policy(
        follow_up_s=conversation.follow_up_s,
        max_unanswered_s=conversation.max_unanswered_s,
        max_session_s=conversation.max_session_s,
        max_reconnects=conversation.max_reconnects,
        duplex=Duplex(conversation.duplex),
        wake_barge_in=config.wake.barge_in,
        voice_interrupts=config.live.activity_handling == "interrupt",
        preroll_s=config.wake.preroll_s,
        earcons=conversation.earcons,
        log_transcripts=config.logging.transcripts,
    )


def build_volume(audio: AudioConfig, environ: Mapping[str, str]) -> Volume:
    """The volume kept in the state directory, on the configured mixer control if it can
    be opened (else in software, with a warning naming the controls there are)."""
    mixer = None
    if audio.mixer_control:
        from pispeaker.audio.alsa import open_mixer  # only with ALSA mixer hardware

        try:
            mixer = open_mixer(audio.mixer_control, audio.mixer_device)
        except DeviceLostError as error:
            log.warning("%s; using software volume instead", error)
    return Volume(audio.volume, state_dir(environ) / "volume", mixer)


def build_alsa_ports(config: Config) -> "tuple[AlsaSource, AlsaSink]":
    """The microphone and the speaker of the [audio] section (opened by ``started``)."""
    from pispeaker.audio import alsa  # only with a sound card

    source = alsa.AlsaSource(
        alsa.capture_request(config.audio),
        chunk_ms=config.live.uplink_chunk_ms,
        channel=config.audio.capture_channel,
    )
    return source, alsa.AlsaSink(alsa.playback_request(config.audio))


def wake_detector(wake: WakeConfig) -> "WakeDetector":
    """The detector for ``wake`` (which must list a model), its models loaded: a missing
    or corrupt one is reported here, before anything runs."""
    from pispeaker.wake.catalog import resolve
    from pispeaker.wake.detector import WakeDetector
    from pispeaker.wake.engine import load_scorer

    scorer = load_scorer(resolve(wake.models))
    thresholds = {name: wake.threshold_of(name) for name in scorer.names}
    return WakeDetector(scorer, thresholds, wake.refractory_s, wake.warmup_s)


def wake_maker(
    wake: WakeConfig, on_frame: Callable[[Frame], None] | None = None
) -> MakeWake | None:
    """What builds the wake-word listener for ``wake`` (None if it lists no model)."""
    if not wake.models:
        return None
    detector = wake_detector(wake)
    return lambda report: WakeListener(detector, report, on_frame)


def build_journal(
    wake: WakeConfig, environ: Mapping[str, str], controller: Controller
) -> "WakeJournal | None":
    """The false-wake journal in the state directory, attached to ``controller``, if
    ``wake.journal`` is on and a wake word listens (None otherwise: nothing is kept, at no
    cost). Close it once the controller has stopped."""
    if not wake.journal or controller.wake is None:
        return None
    from pispeaker.wake.journal import DIRECTORY, WakeJournal

    directory = state_dir(environ) / DIRECTORY
    journal = WakeJournal(directory, wake.journal_max_files, wake.journal_max_mb * 1_000_000)
    journal.attach(controller)
    log.info("wake journal on: each detection is kept in %s", directory)
    return journal


def build_controller(
    config: Config,
    api_key: str,
    source: AudioSource,
    sink: AudioSink,
    on_state: Callable[[Status], None] = lambda status: None,
    volume: Volume | None = None,
    make_wake: MakeWake | None = None,
    tool_source: ToolSource | None = None,
) -> Controller:
    """A controller talking to ``config.live`` through the given audio ports, woken by
    ``make_wake``'s listener (see ``wake_maker``) or by the button alone."""
    from pispeaker.live.link import LiveLink  # google.genai: only for a controller

    def make_link(report: Report, tools: Callable[[], list[Tool]]) -> LiveLink:
        def instruction() -> str:  # made afresh for each session: it says when it starts
            return session_instruction(config.live.system_instruction, config.assistant)

        return LiveLink(config.live, api_key, report, tools, instruction=instruction)

    policy = policy_from(config)
    return Controller(
        source,
        sink,
        make_link,
        policy,
        on_state=on_state,
        volume=volume,
        make_wake=make_wake,
        canceller=build_canceller(policy.duplex),
        voice_model=build_voice_model(),
        tool_source=tool_source,
    )


@contextlib.asynccontextmanager
async def tool_servers(
    servers: list[McpServerConfig], tokens: Mapping[str, McpToken]
) -> AsyncIterator["McpHub | None"]:
    """The MCP servers ``servers``, connected with their ``tokens`` (each bounded by its
    timeout_s; one that is down is logged, and tried again as each conversation opens), and
    closed on exit; None if there are none."""
    if not servers:
        yield None
        return
    from pispeaker.mcphub import McpHub  # the mcp SDK: only with servers

    secrets = {name: token.value.get_secret_value() for name, token in tokens.items()}
    async with McpHub(servers, secrets) as hub:
        await hub.refresh()
        yield hub


def build_canceller(duplex: Duplex) -> Canceller | None:
    """The echo canceller ``duplex`` runs (None for "hardware" and "off"). One that cannot
    load is a configuration error with "aec", and with "auto" means the microphone is
    withheld while the speaker talks (the controller says so)."""
    if not duplex.cancels_echo:
        return None
    from pispeaker.audio.echo import EchoCanceller  # pywebrtc-audio: only when it is used

    try:
        return EchoCanceller()
    except EchoCancellerError as error:
        if duplex is Duplex.AEC:
            raise ConfigError(
                "conversation.duplex", [f'conversation.duplex: "aec" needs {error}']
            ) from error
        log.warning("%s", error)
        return None


def build_voice_model() -> VoiceModel | None:
    """The on-device voice detector: it tells the user's speech from other sounds over a
    reply and in the follow-up window (None if it cannot load: then the level gate hears
    the user over a reply, and the follow-up window goes by the service's signals)."""
    try:
        from pispeaker.audio.voice import VoiceDetector  # onnxruntime: only when it is used

        return VoiceDetector()
    except (ImportError, VoiceDetectorError) as error:
        log.warning("no on-device voice detector (%s); a sound is taken for the user", error)
        return None


#: What each button gesture means to the conversation (DESIGN.md: press = start / stop the
#: reply / end; hold = mute toggle; the state machine decides which).
GESTURE_EVENTS = {Gesture.PRESS: Event.BUTTON_PRESS, Gesture.HOLD: Event.BUTTON_HOLD}


def build_panel(panel: PanelConfig, controller: Controller) -> "Panel | None":
    """The button and LEDs of ``panel``, wired to ``controller``: gestures become its events,
    and every state it enters is shown (once ``started`` opens the panel). None without a
    button or an LED: gpiozero is then never imported."""
    if not panel.button_pin and not panel.led_pins:
        return None
    from pispeaker.panel.gpio import Panel  # gpiozero: only with a panel

    def on_gesture(gesture: Gesture) -> None:
        controller.dispatch(GESTURE_EVENTS[gesture])

    return Panel(panel, on_gesture)


@contextlib.asynccontextmanager
async def started(
    controller: Controller, panel: "Panel | None" = None
) -> AsyncIterator[asyncio.Task[None]]:
    """Open the panel, the ports and start the controller; stop them in reverse order, so
    the LEDs go dark last, however the body ends (a crash included). A port that cannot be
    opened yet is the controller's to retry (the speaker shows ERROR meanwhile)."""
    async with contextlib.AsyncExitStack() as stack:
        if panel is not None:
            await stack.enter_async_context(panel)
            _show_states_on(panel, controller)
        stack.push_async_callback(controller.sink.stop)
        stack.push_async_callback(controller.source.stop)
        await controller.open_ports()
        task = asyncio.create_task(controller.run(), name="controller")
        try:
            yield task
        finally:
            task.cancel()
            await asyncio.wait([task], timeout=STOP_TIMEOUT_S)


def _show_states_on(panel: "Panel", controller: Controller) -> None:
    before = controller.on_state

    def show(status: Status) -> None:
        panel.show(status.state)
        before(status)

    controller.on_state = show
    panel.show(controller.status.state)
