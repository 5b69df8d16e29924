"""An envelope stored in the cluster's buffer and never sent: its instance was killed between the
append (its `seq` taken, the envelope kept) and the publish. Every other instance's clients see
a hole in the numbering that nothing else would fill; a client following the protocol asks
again from its floor after a while (sequence.js, tests/following.py) and gets it from the buffer.
"""

from __future__ import annotations

import time
import uuid

import redis.asyncio as aioredis

from aura_dashboard.realtime.replay import RedisReplay
from tests.conftest import make_settings, running_server
from tests.following import following, silently_lost
from tests.realtime.test_redis_restart import redis_server  # noqa: F401 (fixture)


async def store_without_sending(redis_url: str, cluster: str, stream: str, source: str, data=None) -> int:
    """What a killed instance leaves: the envelope in the cluster's buffer, published nowhere."""
    client = aioredis.from_url(redis_url)
    try:
        envelope = await RedisReplay(client, cluster, 100).append(stream, time.time(), source, data or {})
        return envelope["seq"]
    finally:
        await client.aclose()


async def test_an_envelope_stored_by_an_instance_that_died_before_sending_it_is_asked_for_again(redis_server):  # noqa: F811
    cluster = f"t{uuid.uuid4().hex[:8]}"
    extra = {"updates": {"intervals": {"system_metrics": 200}, "batch_updates": False}}
    env = {"MESSAGE_QUEUE_URL": redis_server.url, "DASHBOARD_CLUSTER": cluster, "DASHBOARD_INSTANCE": "node-a"}
    async with running_server(make_settings(env, extra)) as a, following(a.url) as client:
        await client.until(lambda: len(client.accepted) >= 3, 30)
        unsent = await store_without_sending(redis_server.url, cluster, "system", "node-dead")
        await client.until(lambda: unsent in client.seqs, 20)
        assert client.sequence.repairs >= 1, client
        assert client.gaps == 0, "the buffer still held it: no gap"
        assert [e["source"] for _, e in client.accepted].count("node-dead") == 1
        assert silently_lost(client) == [], client
        assert len(client.seqs) == len(set(client.seqs)), "each envelope taken once"
