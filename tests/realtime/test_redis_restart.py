"""A Redis restart (no persistence) mid-stream: its counters begin again at 1, so a client
keeping the highest `seq` would drop every new envelope as a duplicate. The cluster's epoch
(a key the append script creates when it is missing) changes; clients are told (`epoch`
event), resubscribe with `since`, are answered `gap` and take the new envelopes."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import uuid

import pytest
import socketio

from tests.conftest import free_port, make_settings, need_service, running_server
from tests.following import following


class ThrowawayRedis:
    """A redis-server of the test's own, without persistence, that can be restarted."""

    def __init__(self):
        need_service(shutil.which("redis-server") is not None, "redis-server is not installed")
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="aura-redis-")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import socket
        import time
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def redis_server():
    server = ThrowawayRedis()
    server.start()
    yield server
    server.remove()


async def test_clients_follow_a_redis_restart_into_the_new_epoch(redis_server):
    extra = {"updates": {"intervals": {"system_metrics": 200}, "batch_updates": False}}
    env = {"MESSAGE_QUEUE_URL": redis_server.url, "DASHBOARD_CLUSTER": f"t{uuid.uuid4().hex[:8]}",
           "DASHBOARD_INSTANCE": "node-a"}
    async with running_server(make_settings(env, extra)) as srv, following(srv.url) as client:
        await client.until(lambda: len(client.accepted) >= 5)
        assert client.sequence.last_seq >= 5
        redis_server.stop()
        await asyncio.sleep(1.0)
        redis_server.start()
        await client.until(lambda: sum(1 for epoch, _ in client.accepted if epoch >= 1) >= 5, 40)
        assert client.gaps >= 1
        fresh = [e for epoch, e in client.accepted if epoch >= 1]
        assert [e["seq"] for e in fresh] == sorted(e["seq"] for e in fresh)


async def flags_of(http, srv) -> dict:
    async with http.get(srv.url + "/api/features") as response:
        return (await response.json())["effective"]


async def test_flag_changes_while_redis_is_down_are_refused_and_instances_converge(redis_server):
    """While the cluster cannot be told, PATCH answers 503 and changes nothing; after a Redis
    restart that lost the flags, the instances still agree within one lease period."""
    import aiohttp
    ttl_ms = 1500
    cluster = f"t{uuid.uuid4().hex[:8]}"
    extra = {"websocket": {"lease_ttl_ms": ttl_ms}}

    def settings(name):
        return make_settings({"MESSAGE_QUEUE_URL": redis_server.url, "DASHBOARD_CLUSTER": cluster,
                              "DASHBOARD_INSTANCE": name}, extra)
    async with running_server(settings("node-a")) as a, running_server(settings("node-b")) as b, \
            aiohttp.ClientSession() as http:
        async with http.patch(a.url + "/api/features", json={"debug_mode": True}) as response:
            assert response.status == 200

        async def converged(value, timeout):
            async def loop():
                while not ((await flags_of(http, a))["debug_mode"] is value
                           and (await flags_of(http, b))["debug_mode"] is value):
                    await asyncio.sleep(0.1)
            await asyncio.wait_for(loop(), timeout)
        await converged(True, 5)

        redis_server.stop()
        async with http.patch(b.url + "/api/features", json={"debug_mode": False}) as response:
            body = await response.json()
            assert response.status == 503, body
            assert body["error"]["code"] == "cluster_unavailable"
        assert (await flags_of(http, b))["debug_mode"] is True, "nothing changed where it was refused"

        redis_server.start()  # empty: the flags hash is gone
        await converged(True, ttl_ms / 1000 * 2 + 3)  # one lease period (and a round), generously
        await asyncio.sleep(ttl_ms / 1000 * 2)
        assert (await flags_of(http, a))["debug_mode"] is True and (await flags_of(http, b))["debug_mode"] is True
        async with http.patch(b.url + "/api/features", json={"debug_mode": None}) as response:
            assert response.status == 200
        await converged(False, ttl_ms / 1000 + 3)


