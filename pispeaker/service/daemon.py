"""``pispeaker run``: the speaker as a long-running service.

It tells systemd the truth: READY=1 once the LEDs, the speaker, the microphone and the wake
word are open; a STATUS line at every change of state; WATCHDOG=1 only while microphone
audio arrives on a responsive loop; STOPPING=1 then a clean stop (session closed, LEDs off,
exit 0) on SIGTERM. SIGHUP reloads the configuration: a new one that is invalid (or names a
missing key or wake-word model) is reported and the running one carries on untouched.
With ``metrics.listen`` set, a Prometheus endpoint runs alongside the controller, and is
stopped and started again with it on a reload.
"""

import asyncio
import contextlib
import enum
import logging
import signal
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from pispeaker.app import (
    build_alsa_ports,
    build_controller,
    build_journal,
    build_panel,
    build_volume,
    started,
    tool_servers,
    wake_maker,
)
from pispeaker.audio.ports import DeviceLostError
from pispeaker.config import Config
from pispeaker.controller import Controller, MakeWake
from pispeaker.credentials import McpToken, mcp_tokens, require_api_key
from pispeaker.errors import PispeakerError
from pispeaker.service.memory import give_back_free_memory
from pispeaker.service.status import Narrator
from pispeaker.service.systemd import Notifier, journal_handler, stderr_is_journal
from pispeaker.states import PLAYING, State, Status

log = logging.getLogger(__name__)

#: Longest the daemon waits for a task it cancelled to end (its own tasks end at once; this
#: only bounds a stop that hangs).
STOP_TIMEOUT_S = 2.0
#: Seconds after a conversation ends that what it freed goes back to the system (its session
#: closes in the background meanwhile).
GIVE_BACK_AFTER_S = 5.0


class Request(enum.Enum):
    """What a signal asks of the daemon."""

    STOP = "stop"  # SIGTERM, SIGINT
    RELOAD = "reload"  # SIGHUP


@dataclass(frozen=True)
class Settings:
    """A configuration ready to run: parsed, its API key found and its wake-word models
    loaded, so that nothing about it can fail after the running one stops for it."""

    config: Config
    api_key: str
    make_wake: MakeWake | None
    mcp_tokens: Mapping[str, McpToken] = field(default_factory=dict)


