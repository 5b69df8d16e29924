"""The broadcast fast path behind a message queue: two dashboard apps on the machine's real Redis,
clients on both, publishers on both; every envelope reaches every client once, each publisher's
in its order, and what arrives from the queue is delivered by the fast path."""

from __future__ import annotations

import asyncio
import os
import random
import uuid
from contextlib import AsyncExitStack

import pytest
import redis.asyncio as aioredis
import socketio

from aura_dashboard.realtime.broadcast import QueueFastBroadcaster
from aura_dashboard.realtime.cluster import channel_name
from aura_dashboard.realtime.hub import room_of
from aura_dashboard.web.keys import HUB, SIO
from tests.conftest import make_settings, need_service, running_server
from tests.realtime.test_broadcast import NS, QUIET, payload, wait_members
from tests.realtime.test_cluster import reachable

REDIS_URL = os.environ.get("AURA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def _cleanup(cluster: str) -> None:
    client = aioredis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(f"aura:{cluster}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


async def _both_listening(channel: str, count: int) -> None:
    """Until `count` managers are subscribed to the channel (a manager listens from its first client)."""
    client = aioredis.from_url(REDIS_URL)
    try:
        async def loop():
            while (await client.pubsub_numsub(channel))[0][1] < count:
                await asyncio.sleep(0.05)
        await asyncio.wait_for(loop(), 15)
    finally:
        await client.aclose()


async def _client(srv, transport: str, got: list) -> socketio.AsyncClient:
    sio = socketio.AsyncClient(reconnection=False)
    sio.on("alerts", lambda envelope: got.append((envelope["source"], envelope["data"]["value"])), namespace=NS)
    await sio.connect(srv.url, socketio_path=srv.ws_path, namespaces=[NS], transports=[transport])
    assert (await sio.call("subscribe", {"streams": ["alerts"]}, namespace=NS))["ok"]
    return sio


@pytest.fixture
def queue_cluster():
    need_service(reachable(REDIS_URL, 6379), f"Redis at {REDIS_URL} is not reachable")
    return f"test-{uuid.uuid4().hex[:10]}"


async def test_two_instances_on_redis_deliver_every_envelope_once_in_order_by_the_fast_path(queue_cluster):
    # Pings every second: a long-polling client's disconnect waits for its pending poll.
    extra = {**QUIET, "websocket": {"ping_interval_ms": 1000}}
    settings = [make_settings({"MESSAGE_QUEUE_URL": REDIS_URL, "DASHBOARD_CLUSTER": queue_cluster,
                               "DASHBOARD_INSTANCE": name}, extra) for name in ("node-a", "node-b")]
    clients: list[tuple[socketio.AsyncClient, list]] = []
    try:
        async with AsyncExitStack() as stack:
            a, b = [await stack.enter_async_context(running_server(s)) for s in settings]
            for srv in (a, b):
                assert type(srv.app[HUB].broadcaster) is QueueFastBroadcaster
                # Three WebSocket clients and one long-polling client (the stock path, mixed in).
                for transport in ("websocket", "websocket", "websocket", "polling"):
                    got: list = []
                    clients.append((await _client(srv, transport, got), got))
                await wait_members(srv, 4)
            await _both_listening(channel_name(settings[0].websocket), 2)

            rng = random.Random(19)
            per_publisher, done = 100, asyncio.Event()

            async def publisher(srv, k: int) -> None:
                hub = srv.app[HUB]
                for n in range(per_publisher):
                    await hub.publish("alerts", payload(k * 1000 + n))
                    for _ in range(rng.randrange(3)):
                        await asyncio.sleep(0)

            async def noise(srv) -> None:  # per-client packets keep WebSocket writers busy now and then
                server = srv.app[SIO]
                sids = [sid for sid, _ in server.manager.get_participants(NS, None)]
                while not done.is_set():
                    for sid in rng.sample(sids, 2):
                        await server.emit("noise", {}, to=sid, namespace=NS)
                    await asyncio.sleep(0)

            noisers = [asyncio.create_task(noise(srv)) for srv in (a, b)]
            # Two publishers on each instance, on the same stream (as several alert watchers are).
            await asyncio.gather(*(publisher(srv, k) for k, srv in enumerate((a, a, b, b))))
            done.set()
            await asyncio.gather(*noisers)
            total = 4 * per_publisher

            async def all_in():
                while any(len(got) < total for _, got in clients):
                    await asyncio.sleep(0.05)
            await asyncio.wait_for(all_in(), 60)
            await asyncio.sleep(0.3)  # nothing more (a duplicate) arrives
            for _, got in clients:
                assert len(got) == total
                for k, name in enumerate(("node-a", "node-a", "node-b", "node-b")):
                    assert [value["i"] for source, value in got if value["i"] // 1000 == k] == \
                        [k * 1000 + n for n in range(per_publisher)]
                    assert {source for source, value in got if value["i"] // 1000 == k} == {name}

            for srv in (a, b):
                broadcaster = srv.app[HUB].broadcaster
                # Every envelope of the other instance arrived from the queue and took the fast path.
                assert broadcaster.from_queue >= total // 2
                # Each instance's 3 WebSocket clients mostly written to directly (a busy writer
                # queues some); its polling client always on the stock path.
                assert broadcaster.stock_deliveries >= total
                assert broadcaster.fast_deliveries >= total
            await asyncio.gather(*(sio.disconnect() for sio, _ in clients))
    finally:
        await _cleanup(queue_cluster)


async def test_queue_fast_path_leaves_skip_sid_to_the_manager(queue_cluster):
    """An emit the fast path does not take (here `skip_sid`) goes through the manager's own handling."""
    settings = make_settings({"MESSAGE_QUEUE_URL": REDIS_URL, "DASHBOARD_CLUSTER": queue_cluster}, QUIET)
    try:
        async with running_server(settings) as srv, AsyncExitStack() as stack:
            received: list[list] = []
            for _ in range(2):
                got: list = []
                client = await _client(srv, "websocket", got)
                stack.push_async_callback(client.disconnect)
                received.append(got)
            await wait_members(srv, 2)
            sio, broadcaster = srv.app[SIO], srv.app[HUB].broadcaster
            first = next(sid for sid, _ in sio.manager.get_participants(NS, None))
            envelope = {"stream": "alerts", "seq": 1, "ts": 1.0, "source": "x", "data": payload(1)}
            await sio.emit("alerts", envelope, room=room_of("alerts"), namespace=NS, skip_sid=first)

            async def until(count: int):
                while sum(map(len, received)) < count:
                    await asyncio.sleep(0.02)
            await asyncio.wait_for(until(1), 10)
            assert sorted(map(len, received)) == [0, 1]
            assert broadcaster.fast_deliveries == 0 and broadcaster.stock_deliveries == 0
            await srv.app[HUB].publish("alerts", payload(2))
            await asyncio.wait_for(until(3), 10)
            assert broadcaster.fast_deliveries == 2
    finally:
        await _cleanup(queue_cluster)


async def test_batched_default_path_behind_redis_reaches_both_instances_by_the_fast_path(queue_cluster):
    """The shipped default (batching on) in a cluster: each stream room's `batch` of a window,
    published on one instance, reaches the clients of both, in publish order."""
    extra = {**QUIET, "updates": {**QUIET["updates"], "batch_updates": True, "batch_interval_ms": 100}}
    settings = [make_settings({"MESSAGE_QUEUE_URL": REDIS_URL, "DASHBOARD_CLUSTER": queue_cluster,
                               "DASHBOARD_INSTANCE": name}, extra) for name in ("node-a", "node-b")]
    try:
        async with AsyncExitStack() as stack:
            a, b = [await stack.enter_async_context(running_server(s)) for s in settings]
            received: list[list] = []
            for srv in (a, b):
                for _ in range(2):
                    got: list = []
                    sio = socketio.AsyncClient(reconnection=False)
                    sio.on("batch", lambda batch, got=got: got.extend(
                        e["data"]["value"]["i"] for e in batch if e["stream"] == "alerts"), namespace=NS)
                    await sio.connect(srv.url, socketio_path=srv.ws_path, namespaces=[NS], transports=["websocket"])
                    assert (await sio.call("subscribe", {"streams": ["alerts"]}, namespace=NS))["ok"]
                    stack.push_async_callback(sio.disconnect)
                    received.append(got)
                await wait_members(srv, 2)
            await _both_listening(channel_name(settings[0].websocket), 2)
            hub = a.app[HUB]
            for i in range(60):
                await hub.publish("alerts", payload(i))
                if i % 7 == 0:
                    await asyncio.sleep(0.03)

            async def all_in():
                while any(len(got) < 60 for got in received):
                    await asyncio.sleep(0.05)
            await asyncio.wait_for(all_in(), 30)
            await asyncio.sleep(0.3)
            assert all(got == list(range(60)) for got in received), received
            assert b.app[HUB].broadcaster.from_queue >= 1
            assert b.app[HUB].broadcaster.fast_deliveries >= 2
    finally:
        await _cleanup(queue_cluster)



async def test_emit_here_reaches_this_instances_clients_only_by_the_fast_path(queue_cluster):
    """While the cluster's store is away the hub emits to this instance's clients only."""
    settings = [make_settings({"MESSAGE_QUEUE_URL": REDIS_URL, "DASHBOARD_CLUSTER": queue_cluster,
                               "DASHBOARD_INSTANCE": name}, QUIET) for name in ("node-a", "node-b")]
    try:
        async with AsyncExitStack() as stack:
            a, b = [await stack.enter_async_context(running_server(s)) for s in settings]
            got_a: list = []
            got_b: list = []
            for srv, got in ((a, got_a), (b, got_b)):
                sio = await _client(srv, "websocket", got)
                stack.push_async_callback(sio.disconnect)
                await wait_members(srv, 1)
            await _both_listening(channel_name(settings[0].websocket), 2)
            broadcaster = a.app[HUB].broadcaster
            envelope = {"stream": "alerts", "seq": 1, "ts": 1.0, "source": "node-a", "data": payload(7)}
            await broadcaster.emit_here("alerts", envelope, room=room_of("alerts"), namespace=NS)

            async def one():
                while not got_a:
                    await asyncio.sleep(0.02)
            await asyncio.wait_for(one(), 10)
            await asyncio.sleep(0.5)
            # node-b's client never got it (b's own counter of queue messages is no proof: the
            # cluster's other traffic, flags and streams, also reaches b through the queue).
            assert got_a == [("node-a", payload(7)["value"])] and got_b == []
            assert broadcaster.fast_deliveries == 1
    finally:
        await _cleanup(queue_cluster)
