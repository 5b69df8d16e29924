"""A tracked set of background tasks that the app starts and cancels as one."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine

log = logging.getLogger(__name__)


class TaskSet:
    """Owns background tasks: each is named, logged if it dies, and cancelled on close.

    python-socketio's `start_background_task` gives untracked futures that `sio.shutdown()`
    does not stop; everything long-running goes through here instead.
    """

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task] = set()
        self._closed = False

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, coro: Coroutine, name: str) -> asyncio.Task:
        if self._closed:
            coro.close()
            raise RuntimeError("the task set is closed")
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s died", task.get_name(), exc_info=task.exception())

    async def close(self, timeout: float = 3.0) -> None:
        """Cancel every task and wait for them, at most `timeout` seconds."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            done, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                log.warning("background task %s did not stop in %.1fs", task.get_name(), timeout)


def stop_if_cancelled() -> None:
    """Raise CancelledError when the running task has been asked to stop and is still going.

    On Python 3.11, `asyncio.wait_for` swallows a cancellation that lands in the loop pass in
    which its inner awaitable completes (fixed in 3.12), and libraries call it (redis-py reads
    replies so): a loop that awaited such a call goes on as if never cancelled, its task left
    "cancelling" for good (seen: the lease loop and the flag listener after a Redis restart).
    Every background loop calls this once per round; our own code never uncancels, so a
    cancellation still pending here is one that was lost below.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError()
