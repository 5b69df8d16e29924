"""python-engineio's per-socket queue, made lighter: the stdlib's behaviour, less memory per connection."""

from __future__ import annotations

import asyncio
import tracemalloc

import aiohttp
import pytest

from aura_dashboard.realtime.lean_queue import LeanQueue
from aura_dashboard.web.keys import SIO
from tests.conftest import make_settings, running_server
from tests.realtime.test_broadcast import QUIET, RawClient, wait_members


async def test_lean_queue_keeps_the_stdlib_semantics_engineio_uses():
    queue = LeanQueue()
    assert isinstance(queue, asyncio.Queue)
    await asyncio.wait_for(queue.join(), 1)  # nothing put: join returns at once
    getter = asyncio.ensure_future(queue.get())
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
    # Four deques (~760 B each with their first block) and the Event: an empty LeanQueue holds none.
    assert stock - lean > 2500, (stock, lean)


async def test_the_servers_engineio_sockets_use_the_lean_queue():
    async with running_server(make_settings({}, QUIET)) as srv, aiohttp.ClientSession() as http:
        client = await RawClient.connect(http, srv)
        await wait_members(srv, 1)
        sockets = list(srv.app[SIO].eio.sockets.values())
        assert sockets and all(type(sock.queue) is LeanQueue for sock in sockets)
        await client.ws.close()


async def test_a_woken_getter_leaves_the_getters_and_its_item_stays_queued_until_taken():
    queue = LeanQueue()
    waiting = asyncio.ensure_future(asyncio.wait_for(queue.get(), 5))  # python-engineio's poll()
    await asyncio.sleep(0.01)
    assert len(queue._getters) == 1 and not queue._getters[0].done()  # the fast path's idle test
    queue.put_nowait("a")
    # Woken, not yet run: not idle any more (as the stdlib's), and the item still queued.
    assert len(queue._getters) == 0 and queue.qsize() == 1
    assert await waiting == "a"
    assert queue.qsize() == 0


async def test_a_getter_timed_out_by_wait_for_leaves_the_getters_and_loses_no_later_item():
    queue = LeanQueue()
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(queue.get(), 0.01)
    assert len(queue._getters) == 0
    queue.put_nowait("kept")
    assert queue.qsize() == 1
    assert await asyncio.wait_for(queue.get(), 1) == "kept"
    queue.task_done()
    await asyncio.wait_for(queue.join(), 1)


async def test_waiting_getters_are_served_in_order_and_join_counts_every_item():
    queue = LeanQueue()
    first = asyncio.ensure_future(asyncio.wait_for(queue.get(), 5))
    second = asyncio.ensure_future(asyncio.wait_for(queue.get(), 5))
    await asyncio.sleep(0.01)
    await queue.put(1)
    queue.put_nowait(2)
    queue.put_nowait(3)  # no getter waits any more: queued
    assert (await first, await second) == (1, 2)
    assert queue.qsize() == 1
    joiner = asyncio.ensure_future(queue.join())
    queue.task_done()
    queue.task_done()
    await asyncio.sleep(0.01)
    assert not joiner.done()  # 3 is not done yet
    assert queue.get_nowait() == 3
    queue.task_done()
    await asyncio.wait_for(joiner, 1)
    with pytest.raises(ValueError):
        queue.task_done()  # as the stdlib: more task_done() than items


async def test_an_empty_queue_holds_no_items_deque_of_its_own_and_lets_it_go_when_drained():
    queue, other = LeanQueue(), LeanQueue()
    assert queue._queue is other._queue and not queue._queue  # the one shared empty deque
    queue.put_nowait(1)
    queue.put_nowait(2)
    assert queue._queue is not other._queue and list(queue._queue) == [1, 2]  # BacklogWatch reads it
    assert not other._queue and other.qsize() == 0  # the shared one untouched
    assert queue.get_nowait() == 1 and queue.qsize() == 1
    assert await asyncio.wait_for(queue.get(), 1) == 2
    assert queue._queue is other._queue and queue.empty()
    with pytest.raises(asyncio.QueueEmpty):
        queue.get_nowait()


@pytest.mark.parametrize("queue_class", [asyncio.Queue, LeanQueue])
async def test_an_item_put_as_its_waiting_getter_is_cancelled_stays_in_the_queue(queue_class):
    # The writer waits in get() under asyncio.timeout: when the timeout expires (or its task is
    # cancelled) in the loop pass where an item was put, before the getter's task ran again, the
    # task gets CancelledError instead of the item. asyncio.Queue only wakes its getter: the item
    # stays queued for the next get().
    queue = queue_class()

    async def get_within(timeout_s: float):
        async with asyncio.timeout(timeout_s):
            return await queue.get()

    getting = asyncio.ensure_future(get_within(10))
    await asyncio.sleep(0)  # parked in get()
    queue.put_nowait("a")
    getting.cancel()  # what asyncio.timeout does when it expires, in the same pass as the put
    with pytest.raises(asyncio.CancelledError):
        await getting
    assert queue.qsize() == 1 and queue.get_nowait() == "a"
    queue.task_done()
    await asyncio.wait_for(queue.join(), 1)
