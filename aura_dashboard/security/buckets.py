"""Token buckets: how fast a client address or a connection may go."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

Clock = Callable[[], float]


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


