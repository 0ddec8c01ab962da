"""The fault matrix: ``pispeaker run`` as systemd runs it (real ALSA file PCMs, the real SDK
over TLS to the emulator, a NOTIFY_SOCKET), one conversation per case, a fault at an awkward
moment of it. Every case checks that the process survived (or exited as designed), that it
recovered in time, that no microphone audio was lost on its way to a session, that reply
audio received was played, that the state the service shows was right, that the log names
the cause, and that connection attempts stayed within the backoff's bound.

The LEDs are the panel's look of the state the status line shows (tests/test_panel_looks.py
holds that mapping); the daemon's GPIO is gpiozero's mock factory, in the daemon's process.
"""

import asyncio
import contextlib
import os
import re
import signal
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pispeaker.audio.pcm import INPUT_RATE, OUTPUT_RATE, byte_count
from pispeaker.bench.notify import NotifyListener
from pispeaker.emulator import Fault, LiveEmulator, Reply, ToolCall
from tests import speech
from tests.alsa_rig import AlsaRig, PacedReader
from tests.conftest import StartEmulator
from tests.service_rig import Daemon, ServiceRig, has, service_rig, status_is
from tests.test_service import LISTENING_FOR_JARVIS, wake_then_request

#: How long the service may take to be back in a working conversation, or idle, after a
#: fault it recovers from: the backoff's first step (0.5 s), the reconnect, the answer and
#: the follow-up window take a few seconds; the rest is room for a loaded machine.
RECOVERY_S = 30.0
#: Microphone audio that may be in flight on a socket when it fails: sent by pispeaker,
#: never read by the service. Only a resumed session can lose it (a new one hears the
#: user's turn again); it is at most what the kernel's socket buffers hold at this rate.
IN_FLIGHT = byte_count(0.5, INPUT_RATE)


@dataclass
class Trial:
    """One case's run: the daemon, the emulator, and when the fault was produced."""

    rig: ServiceRig
    emulator: LiveEmulator
    daemon: Daemon
    directory: Path
    faulted_at: int = 0  # the index of the first note after the fault

    @property
    def notes(self) -> NotifyListener:
        return self.daemon.notes

    async def status(self, text: str, within_s: float = 30.0) -> int:
        """Wait for a status line containing ``text``; its note's index."""
        return await self.notes.wait_for(
            lambda note: text in note.fields.get("STATUS", ""), within_s=within_s
        )


Act = Callable[[Trial], Awaitable[None]]
Moment = Callable[[Trial], Awaitable[None]]


async def user_speaks(trial: Trial) -> None:
    """In the middle of the user's question, as the service hears it."""
    await trial.emulator.timeline.wait_for("vad.start", within_s=30)
    await asyncio.sleep(0.5)


async def listening(trial: Trial) -> None:
    """As soon as the session is ready and the user's turn has begun."""
    await trial.status("turn 1 (listening)")


async def speaking(trial: Trial) -> None:
    """Part way through the reply, while it still streams in."""
    await trial.status("turn 1 (speaking)")
    await asyncio.sleep(0.5)


async def tool_called(trial: Trial) -> None:
    """Right after the model called a tool."""
    await trial.emulator.timeline.wait_for("tool.call", within_s=30)


async def tool_answered(trial: Trial) -> None:
    """Right after the tool's answer reached the service."""
    await trial.emulator.timeline.wait_for("tool.response", within_s=30)


async def at_once(trial: Trial) -> None:
    """Before anything happens."""


def inject(fault: Fault) -> Act:
    async def act(trial: Trial) -> None:
        await trial.emulator.inject(fault)

    return act


async def no_act(trial: Trial) -> None:
    """The fault is in the setup (configuration, emulator options, environment)."""


