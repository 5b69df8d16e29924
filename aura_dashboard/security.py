"""The pieces every way in shares: API keys, token buckets, client addresses, security events.

REST (`web/security.py`) and Socket.IO (`realtime/limits.py`, `namespaces/base.py`) use the
same key ring, the same bucket arithmetic and the same hook for failed authentications, so a
rule holds the same way whichever door a client knocks on.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from .callbacks import notify_all
from .config.schema import SecuritySettings

log = logging.getLogger(__name__)

Clock = Callable[[], float]


# -- API keys --------------------------------------------------------------------------------
def key_id(key: str) -> str:
    """A name for a key that can be logged and audited without revealing it."""
    return "key:" + hashlib.sha256(key.encode()).hexdigest()[:8]


class KeyRing:
    """The accepted API keys (several during a rotation), checked in constant time.

    Candidates and keys are compared as SHA-256 digests, so neither the content nor the length
    of a key leaks through timing; every key is compared, whichever matches.
    """

    def __init__(self, keys: Iterable[str]):
        self._keys = [(hashlib.sha256(k.encode()).digest(), key_id(k)) for k in keys]

    @classmethod
    def from_settings(cls, security: SecuritySettings) -> "KeyRing | None":
        """The ring when the API key is on, else None (everyone is let in)."""
        return cls(security.api_keys()) if security.api_key_enabled else None

    def match(self, candidate: object) -> str | None:
        """The key id of `candidate` when it is an accepted key, else None."""
        if not isinstance(candidate, str) or not candidate:
            return None
        digest = hashlib.sha256(candidate.encode()).digest()
        found = None
        for key_digest, kid in self._keys:
            if hmac.compare_digest(digest, key_digest):
                found = kid
        return found


def bearer(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header."""
    if authorization and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return None


# -- token buckets ---------------------------------------------------------------------------
class TokenBucket:
    """`capacity` tokens, refilled at `rate` per second; each request takes one."""

    __slots__ = ("rate", "capacity", "tokens", "stamp")

    def __init__(self, rate: float, capacity: float, now: float):
        self.rate, self.capacity, self.tokens, self.stamp = rate, capacity, capacity, now

    def take(self, now: float) -> float:
        """0.0 when a token was taken, else the seconds until one is available."""
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class BucketTable:
    """One bucket per key (client address, connection), at most `max_keys` of them.

    The least recently used bucket is dropped when a new key would pass the bound, so a client
    cycling through addresses cannot grow memory; the worst it achieves is a fresh bucket for
    an idle client.
    """

    def __init__(self, per_minute: int, burst: int, max_keys: int, clock: Clock = time.monotonic):
        self.rate = per_minute / 60.0
        self.burst = burst
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def take(self, key: str) -> float:
        """0.0 when `key` may go ahead, else the seconds it should wait."""
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, now)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket.take(now)

    def forget(self, key: str) -> None:
        self._buckets.pop(key, None)

    def __len__(self) -> int:
        return len(self._buckets)


def retry_after(wait_s: float) -> int:
    """Whole seconds for a `Retry-After` header (at least 1)."""
    return max(1, math.ceil(wait_s))


# -- client addresses ------------------------------------------------------------------------
class ClientAddress:
    """The address of the client behind a request.

    `X-Forwarded-For` is believed only when the peer is one of `security.trusted_proxies`;
    the client is then the right-most forwarded address that is not itself a trusted proxy.
    """

    def __init__(self, trusted: Iterable[str]):
        self.trusted = [ipaddress.ip_network(t, strict=False) for t in trusted]

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.trusted)

    def __call__(self, peer: str | None, forwarded_for: str | None) -> str:
        peer = peer or "unknown"
        if not self.trusted or not forwarded_for or not self._is_trusted(peer):
            return peer
        hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
        for hop in reversed(hops):
            if not self._is_trusted(hop):
                return hop
        return hops[0] if hops else peer


# -- security events -------------------------------------------------------------------------
Listener = Callable[[dict[str, Any]], Awaitable[None] | None]


class SecurityEvents:
    """Failed authentications and other refusals, for whoever audits them.

    `add_listener(fn)` subscribes `fn(event)` (plain or async); an event is
    `{"action": "auth_failed", "actor": <client address>, "target": <namespace or path>,
    "detail": {...}}`. Events are rate-limited per actor (a flood of bad keys produces a few
    events, each counting the ones suppressed since), and a WARNING is logged for each one
    passed on. A listener that fails is logged and never stops the others.
    """

    def __init__(self, per_minute: int = 30, burst: int = 5, max_actors: int = 10_000,
                 clock: Clock = time.monotonic):
        self._listeners: list[Listener] = []
        self._buckets = BucketTable(per_minute, burst, max_actors, clock)
        self._suppressed: OrderedDict[str, int] = OrderedDict()
        self._max_actors = max_actors

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        self._listeners.remove(listener)

    async def emit(self, action: str, actor: str, target: str, detail: dict[str, Any]) -> bool:
        """Pass the event on unless this actor is over its rate; True when it was passed on."""
        if self._buckets.take(actor) > 0:
            self._suppressed[actor] = self._suppressed.get(actor, 0) + 1
            self._suppressed.move_to_end(actor)
            while len(self._suppressed) > self._max_actors:
                self._suppressed.popitem(last=False)
            return False
        suppressed = self._suppressed.pop(actor, 0)
        event = {"action": action, "actor": actor, "target": target,
                 "detail": {**detail, "suppressed": suppressed} if suppressed else dict(detail)}
        log.warning("%s from %s on %s: %s%s", action, actor, target, detail.get("reason", ""),
                    f" ({suppressed} more suppressed)" if suppressed else "")
        await notify_all(self._listeners, event, logger=log, what="security event listener")
        return True
