"""Turn generation: what the model says, and when, one model turn at a time.

User turns queue (from the VAD, marked activity, text, or complete client content) and are
answered in order, each with the script's next reply: its input transcription, the response
latency, then, as the model's profile says, an acknowledgment and background reasoning, its
tool calls, its search grounding, and its audio (sent by :class:`Voice`). Under proactive
audio a declined reply ends the turn with no model content. Answers to NON_BLOCKING calls
bring follow-up turns, which go before queued user turns: INTERRUPT cuts the reply in flight
and speaks at once, WHEN_IDLE speaks once the reply in flight is over, SILENT says nothing.

User activity during a reply barges in (``interrupted``, then ``turnComplete``) unless the
setup chose NO_INTERRUPTION; then the next turn just waits its place in the queue. The model
cutting its own reply for an INTERRUPT result looks the same on the wire: the service's only
way to make a client flush the audio it holds is ``interrupted``, and the follow-up is a new
turn.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from functools import partial

from pispeaker.emulator.calls import INTERRUPT, SILENT, WHEN_IDLE, Answer, ToolCalls
from pispeaker.emulator.channel import Channel
from pispeaker.emulator.handshake import SessionConfig
from pispeaker.emulator.script import Reply, UserTurn, render_audio
from pispeaker.emulator.store import Session
from pispeaker.emulator.voice import Voice

#: What a background-reasoning model says at once, before it thinks.
ACKNOWLEDGMENT = Reply(audio="tone", seconds=0.3, frequency_hz=550.0, text="Let me think.")
#: Queue priorities: follow-ups about tool results go before waiting user turns.
FOLLOW_UP_FIRST, USER_TURN = 0, 1

#: The cancel message of a reply cut short (any other cancellation is the connection's end).
CUT = "cut"

#: A model turn to take: a coroutine function the responder runs as the reply in flight.
Work = Callable[[], Awaitable[None]]


class Responder:
    """Answer one session's user turns and tool results on one connection, one at a time."""

    def __init__(
        self, channel: Channel, config: SessionConfig, session: Session, tools: ToolCalls
    ) -> None:
        self.channel = channel
        self.config = config
        self.session = session
        self.tools = tools
        self.voice = Voice(channel, config, session)
        self.options = channel.shared.options
        self._work: asyncio.PriorityQueue[tuple[int, int, Work]] = asyncio.PriorityQueue()
        self._order = itertools.count()
        self._reply_task: asyncio.Task[None] | None = None

    def queue(self, turn: UserTurn) -> None:
        """Have ``turn`` answered after the turns queued before it."""
        self.channel.record("turn.queued", audio_bytes=len(turn.audio), text=turn.text)
        self._put(USER_TURN, partial(self._reply, turn))

    async def follow_up(self, answers: list[Answer]) -> None:
        """Speak about answered NON_BLOCKING calls as their scheduling says, one turn per
        scheduling; the answers are already in the history."""
        for scheduling in (INTERRUPT, WHEN_IDLE, SILENT):
            group = [answer for answer in answers if answer.scheduling == scheduling]
            if not group:
                continue
            ids = [answer.call_id for answer in group]
            self.channel.record("tool.followup", ids=ids, scheduling=scheduling)
            if scheduling != SILENT:  # queued first, so it is the next work after a cut
                self._put(FOLLOW_UP_FIRST, partial(self._follow, group[0].follow_up, ids))
            if scheduling == INTERRUPT and await self._cut():
                cancelled = await self.tools.cancel(blocking_only=True)
                self._record_interruption("tool", cancelled)

    async def barge_in(self) -> None:
        """The user started speaking: interrupt a reply in flight, if the setup allows.

        The interrupted reply ends its turn, cancels the pending tool calls, and stays in
        the history as far as its audio was sent.
        """
        if self.config.interrupts and await self._cut():
            self._record_interruption("user", await self.tools.cancel())

    async def run(self) -> None:
        """Answer queued work until cancelled; a reply's failure is raised here."""
        while True:
            *_, work = await self._work.get()
            self._reply_task = asyncio.create_task(
                self._take_floor(work), name=f"reply-{self.channel.number}"
            )
            try:
                await asyncio.wait([self._reply_task])
            finally:
                self._reply_task.cancel()
            if not self._reply_task.cancelled():  # cancelled means interrupted: next turn
                self._reply_task.result()  # re-raises a failure of the reply

    def _put(self, priority: int, work: Work) -> None:
        self._work.put_nowait((priority, next(self._order), work))

    async def _take_floor(self, work: Work) -> None:
        """Run ``work`` as the reply in flight. Cut, it ends its turn as interrupted before
        it is done, so nothing queued can speak before that end is sent."""
        try:
            await work()
        except asyncio.CancelledError as cancelled:
            if cancelled.args == (CUT,):
                self.channel.remember("model", "(interrupted)", self.voice.sent)
                await self.voice.interrupted()
            raise

    async def _cut(self) -> bool:
        """Cut the reply in flight, if any and not being cut already; whether this did."""
        task = self._reply_task
        if task is None or task.done() or task.cancelling():
            return False
        task.cancel(CUT)
        await asyncio.wait([task])
        return True

    def _record_interruption(self, cause: str, cancelled: list[str]) -> None:
        self.channel.record(
            "interrupted", cause=cause, cancelled_calls=cancelled, sent=self.voice.sent
        )

    async def _reply(self, turn: UserTurn) -> None:
        reply = self.channel.shared.script.next_reply()
        self.session.turns += 1
        self.channel.remember("user", turn.describe(), len(turn.audio))
        self.channel.record("turn.start", turn=self.session.turns)
        if self.config.input_transcription:
            heard = {"inputTranscription": {"text": reply.heard or turn.describe()}}
            await self.voice.content(heard)
        if reply.declined and self.config.proactive_audio:
            self.channel.record("turn.declined", turn=self.session.turns)
            await self.voice.decline(turn)
            return
        await asyncio.sleep(self.options.response_latency_s)
        if self.config.profile.background_reasoning:
            await self._reason(turn, reply.think_s)
        if reply.tool_calls:
            await self.tools.call(reply)
        if reply.search_queries and "googleSearch" in self.config.builtin_tools:
            await self.voice.ground(reply.search_queries)
        await self._say(reply, turn)

    async def _reason(self, turn: UserTurn, think_s: float) -> None:
        """Acknowledge the request in a turn of its own, then think in the background."""
        ack = ACKNOWLEDGMENT
        await self.voice.speak(render_audio(ack, turn), str(ack.text), turn, final=False)
        self.channel.record("reasoning.start", think_s=think_s)
        await asyncio.sleep(think_s)
        self.channel.record("reasoning.end")

    async def _follow(self, reply: Reply, ids: list[str]) -> None:
        """A model turn about the results of calls ``ids``: no user input prompted it."""
        self.channel.record("followup.start", ids=ids)
        await asyncio.sleep(self.options.response_latency_s)
        await self._say(reply, UserTurn())

    async def _say(self, reply: Reply, turn: UserTurn) -> None:
        text = reply.text or f"Reply {self.session.turns}."
        await self.voice.speak(render_audio(reply, turn), text, turn)