@dataclass(frozen=True)
class Case:
    """A fault, when it strikes, and what the service must do about it.

    ``cause`` must appear in the daemon's log. A case that ``recovers`` answers the user's
    question and goes back to waiting for the wake word; one with ``error`` shows that error
    in its status and stays up without retrying faster than its backoff; ``connects`` bounds
    the connections the emulator saw.
    """

    id: str
    moment: Moment
    act: Act
    cause: str
    connects: int = 2
    recovers: bool = True
    error: str | None = None
    emulator: dict[str, Any] = field(default_factory=dict)
    live: dict[str, Any] = field(default_factory=dict)
    conversation: dict[str, Any] = field(default_factory=dict)
    environ: dict[str, str] = field(default_factory=dict)
    replies: tuple[Reply, ...] = ()
    #: A resumed session may have missed what was in flight on the failed socket.
    resumed_loss: bool = True
    #: The answer to the whole question is played.
    answered: bool = True


def closed_port() -> int:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# fmt: off
TIME_TOOL = (Reply(tool_calls=(ToolCall("get_local_time"),)),)
CASES = [
    Case("go-away-mid-reply-60s", speaking, inject(Fault.GO_AWAY), "goAway",
         emulator={"go_away_lead_s": 60.0}),
    Case("go-away-mid-reply-3s", speaking, inject(Fault.GO_AWAY), "goAway",
         emulator={"go_away_lead_s": 3.0}),
    Case("go-away-while-the-user-speaks", user_speaks, inject(Fault.GO_AWAY), "goAway",
         emulator={"go_away_lead_s": 60.0}),
    Case("go-away-during-a-tool-call", tool_called, inject(Fault.GO_AWAY), "goAway",
         emulator={"go_away_lead_s": 60.0}, replies=TIME_TOOL),
    Case("internal-error-listening-without-a-handle", listening, inject(Fault.INTERNAL_ERROR),
         "1011", live={"session_resumption": False}, resumed_loss=False),
    Case("internal-error-listening-with-a-handle", listening, inject(Fault.INTERNAL_ERROR),
         "1011"),
    Case("internal-error-mid-reply", speaking, inject(Fault.INTERNAL_ERROR), "1011"),
    Case("deadline-expired-without-go-away", user_speaks, inject(Fault.DEADLINE),
         "Deadline expired"),
    Case("tcp-drop-while-the-user-speaks", user_speaks, inject(Fault.DROP), "1006"),
    Case("tcp-drop-mid-reply", speaking, inject(Fault.DROP), "1006"),
    Case("normal-close-mid-session", user_speaks, inject(Fault.NORMAL_CLOSE), "1000"),
    # The answer was on its way: the resumed session does not give it (a cut earcon says so).
    Case("not-found-after-a-tool-response", tool_answered, inject(Fault.NOT_FOUND),
         "Requested entity was not found", replies=TIME_TOOL, answered=False),
    Case("no-pongs", user_speaks, inject(Fault.NO_PONGS), "live.ping_timeout_s",
         live={"ping_interval_s": 1.0, "ping_timeout_s": 1.0}),
    Case("setup-never-completes", at_once, no_act, "live.connect_timeout_s",
         emulator={"unanswered_setups": frozenset({1})}, live={"connect_timeout_s": 2.0},
         resumed_loss=False),
    Case("silent-mid-reply-with-the-socket-open", speaking, inject(Fault.STALL),
         "the reply stopped coming"),
    Case("rejected-resumption-handle", user_speaks, inject(Fault.INTERNAL_ERROR),
         "refused to resume", connects=3, emulator={"resumption_ttl_s": 0.0},
         resumed_loss=False),
    # A message that cannot be read is skipped: the session goes on.
    Case("malformed-frame", user_speaks, inject(Fault.MALFORMED), "skipped a message",
         connects=1),
    Case("unknown-only-message", user_speaks, inject(Fault.UNKNOWN_ONLY), "skipped a message",
         connects=1),
    Case("bad-key", at_once, no_act, "API key rejected", connects=1, recovers=False,
         error="API key rejected", environ={"GEMINI_API_KEY": "not-the-key"}),
    Case("unknown-model", at_once, no_act, "1008", connects=1, recovers=False,
         error="check live.model", live={"model": "gemini-0-nope"}),
    Case("quota-close-mid-session", user_speaks, inject(Fault.QUOTA), "quota", connects=1,
         recovers=False, error="quota exhausted"),
    Case("untrusted-certificate", at_once, no_act, "certificate", connects=1, recovers=False,
         error="live.ca_file", live={"ca_file": None}),
    Case("connection-refused", at_once, no_act, "ConnectionRefusedError", connects=0,
         recovers=False, error="offline: 2 reconnects failed",
         live={"base_url": f"https://127.0.0.1:{closed_port()}"},
         conversation={"max_reconnects": 2}),
    Case("unresolvable-host", at_once, no_act, "gaierror", connects=0, recovers=False,
         error="offline: 2 reconnects failed", live={"base_url": "https://live.invalid"},
         conversation={"max_reconnects": 2}),
]
# fmt: on
#: Reply audio that may be lost in flight when a socket fails (sent by the service, never
#: received): a TCP drop discards what its buffers held.
REPLY_IN_FLIGHT = byte_count(0.5, OUTPUT_RATE)
_SAID = speech.wake_then_request()
#: How long the question lasts.
QUESTION_S = (_SAID.request_end - _SAID.request_start) / speech.RATE


