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
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import orjson
import redis.asyncio as aioredis
import socketio

from ..config import FeatureChange, RuntimeOverrides
from ..config.schema import WebSocketSettings
from .replay import KEY_TTL_MS, REDIS_CALL_TIMEOUT_S
from ..tasks import stop_if_cancelled

log = logging.getLogger(__name__)


def broker_kind(url: str) -> str | None:
    scheme = urlsplit(url).scheme if url else ""
    if scheme in ("redis", "rediss"):
        return "redis"
    if scheme in ("amqp", "amqps"):
        return "amqp"
    return None


def channel_name(settings: WebSocketSettings) -> str:
    return f"aura-dashboard:{settings.cluster_name}"


LISTEN_RETRY_MAX_S = 5.0  # the longest wait between two attempts to subscribe again
LISTEN_POLL_S = 1.0       # how often a subscription's reader looks up from waiting


async def messages(pubsub: Any) -> AsyncIterator[dict]:
    """What redis-py's `PubSub.listen()` yields, read with a timeout so that the reader looks up
    every LISTEN_POLL_S: a cancellation lost inside redis-py (`stop_if_cancelled`) would
    otherwise leave it waiting for the next message for good. Ends when the subscription does."""
    while pubsub.subscribed:
        stop_if_cancelled()
        message = await pubsub.get_message(timeout=LISTEN_POLL_S)
        if message is not None:
            yield message


class WatchedRedisManager(socketio.AsyncRedisManager):
    """python-socketio's Redis manager, telling when events may have gone missing.

    Pub/sub is at-most-once. Two ways an envelope can miss clients while it is in the
    cluster's buffer, each answered with a new epoch for the clients concerned (they
    resubscribe and are answered `gap` with the buffer, so nothing is lost silently):
    - this instance's subscription is lost (its link to Redis cut, even for a moment, while
      other instances go on publishing): when the listener has subscribed again,
      `on_resubscribed` is awaited (the hub's `resync`, for this instance's clients);
    - an event of this instance could not be published (the stock manager logs and drops it):
      the other instances' clients never got it; so too an append that timed out (`owe`,
      the hub's `on_unsure_append`: it may be in the buffer, unsent). Once Redis answers again, a notice on
      `<channel>:resync` makes every other instance await its `on_resubscribed`.
    The listener is `_listen` and the sender `_publish`, the hooks python-socketio's pub/sub
    managers leave to subclasses; the listener retries every second, doubling up to
    LISTEN_RETRY_MAX_S (the stock one waits up to 60 s).
    """

    def __init__(self, url: str, *, channel: str,
                 on_resubscribed: Callable[[], Awaitable[None]] | None = None):
        super().__init__(url, channel=channel)
        self._on_resubscribed = on_resubscribed
        self.resync_channel = f"{channel}:resync"
        self.resubscriptions = 0   # times the listener subscribed again
        self.unpublished = 0       # events that could not be published
        self.owe_resync = False    # the other instances are yet to be told of one
        # Whether a message another instance sent is kept from this instance's clients (the
        # hub's `holds_back`: its clients are in a local epoch); `held_back` counts them.
        self.hold_back: Callable[[dict], bool] | None = None
        self.held_back = 0

    async def _publish(self, data):
        problem: Exception | None = None
        for _ in range(2):
            try:
                if not self.connected:
                    self._redis_connect()
                async with asyncio.timeout(REDIS_CALL_TIMEOUT_S):  # a silent link holds bytes
                    await self._settle_resync(self.redis)
                    return await self.redis.publish(self.channel, self.json.dumps(data))
            except Exception as exc:
                self.connected = False
                problem = exc
        self.unpublished += 1
        self.owe_resync = True
        log.warning("message queue: an event was not published (%s); the other instances' "
                    "clients are given a new epoch once Redis answers",
                    (str(problem).splitlines() or [type(problem).__name__])[0][:300])

    def owe(self) -> None:
        """An event of this instance may be in the cluster's buffer without having been
        published (its append timed out): the other instances are told once Redis answers."""
        self.owe_resync = True

    async def _settle_resync(self, client: Any) -> None:
        if self.owe_resync:
            await client.publish(self.resync_channel, self.host_id)
            self.owe_resync = False

    async def _resynced(self, why: str) -> None:
        self.resubscriptions += 1
        log.warning("message queue: %s; clients here are given a new epoch", why)
        if self._on_resubscribed is None:
            return
        try:
            await self._on_resubscribed()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("message queue: the resubscription hook failed")

    def _kept(self, data: bytes) -> Any:
        """The message for the listening task (python-socketio's `_thread` takes the text or
        the decoded dict): decoded here when `hold_back` must see it; one it holds back
        becomes a message of no method, which `_thread` passes over."""
        if self.hold_back is None:
            return data
        try:
            decoded = self.json.loads(data)
        except Exception:
            return data
        if isinstance(decoded, dict) and decoded.get("host_id") != self.host_id and self.hold_back(decoded):
            self.held_back += 1
            return {"held_back": True}
        return decoded

    async def _listen(self):
        channel, resync = self.channel.encode("utf-8"), self.resync_channel.encode("utf-8")
        retry_s, lost = 1.0, False
        while True:
            stop_if_cancelled()
            client = aioredis.Redis.from_url(self.redis_url, **self.redis_options)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel, self.resync_channel)
                if lost:  # subscribed again: what was published meanwhile never came here
                    lost = False
                    await self._resynced("subscribed again after losing Redis")
                await self._settle_resync(client)
                retry_s = 1.0
                async for message in messages(pubsub):
                    if message.get("type") != "message" or "data" not in message:
                        continue
                    if message.get("channel") == channel:
                        yield self._kept(message["data"])
                    elif message.get("channel") == resync and message["data"] != self.host_id.encode():
                        await self._resynced("another instance could not publish an event")
                raise ConnectionError("the subscription ended")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not lost:
                    log.warning("message queue: subscription lost (%s); subscribing again",
                                (str(exc).splitlines() or [type(exc).__name__])[0][:300])
                lost = True
                await asyncio.sleep(retry_s)
                retry_s = min(retry_s * 2, LISTEN_RETRY_MAX_S)
            finally:
                try:
                    await asyncio.shield(pubsub.aclose())
                    await asyncio.shield(client.aclose())
                except Exception:
                    pass


