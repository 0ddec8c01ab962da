"""The composition root: builds the controller from config and runs it with its ports,
started in dependency order and stopped in reverse within a bounded time."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping

from pispeaker.audio.ports import AudioSink, AudioSource, DeviceLostError
from pispeaker.audio.volume import Volume, state_dir
from pispeaker.config import AudioConfig, Config
from pispeaker.controller import Controller, Policy
from pispeaker.live.client import declarations
from pispeaker.live.link import LinkEvent, LiveLink
from pispeaker.states import Status
from pispeaker.tools import Tool

log = logging.getLogger(__name__)

#: How long stopping may take before it is abandoned.
STOP_TIMEOUT_S = 5.0


def policy_from(config: Config) -> Policy:
    """The controller's policy from the [conversation] and [logging] sections."""
    conversation = config.conversation
    return Policy(
        follow_up_s=conversation.follow_up_s,
        max_session_s=conversation.max_session_s,
        max_reconnects=conversation.max_reconnects,
        voice_barge_in=conversation.voice_barge_in,
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


def build_controller(
    config: Config,
    api_key: str,
    source: AudioSource,
    sink: AudioSink,
    on_state: Callable[[Status], None] = lambda status: None,
    volume: Volume | None = None,
) -> Controller:
    """A controller talking to ``config.live`` through the given audio ports."""

    def make_link(report: Callable[[LinkEvent], None], tools: list[Tool]) -> LiveLink:
        return LiveLink(config.live, api_key, report, declarations(tools))

    return Controller(
        source, sink, make_link, policy_from(config), on_state=on_state, volume=volume
    )


@contextlib.asynccontextmanager
async def started(controller: Controller) -> AsyncIterator[asyncio.Task[None]]:
    """Open the ports and start the controller; stop them in reverse order. A port that
    cannot be opened yet is the controller's to retry (the speaker shows ERROR meanwhile)."""
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(controller.sink.stop)
        stack.push_async_callback(controller.source.stop)
        await controller.open_ports()
        task = asyncio.create_task(controller.run(), name="controller")
        try:
            yield task
        finally:
            task.cancel()
            await asyncio.wait([task], timeout=STOP_TIMEOUT_S)