async def test_a_dead_redis_url_is_reported_degraded_and_subscribes_are_answered_with_gap():
    dead = f"redis://127.0.0.1:{free_port()}/0"
    extra = {"updates": {"intervals": {"system_metrics": 200}, "batch_updates": False}}
    import aiohttp
    async with running_server(make_settings({"MESSAGE_QUEUE_URL": dead}, extra)) as srv, \
            aiohttp.ClientSession() as http:
        async def degraded():
            while True:
                async with http.get(srv.url + "/healthz") as response:
                    body = await response.json()
                    state = body["dependencies"]["message_queue"]
                    if state["status"] == "degraded":
                        return response.status, body, state
                await asyncio.sleep(0.1)
        status, body, state = await asyncio.wait_for(degraded(), 20)
        assert status == 200 and state["reason"]
        client = socketio.AsyncClient(reconnection=False)
        await client.connect(srv.url, socketio_path="/ws", namespaces=["/omni_monitor"], transports=["websocket"])
        try:
            ack = await client.call("subscribe", {"streams": ["system"]}, namespace="/omni_monitor", timeout=20)
            assert ack["ok"] is True and ack["gap"]["system"] is True, ack
        finally:
            await client.disconnect()


async def test_every_key_the_cluster_leaves_in_redis_expires(redis_server):
    import redis.asyncio as aioredis
    import aiohttp
    cluster = f"t{uuid.uuid4().hex[:8]}"
    extra = {"updates": {"intervals": {"system_metrics": 200}, "batch_updates": False}}
    async with running_server(make_settings({"MESSAGE_QUEUE_URL": redis_server.url, "DASHBOARD_CLUSTER": cluster},
                                            extra)) as srv, aiohttp.ClientSession() as http:
        async with http.patch(srv.url + "/api/features", json={"debug_mode": True}) as response:
            assert response.status == 200
        client = aioredis.from_url(redis_server.url)
        try:
            async def published():
                while not await client.exists(f"aura:{cluster}:seq:system"):
                    await asyncio.sleep(0.1)
            await asyncio.wait_for(published(), 20)
            await asyncio.sleep(1.0)
            keys = [key async for key in client.scan_iter(f"aura:{cluster}:*")]
            assert keys
            lasting = [key for key in keys if await client.pttl(key) == -1]
            assert lasting == [], lasting
        finally:
            await client.aclose()


def test_an_instance_without_a_name_is_named_after_its_host():
    import socket
    from aura_dashboard.app import instance_name
    assert instance_name(make_settings().dashboard) == socket.gethostname()


async def test_per_host_streams_go_on_while_redis_is_down_and_clients_are_told(redis_server):
    """Redis away: this instance's own streams keep reaching its clients (a local epoch, the
    clients told by `epoch` and answered `gap`); Redis back: the cluster's epoch again, `gap`
    again, nothing taken for a duplicate."""
    extra = {"updates": {"intervals": {"system_metrics": 200}, "batch_updates": False}}
    env = {"MESSAGE_QUEUE_URL": redis_server.url, "DASHBOARD_CLUSTER": f"t{uuid.uuid4().hex[:8]}",
           "DASHBOARD_INSTANCE": "node-a"}
    async with running_server(make_settings(env, extra)) as srv, following(srv.url) as client:
        await client.until(lambda: len(client.accepted) >= 3)
        redis_server.stop()
        await client.until(lambda: sum(1 for epoch, _ in client.accepted if epoch >= 1) >= 5, 30)
        local_epoch = client.server_epoch
        assert local_epoch and client.gaps >= 1
        redis_server.start()
        await client.until(lambda: client.server_epoch != local_epoch
                           and sum(1 for epoch, _ in client.accepted if epoch >= 2) >= 3, 40)
        assert client.gaps >= 2