@contextlib.asynccontextmanager
async def trial_of(
    case: Case, tmp_path: Path, start_emulator: StartEmulator, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Trial]:
    """The daemon started on ``case``'s configuration, ready, the wake word on its way."""
    # The service generates faster than real time and ends a turn once it has played.
    emulator = await start_emulator(
        pace=0.0, playback_hold=1.0, response_latency_s=0.3, **case.emulator
    )
    emulator.script.push(*case.replies)
    async with service_rig(tmp_path, emulator, AlsaRig(tmp_path, monkeypatch)) as rig:
        config = rig.config(live=case.live, conversation=case.conversation)
        daemon = await rig.start(config, wake_then_request(), environ=case.environ)
        await daemon.notes.wait_for(has("READY", "1"), within_s=30)
        yield Trial(rig, emulator, daemon, tmp_path)


@pytest.mark.timeout(150)
@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
async def test_the_service_survives(
    case: Case, tmp_path: Path, start_emulator: StartEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with trial_of(case, tmp_path, start_emulator, monkeypatch) as trial:
        await case.moment(trial)
        trial.faulted_at = len(trial.notes.notes)
        await case.act(trial)
        if case.recovers:
            await recovered(trial, case)
        else:
            await failed(trial, case)
        daemon, emulator = trial.daemon, trial.emulator
        assert daemon.process.returncode is None  # it survived
        assert case.cause in daemon.log
        assert len(emulator.timeline.of("connect")) <= case.connects
        await reply_audio_played(trial)
        await stopped_cleanly(daemon)  # before reading the uplink's account, logged at the end
        no_microphone_audio_lost(trial, case)
        assert "Traceback" not in daemon.log


async def recovered(trial: Trial, case: Case) -> None:
    """Back to waiting for the wake word, with no error on the way, having answered the
    whole question (the emulator parrots what it heard as the user's turn)."""
    back = await trial.notes.wait_for(
        status_is(LISTENING_FOR_JARVIS), after=trial.faulted_at, within_s=RECOVERY_S
    )
    statuses = trial.notes.statuses(trial.faulted_at)[: back - trial.faulted_at + 1]
    assert not [status for status in statuses if status.startswith("Error")]
    if case.answered:
        answer = sum(event.data["bytes"] for event in trial.emulator.timeline.of("audio.out"))
        assert answer >= 0.9 * byte_count(QUESTION_S, OUTPUT_RATE), "not the whole question"


async def failed(trial: Trial, case: Case) -> None:
    """The error shows in the status, naming the fix."""
    assert case.error is not None
    index = await trial.notes.wait_for(
        lambda note: note.fields.get("STATUS", "").startswith("Error: "),
        after=trial.faulted_at,
        within_s=RECOVERY_S,
    )
    assert case.error in trial.notes.notes[index].fields["STATUS"]


async def reply_audio_played(trial: Trial) -> None:
    """Every byte of reply audio the service sent reached the speaker (but what a failed
    socket may have held), none flushed: no barge-in in these cases."""
    sent = sum(event.data["bytes"] for event in trial.emulator.timeline.of("audio.out"))
    played = await asyncio.to_thread(trial.daemon.speaker.wait_for, sent, 15.0)
    assert sent - REPLY_IN_FLIGHT <= len(played) <= sent


async def stopped_cleanly(daemon: Daemon) -> None:
    daemon.send(signal.SIGTERM)
    assert await daemon.exit_code() == 0


def no_microphone_audio_lost(trial: Trial, case: Case) -> None:
    """What the daemon sent reached a session (a new session heard it again); nothing was
    dropped from its outbox."""
    accounts = [tuple(map(int, found)) for found in UPLINK.findall(trial.daemon.log)]
    sent = sum(account[0] for account in accounts)
    assert all(account[1] == 0 for account in accounts), accounts
    heard = sum(event.data["bytes"] for event in trial.emulator.timeline.of("audio.in"))
    assert heard >= sent - (IN_FLIGHT if case.resumed_loss else 0), (heard, sent)


UPLINK = re.compile(r"uplink: (\d+) bytes sent, (\d+) dropped, (\d+) unsent at the end")


def device_case(name: str) -> Case:
    return Case(name, at_once, no_act, "")


@pytest.mark.timeout(150)
async def test_sigterm_mid_reply_closes_the_session_and_exits_0(
    tmp_path: Path, start_emulator: StartEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = device_case("sigterm-mid-reply")
    async with trial_of(case, tmp_path, start_emulator, monkeypatch) as trial:
        await speaking(trial)
        await stopped_cleanly(trial.daemon)
        assert "STOPPING" in trial.notes.notes[-1].fields
        [closed] = trial.emulator.timeline.of("disconnect")
        assert closed.data["code"] == 1000  # closed by the client, normally
        no_microphone_audio_lost(trial, case)


@pytest.mark.timeout(150)
async def test_sighup_with_a_bad_config_mid_conversation_keeps_the_conversation(
    tmp_path: Path, start_emulator: StartEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = device_case("sighup-bad-config-mid-conversation")
    async with trial_of(case, tmp_path, start_emulator, monkeypatch) as trial:
        await user_speaks(trial)
        trial.rig.write_config("[audio]\nvolume = 400\n")
        trial.faulted_at = len(trial.notes.notes)
        trial.daemon.send(signal.SIGHUP)
        await recovered(trial, case)  # the question is answered on the old configuration
        assert "audio.volume" in trial.daemon.log
        assert len(trial.emulator.timeline.of("connect")) == 1
        await reply_audio_played(trial)
        await stopped_cleanly(trial.daemon)
        no_microphone_audio_lost(trial, case)


@pytest.mark.timeout(150)
async def test_microphone_unplugged_mid_turn_ends_the_session_and_asks_systemd_to_restart(
    tmp_path: Path, start_emulator: StartEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = device_case("microphone-unplugged-mid-turn")
    async with trial_of(case, tmp_path, start_emulator, monkeypatch) as trial:
        await user_speaks(trial)
        trial.daemon.microphone.pause()  # the USB microphone is gone: no more audio
        assert await trial.daemon.exit_code(within_s=30) == os.EX_UNAVAILABLE
        assert "'mic'" in trial.notes.statuses()[-1]
        [closed] = trial.emulator.timeline.of("disconnect")
        assert closed.data["code"] == 1000  # the session was closed, not left to time out
        no_microphone_audio_lost(trial, case)


@pytest.mark.timeout(150)
async def test_speaker_unplugged_mid_reply_shows_the_error_and_plays_again_once_back(
    tmp_path: Path, start_emulator: StartEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = device_case("speaker-unplugged-mid-reply")
    async with trial_of(case, tmp_path, start_emulator, monkeypatch) as trial:
        await speaking(trial)
        trial.daemon.speaker.hang_up()  # the USB speaker is gone
        await trial.status("Error: ")
        assert "'speaker'" in trial.notes.statuses()[-1]
        back = PacedReader(trial.daemon.speaker.fifo, bytes_per_s=2 * OUTPUT_RATE)
        back.start()  # plugged back in
        trial.rig.stack.callback(back.hang_up)
        await trial.notes.wait_for(status_is(LISTENING_FOR_JARVIS), within_s=RECOVERY_S)
        assert trial.daemon.process.returncode is None
        await stopped_cleanly(trial.daemon)
        no_microphone_audio_lost(trial, case)
