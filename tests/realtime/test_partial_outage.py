"""One instance loses Redis while the others still publish (issue 14, item 7).

Instance A reaches a throwaway redis-server through a small TCP proxy the test can cut;
instance B reaches it directly and goes on publishing. A client of A follows the protocol as
the page does. Whatever happens, it never loses an envelope silently: between two envelopes
it takes in one epoch of its own, every `seq` of the cluster's stream arrives, or it was
told (`gap`, a new epoch) first.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

from tests.conftest import free_port, make_settings, running_server
from tests.following import StreamFollower, following, silently_lost
from tests.realtime.test_redis_restart import redis_server  # noqa: F401 (fixture)


class CuttableProxy:
    """127.0.0.1:<port> forwarded to a Redis port. `cut()` closes every connection and
    refuses new ones (resets, as a dead link seen by the kernel); `hold()` keeps every
    connection open and accepts new ones but forwards no byte (a silent link: no reset, no
    answer); `mend()` lets them in again and sends on what was held."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.port = free_port()
        self.open = True
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.open:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    await self._flowing.wait()
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                dst.transport.abort()
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers.difference_update((writer, up_writer))

    def cut(self) -> None:
        self.open = False
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def hold(self) -> None:
        self._flowing.clear()

    def mend(self) -> None:
        self.open = True
        self._flowing.set()

    async def close(self) -> None:
        self.cut()
        self._flowing.set()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)


@contextlib.asynccontextmanager
async def node_a_behind_a_proxy_and_node_b(redis_server):  # noqa: F811
    """Instance A on Redis through a `CuttableProxy`, B on it directly, both publishing
    `system` every 200 ms, and a page-like client of A that has seen 3 envelopes of each;
    yields (proxy, A, the client)."""
    proxy = CuttableProxy(redis_server.port)
    await proxy.start()
    cluster = f"t{uuid.uuid4().hex[:8]}"
    extra = {"updates": {"intervals": {"system_metrics": 200}, "batch_updates": False},
             "websocket": {"lease_ttl_ms": 1500}}

    def settings(name: str, url: str):
        return make_settings({"MESSAGE_QUEUE_URL": url, "DASHBOARD_CLUSTER": cluster,
                              "DASHBOARD_INSTANCE": name}, extra)
    try:
        async with running_server(settings("node-a", proxy.url)) as a, \
                running_server(settings("node-b", redis_server.url)), following(a.url) as client:
            await client.until(lambda: client.count("node-a") >= 3 and client.count("node-b") >= 3, 30)
            yield proxy, a, client
    finally:
        await proxy.close()


async def assert_nothing_lost_silently(client: StreamFollower) -> None:
    """Every envelope of the cluster's stream reached the client or it was told, once the holes
    still open have had their time to be asked for again (a resubscription from the floor).
    The instance's local epoch while it had no Redis holds its own envelopes only, numbered on
    their own; it is left out."""
    def lost():
        return silently_lost(client, epochs_with_source="node-b")
    with contextlib.suppress(asyncio.TimeoutError):
        await client.until(lambda: not lost(), 15)
    assert lost() == [], (f"envelopes lost without a gap: {lost()} in "
                          f"{[(ep, e['seq'], e['source']) for ep, e in client.accepted]}; {client!r}")


async def mend_and_come_back_whole(proxy: CuttableProxy, client: StreamFollower) -> None:
    """Mend A's link; A's client comes back on the cluster's stream (a later epoch, with B's
    envelopes and A's), and after a few more seconds has lost nothing silently."""
    epoch_while_away = client.epoch
    proxy.mend()
    await client.until(lambda: client.epoch > epoch_while_away and client.count("node-b", client.epoch) >= 10
                       and client.count("node-a", client.epoch) >= 10, 60)
    await asyncio.sleep(3.0)
    await assert_nothing_lost_silently(client)


async def test_one_instance_cut_from_redis_while_another_publishes_loses_nothing_silently(redis_server):  # noqa: F811
    async with node_a_behind_a_proxy_and_node_b(redis_server) as (proxy, _, client):
        of = client.count
        gaps_before = client.gaps
        proxy.cut()
        # A's own samples go on to its client (a local epoch); B keeps publishing to Redis.
        await client.until(lambda: client.gaps > gaps_before and of("node-a", client.epoch) >= 3, 30)
        await asyncio.sleep(2.0)
        await mend_and_come_back_whole(proxy, client)
        assert client.gaps >= 2  # the cut (a local epoch), then back on the cluster's


