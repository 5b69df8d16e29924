"""Where envelopes get their `seq` and where they are read back: the one read path.

A `ReplayStore` assigns each envelope its `seq` and keeps the last `message_buffer_size`
envelopes of every stream; subscribe (history, replay), REST (latest, history) and health all
read through it, so every reader sees the same thing on every instance.

`LocalReplay`: one process; `seq` per stream in memory, the buffer a deque. Its methods never
suspend, which keeps subscribe's join-then-read free of races (see subscriptions.py).
`RedisReplay`: a cluster; `seq` is a Redis counter per stream and the buffer a Redis stream
per dashboard stream capped at `message_buffer_size`, both updated in one Lua script so
entries are stored in `seq` order whichever instance publishes. Pub/sub is at-most-once;
the Redis stream is what a reconnecting client is replayed from, on any instance, and what a
replica without the lease answers REST from.

Epochs: a Redis restarted without persistence begins every counter again at 1, and a client
that keeps the highest `seq` it holds would drop every new envelope as a duplicate. The append
script therefore also keeps `aura:{cluster}:epoch`, created with a fresh value whenever it is
missing: a store that sees the value change knows the counters began again (`take_new_epoch`),
and the hub tells the clients (the `epoch` event) so they resubscribe and are answered `gap`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import deque
from typing import Any, Protocol

import orjson
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..errors import AppendUnsure, ClusterStoreUnavailable

log = logging.getLogger(__name__)
# Every key a cluster writes lives this long after its last write, so a cluster that is gone
# leaves nothing behind for good (a stream idle this long begins its `seq` again).
KEY_TTL_MS = 7 * 24 * 3600 * 1000
# The longest any one call to the cluster's Redis may take (the client's own socket timeout,
# retried, is far longer, and a link that goes silent, holding the bytes, never resets).
REDIS_CALL_TIMEOUT_S = 2.0

Envelope = dict[str, Any]
SCAN_CHUNK = 64  # envelopes read at a time when looking for one source's latest


def replay_from(buffered: list[Envelope], since: int, last_seq: int,
                oldest: int | None = None) -> tuple[list[Envelope], bool]:
    """Every buffered envelope newer than `since`, and whether some are lost (`gap`).

    A `since` ahead of the sequence (the server or cluster restarted) is a gap too.
    """
    if since > last_seq:
        return buffered, True
    newer = [envelope for envelope in buffered if envelope["seq"] > since]
    if oldest is None:
        oldest = buffered[0]["seq"] if buffered else last_seq + 1
    return newer, since + 1 < oldest


class ReplayStore(Protocol):
    """Sequence numbers and the replay buffer of every stream."""

    epoch: str | None  # the epoch as the store last saw it (None: not yet)

    def add_stream(self, stream: str) -> None: ...
    async def append(self, stream: str, ts: float, source: str, data: Any) -> Envelope: ...
    async def history(self, stream: str, points: int | None) -> list[Envelope]: ...
    async def replay(self, stream: str, since: int) -> tuple[list[Envelope], bool]: ...
    async def latest(self, stream: str, source: str | None = None) -> Envelope | None: ...
    async def last_seq(self, stream: str) -> int: ...
    def take_new_epoch(self) -> str | None: ...
    async def current_epoch(self) -> str: ...


def _last(items: list[Envelope], points: int | None) -> list[Envelope]:
    if points is None:
        return items
    return items[-points:] if points > 0 else []


class LocalReplay:
    """Sequence numbers and ring buffers of one process."""

    def __init__(self, buffer_size: int, epoch: str | None = None):
        self.buffer_size = buffer_size
        self._buffers: dict[str, deque] = {}
        self._seqs: dict[str, int] = {}
        # Sequence numbers begin at 1 with each process: a new token each time.
        self.epoch = epoch or f"p-{secrets.token_hex(6)}"

    async def current_epoch(self) -> str:
        return self.epoch

    def add_stream(self, stream: str) -> None:
        self._buffers[stream] = deque(maxlen=self.buffer_size)
        self._seqs[stream] = 0

    async def append(self, stream: str, ts: float, source: str, data: Any) -> Envelope:
        self._seqs[stream] += 1
        envelope = {"stream": stream, "seq": self._seqs[stream], "ts": ts, "source": source, "data": data}
        self._buffers[stream].append(envelope)
        return envelope

    async def history(self, stream: str, points: int | None) -> list[Envelope]:
        return _last(list(self._buffers[stream]), points)

    async def replay(self, stream: str, since: int) -> tuple[list[Envelope], bool]:
        return replay_from(list(self._buffers[stream]), since, self._seqs[stream])

    async def latest(self, stream: str, source: str | None = None) -> Envelope | None:
        for envelope in reversed(self._buffers[stream]):
            if source is None or envelope["source"] == source:
                return envelope
        return None

    async def last_seq(self, stream: str) -> int:
        return self._seqs[stream]

    def take_new_epoch(self) -> str | None:
        """Never: one process's counters only begin again with the process (clients then
        resubscribe with a `since` past the sequence and are answered `gap`)."""
        return None


# KEYS: counter, buffer, epoch. ARGV: envelope text before the seq, after it, buffer size,
# the epoch to create when there is none (Redis lost its data, or the cluster is new), the
# keys' time to live in ms.
_APPEND = """
local epoch = redis.call('GET', KEYS[3])
if not epoch then
  epoch = ARGV[4]
  redis.call('SET', KEYS[3], epoch)
