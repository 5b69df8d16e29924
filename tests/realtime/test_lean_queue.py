"""python-engineio's per-socket queue, made lighter: the stdlib's behaviour, less memory per connection."""

from __future__ import annotations

import asyncio
import tracemalloc

import aiohttp

from aura_dashboard.realtime.lean_queue import LeanQueue
from aura_dashboard.web.keys import SIO
from tests.conftest import make_settings, running_server
from tests.realtime.test_broadcast import QUIET, RawClient, wait_members


async def test_lean_queue_keeps_the_stdlib_semantics_engineio_uses():
    queue = LeanQueue()
    assert isinstance(queue, asyncio.Queue)
    await asyncio.wait_for(queue.join(), 1)  # nothing put: join returns at once
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    assert len(queue._getters) == 1  # the fast path's idle test reads this
    await queue.put("a")
    queue.put_nowait("b")
    assert await asyncio.wait_for(getter, 1) == "a"
    joiner = asyncio.create_task(queue.join())
    joiner2 = asyncio.create_task(queue.join())
    await asyncio.sleep(0.01)
    assert not joiner.done()
    queue.task_done()
    await asyncio.sleep(0.01)
    assert not joiner.done()  # "b" still unfinished
    assert queue.get_nowait() == "b"
    queue.task_done()
    await asyncio.wait_for(asyncio.gather(joiner, joiner2), 1)
    queue.put_nowait(None)  # as engineio unlocks its writer task at close
    assert queue.qsize() == 1 and await queue.get() is None
    queue.task_done()
    await asyncio.wait_for(queue.join(), 1)


def test_lean_queue_holds_less_memory_than_asyncio_queue():
    def per_queue(cls) -> float:
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            queues = [cls() for _ in range(1000)]
            after = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        assert len(queues) == 1000
        return (after - before) / 1000
    stock, lean = per_queue(asyncio.Queue), per_queue(LeanQueue)
    # The putters' deque, the Event and its waiters' deque: over 1.5 KB of about 3.
    assert stock - lean > 1500, (stock, lean)


async def test_the_servers_engineio_sockets_use_the_lean_queue():
    async with running_server(make_settings({}, QUIET)) as srv, aiohttp.ClientSession() as http:
        client = await RawClient.connect(http, srv)
        await wait_members(srv, 1)
        sockets = list(srv.app[SIO].eio.sockets.values())
        assert sockets and all(type(sock.queue) is LeanQueue for sock in sockets)
        await client.ws.close()
