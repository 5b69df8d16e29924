"""The Redis side of a cluster, in one object the app holds: replay store, lease, flag sync."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from ..config import RuntimeOverrides
from ..config.schema import WebSocketSettings
from .cluster import FlagSync, Lease, broker_kind, owner_id
from .replay import RedisReplay

log = logging.getLogger(__name__)


@dataclass
class ClusterLink:
    redis: Any
    owner: str
    replay: RedisReplay
    lease: Lease
    flags: FlagSync

    @classmethod
    def create(cls, settings: WebSocketSettings, instance: str,
               overrides: RuntimeOverrides) -> ClusterLink | None:
        """None unless the message queue is Redis (AMQP brokers carry broadcasts only)."""
        if broker_kind(settings.message_queue) != "redis":
            return None
        client = aioredis.from_url(settings.message_queue, socket_timeout=5, socket_connect_timeout=5)
        prefix = f"aura:{settings.cluster_name}"
        owner = owner_id(instance)
        link = cls(redis=client, owner=owner,
                   replay=RedisReplay(client, settings.cluster_name, settings.message_buffer_size),
                   lease=Lease(client, f"{prefix}:lease:shared", owner, settings.lease_ttl_ms),
                   flags=FlagSync(client, prefix, owner, overrides))
        overrides.add_listener(link.flags.on_local_change)
        return link

    def health(self) -> dict[str, Any]:
        return {"status": "up" if self.lease.healthy else "down", "kind": "redis",
                "owner": self.owner, "shared_collectors_here": self.lease.held}

    async def close(self) -> None:
        await self.lease.release()
        await self.redis.aclose()
