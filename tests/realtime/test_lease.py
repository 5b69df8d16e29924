"""The cluster lease and the flag sync against the machine's real Redis; loops stop on cancel."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis

from aura_dashboard.config import RuntimeOverrides
from aura_dashboard.realtime.cluster import FlagSync, Lease
from tests.conftest import free_port, make_settings, need_service
from tests.realtime.test_cluster import REDIS_URL, reachable


@pytest.fixture
async def redis_client():
    need_service(reachable(REDIS_URL, 6379), f"Redis at {REDIS_URL} is not reachable")
    client = aioredis.from_url(REDIS_URL)
    prefix = f"aura:test-{uuid.uuid4().hex[:8]}"
    yield client, prefix
    keys = [key async for key in client.scan_iter(f"{prefix}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def test_one_holder_renewal_and_hand_over(redis_client):
    client, prefix = redis_client
    changes = []

    async def note(held):
        changes.append(held)

    a = Lease(client, f"{prefix}:lease", "a", ttl_ms=5000, on_change=note)
    b = Lease(client, f"{prefix}:lease", "b", ttl_ms=5000)
    assert await a.attempt() is True and await b.attempt() is False
    assert await a.attempt() is True  # renewal keeps it
    assert await client.pttl(f"{prefix}:lease") > 4000
    await a.release()
    assert await b.attempt() is True and await a.attempt() is False
    assert changes == [True, False]


async def test_expired_lease_is_taken_over(redis_client):
    client, prefix = redis_client
    a = Lease(client, f"{prefix}:lease", "a", ttl_ms=1000)
    b = Lease(client, f"{prefix}:lease", "b", ttl_ms=1000)
    assert await a.attempt()
    await client.pexpire(f"{prefix}:lease", 1)  # as if `a` died and its TTL ran out
    await asyncio.sleep(0.01)
    assert await b.attempt() is True
    assert await a.attempt() is False  # `a` must not renew what it no longer holds


async def test_unreachable_redis_gives_up_the_lease_without_raising():
    client = aioredis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    lease = Lease(client, "aura:x:lease", "a", ttl_ms=1000)
    lease.held = True
    assert await lease.attempt() is False
    assert lease.healthy is False and lease.held is False
    await client.aclose()


async def test_flag_sync_between_two_instances(redis_client):
    client, prefix = redis_client
    features = make_settings().features
    here, there = RuntimeOverrides(features), RuntimeOverrides(features)
    sync_here = FlagSync(client, prefix, "here", here)
    sync_there = FlagSync(client, prefix, "there", there)
    here.changed.connect(sync_here.on_local_change)
    there.changed.connect(sync_there.on_local_change)
    heard = []
    there.changed.connect(lambda change: heard.append(change))
    task = asyncio.create_task(sync_there.run())
    try:
        await asyncio.sleep(0.2)  # let it subscribe
        await here.set("debug_mode", True, actor="api:1.2.3.4")

        async def arrived():
            while not there.is_on("debug_mode"):
                await asyncio.sleep(0.02)
        await asyncio.wait_for(arrived(), 5)
        assert heard[-1].remote is True and heard[-1].actor == "cluster:api:1.2.3.4"
        await here.reset("debug_mode")

        async def reset_arrived():
            while there.is_on("debug_mode"):
                await asyncio.sleep(0.02)
        await asyncio.wait_for(reset_arrived(), 5)
        # A later instance loads what the cluster holds.
        await here.set("gpu_monitoring", True)
        late = RuntimeOverrides(features)
        await FlagSync(client, prefix, "late", late).load()
        assert late.is_on("gpu_monitoring") and not late.is_on("debug_mode")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()


def link_for(prefix: str, on_lease_change=None, ttl_ms: int = 1000):
    from aura_dashboard.realtime.cluster_link import ClusterLink
    ws = make_settings({"MESSAGE_QUEUE_URL": REDIS_URL, "DASHBOARD_CLUSTER": prefix.split(":")[-1]},
                       {"websocket": {"lease_ttl_ms": ttl_ms}}).websocket
    features = make_settings().features
    return ClusterLink.create(ws, "http://127.0.0.1:1", "t", RuntimeOverrides(features),
                              on_lease_change=on_lease_change)


async def test_the_lease_change_hook_is_given_to_the_constructor(redis_client):
    _, prefix = redis_client
    changes = []

    async def note(held):
        changes.append(held)

    link = link_for(prefix, note)
    assert await link.lease_round() is True
    await link.close()
    assert changes == [True, False]


async def test_the_lease_loop_survives_a_failing_hook_and_stops_on_cancel(redis_client):
    """A hook that raises must not stop renewal while `held` stays true (two instances would
    then run the shared collectors)."""
    client, _ = redis_client
    prefix = f"aura:test-{uuid.uuid4().hex[:8]}"
    calls = []

    async def broken(held):
        calls.append(held)
        raise RuntimeError("reconcile failed")

    link = link_for(prefix, broken, ttl_ms=1000)
    task = asyncio.create_task(link.run_lease())
    try:
        while not link.lease.held:
            await asyncio.sleep(0.01)
        await asyncio.sleep(2.5)  # over two TTLs: only renewals keep it
        assert not task.done(), "the lease loop died"
        assert link.lease.held
        assert await client.get(link.lease.key) == link.owner.encode()
        assert calls == [True]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert task.cancelled()
        await link.close()
        await client.delete(link.lease.key, link.holder_key)


def test_lease_has_no_loop_of_its_own():
    assert not hasattr(Lease, "run"), "ClusterLink.run_lease is the one lease loop"


async def _until(predicate) -> None:
    while not predicate():
        await asyncio.sleep(0.01)


async def test_takeover_within_the_ttl_plus_one_renewal_period(redis_client):
    """The holder dies without releasing: the lease expires a TTL after its last renewal and
    the other instance's next round (every third of the TTL) takes it. The time is measured and
    printed (1.41 s for a 1.5 s TTL on a quiet run); the assertions bound only against a hang,
    since a loaded machine stretches every round (speed belongs in bench/)."""
    import time
    client, _ = redis_client
    prefix = f"aura:test-{uuid.uuid4().hex[:8]}"
    ttl_ms = 1500
    a, b = link_for(prefix, ttl_ms=ttl_ms), link_for(prefix, ttl_ms=ttl_ms)
    loop_a = asyncio.create_task(a.run_lease())
    try:
        await asyncio.wait_for(_until(lambda: a.lease.held), 30)
        loop_b = asyncio.create_task(b.run_lease())
        await asyncio.sleep(0.6)
        assert not b.lease.held
        loop_a.cancel()  # dies: no release, no more renewals
        await asyncio.gather(loop_a, return_exceptions=True)
        died = time.monotonic()
        await asyncio.wait_for(_until(lambda: b.lease.held), 30)
        took = time.monotonic() - died
        print(f"takeover after {took:.2f} s (TTL {ttl_ms / 1000} s, renewal every {ttl_ms / 3000:.2f} s)")
        loop_b.cancel()
        await asyncio.gather(loop_b, return_exceptions=True)
    finally:
        loop_a.cancel()
        for link in (a, b):
            link.lease.held = False
            await link.close()
        keys = [key async for key in client.scan_iter(f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