def client_manager(settings: WebSocketSettings, *,
                   on_resubscribed: Callable[[], Awaitable[None]] | None = None) -> socketio.AsyncManager | None:
    """python-socketio's manager for the configured broker; None for one process alone.
    `on_resubscribed`: awaited each time the Redis listener subscribed again after losing Redis."""
    kind = broker_kind(settings.message_queue)
    if kind == "redis":
        return WatchedRedisManager(settings.message_queue, channel=channel_name(settings),
                                   on_resubscribed=on_resubscribed)
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
        self.problem: str | None = None  # why the last round failed
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
            self.healthy, self.problem = True, None
        except Exception as exc:  # Redis away or slow: the lease can no longer be proven
            if self.healthy:
                log.warning("cluster lease cannot be renewed: %s", exc)
            self.healthy = False
            self.problem = (str(exc).splitlines() or [type(exc).__name__])[0][:300] or type(exc).__name__
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


class ClusterUnavailable(Exception):
    """The cluster's Redis cannot be told of a change now."""


# The hash always holds this field once the cluster shares flags: a hash that is missing
# altogether means Redis lost its data, and the lease holder writes the flags back.
_SEALED = "__shared__"


class FlagSync:
    """Feature flags flipped on one instance are applied on every instance.

    A change is shared first (`share`: the hash, then the channel) and applied only when that
    worked, so a flag never differs between instances because Redis was away (the API answers
    503). The change is audited where it was made; elsewhere it arrives as a `remote` change.
    The hash is what every instance converges to: read on each resubscription and every
    `reconcile` round (a lease period); when Redis lost it, the lease holder writes its own
    flags back (`reseed`), since every instance held the same ones.
    """

    def __init__(self, redis: Any, prefix: str, owner: str, overrides: RuntimeOverrides):
        self.redis = redis
        self.hash = f"{prefix}:flags"
        self.channel = f"{prefix}:flags"
        self.owner = owner
        self.overrides = overrides
        # Flags shared by `share` and not yet applied here (`settled`): the periodic reload
        # must not apply them first as remote changes (the local change would go unaudited).
        self._shared: dict[str, bool | None] = {}

    async def share(self, changes: dict[str, bool | None], actor: str) -> None:
        """Tell the cluster of changes about to be applied here, all or none (one
        transaction); raises ClusterUnavailable. Call `settled` once they are applied."""
        self._shared.update(changes)
        try:
            async with asyncio.timeout(REDIS_CALL_TIMEOUT_S):
                async with self.redis.pipeline(transaction=True) as pipe:
                    for flag, value in changes.items():
                        if value is None:
                            pipe.hdel(self.hash, flag)
                        else:
                            pipe.hset(self.hash, flag, "1" if value else "0")
                    pipe.hset(self.hash, _SEALED, "1")
                    pipe.pexpire(self.hash, KEY_TTL_MS)
                    for flag, value in changes.items():
                        pipe.publish(self.channel, orjson.dumps(
                            {"flag": flag, "value": value, "actor": actor, "origin": self.owner}))
                    await pipe.execute()
        except Exception as exc:
            self.settled(changes)
            raise ClusterUnavailable(f"the cluster's Redis cannot be reached ({exc})") from exc

    def settled(self, flags) -> None:
        for flag in flags:
            self._shared.pop(flag, None)

    async def on_local_change(self, change: FeatureChange) -> None:
        """A change made here outside `share` (none today but through the API) is shared."""
        if change.remote or change.flag in self._shared:
            return
        try:
            await self.share({change.flag: None if change.reset else change.new}, change.actor)
            self.settled([change.flag])
        except ClusterUnavailable as exc:
            log.warning("flag change of %s not shared with the cluster: %s", change.flag, exc)

    async def apply(self, flag: str, value: bool | None, actor: str) -> None:
        if flag not in self.overrides.flags():
            return
        if value is None:
            await self.overrides.reset(flag, actor=actor, remote=True)
        else:
            await self.overrides.set(flag, value, actor=actor, remote=True)

    async def load(self) -> None:
        """Apply the overrides the cluster holds (an instance joining later, or one that missed
        a message); an override here that the cluster no longer holds is dropped. Nothing is
        done while the hash is missing (Redis lost it: the holder's `reseed` writes it back)."""
        async with asyncio.timeout(REDIS_CALL_TIMEOUT_S):
            stored = await self.redis.hgetall(self.hash)
        flags = {}
        for flag, value in stored.items():
            flag = flag.decode() if isinstance(flag, bytes) else flag
            value = value.decode() if isinstance(value, bytes) else value
            flags[flag] = value
        if not flags:
            return
        for flag, value in flags.items():
            if flag != _SEALED and flag not in self._shared:
                await self.apply(flag, value == "1", actor="cluster")
        for flag in self.overrides.overridden():
            if flag not in flags and flag not in self._shared:
                await self.apply(flag, None, actor="cluster")

    async def reseed(self) -> bool:
        """Write this instance's overrides back when the hash is missing (Redis restarted
        without its data); returns whether it did. Called by the lease holder."""
        async with asyncio.timeout(REDIS_CALL_TIMEOUT_S):
            if await self.redis.exists(self.hash):
                await self.redis.pexpire(self.hash, KEY_TTL_MS)  # kept while the cluster lives
                return False
            mapping = {flag: "1" if value else "0" for flag, value in self.overrides.overridden().items()}
            # HSETNX on the seal: a change shared meanwhile by another instance wins.
            if not await self.redis.hsetnx(self.hash, _SEALED, "1"):
                return False
            if mapping:
                await self.redis.hset(self.hash, mapping=mapping)
            await self.redis.pexpire(self.hash, KEY_TTL_MS)
        log.warning("the cluster's flags were lost (Redis restarted?); written back from this "
                    "instance: %s", mapping or "no overrides")
        return True

    async def reconcile(self, period_s: float) -> None:
        """Every `period_s` (a lease period): converge on what the hash holds, until cancelled."""
        while True:
            stop_if_cancelled()
            await asyncio.sleep(period_s)
            try:
                await self.load()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("flags not reconciled: %s", exc)

    async def run(self) -> None:
        """Listen for other instances' changes; re-subscribe after Redis comes back."""
        while True:
            stop_if_cancelled()
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                await self.load()
                async for message in messages(pubsub):
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


