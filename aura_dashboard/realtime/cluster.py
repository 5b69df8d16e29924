"""Several instances as one dashboard, joined by an existing broker.

- Broadcast: python-socketio's own `AsyncRedisManager` (redis://, rediss://) or
  `AsyncAioPikaManager` (amqp://, amqps://) carries every emit to every instance.
- With Redis, also: cluster-wide `seq` and the shared replay buffer (`replay.RedisReplay`),
  the lease that picks the one instance running the shared collectors (`Lease`), and
  feature flags flipped on one instance applied on all (`FlagSync`).
Every loop here times out its Redis calls, survives Redis going away (the lease is then
given up, since it can no longer be proven), and stops on cancellation.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import orjson
import socketio

from ..config import FeatureChange, RuntimeOverrides
from ..config.schema import WebSocketSettings

log = logging.getLogger(__name__)
REDIS_CALL_TIMEOUT_S = 2.0


def broker_kind(url: str) -> str | None:
    scheme = urlsplit(url).scheme if url else ""
    if scheme in ("redis", "rediss"):
        return "redis"
    if scheme in ("amqp", "amqps"):
        return "amqp"
    return None


def channel_name(settings: WebSocketSettings) -> str:
    return f"aura-dashboard:{settings.cluster_name}"


def client_manager(settings: WebSocketSettings) -> socketio.AsyncManager | None:
    """python-socketio's manager for the configured broker; None for one process alone."""
    kind = broker_kind(settings.message_queue)
    if kind == "redis":
        return socketio.AsyncRedisManager(settings.message_queue, channel=channel_name(settings))
    if kind == "amqp":
        return socketio.AsyncAioPikaManager(settings.message_queue, channel=channel_name(settings))
    return None


def owner_id(instance: str) -> str:
    """Unique per process: two instances on one host must not share a lease."""
    return f"{instance}:{os.getpid()}:{secrets.token_hex(4)}"


# Renew only a lease we still hold; KEYS: lease, ARGV: owner, ttl ms.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class Lease:
    """Held by one instance at a time: SET NX PX, renewed at a third of the TTL."""

    def __init__(self, redis: Any, key: str, owner: str, ttl_ms: int,
                 on_change: Callable[[bool], Awaitable[None]] | None = None):
        self.redis = redis
        self.key = key
        self.owner = owner
        self.ttl_ms = ttl_ms
        self.held = False
        self.healthy = True
        self._on_change = on_change
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    async def attempt(self) -> bool:
        """One acquire-or-renew round; returns whether the lease is held afterwards."""
        try:
            async with asyncio.timeout(REDIS_CALL_TIMEOUT_S):
                if self.held and await self._renew(keys=[self.key], args=[self.owner, self.ttl_ms]):
                    held = True
                else:
                    held = bool(await self.redis.set(self.key, self.owner, nx=True, px=self.ttl_ms))
            self.healthy = True
        except Exception as exc:  # Redis away or slow: the lease can no longer be proven
            if self.healthy:
                log.warning("cluster lease cannot be renewed: %s", exc)
            self.healthy = False
            held = False
        if held != self.held:
            self.held = held
            log.info("shared collectors %s on this instance", "start" if held else "stop",
                     extra={"lease": self.key, "owner": self.owner})
            await self._changed(held)
        return held

    async def _changed(self, held: bool) -> None:
        # A failing hook is logged, never raised: the renewal loop must go on (a loop that
        # stopped while `held` stayed true would leave two instances sampling shared streams).
        if self._on_change is None:
            return
        try:
            await self._on_change(held)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("lease change hook failed (held=%s)", held)

    async def release(self) -> None:
        if not self.held:
            return
        self.held = False
        try:
            async with asyncio.timeout(REDIS_CALL_TIMEOUT_S):
                await self._release(keys=[self.key], args=[self.owner])
        except Exception as exc:  # it expires on its own within the TTL
            log.warning("cluster lease not released: %s", exc)
        await self._changed(False)


class FlagSync:
    """Feature flags flipped on one instance are applied on every instance.

    The change is audited where it was made; elsewhere it arrives as a `remote` change. The
    overrides are also kept in a Redis hash, so an instance that starts later applies them.
    """

    def __init__(self, redis: Any, prefix: str, owner: str, overrides: RuntimeOverrides):
        self.redis = redis
        self.hash = f"{prefix}:flags"
        self.channel = f"{prefix}:flags"
        self.owner = owner
        self.overrides = overrides

    async def on_local_change(self, change: FeatureChange) -> None:
        if change.remote:
            return
        message = orjson.dumps({"flag": change.flag, "value": None if change.reset else change.new,
                                "actor": change.actor, "origin": self.owner})
        try:
            async with asyncio.timeout(REDIS_CALL_TIMEOUT_S):
                if change.reset:
                    await self.redis.hdel(self.hash, change.flag)
                else:
                    await self.redis.hset(self.hash, change.flag, "1" if change.new else "0")
                await self.redis.publish(self.channel, message)
        except Exception as exc:
            log.warning("flag change of %s not shared with the cluster: %s", change.flag, exc)

    async def apply(self, flag: str, value: bool | None, actor: str) -> None:
        if flag not in self.overrides.flags():
            return
        if value is None:
            await self.overrides.reset(flag, actor=actor, remote=True)
        else:
            await self.overrides.set(flag, value, actor=actor, remote=True)

    async def load(self) -> None:
        """Apply the overrides the cluster already holds (an instance joining later)."""
        async with asyncio.timeout(REDIS_CALL_TIMEOUT_S):
            stored = await self.redis.hgetall(self.hash)
        for flag, value in stored.items():
            flag = flag.decode() if isinstance(flag, bytes) else flag
            value = value.decode() if isinstance(value, bytes) else value
            await self.apply(flag, value == "1", actor="cluster")

    async def run(self) -> None:
        """Listen for other instances' changes; re-subscribe after Redis comes back."""
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                await self.load()
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    try:
                        body = orjson.loads(message["data"])
                        if body.get("origin") == self.owner:
                            continue
                        value = body.get("value")
                        await self.apply(str(body["flag"]), None if value is None else bool(value),
                                         actor=f"cluster:{body.get('actor', '?')}")
                    except Exception:
                        log.exception("bad flag message on %s", self.channel)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("flag sync lost Redis (%s); retrying", exc)
                await asyncio.sleep(1.0)
            finally:
                try:
                    await asyncio.shield(pubsub.aclose())
                except Exception:
                    pass
