"""Forwarding to the lease holder (two instances in one cluster, real Redis): forwarded
requests carry the original client and actor, trusted only with the cluster's own secret;
client-sent internal headers count for nothing."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import AsyncExitStack

import aiohttp
import socketio

from aura_dashboard.web.keys import CLUSTER
from tests.conftest import make_settings, need_service, running_server
from tests.realtime.test_cluster import REDIS_URL, reachable


async def two_instances(stack: AsyncExitStack, env_a: dict, env_b: dict, extra: dict | None = None):
    need_service(reachable(REDIS_URL, 6379), f"Redis at {REDIS_URL} is not reachable")
    cluster = f"t{uuid.uuid4().hex[:8]}"
    servers = []
    for name, env in (("node-a", env_a), ("node-b", env_b)):
        settings = make_settings({"MESSAGE_QUEUE_URL": REDIS_URL, "DASHBOARD_CLUSTER": cluster,
                                  "DASHBOARD_INSTANCE": name, **env}, extra)
        servers.append(await stack.enter_async_context(running_server(settings)))
        if name == "node-a":  # the first takes the lease
            while not servers[0].app[CLUSTER].lease.held:
                await asyncio.sleep(0.05)
    return servers


async def debates_of(http, srv, headers=None) -> list[str]:
    async with http.get(srv.url + "/api/arena/debates", headers=headers or {}) as response:
        assert response.status == 200, await response.text()
        body = await response.json()
    items = body.get("debates", body) if isinstance(body, dict) else body
    return [d.get("topic") for d in items]


async def test_forwarded_requests_are_limited_per_original_client():
    limits = {"security": {"rate_limiting": {"requests_per_minute": 60, "burst_size": 5}}}
    async with AsyncExitStack() as stack, aiohttp.ClientSession() as http:
        holder, other = await two_instances(stack, {}, {"TRUSTED_PROXIES": "127.0.0.1"}, limits)
        statuses = []
        for i in range(12):  # twelve clients behind a trusted proxy, one request each
            async with http.post(other.url + "/api/ingest/inference",
                                 json={"model": "m", "latency_ms": 1.0, "ok": True},
                                 headers={"X-Forwarded-For": f"203.0.113.{i + 1}"}) as response:
                statuses.append(response.status)
        assert statuses == [202] * 12, statuses


async def test_a_client_sent_forwarded_header_does_not_keep_a_debate_off_the_holder():
    async with AsyncExitStack() as stack, aiohttp.ClientSession() as http:
        holder, other = await two_instances(stack, {}, {})
        body = {"topic": "spoofed", "participants": ["a", "b"]}
        async with http.post(other.url + "/api/arena/debates", json=body,
                             headers={"X-Aura-Forwarded": "someone", "X-Aura-Client": "10.9.9.9"}) as response:
            assert response.status == 201, await response.text()
        assert "spoofed" in await debates_of(http, holder)


async def test_arena_events_forwarded_during_a_rolling_key_rotation():
    """The browser's instance already has the new key first; the holder still only the old
    one. The event is forwarded as the instance (the cluster's secret), not with a key."""
    async with AsyncExitStack() as stack, aiohttp.ClientSession() as http:
        holder, other = await two_instances(
            stack, {"SECURITY_API_KEY_ENABLED": "true", "DASHBOARD_API_KEY": "old-key"},
            {"SECURITY_API_KEY_ENABLED": "true", "DASHBOARD_API_KEY": "new-key,old-key"})
        client = socketio.AsyncClient(reconnection=False)
        await client.connect(other.url, socketio_path="/ws", namespaces=["/arena"], transports=["websocket"],
                             auth={"api_key": "new-key"})
        try:
            ack = await client.call("create_debate", {"topic": "rotated", "participants": ["a", "b"]},
                                    namespace="/arena", timeout=20)
            assert ack.get("ok") is not False, ack
        finally:
            await client.disconnect()
        assert "rotated" in await debates_of(http, holder, {"X-API-Key": "old-key"})


async def test_open_debates_survive_the_holder_and_the_next_holder_resumes_them():
    need_service(reachable(REDIS_URL, 6379), f"Redis at {REDIS_URL} is not reachable")
    extra = {"websocket": {"lease_ttl_ms": 1500}}
    cluster = f"t{uuid.uuid4().hex[:8]}"

    def settings(name):
        return make_settings({"MESSAGE_QUEUE_URL": REDIS_URL, "DASHBOARD_CLUSTER": cluster,
                              "DASHBOARD_INSTANCE": name}, extra)
    async with AsyncExitStack() as keep_other, aiohttp.ClientSession() as http:
        first = AsyncExitStack()
        holder = await first.enter_async_context(running_server(settings("node-a")))
        while not holder.app[CLUSTER].lease.held:
            await asyncio.sleep(0.05)
        other = await keep_other.enter_async_context(running_server(settings("node-b")))
        body = {"topic": "kept", "participants": ["a", "b"]}
        async with http.post(holder.url + "/api/arena/debates", json=body) as response:
            created = await response.json()
            assert response.status == 201, created
        debate_id = created["id"]
        async with http.post(holder.url + f"/api/arena/debates/{debate_id}/turns",
                             json={"speaker": "a", "text": "first"}) as response:
            assert response.status == 200, await response.text()
        await first.aclose()  # the holder stops (its lease released)

        async def taken():
            while not other.app[CLUSTER].lease.held:
                await asyncio.sleep(0.05)
        await asyncio.wait_for(taken(), 1.5 * 2 + 2)
        async with http.get(other.url + f"/api/arena/debates/{debate_id}") as response:
            debate = await response.json()
            assert response.status == 200, debate
        debate = debate.get("debate", debate)
        assert debate["status"] == "open" and [t["text"] for t in debate["turns"]] == ["first"]
        async with http.post(other.url + f"/api/arena/debates/{debate_id}/turns",
                             json={"speaker": "b", "text": "second"}) as response:
            assert response.status == 200, await response.text()


async def test_inference_windows_survive_the_holder():
    need_service(reachable(REDIS_URL, 6379), f"Redis at {REDIS_URL} is not reachable")
    extra = {"websocket": {"lease_ttl_ms": 1500}, "panels": {"ai_system": {"refresh_interval_ms": 200}}}
    cluster = f"t{uuid.uuid4().hex[:8]}"

    def settings(name):
        return make_settings({"MESSAGE_QUEUE_URL": REDIS_URL, "DASHBOARD_CLUSTER": cluster,
                              "DASHBOARD_INSTANCE": name}, extra)

    async def latest_counts(http, srv):
        async with http.get(srv.url + "/api/history/inference?points=1") as response:
            envelopes = (await response.json())["envelopes"]
        return envelopes[-1] if envelopes else None

    async with AsyncExitStack() as keep_other, aiohttp.ClientSession() as http:
        first = AsyncExitStack()
        holder = await first.enter_async_context(running_server(settings("node-a")))
        while not holder.app[CLUSTER].lease.held:
            await asyncio.sleep(0.05)
        other = await keep_other.enter_async_context(running_server(settings("node-b")))
        results = [{"model": "m", "latency_ms": float(i), "ok": True} for i in range(1, 6)]
        async with http.post(holder.url + "/api/ingest/inference", json=results) as response:
            assert response.status == 202, await response.text()

        async def kept():
            while True:
                latest = await latest_counts(http, holder)
                if latest and latest["data"]["models"].get("m", {}).get("count") == 5:
                    return
                await asyncio.sleep(0.1)
        await asyncio.wait_for(kept(), 10)
        await first.aclose()

        async def resumed():
            while True:
                latest = await latest_counts(http, other)
                if latest and latest["source"] == "node-b" and latest["data"]["models"].get("m", {}).get("count") == 5:
                    return
                await asyncio.sleep(0.1)
        await asyncio.wait_for(resumed(), 10)