async def test_an_event_that_could_not_be_published_gives_the_other_instances_a_new_epoch(redis_server):  # noqa: F811
    """A's link is cut between its append (the envelope is in the buffer) and the publish: the
    stock manager logged and dropped the event, and B's clients never knew. Once A reaches
    Redis again it tells the others, whose hook (the hub's `resync`) gives their clients a
    new epoch (A's own clients had the event: a notice from A is not for A)."""
    from aura_dashboard.realtime.cluster import WatchedRedisManager
    proxy = CuttableProxy(redis_server.port)
    await proxy.start()
    channel = f"aura-dashboard:t{uuid.uuid4().hex[:8]}"
    told = {"a": 0, "b": 0}

    def hook(name):
        async def resubscribed():
            told[name] += 1
        return resubscribed
    a = WatchedRedisManager(proxy.url, channel=channel, on_resubscribed=hook("a"))
    b = WatchedRedisManager(redis_server.url, channel=channel, on_resubscribed=hook("b"))

    async def listen(manager):
        async for _ in manager._listen():
            pass
    listeners = [asyncio.create_task(listen(b))]
    try:
        await asyncio.sleep(0.5)  # B subscribed
        event = {"method": "emit", "event": "system", "data": {}, "namespace": "/", "host_id": a.host_id}
        await a._publish(event)
        assert a.unpublished == 0
        proxy.cut()
        await a._publish(event)
        assert a.unpublished == 1 and a.owe_resync
        proxy.mend()
        await a._publish(event)
        assert not a.owe_resync

        async def b_told():
            while told["b"] == 0:
                await asyncio.sleep(0.05)
        await asyncio.wait_for(b_told(), 10)
        assert told == {"a": 0, "b": 1}
    finally:
        for task in listeners:
            task.cancel()
        await asyncio.gather(*listeners, return_exceptions=True)
        for manager in (a, b):
            if manager.redis is not None:
                await manager.redis.aclose()
        await proxy.close()


async def test_a_silent_link_times_out_the_append_and_the_publish(redis_server):  # noqa: F811
    """A link that holds the bytes (no reset): the append and the manager's publish give up
    within REDIS_CALL_TIMEOUT_S whatever the client's own socket timeout (redis-py's is 5 s,
    retried: one envelope in many seconds; here none, so a call without its own timeout
    waits for good and the test's hang bound fails it). The append raises
    the store's one error (the hub goes on in its local epoch); the publish is counted and
    owes the other instances a resync."""
    import redis.asyncio as aioredis

    from aura_dashboard.errors import ClusterStoreUnavailable
    from aura_dashboard.realtime.cluster import WatchedRedisManager
    from aura_dashboard.realtime.replay import RedisReplay
    proxy = CuttableProxy(redis_server.port)
    await proxy.start()
    client = aioredis.from_url(proxy.url, socket_timeout=None)
    manager = WatchedRedisManager(proxy.url, channel=f"aura-dashboard:t{uuid.uuid4().hex[:8]}")
    manager.redis_options = {"socket_timeout": None}
    replay = RedisReplay(client, f"t{uuid.uuid4().hex[:8]}", 10)
    try:
        assert (await replay.append("system_metrics", 1.0, "node-a", {}))["seq"] == 1
        await manager._publish({"method": "emit", "event": "x", "data": {}, "namespace": "/"})
        assert manager.unpublished == 0
        proxy.hold()
        try:
            await asyncio.wait_for(replay.append("system_metrics", 2.0, "node-a", {}), 30)
            raise AssertionError("an append on a silent link answered")
        except ClusterStoreUnavailable:
            pass
        await asyncio.wait_for(manager._publish({"method": "emit", "event": "x", "data": {},
                                                 "namespace": "/"}), 30)
        assert manager.unpublished == 1 and manager.owe_resync
    finally:
        proxy.mend()
        await client.aclose()
        if manager.redis is not None:
            await manager.redis.aclose()
        await proxy.close()


async def test_a_silent_link_keeps_the_per_host_streams_going_here_and_owes_a_resync(redis_server):  # noqa: F811
    """A's link to Redis goes silent (bytes held, no reset) while B publishes: A's own
    per-host samples go on to its clients in a local epoch (counted, no timing asserted), an
    append that timed out makes A owe the others a resync, and once the link answers again
    (the held bytes delivered late) A's client is back on the cluster's stream with nothing
    lost silently."""
    from aura_dashboard.web import keys
    async with node_a_behind_a_proxy_and_node_b(redis_server) as (proxy, a, client):
        manager = a.app[keys.SIO].manager
        of = client.count
        gaps_before = client.gaps
        proxy.hold()
        await client.until(lambda: client.gaps > gaps_before and of("node-a", client.epoch) >= 5, 60)
        assert a.app[keys.HUB].here is not None, "A is not in its local epoch"
        assert manager.owe_resync or manager.unpublished, "a timed-out append owes no resync"
        await mend_and_come_back_whole(proxy, client)


class _Recorder:
    """Where a hub's envelopes go in this test (what they are is not under test here)."""

    def __init__(self):
        self.sent: list[str] = []

    async def emit(self, event, data, *, room, namespace):
        self.sent.append(event)

    emit_here = emit


