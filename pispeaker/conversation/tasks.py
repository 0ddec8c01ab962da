"""Every task the conversation starts has a name and an owner that cancels and awaits it."""

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)

#: How long closing waits for cancelled tasks to finish before giving up on them.
CLOSE_TIMEOUT_S = 5.0
Work = Coroutine[Any, Any, None]


class TaskOwner:
    """Named tasks: starting a name again replaces (cancels) the task of that name; a task
    that fails with an exception is handed to ``on_crash`` (it is a bug: the supervisor
    decides); ``close`` cancels them all and waits for them, within a bound."""

    def __init__(self, on_crash: Callable[[BaseException], None]) -> None:
        self._on_crash = on_crash
        self._named: dict[str, asyncio.Task[None]] = {}
        self._all: set[asyncio.Task[None]] = set()  # named ones, and replaced ones finishing

    def start(self, name: str, work: Work) -> None:
        """Run ``work`` as task ``name``, cancelling a task of that name still running."""
        self.cancel(name)
        task = asyncio.create_task(work, name=name)
        self._named[name] = task
        self._all.add(task)
        task.add_done_callback(self._finished)

    def running(self, name: str) -> bool:
        """Whether task ``name`` is running."""
        return name in self._named

    def cancel(self, *names: str) -> None:
        """Cancel the tasks of these names (they finish in the background; ``close`` waits)."""
        for name in names:
            task = self._named.pop(name, None)
            if task is not None:
                task.cancel()

    def cancel_where(self, prefix: str) -> None:
        """Cancel every task whose name starts with ``prefix``."""
        self.cancel(*[name for name in self._named if name.startswith(prefix)])

    async def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Cancel every task and wait until they have finished, or ``timeout_s`` passed."""
        self.cancel(*list(self._named))
        for task in self._all:
            task.cancel()
        if self._all:
            _, pending = await asyncio.wait(self._all, timeout=timeout_s)
            for task in pending:
                log.warning("task %s did not stop within %.1f s", task.get_name(), timeout_s)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._all.discard(task)
        if self._named.get(task.get_name()) is task:
            del self._named[task.get_name()]
        if not task.cancelled() and (error := task.exception()) is not None:
            self._on_crash(error)