end
local seq = redis.call('INCR', KEYS[1])
local envelope = ARGV[1] .. seq .. ARGV[2]
redis.call('XADD', KEYS[2], 'MAXLEN', tonumber(ARGV[3]), seq .. '-0', 'e', envelope)
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[5]) end
return {seq, epoch}
"""


class RedisReplay:
    """Cluster-wide `seq` and replay buffer in Redis (redis-py's asyncio client)."""

    def __init__(self, redis: Any, cluster: str, buffer_size: int):
        self.redis = redis
        self.prefix = f"aura:{cluster}"
        self.buffer_size = buffer_size
        self._append = redis.register_script(_APPEND)
        self.epoch: str | None = None       # the cluster's epoch as this store last saw it
        self._new_epoch: str | None = None  # a change not yet announced

    def add_stream(self, stream: str) -> None:
        """Nothing to prepare: a stream's keys appear with its first envelope."""

    def _keys(self, stream: str) -> tuple[str, str]:
        return f"{self.prefix}:seq:{stream}", f"{self.prefix}:buffer:{stream}"

    async def append(self, stream: str, ts: float, source: str, data: Any) -> Envelope:
        # The envelope is encoded here, around the one number only Redis can know.
        head = b'{"stream":' + orjson.dumps(stream) + b',"seq":'
        tail = b',"ts":' + orjson.dumps(ts) + b',"source":' + orjson.dumps(source) + \
            b',"data":' + orjson.dumps(data) + b"}"
        # A timed-out append may still land in the buffer: the caller treats it as the store
        # away (a local epoch) and as an envelope the other instances may never be sent.
        try:
            async with _reading(), asyncio.timeout(REDIS_CALL_TIMEOUT_S):
                seq, epoch = await self._append(keys=[*self._keys(stream), self.epoch_key],
                                                args=[head, tail, self.buffer_size, secrets.token_hex(8), KEY_TTL_MS])
        except ClusterStoreUnavailable as exc:
            if isinstance(exc.__cause__, (TimeoutError, RedisTimeoutError)):
                raise AppendUnsure(str(exc)) from exc.__cause__
            raise
        self._saw_epoch(epoch.decode() if isinstance(epoch, bytes) else str(epoch))
        return {"stream": stream, "seq": int(seq), "ts": ts, "source": source, "data": data}

    @property
    def epoch_key(self) -> str:
        return f"{self.prefix}:epoch"

    async def current_epoch(self) -> str:
        """The cluster's epoch now ("" before the first envelope of a new cluster)."""
        async with _reading():
            value = await self.redis.get(self.epoch_key)
        return value.decode() if isinstance(value, bytes) else (value or "")

    def _saw_epoch(self, epoch: str) -> None:
        if self.epoch is not None and epoch != self.epoch:
            log.warning("the cluster's Redis lost its data (epoch %s, was %s): sequence numbers "
                        "begin again; clients are told to resubscribe", epoch, self.epoch)
            self._new_epoch = epoch
        self.epoch = epoch

    def take_new_epoch(self) -> str | None:
        """The new epoch, once, after the counters were seen to begin again; else None."""
        epoch, self._new_epoch = self._new_epoch, None
        return epoch

    @staticmethod
    def _decode(entries) -> list[Envelope]:
        return [orjson.loads(fields[b"e"] if b"e" in fields else fields["e"]) for _, fields in entries]

    async def history(self, stream: str, points: int | None) -> list[Envelope]:
        async with _reading():
            return await self._history(stream, points)

    async def _history(self, stream: str, points: int | None) -> list[Envelope]:
        _, buffer = self._keys(stream)
        if points is not None and points <= 0:
            return []
        entries = await self.redis.xrevrange(buffer, "+", "-", count=points)
        return list(reversed(self._decode(entries)))

    async def replay(self, stream: str, since: int) -> tuple[list[Envelope], bool]:
        async with _reading():
            return await self._replay(stream, since)

    async def _replay(self, stream: str, since: int) -> tuple[list[Envelope], bool]:
        _, buffer = self._keys(stream)
        last = await self._last_seq(stream)
        if since > last:
            return await self._history(stream, None), True
        first = await self.redis.xrange(buffer, "-", "+", count=1)
        oldest = int(first[0][0].split(b"-")[0]) if first else last + 1
        entries = await self.redis.xrange(buffer, f"{since + 1}-0", "+")
        return self._decode(entries), since + 1 < oldest

    async def latest(self, stream: str, source: str | None = None) -> Envelope | None:
        """The newest envelope (of `source`, when given), looking back at most the whole buffer."""
        async with _reading():
            return await self._latest(stream, source)

    async def _latest(self, stream: str, source: str | None) -> Envelope | None:
        _, buffer = self._keys(stream)
        upper: str = "+"
        looked = 0
        while looked < self.buffer_size:
            entries = await self.redis.xrevrange(buffer, upper, "-", count=SCAN_CHUNK)
            if not entries:
                return None
            for envelope in self._decode(entries):
                if source is None or envelope["source"] == source:
                    return envelope
            looked += len(entries)
            oldest_id = entries[-1][0]
            oldest_id = oldest_id.decode() if isinstance(oldest_id, bytes) else oldest_id
            upper = "(" + oldest_id  # exclusive: older than what was read
        return None

    async def last_seq(self, stream: str) -> int:
        async with _reading():
            return await self._last_seq(stream)

    async def _last_seq(self, stream: str) -> int:
        counter, _ = self._keys(stream)
        value = await self.redis.get(counter)
        return int(value) if value is not None else 0


class _reading:
    """Redis failures, as the one error callers know (503 `cluster_unavailable`)."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, kind, exc, tb) -> bool:
        if exc is not None and isinstance(exc, (RedisError, OSError, TimeoutError)):
            raise ClusterStoreUnavailable(
                f"the cluster's shared buffer cannot be read now: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            ) from exc
        return False
