"""The stream hub: the one path every push takes to reach a client.

`publish(stream, data)` wraps the data in an envelope (`stream`, `seq`, `ts`, `source`,
`data`), keeps it in the stream's ring buffer for history and replay, and emits it to the
stream's room, encoded once for the whole room. With batching on, envelopes wait at most
`batch_interval_ms` and leave as one `batch` event per stream room.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import socketio

from ..callbacks import notify_all
from .broadcast import Broadcaster
from .replay import LocalReplay, ReplayStore, replay_from

log = logging.getLogger(__name__)

Envelope = dict[str, Any]
Watcher = Callable[[Envelope], Awaitable[None] | None]


@dataclass(frozen=True)
class StreamSpec:
    """A stream: its name, the namespace whose clients may join it, and whether it is on now."""

    name: str
    namespace: str
    is_on: Callable[[], bool] = lambda: True
    # Shared streams (database, backends, ...) are sampled by one instance of a cluster: the
    # holder of the lease. Per-host streams (system, gpu, ...) are sampled by every instance.
    shared: bool = False


@dataclass
class _Stream:
    spec: StreamSpec
    published: int = 0
    pending: list = field(default_factory=list)
    watchers: list = field(default_factory=list)


def room_of(stream: str) -> str:
    return f"stream:{stream}"


class UnknownStream(KeyError):
    def __init__(self, stream: str):
        super().__init__(stream)
        self.stream = stream


class StreamHub:
    """Envelopes, sequence numbers, replay buffers and batching for every stream."""

    def __init__(self, sio: socketio.AsyncServer, *, source: str, buffer_size: int,
                 batch_interval_s: float | None = None,
                 pushing: Callable[[], bool] = lambda: True,
                 clock: Callable[[], float] = time.time,
                 store: ReplayStore | None = None,
                 leader: Callable[[], bool] = lambda: True,
                 broadcaster: Broadcaster | None = None):
        self.sio = sio
        # Every push leaves through the broadcaster (its fast path, or the stock sio.emit).
        self.broadcaster = broadcaster or Broadcaster(sio, enabled=False)
        self.source = source
        self.buffer_size = buffer_size
        self.batch_interval_s = batch_interval_s
        self._pushing = pushing
        self._clock = clock
        self._streams: dict[str, _Stream] = {}
        # This process's own envelopes, always; in a cluster `store` is the shared one that
        # assigns `seq` and answers subscribe, and `local` mirrors what this instance published.
        self.local = LocalReplay(buffer_size)
        self.store: ReplayStore = store or self.local
        self.leader = leader
        self._pending_order: list[str] = []  # the stream of each pending envelope, in publish order

    # -- streams --------------------------------------------------------------------------
    def add_stream(self, spec: StreamSpec) -> None:
        if spec.name in self._streams:
            raise ValueError(f"stream {spec.name!r} is already registered")
        self._streams[spec.name] = _Stream(spec)
        self.local.add_stream(spec.name)

    def spec(self, stream: str) -> StreamSpec:
        return self._get(stream).spec

    def streams(self, namespace: str | None = None) -> list[str]:
        return [name for name, s in self._streams.items()
                if namespace is None or s.spec.namespace == namespace]

    def is_on(self, stream: str) -> bool:
        return self._get(stream).spec.is_on()

    def samples_here(self, stream: str) -> bool:
        """Whether this instance should sample the stream now (on, and ours to sample)."""
        spec = self._get(stream).spec
        return spec.is_on() and (not spec.shared or self.leader())

    def watch(self, stream: str, watcher: Watcher) -> None:
        """Call `watcher(envelope)` after each publish on `stream` (alerts follow metrics so)."""
        self._get(stream).watchers.append(watcher)

    def _get(self, stream: str) -> _Stream:
        try:
            return self._streams[stream]
        except KeyError:
            raise UnknownStream(stream) from None

    # -- publishing -----------------------------------------------------------------------
    async def publish(self, stream: str, data: Any, ts: float | None = None) -> Envelope:
        """Build the envelope, buffer it, and emit it (or queue it for the next batch)."""
        state = self._get(stream)
        ts = self._clock() if ts is None else ts
        if self.store.shared:
            envelope = await self.store.append(stream, ts, self.source, data)
            self.local.buffers[stream].append(envelope)
            self.local.seqs[stream] = envelope["seq"]
        else:  # no suspension from here to the emit: see subscriptions.py
            envelope = self.local.append_now(stream, ts, self.source, data)
        state.published += 1
        if self._pushing():
            if self.batch_interval_s:
                state.pending.append(envelope)
                self._pending_order.append(stream)
            else:
                await self.broadcaster.emit(stream, envelope, room=room_of(stream),
                                            namespace=state.spec.namespace)
        await notify_all(state.watchers, envelope, logger=log, what=f"watcher of stream {stream}")
        return envelope

    async def flush(self) -> int:
        """Send every pending envelope in `batch` events (one per client where the broadcaster
        can group clients, else one per stream room); returns how many envelopes."""
        if not self._pending_order:
            return 0
        order, self._pending_order = self._pending_order, []
        waiting = {name: iter(state.pending) for name, state in self._streams.items() if state.pending}
        for state in self._streams.values():
            state.pending = []
        pending = [(name, self._streams[name].spec.namespace, next(waiting[name])) for name in order]
        await self.broadcaster.emit_batches(pending, room_of=room_of)
        return len(pending)

    async def run_batcher(self) -> None:
        """Flush every `batch_interval_s` until cancelled; a failed flush is logged, not fatal."""
        assert self.batch_interval_s
        while True:
            await asyncio.sleep(self.batch_interval_s)
            try:
                async with asyncio.timeout(max(5.0, self.batch_interval_s * 4)):
                    await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("batch flush failed")

    # -- reading (this instance's own envelopes) ------------------------------------------------
    def latest(self, stream: str) -> Envelope | None:
        buffer = self.local.buffers[self._get(stream).spec.name]
        return buffer[-1] if buffer else None

    def last_seq(self, stream: str) -> int:
        return self.local.seqs[self._get(stream).spec.name]

    def published(self) -> dict[str, int]:
        return {name: state.published for name, state in self._streams.items()}

    def history(self, stream: str, points: int | None = None, *, delivered_only: bool = False) -> list[Envelope]:
        """The last `points` envelopes this instance buffered, oldest first.

        `delivered_only` leaves out envelopes still waiting for the next batch: a client that
        has just joined the room receives those with the batch, so it must not get them twice.
        """
        state = self._get(stream)
        items = list(self.local.buffers[stream])
        if delivered_only and state.pending:
            items = items[: len(items) - len(state.pending)]
        if points is not None:
            items = items[-points:] if points > 0 else []
        return items

    def replay(self, stream: str, since: int, *, delivered_only: bool = False) -> tuple[list[Envelope], bool]:
        """Every envelope of this instance's buffer newer than `since`, and whether some were lost."""
        buffer = self.local.buffers[self._get(stream).spec.name]
        oldest = buffer[0]["seq"] if buffer else None  # envelopes awaiting a batch count as kept
        return replay_from(self.history(stream, delivered_only=delivered_only), since,
                           self.last_seq(stream), oldest)

    # -- reading what every subscriber should get (the cluster's store when there is one) ------
    async def read_history(self, stream: str, points: int | None) -> list[Envelope]:
        if not self.store.shared:
            return self.history(stream, points, delivered_only=True)
        self._get(stream)
        return await self.store.history(stream, points)

    async def read_replay(self, stream: str, since: int) -> tuple[list[Envelope], bool]:
        if not self.store.shared:
            return self.replay(stream, since, delivered_only=True)
        self._get(stream)
        return await self.store.replay(stream, since)