class SharedDocuments:
    """A small set of JSON documents in one Redis hash, kept 7 days after the last write: the
    lease holder's state (open debates) that the next holder resumes. Failures are logged,
    never raised: keeping is a help for a failover, not a condition of serving."""

    def __init__(self, redis: Any, key: str):
        self.redis = redis
        self.key = key

    async def put(self, doc_id: str, doc: dict[str, Any]) -> None:
        try:
            async with asyncio.timeout(REDIS_CALL_TIMEOUT_S):
                async with self.redis.pipeline(transaction=True) as pipe:
                    pipe.hset(self.key, doc_id, orjson.dumps(doc))
                    pipe.pexpire(self.key, KEY_TTL_MS)
                    await pipe.execute()
        except Exception as exc:
            log.warning("%s: %s not kept in Redis: %s", self.key, doc_id, exc)

    async def delete(self, doc_id: str) -> None:
        try:
            async with asyncio.timeout(REDIS_CALL_TIMEOUT_S):
                await self.redis.hdel(self.key, doc_id)
        except Exception as exc:
            log.warning("%s: %s not removed from Redis: %s", self.key, doc_id, exc)

    async def all(self, *, strict: bool = False) -> list[dict[str, Any]]:
        """Every document; none when Redis cannot be read (`strict`: raise instead, for a
        reader that must not answer 'nothing kept' when it does not know)."""
        try:
            async with asyncio.timeout(REDIS_CALL_TIMEOUT_S):
                stored = await self.redis.hgetall(self.key)
        except Exception as exc:
            if strict:
                raise
            log.warning("%s not read from Redis: %s", self.key, exc)
            return []
        return [orjson.loads(value) for value in stored.values()]
