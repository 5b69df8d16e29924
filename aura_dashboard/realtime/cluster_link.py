"""The Redis side of a cluster, in one object the app holds: replay store, lease, flag sync,
and the address of the lease holder (which owns the arena and the inference statistics)."""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from ..config import RuntimeOverrides
from ..config.schema import DashboardSettings, WebSocketSettings
from .cluster import REDIS_CALL_TIMEOUT_S, FlagSync, Lease, SharedDocuments, broker_kind, owner_id
from .replay import KEY_TTL_MS, RedisReplay
from ..tasks import stop_if_cancelled

log = logging.getLogger(__name__)


def advertised_url(dashboard: DashboardSettings) -> str:
    if dashboard.advertise_url:
        return dashboard.advertise_url
    host = dashboard.host
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    return f"http://{host}:{dashboard.port}"


@dataclass
class ClusterLink:
    redis: Any
    owner: str
    url: str
    prefix: str
    replay: RedisReplay
    lease: Lease
    flags: FlagSync

    @classmethod
    def create(cls, ws: WebSocketSettings, url: str, instance: str, overrides: RuntimeOverrides,
               on_lease_change: Callable[[bool], Awaitable[None]] | None = None) -> ClusterLink | None:
        """None unless the message queue is Redis (AMQP brokers carry broadcasts only).

        :param ws: the `websocket` section (queue URL, cluster name, buffer size, lease TTL).
        :param url: the address other instances reach this one at.
        :param instance: this instance's name.
        :param overrides: the feature flags the cluster keeps in step.
        :param on_lease_change: awaited with the new state each time this instance gains or
            loses the lease (the emitters start or stop the shared collectors); its failures
            are logged, never stop the lease loop.
        """
        if broker_kind(ws.message_queue) != "redis":
            return None
        client = aioredis.from_url(ws.message_queue, socket_timeout=5, socket_connect_timeout=5)
        prefix = f"aura:{ws.cluster_name}"
        owner = owner_id(instance)
        return cls(redis=client, owner=owner, url=url, prefix=prefix,
                   replay=RedisReplay(client, ws.cluster_name, ws.message_buffer_size),
                   lease=Lease(client, f"{prefix}:lease:shared", owner, ws.lease_ttl_ms,
                               on_change=on_lease_change),
                   flags=FlagSync(client, prefix, owner, overrides))

    async def start(self) -> None:
        """The first lease round, so the shared collectors start at once where they should."""
        await self.lease_round()

    # -- the instances' shared secret: forwarded requests prove they come from an instance --
    _secret: str | None = None
    _secret_read_at: float = 0.0

    @property
    def secret_key(self) -> str:
        return f"{self.prefix}:peer-secret"

    async def peer_secret(self, *, refresh: bool = False) -> str:
        """The cluster's instance-to-instance secret: made once by whichever instance asks
        first (SET NX), kept in Redis beside everything the instances already share."""
        if self._secret is not None and not refresh:
            return self._secret
        async with asyncio.timeout(REDIS_CALL_TIMEOUT_S):
            await self.redis.set(self.secret_key, secrets.token_hex(32), nx=True, px=KEY_TTL_MS)
            value = await self.redis.get(self.secret_key)
            await self.redis.pexpire(self.secret_key, KEY_TTL_MS)
        self._secret = value.decode() if isinstance(value, bytes) else value
        self._secret_read_at = time.monotonic()
        return self._secret

    async def is_peer(self, presented: str | None) -> bool:
        """Whether `presented` is the cluster's secret (re-read at most once a second when it
        does not match, since Redis may have made a new one)."""
        if not presented:
            return False
        try:
            if hmac.compare_digest(presented, await self.peer_secret()):
                return True
            if time.monotonic() - self._secret_read_at < 1.0:
                return False
            return hmac.compare_digest(presented, await self.peer_secret(refresh=True))
        except Exception as exc:
            log.warning("peer secret cannot be read: %s", exc)
            return False

    def documents(self, name: str) -> SharedDocuments:
        """The holder's state `name` (e.g. `arena`), kept for the next holder."""
        return SharedDocuments(self.redis, f"{self.prefix}:state:{name}")

    @property
    def holder_key(self) -> str:
        return f"{self.prefix}:lease:holder-url"

    async def lease_round(self) -> bool:
        held = await self.lease.attempt()
        if held:
            try:
                async with asyncio.timeout(REDIS_CALL_TIMEOUT_S):
                    await self.redis.set(self.holder_key, self.url, px=self.lease.ttl_ms)
            except Exception as exc:
                log.warning("holder address not published: %s", exc)
            try:
                await self.flags.reseed()
            except Exception as exc:
                log.warning("flags not written back: %s", exc)
        return held

    async def run_flag_reconcile(self) -> None:
        """Converge on the cluster's flags every lease period (see `FlagSync.reconcile`)."""
        await self.flags.reconcile(self.lease.ttl_ms / 1000)

    async def run_lease(self) -> None:
        """Renew (or take) the lease every third of its TTL until cancelled; a failed round is
        logged and the next one tried (each Redis call has its own timeout)."""
        while True:
            stop_if_cancelled()
            try:
                await self.lease_round()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("lease round failed; trying again")
            await asyncio.sleep(self.lease.ttl_ms / 3000)

    async def holder_url(self) -> str | None:
        async with asyncio.timeout(REDIS_CALL_TIMEOUT_S):
            value = await self.redis.get(self.holder_key)
        return value.decode() if isinstance(value, bytes) else value

    def health(self) -> dict[str, Any]:
        """`up`, or `degraded` while Redis cannot be reached: this instance still serves its own
        clients (per-host streams, REST), but cluster-wide sequence, replay and flags wait."""
        state = {"status": "up" if self.lease.healthy else "degraded", "kind": "redis",
                 "owner": self.owner, "url": self.url, "shared_collectors_here": self.lease.held}
        if not self.lease.healthy:
            state["reason"] = self.lease.problem or "Redis cannot be reached"
        return state

    async def close(self) -> None:
        await self.lease.release()
        await self.redis.aclose()
