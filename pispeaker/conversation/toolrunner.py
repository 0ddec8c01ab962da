"""The tool runner: each function call the model makes runs as its own task and is
answered through the link; a call the server withdraws, or one whose conversation ends,
is cancelled."""

from pispeaker.conversation.tasks import TaskOwner
from pispeaker.live.port import Link, ToolRequest
from pispeaker.tools import ToolBox

_PREFIX = "tool:"


class ToolRunner:
    """Runs ``box``'s tools for the model, answering through ``link``."""

    def __init__(self, box: ToolBox, link: Link, tasks: TaskOwner) -> None:
        self.box = box
        self._link = link
        self._tasks = tasks

    def start(self, request: ToolRequest) -> None:
        """Run the call in the background and answer it (an error answer, never a crash)."""
        self._tasks.start(_PREFIX + request.id, self._answer(request))

    def cancel(self, ids: tuple[str, ...]) -> None:
        """Cancel these calls (withdrawn by the server)."""
        self._tasks.cancel(*(_PREFIX + call_id for call_id in ids))

    def cancel_all(self) -> None:
        """Cancel every call in progress (the reply was interrupted, or the session ends)."""
        self._tasks.cancel_where(_PREFIX)

    async def _answer(self, request: ToolRequest) -> None:
        answer = await self.box.call(request.name, request.args)
        await self._link.respond(request, answer)