class Daemon:
    """Runs the speaker on the configuration ``load_config`` returns, until stopped.

    ``environ`` holds what systemd passed (credentials, state directory, watchdog).
    """

    def __init__(
        self,
        load_config: Callable[[], Config],
        environ: Mapping[str, str],
        notifier: Notifier,
        verbose: bool = False,
    ) -> None:
        self._load_config = load_config
        self._environ = environ
        self.notifier = notifier
        self._verbose = verbose
        self.narrator = Narrator()
        self._requests: asyncio.Queue[Request] = asyncio.Queue()
        self._controller: Controller | None = None
        self._give_back: asyncio.TimerHandle | None = None

    async def serve(self) -> int:
        """Run until SIGTERM; return the exit code. A configuration that cannot start raises
        its PispeakerError (a bad config: exit 78, without a restart loop)."""
        self._listen_for_signals()  # first: an early SIGHUP must not kill the daemon
        settings = self._prepare()
        previous: Settings | None = None
        while True:
            try:
                upcoming = await self._run(settings)
            except _StartFailed as failed:
                if previous is None:
                    raise failed.error from None
                log.error(
                    "cannot start with the new configuration (%s); going back to the old one",
                    failed.error,
                )
                settings, previous = previous, None
                continue
            if upcoming is None:
                return 0
            settings, previous = upcoming, settings

    def _listen_for_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for signum, request in (
            (signal.SIGTERM, Request.STOP),
            (signal.SIGINT, Request.STOP),
            (signal.SIGHUP, Request.RELOAD),
        ):
            loop.add_signal_handler(signum, self._requests.put_nowait, request)

    def _prepare(self) -> Settings:
        """Everything that may fail on bad input: the file, the key, the wake-word models."""
        config = self._load_config()
        for warning in config.warnings():
            log.warning("%s", warning)
        api_key = require_api_key(config.live, self._environ)
        tokens = mcp_tokens(config.tools.mcp, self._environ)
        make_wake = wake_maker(config.wake)
        return Settings(config, api_key.value.get_secret_value(), make_wake, tokens)

    def _set_log_level(self, config: Config) -> None:
        level = logging.DEBUG if self._verbose else config.logging.level.upper()
        logging.getLogger().setLevel(level)

    async def _run(self, settings: Settings) -> Settings | None:
        """Run the speaker on ``settings`` until a stop (None) or a good reload (the settings
        to run next). Everything it opened is closed again, in reverse order, on return."""
        config = settings.config
        self._set_log_level(config)
        self.narrator.configure(config)
        source, sink = build_alsa_ports(config)
        async with contextlib.AsyncExitStack() as stack:
            controller = build_controller(
                config,
                settings.api_key,
                source,
                sink,
                on_state=self._show,
                volume=build_volume(config.audio, self._environ),
                make_wake=settings.make_wake,
                tool_source=await stack.enter_async_context(
                    tool_servers(config.tools.mcp, settings.mcp_tokens)
                ),
            )
            self._controller = controller
            journal = build_journal(config.wake, self._environ, controller)
            if journal is not None:  # closed once the controller has stopped
                stack.push_async_callback(journal.close)
            self.narrator.follow(controller.status.state)
            try:
                if config.metrics.listen:
                    await stack.enter_async_context(
                        _metrics_served(config.metrics.listen, controller)
                    )
                running = await stack.enter_async_context(
                    started(controller, build_panel(config.panel, controller))
                )
            except PispeakerError as error:
                raise _StartFailed(error) from error
            give_back_free_memory()  # what start-up left: the speaker listens from here
            self.notifier.ready(self._status_line())
            return await self._serve_requests(running, controller)

    async def _serve_requests(
        self, running: "asyncio.Task[None]", controller: Controller
    ) -> Settings | None:
        """Answer signals until a stop or a good reload; raise what ends the controller or
        the watchdog (a crash, a microphone gone for good)."""
        watched = {running}
        if self.notifier.watchdog_s is not None:
            watched.add(asyncio.create_task(self._pet_watchdog(controller), name="watchdog"))
        try:
            while True:
                request = await self._next_request(watched)
                if request is Request.STOP:
                    log.info("stopping")
                    self.notifier.stopping()
                    return None
                upcoming = self._reload()
                if upcoming is not None:
                    return upcoming
        finally:
            await _stop(watched - {running})  # the controller task is started()'s to stop

    async def _next_request(self, watched: set["asyncio.Task[None]"]) -> Request:
        """The next signal's request; raise what ended a watched task, if one ends first."""
        getting = asyncio.create_task(self._requests.get(), name="signals")
        try:
            await asyncio.wait({getting, *watched}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await _stop([getting])
        if getting.done() and not getting.cancelled():
            return getting.result()
        for task in watched:
            if task.done():
                task.result()  # raises what ended it
        raise RuntimeError(f"{', '.join(task.get_name() for task in watched)} ended unasked")

    def _reload(self) -> Settings | None:
        """The new settings, or None (and the reason reported) to keep the running ones."""
        self.notifier.reloading()
        log.info("reloading the configuration")
        try:
            return self._prepare()
        except PispeakerError as error:
            log.error("reload failed; still running the previous configuration: %s", error)
            self.notifier.ready(f"Reload failed; kept the previous configuration: {error}")
            return None

    async def _pet_watchdog(self, controller: Controller) -> None:
        """WATCHDOG=1 every half timeout if microphone audio arrived meanwhile (this runs on
        the loop, so a stuck loop stops it too). A microphone that is gone (unplugged, hung)
        ends the daemon cleanly before systemd's watchdog would kill it, for a restart."""
        assert self.notifier.watchdog_s is not None
        heard = controller.chunks_heard
        while True:
            await asyncio.sleep(self.notifier.watchdog_s / 2)
            if controller.chunks_heard != heard:
                self.notifier.watchdog()
            elif "microphone" in controller.lost_ports:
                raise DeviceLostError(
                    f"{controller.last_error}; exiting so that systemd restarts pispeaker"
                )
            heard = controller.chunks_heard

    def _show(self, status: Status) -> None:
        if status.state is State.IDLE and self.narrator.state is not State.IDLE:
            self._give_back_later()
        self.narrator.follow(status.state)
        self.notifier.status(self._status_line())

    def _give_back_later(self) -> None:
        """Return the memory a conversation freed once it has closed: a speaker that
        listens all day should not hold its last conversation's peak."""
        if self._give_back is not None:
            self._give_back.cancel()
        loop = asyncio.get_running_loop()
        self._give_back = loop.call_later(GIVE_BACK_AFTER_S, give_back_free_memory)

    def _status_line(self) -> str:
        controller = self._controller
        error = None
        if controller is not None and self.narrator.state is State.ERROR:
            error = controller.last_error
        line = self.narrator.line(error)
        if controller is not None and self.narrator.state in PLAYING:
            withheld = controller.ear.withheld_because
            return f"{line}; {withheld}" if withheld else line
        return line


def _metrics_served(
    listen: str, controller: Controller
) -> contextlib.AbstractAsyncContextManager[object]:
    """The Prometheus endpoint for ``controller`` on ``listen``, stopped with it (on a stop
    and before a reload starts the next one, so that the same address can be taken again)."""
    from pispeaker.service.metrics import serve_metrics  # prometheus_client: only when asked

    return serve_metrics(listen, controller)


async def _stop(tasks: Collection["asyncio.Task[Any]"]) -> None:
    """Cancel ``tasks`` and wait for them to end, at most STOP_TIMEOUT_S; log any still
    running then. A cancellation of the caller meanwhile propagates (asyncio.wait raises it)."""
    for task in tasks:
        task.cancel()
    if not tasks:
        return  # asyncio.wait refuses an empty collection
    _, late = await asyncio.wait(tasks, timeout=STOP_TIMEOUT_S)
    for task in late:
        log.warning(
            "task %s still running %g s after it was cancelled", task.get_name(), STOP_TIMEOUT_S
        )


class _StartFailed(Exception):
    """A configuration's ports or panel could not be opened."""

    def __init__(self, error: PispeakerError) -> None:
        super().__init__(str(error))
        self.error = error


def run_daemon(
    load_config: Callable[[], Config], environ: Mapping[str, str], verbose: bool = False
) -> int:
    """Run the service; log to the journal when systemd connected stderr to it."""
    notifier = Notifier(environ)
    daemon = Daemon(load_config, environ, notifier, verbose)
    if stderr_is_journal(environ):
        root = logging.getLogger()
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        root.addHandler(journal_handler(daemon.narrator.fields))
    try:
        return asyncio.run(daemon.serve())
    except PispeakerError as error:
        notifier.status(f"Error: {error}")
        raise
