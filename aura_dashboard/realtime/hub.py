"""The stream hub: the one path every push takes to reach a client, and the one place it is
read back from.

`publish(stream, data)` asks the replay store for the envelope (`stream`, `seq`, `ts`,
`source`, `data`), emits it to the stream's room through the broadcaster (or queues it for the
next batch), then tells the stream's `Signal`. Every read (subscribe's history and replay,
REST, health, metrics) goes through the same store, so every instance of a cluster answers
the same. With batching on, envelopes wait at most `batch_interval_ms` and leave in `batch`
events.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..contract import StreamContract
from ..signals import Signal
from ..stats import percentile
from .broadcast import Broadcaster
from ..errors import AppendUnsure, ClusterStoreUnavailable
from .replay import Envelope, LocalReplay, ReplayStore
from ..tasks import stop_if_cancelled

log = logging.getLogger(__name__)

PUBLISH_SAMPLES = 1024  # publish durations kept for the p99 in /metrics


@dataclass
class _Stream:
    contract: StreamContract
    signal: Signal
    published: int = 0
    pending: list = field(default_factory=list)


def room_of(stream: str) -> str:
    return f"stream:{stream}"


class UnknownStream(KeyError):
    def __init__(self, stream: str):
        super().__init__(stream)
        self.stream = stream


class StreamHub:
    """Envelopes, sequence numbers, replay and batching for every stream.

    :param streams: the stream contracts (the composition root's table).
    :param store: where `seq` is assigned and envelopes are kept and read back.
    :param broadcaster: how an envelope reaches the clients of its room.
    :param source: this instance's name, the envelopes' `source`.
    :param is_on: whether a stream runs now (its switches and feature flag).
    :param batch_interval_s: batch window; None sends each envelope at once.
    :param pushing: whether envelopes are pushed at all (`features.real_time_updates`).
    :param leader: whether this instance samples the shared streams (the cluster lease).
    :param clock: wall time for the envelopes' `ts`.
    :param on_unsure_append: called when an append timed out (`AppendUnsure`): the envelope
        may be in the cluster's buffer without the other instances being sent it, so their
        clients are owed a new epoch (the message queue's manager tells them once Redis answers).
    :param store_retry_s: while the cluster's store is away, it is tried again at most this
        often (the other publishes go straight to the local epoch): on a link that went silent
        each try waits out the Redis call timeout, which would slow every stream to one
        envelope per timeout.
    :param monotonic: the clock of those retries.
    """

    def __init__(self, streams: Iterable[StreamContract], *, store: ReplayStore, broadcaster: Broadcaster,
                 source: str, is_on: Callable[[StreamContract], bool] = lambda contract: True,
                 batch_interval_s: float | None = None,
                 pushing: Callable[[], bool] = lambda: True,
                 leader: Callable[[], bool] = lambda: True,
                 clock: Callable[[], float] = time.time,
                 on_unsure_append: Callable[[], None] | None = None,
                 store_retry_s: float = 1.0, monotonic: Callable[[], float] = time.monotonic):
        self.store = store
        self.store_retry_s = store_retry_s
        self._monotonic = monotonic
        self._store_retry_at = 0.0
        self.store_tries_while_away = 0
        self._on_unsure_append = on_unsure_append
        self.broadcaster = broadcaster
        self.source = source
        self.batch_interval_s = batch_interval_s
        self._is_on = is_on
        self._pushing = pushing
        self._clock = clock
        self.leader = leader
        self._streams: dict[str, _Stream] = {}
        self._pending_order: list[str] = []  # the stream of each pending envelope, in publish order
        self.publish_durations: deque[float] = deque(maxlen=PUBLISH_SAMPLES)
        self.publish_count = 0          # every publish since the start, and their total duration
        self.publish_seconds = 0.0
        # While the cluster's store is away: this instance's own streams go on to its own
        # clients from a local replay of their own epoch (None while the store answers).
        self.here: LocalReplay | None = None
        # Times this instance's link to the message queue broke and was mended (`resync`): each
        # makes the epoch its clients are answered in a new one, so that envelopes other
        # instances published meanwhile, which never came here, are `gap`, not silently lost.
        self.breaks = 0
        for contract in streams:
            self.add_stream(contract)

    # -- streams --------------------------------------------------------------------------
    def add_stream(self, contract: StreamContract) -> None:
        if contract.name in self._streams:
            raise ValueError(f"stream {contract.name!r} is already registered")
        self._streams[contract.name] = _Stream(contract, Signal(f"stream {contract.name}"))
        self.store.add_stream(contract.name)

    def contract(self, stream: str) -> StreamContract:
        return self._get(stream).contract

    def contracts(self) -> list[StreamContract]:
        return [state.contract for state in self._streams.values()]

    def streams(self, namespace: str | None = None) -> list[str]:
        return [name for name, s in self._streams.items()
                if namespace is None or s.contract.namespace == namespace]

    def is_on(self, stream: str) -> bool:
        return self._is_on(self._get(stream).contract)

    def samples_here(self, stream: str) -> bool:
        """Whether this instance should sample the stream now (on, and ours to sample)."""
        contract = self._get(stream).contract
        return self._is_on(contract) and (not contract.shared or self.leader())

    def published_signal(self, stream: str) -> Signal:
        """The `Signal` told of each envelope of `stream` after it was emitted (alerts follow
        metrics so); connect a `Mailbox` for anything slower than a few microseconds."""
        return self._get(stream).signal

    def _get(self, stream: str) -> _Stream:
        try:
            return self._streams[stream]
        except KeyError:
            raise UnknownStream(stream) from None

    # -- publishing -----------------------------------------------------------------------
    async def publish(self, stream: str, data: Any, ts: float | None = None) -> Envelope:
        """Build the envelope, store it, and emit it (or queue it for the next batch).

        With the local store nothing suspends from the append to the emit (see subscriptions.py).
        """
        started = time.perf_counter()
        state = self._get(stream)
        ts = self._clock() if ts is None else ts
        if self.here is not None and self._monotonic() < self._store_retry_at:
            if state.contract.shared:  # sampled for the whole cluster: it waits for the cluster
                raise ClusterStoreUnavailable("the cluster's store is away")
            return await self._publish_here(state, stream, ts, data, started)
        try:
            if self.here is not None:
                self.store_tries_while_away += 1
            envelope = await self.store.append(stream, ts, self.source, data)
        except ClusterStoreUnavailable as exc:
            self._store_retry_at = self._monotonic() + self.store_retry_s
            if isinstance(exc, AppendUnsure) and self._on_unsure_append is not None:
                self._on_unsure_append()
            if state.contract.shared:
                raise  # sampled for the whole cluster: it waits for the cluster
            return await self._publish_here(state, stream, ts, data, started)
        epoch = self.store.take_new_epoch()
        if self.here is not None:  # the store is back: the cluster's epoch again
            self.here = None
            log.info("the cluster's store answers again; streams back on the cluster")
            epoch = epoch or await self.store.current_epoch()
        if epoch is not None:
            await self.announce_epoch(self._shown(epoch))
        state.published += 1
        if self._pushing():
            if self.batch_interval_s:
                state.pending.append(envelope)
                self._pending_order.append(stream)
            else:
                await self.broadcaster.emit(stream, envelope, room=room_of(stream),
                                            namespace=state.contract.namespace)
        return await self._published(state, envelope, started)

    async def _published(self, state: _Stream, envelope: Envelope, started: float) -> Envelope:
        """After an envelope went out: its listeners (mailboxes) and publish's own timing."""
        await state.signal.send(envelope)
        duration = time.perf_counter() - started
        self.publish_durations.append(duration)
        self.publish_count += 1
        self.publish_seconds += duration
        return envelope

    async def announce_epoch(self, epoch: str, *, here_only: bool = False) -> None:
        """Tell every stream's room that sequence numbers began again (`epoch` event, before
        any envelope of the new epoch), so clients resubscribe with `since` and get `gap`."""
        emit = self.broadcaster.emit_here if here_only else self.broadcaster.emit
        for name, state in self._streams.items():
            try:
                await emit("epoch", {"stream": name, "epoch": epoch},
                           room=room_of(name), namespace=state.contract.namespace)
            except Exception as exc:
                log.warning("epoch of %s not announced: %s", name, exc)

    async def _publish_here(self, state: _Stream, stream: str, ts: float, data: Any,
                            started: float) -> Envelope:
        """The cluster's store is away: publish to this instance's clients, in a local epoch."""
        if self.here is None:
            self.here = LocalReplay(getattr(self.store, "buffer_size", 100),
                                    epoch=f"local-{self.source}-{secrets.token_hex(4)}")
            for name in self._streams:
                self.here.add_stream(name)
            log.warning("the cluster's store is away: this instance's own streams go on to its "
                        "own clients (epoch %s)", self.here.epoch)
            await self.announce_epoch(self.here.epoch, here_only=True)
        envelope = await self.here.append(stream, ts, self.source, data)
        state.published += 1
        if self._pushing():
            await self.broadcaster.emit_here(stream, envelope, room=room_of(stream),
                                             namespace=state.contract.namespace)
        return await self._published(state, envelope, started)

    async def epoch(self) -> str:
        """The epoch subscribers are answered in: the local one while the store is away; the
        cluster's, marked with this instance's breaks from the message queue (`resync`)."""
        if self.here is not None:
            return self.here.epoch
        return self._shown(await self.store.current_epoch())

    def holds_back(self, message: dict) -> bool:
        """Whether an event another instance sent through the message queue is kept from this
        instance's clients: while they are in the local epoch, the cluster's envelopes (numbered
        in the cluster's epoch, and delivered late when a silent link wakes) must not reach them
        mixed with the local ones. They get the `epoch` event when the store answers again,
        resubscribe and are answered `gap` with the cluster's buffer."""
        if self.here is None or message.get("method") != "emit":
            return False
        return message.get("event") in self._streams or message.get("event") == "batch"

    def _shown(self, epoch: str) -> str:
        return f"{epoch}~{self.breaks}" if self.breaks else epoch

    async def resync(self) -> None:
        """This instance's subscription to the message queue was lost and is back: envelopes
        published elsewhere meanwhile never reached its clients. They get a new epoch (the
        `epoch` event, here only), resubscribe with their old one, and are answered `gap`
        with the buffer, so nothing is lost silently."""
        self.breaks += 1
        if self.here is not None:  # the local epoch is announced when the store returns
            return
        try:
            epoch = await self.epoch()
        except ClusterStoreUnavailable:  # a call on a link not yet mended: the epoch last seen
            epoch = self._shown(self.store.epoch or "")
        await self.announce_epoch(epoch, here_only=True)

    def publish_p99_s(self) -> float | None:
        """The 99th percentile of the last publishes' duration, in seconds."""
        return percentile(sorted(self.publish_durations), 99)

    async def flush(self) -> int:
        """Send every pending envelope in `batch` events; returns how many envelopes."""
        if not self._pending_order:
            return 0
        order, self._pending_order = self._pending_order, []
        waiting = {name: iter(state.pending) for name, state in self._streams.items() if state.pending}
        for state in self._streams.values():
            state.pending = []
        pending = [(name, self._streams[name].contract.namespace, next(waiting[name])) for name in order]
        await self.broadcaster.emit_batches(pending, room_of=room_of)
        return len(pending)

    async def run_batcher(self) -> None:
        """Flush every `batch_interval_s` until cancelled; a failed flush is logged, not fatal."""
        assert self.batch_interval_s
        while True:
            stop_if_cancelled()
            await asyncio.sleep(self.batch_interval_s)
            try:
                async with asyncio.timeout(max(5.0, self.batch_interval_s * 4)):
                    await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("batch flush failed")

    def published(self) -> dict[str, int]:
        """Envelopes this instance published, per stream."""
        return {name: state.published for name, state in self._streams.items()}

    # -- reading (through the store, the same on every instance) --------------------------------
    async def latest(self, stream: str, source: str | None = None) -> Envelope | None:
        """The newest envelope of `stream`: of `source` when given, else for a per-host stream
        this instance's own and for a shared stream whoever sampled it."""
        contract = self._get(stream).contract
        if source is None and not contract.shared:
            source = self.source
        return await self.store.latest(stream, source)

    async def last_seq(self, stream: str) -> int:
        self._get(stream)
        return await self.store.last_seq(stream)

    async def history(self, stream: str, points: int | None = None, *,
                      delivered_only: bool = False) -> list[Envelope]:
        """The last `points` envelopes of `stream`, oldest first.

        `delivered_only` leaves out this instance's envelopes still waiting for the next batch:
        a client that has just joined the room receives those with the batch, so it must not
        get them twice.
        """
        state = self._get(stream)
        if not delivered_only or not state.pending:
            return await self.store.history(stream, points)
        waiting = {envelope["seq"] for envelope in state.pending}
        extra = None if points is None else points + len(waiting)
        items = [e for e in await self.store.history(stream, extra) if e["seq"] not in waiting]
        return items if points is None else items[-points:] if points > 0 else []

    async def replay(self, stream: str, since: int, *,
                     delivered_only: bool = False) -> tuple[list[Envelope], bool]:
        """Every stored envelope newer than `since`, and whether some were lost (`gap`)."""
        state = self._get(stream)
        envelopes, gap = await self.store.replay(stream, since)
        if delivered_only and state.pending:
            waiting = {envelope["seq"] for envelope in state.pending}
            envelopes = [e for e in envelopes if e["seq"] not in waiting]
        return envelopes, gap
