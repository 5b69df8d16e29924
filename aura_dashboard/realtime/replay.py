"""Where envelopes get their `seq` and where the replay buffer lives.

`LocalReplay`: one process; `seq` per stream in memory, the buffer a deque.
`RedisReplay`: a cluster; `seq` is a Redis counter per stream and the buffer a Redis stream
per dashboard stream capped at `message_buffer_size`, both updated in one Lua script so
entries are stored in `seq` order whichever instance publishes. Pub/sub is at-most-once;
the Redis stream is what a reconnecting client is replayed from, on any instance.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Protocol

import orjson

Envelope = dict[str, Any]


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
    shared: bool

    async def append(self, stream: str, ts: float, source: str, data: Any) -> Envelope: ...
    async def history(self, stream: str, points: int | None) -> list[Envelope]: ...
    async def replay(self, stream: str, since: int) -> tuple[list[Envelope], bool]: ...
    async def last_seq(self, stream: str) -> int: ...


class LocalReplay:
    """Sequence numbers and ring buffers of one process."""

    shared = False

    def __init__(self, buffer_size: int):
        self.buffer_size = buffer_size
        self.buffers: dict[str, deque] = {}
        self.seqs: dict[str, int] = {}

    def add_stream(self, stream: str) -> None:
        self.buffers[stream] = deque(maxlen=self.buffer_size)
        self.seqs[stream] = 0

    def append_now(self, stream: str, ts: float, source: str, data: Any) -> Envelope:
        self.seqs[stream] += 1
        envelope = {"stream": stream, "seq": self.seqs[stream], "ts": ts, "source": source, "data": data}
        self.buffers[stream].append(envelope)
        return envelope

    async def append(self, stream: str, ts: float, source: str, data: Any) -> Envelope:
        return self.append_now(stream, ts, source, data)

    async def history(self, stream: str, points: int | None) -> list[Envelope]:
        items = list(self.buffers[stream])
        return items if points is None else (items[-points:] if points > 0 else [])

    async def replay(self, stream: str, since: int) -> tuple[list[Envelope], bool]:
        return replay_from(list(self.buffers[stream]), since, self.seqs[stream])

    async def last_seq(self, stream: str) -> int:
        return self.seqs[stream]


# KEYS: counter, buffer. ARGV: envelope text before the seq, after it, buffer size.
_APPEND = """
local seq = redis.call('INCR', KEYS[1])
local envelope = ARGV[1] .. seq .. ARGV[2]
redis.call('XADD', KEYS[2], 'MAXLEN', tonumber(ARGV[3]), seq .. '-0', 'e', envelope)
return {seq, envelope}
"""


class RedisReplay:
    """Cluster-wide `seq` and replay buffer in Redis (redis-py's asyncio client)."""

    shared = True

    def __init__(self, redis: Any, cluster: str, buffer_size: int):
        self.redis = redis
        self.prefix = f"aura:{cluster}"
        self.buffer_size = buffer_size
        self._append = redis.register_script(_APPEND)

    def _keys(self, stream: str) -> tuple[str, str]:
        return f"{self.prefix}:seq:{stream}", f"{self.prefix}:buffer:{stream}"

    async def append(self, stream: str, ts: float, source: str, data: Any) -> Envelope:
        # The envelope is encoded here, around the one number only Redis can know.
        head = b'{"stream":' + orjson.dumps(stream) + b',"seq":'
        tail = b',"ts":' + orjson.dumps(ts) + b',"source":' + orjson.dumps(source) + \
            b',"data":' + orjson.dumps(data) + b"}"
        seq, _ = await self._append(keys=list(self._keys(stream)), args=[head, tail, self.buffer_size])
        return {"stream": stream, "seq": int(seq), "ts": ts, "source": source, "data": data}

    @staticmethod
    def _decode(entries) -> list[Envelope]:
        return [orjson.loads(fields[b"e"] if b"e" in fields else fields["e"]) for _, fields in entries]

    async def history(self, stream: str, points: int | None) -> list[Envelope]:
        _, buffer = self._keys(stream)
        if points is not None and points <= 0:
            return []
        entries = await self.redis.xrevrange(buffer, "+", "-", count=points)
        return list(reversed(self._decode(entries)))

    async def replay(self, stream: str, since: int) -> tuple[list[Envelope], bool]:
        counter, buffer = self._keys(stream)
        last = await self.last_seq(stream)
        if since > last:
            return await self.history(stream, None), True
        first = await self.redis.xrange(buffer, "-", "+", count=1)
        oldest = int(first[0][0].split(b"-")[0]) if first else last + 1
        entries = await self.redis.xrange(buffer, f"{since + 1}-0", "+")
        return self._decode(entries), since + 1 < oldest

    async def last_seq(self, stream: str) -> int:
        counter, _ = self._keys(stream)
        value = await self.redis.get(counter)
        return int(value) if value is not None else 0
