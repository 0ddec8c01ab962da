"""The conversation's Live session: the link opened, closed and reopened as the machine's
effects say, and what the link reports turned into the machine's events.

Connection failures follow the table: a transient one reconnects (resuming the session)
after a backoff that starts afresh once a session was ready; a fatal one, or too many
reconnects, is reported in words that name the fix; the loss's event carries the
``Failure`` as its cause (its kind and close code, for the metrics). Tokens used are logged
when a conversation ends, and add up in ``usage_total`` over the session's life.
"""

import logging
from collections.abc import Callable

from pispeaker.backoff import Backoff
from pispeaker.conversation.core import Change, Conversation, Sleep
from pispeaker.conversation.tasks import TaskOwner
from pispeaker.conversation.toolrunner import ToolRunner
from pispeaker.live.port import (
    Crashed,
    Failure,
    Grounded,
    Interrupted,
    Kind,
    Link,
    LinkEvent,
    Lost,
    ModelAudio,
    Ready,
    Reasoning,
    Report,
    ToolRequest,
    ToolsCancelled,
    Transcript,
    TurnComplete,
    Usage,
)
from pispeaker.states import Event
from pispeaker.tools import Tool, ToolBox

log = logging.getLogger(__name__)

TOOLS_REFRESH = "tools-refresh"

#: Builds the link: it reports to the first argument, and each session it opens declares
#: the tools the second returns then.
MakeLink = Callable[[Report, Callable[[], list[Tool]]], Link]


class LiveSession:
    """Owns the link (built by ``make_link``, declaring ``box``'s tools) and its tool runner."""

    def __init__(
        self,
        conversation: Conversation,
        tasks: TaskOwner,
        make_link: MakeLink,
        box: ToolBox,
        sleep: Sleep,
        on_crash: Callable[[BaseException], None],
    ) -> None:
        self._conversation = conversation
        self._tasks = tasks
        self._sleep = sleep
        self._on_crash = on_crash
        self.link = make_link(self.on_link_event, box.declared)
        self._box = box
        self.tools = ToolRunner(box, self.link, tasks)
        self.backoff = Backoff()  # between reconnects
        self.usage = Usage()  # the conversation's tokens so far
        self.usage_total = Usage()  # every conversation's, since this session was built
        self._reply_words: list[str] = []  # the model's transcript of its turn, in pieces

    # -- effects ----------------------------------------------------------------------------

    def open(self, _change: Change) -> None:
        """Connect, and start the session-length limit; MCP servers that are down are tried
        again meanwhile, for the next session (the connect does not wait for them)."""
        self.link.open()
        self._tasks.start("session-limit", self._limit())
        if self._box.extra is not None and not self._tasks.running(TOOLS_REFRESH):
            self._tasks.start(TOOLS_REFRESH, self._box.extra.refresh())

    async def _limit(self) -> None:
        await self._sleep(self._conversation.policy.max_session_s)
        self._conversation.dispatch(Event.SESSION_LIMIT)

    def close(self, _change: Change) -> None:
        """End the session at once: its tool calls, its limit, the link; log its tokens."""
        self.tools.cancel_all()
        self._tasks.cancel("session-limit")
        self.link.stop()
        self._log_reply()  # a turn cut off by the end
        if self.usage.total:
            log.info(
                "the conversation used %d tokens (%d in, %d out)",
                self.usage.total,
                self.usage.prompt,
                self.usage.response,
                extra={"event": "usage"},
            )
        self.usage = Usage()

    def reconnect(self, change: Change) -> None:
        """Reopen the session after a backoff, whatever the states meanwhile (a reply may
        play out first); the conversation's end cancels it."""
        if change.after.reconnects == 1:
            self.backoff.reset()  # the first of a run: the last session was ready
        self._conversation.in_conversation("reconnect", self._reopen(self.backoff.next_delay()))

    async def _reopen(self, delay: float) -> None:
        await self._sleep(delay)
        self.link.open(resume=True)

    def report_offline(self, change: Change) -> None:
        """Reconnecting gave up."""
        message = f"offline: {change.before.reconnects} reconnects failed"
        log.warning("Live session lost: %s", message)
        self._conversation.report_error(message)

    # -- what the link reports --------------------------------------------------------------

    def on_link_event(self, event: LinkEvent) -> None:
        """Turn one link event into the conversation's event, or act on it here."""
        dispatch = self._conversation.dispatch
        match event:
            case Ready():
                dispatch(Event.SESSION_READY)
            case ModelAudio(pcm=pcm):
                dispatch(Event.MODEL_AUDIO, pcm)
            case Transcript(speaker=speaker, text=text):
                self._transcript(speaker, text)
            case TurnComplete():
                self._log_reply()
                dispatch(Event.TURN_COMPLETE)
            case Interrupted():
                self._log_reply()
                self.tools.cancel_all()
                dispatch(Event.SERVER_INTERRUPTED)
            case ToolRequest():
                dispatch(Event.MODEL_TOOL_CALL)
                self.tools.start(event)
            case ToolsCancelled(ids=ids):
                self.tools.cancel(ids)
            case Reasoning(in_progress=in_progress):
                dispatch(Event.REASONING_STARTED if in_progress else Event.REASONING_DONE)
            case Usage():
                self.usage += event
                self.usage_total += event
            case Grounded(queries=queries):
                log.info("the answer is grounded in Google Search (%s)", "; ".join(queries))
            case Lost(failure=failure):
                self._lost(failure)
            case Crashed(error=error):
                self._on_crash(error)

    def _transcript(self, speaker: str, text: str) -> None:
        """The user's transcript comes whole as their turn ends; the model's in pieces as it
        speaks, logged as one line when its turn ends (or is cut)."""
        logged = self._conversation.policy.log_transcripts
        if speaker != "user":
            if logged:
                self._reply_words.append(text)
            return
        if logged:
            log.info("user said: %s", text)
        self._conversation.dispatch(Event.USER_TURN_ENDED)

    def _log_reply(self) -> None:
        said, self._reply_words = "".join(self._reply_words).strip(), []
        if said:
            log.info("model said: %s", said)

    def _lost(self, failure: Failure) -> None:
        log.warning("Live session lost: %s", failure.message)
        if failure.kind is Kind.FATAL:
            self._conversation.report_error(failure.message)
            self._conversation.dispatch(Event.FATAL_ERROR, failure)
        else:
            self._conversation.dispatch(Event.CONNECTION_LOST, failure)
