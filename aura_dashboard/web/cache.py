"""A small cache of encoded REST answers that read the hub.

An entry is reused while the stream has published nothing newer and its age is under
`performance.cache.ttl_seconds`, so a cached answer is never staler than the hub itself.
Bounded by `performance.cache.max_size_mb`; the oldest entries go first.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from ..config.schema import CacheSettings


class HubReadCache:
    def __init__(self, settings: CacheSettings, clock: Callable[[], float] = time.monotonic):
        self.enabled = settings.enabled and settings.ttl_seconds > 0
        self.ttl = settings.ttl_seconds
        self.max_bytes = settings.max_size_mb * 1024 * 1024
        self._clock = clock
        self._entries: OrderedDict[str, tuple[int, float, bytes]] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: str, seq: int) -> bytes | None:
        if not self.enabled:
            return None
        entry = self._entries.get(key)
        if entry is None or entry[0] != seq or entry[1] < self._clock():
            self.misses += 1
            return None
        self.hits += 1
        return entry[2]

    def put(self, key: str, seq: int, body: bytes) -> None:
        if not self.enabled or len(body) > self.max_bytes:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= len(old[2])
        self._entries[key] = (seq, self._clock() + self.ttl, body)
        self._bytes += len(body)
        while self._bytes > self.max_bytes:
            _, (_, _, evicted) = self._entries.popitem(last=False)
            self._bytes -= len(evicted)
