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


class FailureDelay:
    """A growing delay after repeated failures of one key (a client address guessing keys).

    The first `free` failures in a row cost nothing more; each later one locks the key out
    for twice as long as the one before (1 s, 2 s, 4 s ... at most `max_delay_s`), and a
    failure may ask for a longer lock (`at_least`: its bucket's wait). A success clears the
    count. At most `max_keys` keys are remembered, the least recently failed dropped first.
    """

    def __init__(self, free: int = 5, max_delay_s: float = 60.0, max_keys: int = 10_000,
                 clock: Clock = time.monotonic):
        self.free = free
        self.max_delay_s = max_delay_s
        self.max_keys = max_keys
        self.clock = clock
        self._state: OrderedDict[str, tuple[int, float]] = OrderedDict()  # key -> (failures, locked until)

    def wait(self, key: str) -> float:
        """Seconds `key` is still locked out (0.0: it may try)."""
        state = self._state.get(key)
        return max(0.0, state[1] - self.clock()) if state is not None else 0.0

    def failed(self, key: str, at_least: float = 0.0) -> float:
        """Count a failure; returns the lock it earned, in seconds."""
        count = self._state.pop(key, (0, 0.0))[0] + 1
        delay = 0.0 if count <= self.free else min(self.max_delay_s, 2.0 ** (count - self.free - 1))
        delay = max(delay, at_least)
        self._state[key] = (count, self.clock() + delay)
        while len(self._state) > self.max_keys:
            self._state.popitem(last=False)
        return delay

    def succeeded(self, key: str) -> None:
        self._state.pop(key, None)


def retry_after(wait_s: float) -> int:
    """Whole seconds for a `Retry-After` header (at least 1)."""
    return max(1, math.ceil(wait_s))