async def test_the_clusters_envelopes_are_kept_out_of_the_local_epoch(redis_server):  # noqa: F811
    """While the hub is in its local epoch (its store timed out on a silent link), envelopes
    another instance sends through the queue (late, once the link wakes) are held back, not
    delivered mixed with the local ones; other events pass; once the store answers (the
    cluster's epoch announced again) the cluster's envelopes pass again."""
    import redis.asyncio as aioredis

    from aura_dashboard.realtime.cluster import WatchedRedisManager
    from aura_dashboard.realtime.hub import StreamHub
    from aura_dashboard.realtime.replay import RedisReplay
    from aura_dashboard.app import STREAMS
    proxy = CuttableProxy(redis_server.port)
    await proxy.start()
    store_client = aioredis.from_url(proxy.url)
    hub = StreamHub(STREAMS, store=RedisReplay(store_client, f"t{uuid.uuid4().hex[:8]}", 10),
                    broadcaster=_Recorder(), source="node-a", store_retry_s=0.0)  # each publish tries
    channel = f"aura-dashboard:t{uuid.uuid4().hex[:8]}"
    a = WatchedRedisManager(redis_server.url, channel=channel)
    a.hold_back = hub.holds_back
    b = WatchedRedisManager(redis_server.url, channel=channel)
    came: asyncio.Queue = asyncio.Queue()

    async def listen():
        async for message in a._listen():
            await came.put(message)
    listener = asyncio.create_task(listen())

    async def send(event: str) -> dict:
        await b._publish({"method": "emit", "event": event, "data": [{"seq": 1}], "namespace": "/omni_monitor",
                          "room": f"stream:{event}", "host_id": b.host_id})
        return await asyncio.wait_for(came.get(), 10)
    try:
        await asyncio.sleep(0.5)  # A subscribed
        await hub.publish("system", {})
        assert hub.here is None
        assert (await send("system"))["event"] == "system"
        proxy.hold()
        await asyncio.wait_for(hub.publish("system", {}), 30)
        assert hub.here is not None  # the local epoch
        assert "method" not in await send("system")
        assert "method" not in await send("batch")
        assert (await send("epoch"))["event"] == "epoch"  # not an envelope: passes
        assert a.held_back == 2
        proxy.mend()
        await asyncio.wait_for(hub.publish("system", {}), 30)
        assert hub.here is None  # the cluster's epoch again
        assert (await send("system"))["event"] == "system"
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
        for manager in (a, b):
            if manager.redis is not None:
                await manager.redis.aclose()
        await store_client.aclose()
        await proxy.close()


async def test_while_local_the_store_is_tried_again_at_most_once_per_retry_period(redis_server):  # noqa: F811
    """On a silent link every try of the store waits out the Redis call timeout: while the hub
    is in its local epoch, per-host publishes go straight to it and the store is tried again
    once per `store_retry_s` (the lease's renewal period in the app), so the streams keep their
    pace. Once a try succeeds the hub is back on the cluster's epoch."""
    import redis.asyncio as aioredis

    from aura_dashboard.app import STREAMS
    from aura_dashboard.realtime.hub import StreamHub
    from aura_dashboard.realtime.replay import RedisReplay
    proxy = CuttableProxy(redis_server.port)
    await proxy.start()
    client = aioredis.from_url(proxy.url, socket_timeout=None)
    clock = [0.0]
    recorder = _Recorder()
    hub = StreamHub(STREAMS, store=RedisReplay(client, f"t{uuid.uuid4().hex[:8]}", 10), broadcaster=recorder,
                    source="node-a", store_retry_s=5.0, monotonic=lambda: clock[0])
    try:
        assert (await hub.publish("system", {}))["seq"] == 1
        proxy.hold()
        first = await asyncio.wait_for(hub.publish("system", {}), 30)  # times out: the local epoch
        assert hub.here is not None and first["seq"] == 1
        for _ in range(20):  # within the retry period: none of them waits on the store
            await asyncio.wait_for(hub.publish("system", {}), 30)
        assert hub.store_tries_while_away == 0
        kept = [e["seq"] for e in await hub.here.history("system", None)]
        assert kept == list(range(12, 22)), "all 21 published locally (the buffer keeps the last 10)"
        clock[0] += 5.0
        await asyncio.wait_for(hub.publish("system", {}), 30)  # one try, timed out again
        assert hub.store_tries_while_away == 1 and hub.here is not None
        proxy.mend()
        clock[0] += 5.0
        back = await asyncio.wait_for(hub.publish("system", {}), 30)
        assert hub.here is None and back["seq"] >= 2, "back on the cluster's numbering"
    finally:
        proxy.mend()
        await client.aclose()
        await proxy.close()
