"""The device supervisor: keeps the microphone and the speaker open.

It opens both ports, runs the router's capture pump, and when a port is lost
(unplugged, hung, missing at boot) shows ERROR and reopens it with backoff (never a busy
loop) until it is back; IDLE again once no port is missing.
"""

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable

from pispeaker.audio.ports import AudioSink, AudioSource, DeviceLostError
from pispeaker.backoff import Backoff
from pispeaker.conversation.core import Conversation, Sleep
from pispeaker.states import Event, State

log = logging.getLogger(__name__)

#: A device that has worked this long since it came back starts its reopen backoff afresh;
#: one that fails sooner (hung, flaky cable) keeps backing off instead of flapping.
STABLE_S = 60.0
#: How often a device that stays missing for the same reason is mentioned again.
STILL_MISSING_EVERY_S = 600.0
MICROPHONE, SPEAKER = "microphone", "speaker"


class DeviceSupervisor:
    """Runs the capture pump (``pump``, which reads the microphone until it fails) and the
    speaker watch; ``heard_gap`` is told when the microphone comes back after a gap, and
    ``came_back`` when either port does (the echo path between them is a new one).
    ``losses`` counts, by port, the times one was lost (or missing at start)."""

    def __init__(
        self,
        conversation: Conversation,
        source: AudioSource,
        sink: AudioSink,
        pump: Callable[[], Awaitable[None]],
        heard_gap: Callable[[], None],
        came_back: Callable[[], None],
        sleep: Sleep,
    ) -> None:
        self._conversation = conversation
        self._source, self._sink = source, sink
        self._pump, self._heard_gap, self._came_back = pump, heard_gap, came_back
        self._sleep = sleep
        self._missing: dict[str, str] = {}  # ports that failed to open, and why
        self._lost: set[str] = set()
        self._backoffs: dict[str, Backoff] = {}
        self._back_at: dict[str, float] = {}  # loop time each port last came back
        self.losses: Counter[str] = Counter()

    @property
    def lost_ports(self) -> frozenset[str]:
        """The ports ("microphone", "speaker") that are gone and being reopened."""
        return frozenset(self._lost)

    async def open_ports(self) -> None:
        """Open the speaker and the microphone. One that is missing (not plugged in at
        boot) does not stop the speaker: ``run`` shows ERROR and retries it."""
        for port, start in ((SPEAKER, self._sink.start), (MICROPHONE, self._source.start)):
            try:
                await start()
            except DeviceLostError as error:
                self._missing[port] = str(error)

    async def run(self) -> None:
        """Pump the microphone and watch the speaker until cancelled."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._pump_forever(), name="capture-pump")
            group.create_task(self._watch_speaker_forever(), name="speaker-watch")

    async def _pump_forever(self) -> None:
        lost = self._missing.pop(MICROPHONE, None)
        while True:
            if lost is not None:
                await self._recover(MICROPHONE, self._reopen_source, lost)
                self._heard_gap()
            try:
                await self._pump()
            except DeviceLostError as error:
                lost = str(error)

    async def _watch_speaker_forever(self) -> None:
        lost = self._missing.pop(SPEAKER, None)
        while True:
            if lost is not None:
                await self._recover(SPEAKER, self._sink.start, lost)
            lost = await self._sink.wait_lost()

    async def _reopen_source(self) -> None:
        """Open the microphone and read one chunk: a hung device opens but delivers
        nothing, and must not count as back."""
        await self._source.start()
        await self._source.read()

    async def _recover(self, port: str, start: Callable[[], Awaitable[None]], message: str) -> None:
        """Show ERROR while ``port`` is missing and reopen it with backoff until it is back.
        The backoff carries on from the last loss unless the port then worked for STABLE_S.
        A failed reopen is logged when its reason changes, and every STILL_MISSING_EVERY_S
        while it lasts: a device missing for an hour is one line, not hundreds."""
        log.error("%s; retrying until it is back", message)
        self._conversation.report_error(message)
        self._lost.add(port)
        self.losses[port] += 1
        backoff = self._backoff_of(port)
        clock = asyncio.get_running_loop().time
        said, said_at = message, clock()
        while True:
            if self._conversation.status.state is not State.ERROR:  # a press dismissed it
                self._conversation.dispatch(Event.DEVICE_LOST, message)
            await self._sleep(backoff.next_delay())
            try:
                await start()
            except DeviceLostError as error:
                if str(error) != said or clock() - said_at >= STILL_MISSING_EVERY_S:
                    log.warning("%s; still retrying", error)
                    said, said_at = str(error), clock()
                continue
            self._back(port)
            return

    def _backoff_of(self, port: str) -> Backoff:
        backoff = self._backoffs.setdefault(port, Backoff(initial_s=1.0, cap_s=30.0))
        now = asyncio.get_running_loop().time()
        if now - self._back_at.get(port, now - STABLE_S) >= STABLE_S:
            backoff.reset()
        return backoff

    def _back(self, port: str) -> None:
        log.info("the %s is back", port)
        self._back_at[port] = asyncio.get_running_loop().time()
        self._lost.discard(port)
        self._came_back()
        if not self._lost:
            self._conversation.dispatch(Event.DEVICE_BACK)
