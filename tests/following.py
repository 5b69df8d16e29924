"""A python-socketio client that follows one stream as the page does (static/js/sequence.js and
connection.js's Channel), for tests that check what such a client ends up with: nothing lost
silently, whatever the cluster goes through.

- Each `seq` is taken once whatever its order (envelopes of one stream come from several
  instances); a resubscription asks `since` the floor (every `seq` below it taken), never the
  highest, so a missing one is replayed or answered `gap`.
- After an `epoch` notice, envelopes are held until the resubscription's answer opens the new
  epoch, then taken after its history.
- A hole that outlives `HOLE_REPAIR_S` is asked for again (a resubscription from the floor).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import socketio

HOLE_REPAIR_S = 3.0  # sequence.js's HOLE_REPAIR_MS


class StreamSequence:
    """sequence.js's StreamSequence, line for line in meaning."""

    def __init__(self, now=time.monotonic):
        self.now = now
        self.epoch = 0
        self.server_epoch: str | None = None
        self.seen: set[int] = set()  # taken above the floor
        self.floor: int | None = None
        self.last_seq: int | None = None
        self.awaiting = False
        self.held: list[dict] = []
        self.hole_at: float | None = None
        self.repairs = 0

    def request(self) -> dict:
        self.awaiting, self.held = True, []
        if self.floor is None:
            return {}
        return {"since": self.floor, "epoch": self.server_epoch} if self.server_epoch else {"since": self.floor}

    def arrived(self, envelope: dict) -> list[dict]:
        if self.awaiting:
            self.held.append(envelope)
            return []
        return self.take([envelope])

    def acked(self, ack: dict, stream: str) -> tuple[bool, bool, list[dict], list[dict]]:
        """(gap, resumed, fresh history, fresh held)."""
        resumed = self.floor is not None
        gap = bool(ack.get("gap", {}).get(stream))
        self.server_epoch = ack.get("epoch")
        if gap:
            self.epoch += 1
            self.seen.clear()
            self.floor = self.last_seq = self.hole_at = None
        history = ack.get("history", {}).get(stream) or []
        if self.floor is None and history:
            self.floor = min(e["seq"] for e in history) - 1
        fresh_history = self.take(history)
        held, self.held, self.awaiting = self.held, [], False
        return gap, resumed, fresh_history, self.take(held)

    def abandoned(self) -> None:
        self.awaiting, self.held = False, []

    def take(self, envelopes: list[dict]) -> list[dict]:
        fresh = []
        for envelope in envelopes:
            seq = envelope.get("seq")
            if not isinstance(seq, int) or seq in self.seen or (self.floor is not None and seq <= self.floor):
                continue
            if self.floor is None:
                self.floor = seq - 1
            self.seen.add(seq)
            self.last_seq = seq if self.last_seq is None else max(self.last_seq, seq)
            fresh.append(envelope)
        before = self.floor
        while self.floor is not None and self.floor + 1 in self.seen:
            self.floor += 1
            self.seen.discard(self.floor)
        if self.floor is not None and self.last_seq is not None and self.floor < self.last_seq:
            if self.hole_at is None or self.floor != before:
                self.hole_at = self.now()
        else:
            self.hole_at = None
        return fresh

    def hole_outstanding(self) -> bool:
        return not self.awaiting and self.hole_at is not None and self.now() - self.hole_at >= HOLE_REPAIR_S

    def repairing(self) -> None:
        self.repairs += 1
        self.hole_at = None


class StreamFollower:
    """Follows `stream` of `namespace`: subscribes on every connection, resubscribes on `epoch`
    and to fill a hole. `accepted` holds (client epoch, envelope) in the order taken;
    `answers` the `gap` flag of every resumed subscribe's answer."""

    def __init__(self, namespace: str = "/omni_monitor", stream: str = "system", **client_options):
        client_options.setdefault("reconnection_delay", 0.2)
        self.sio = socketio.AsyncClient(**client_options)
        self.namespace, self.stream = namespace, stream
        self.sequence = StreamSequence()
        self.accepted: list[tuple[int, dict]] = []
        self.answers: list[bool] = []
        self.subscribed = 0        # answers taken
        self.gaps = 0              # answers with `gap`
        self.connects = 0
        self.errors: list[str] = []
        self._on = False
        self._tasks: set[asyncio.Task] = set()
        self._repairer: asyncio.Task | None = None
        self.sio.on("connect", self._connected, namespace=namespace)
        self.sio.on("disconnect", self._disconnected, namespace=namespace)
        self.sio.on(stream, self._envelope, namespace=namespace)
        self.sio.on("batch", self._batch, namespace=namespace)
        self.sio.on("epoch", self._epoch, namespace=namespace)

    # -- what it got ----------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        return self.sequence.epoch

    @property
    def server_epoch(self) -> str | None:
        return self.sequence.server_epoch

    @property
    def seqs(self) -> list[int]:
        return [e["seq"] for _, e in self.accepted]

    def count(self, source: str, epoch_at_least: int = 0) -> int:
        """Envelopes accepted from `source` in the given client epoch or a later one."""
        return sum(1 for epoch, e in self.accepted if e["source"] == source and epoch >= epoch_at_least)

    def __repr__(self) -> str:
        return (f"StreamFollower(connects={self.connects}, subscribed={self.subscribed}, "
                f"accepted={len(self.accepted)}, floor={self.sequence.floor}, last={self.sequence.last_seq}, "
                f"answers={self.answers}, repairs={self.sequence.repairs}, errors={self.errors})")

    # -- following ------------------------------------------------------------------------
    async def join(self, url: str, **connect_options) -> None:
        """Connect over WebSocket and wait for the first subscribe's answer."""
        connect_options.setdefault("transports", ["websocket"])
        await self.sio.connect(url, socketio_path="/ws", namespaces=[self.namespace], **connect_options)
        await self.until(lambda: self.subscribed >= 1 or self.errors, 15)
        assert not self.errors, self.errors

    async def close(self) -> None:
        tasks = [*self._tasks, *([self._repairer] if self._repairer else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.sio.disconnect()

    async def until(self, predicate, timeout: float = 30) -> None:
        async def loop():
            while not predicate():
                await asyncio.sleep(0.05)
        await asyncio.wait_for(loop(), timeout)

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connected(self) -> None:
        self.connects += 1
        self._on = True
        if self._repairer is None:
            self._repairer = asyncio.get_running_loop().create_task(self._repair_holes())
        self._spawn(self.subscribe())

    async def _disconnected(self, *args) -> None:
        self._on = False
        self.sequence.abandoned()

    def _take(self, fresh: list[dict]) -> None:
        self.accepted.extend((self.sequence.epoch, e) for e in fresh)

    async def _envelope(self, envelope: dict) -> None:
        self._take(self.sequence.arrived(envelope))

    async def _batch(self, envelopes: list[dict]) -> None:
        for envelope in envelopes:
            if envelope.get("stream") == self.stream:
                self._take(self.sequence.arrived(envelope))

    async def _epoch(self, notice: dict) -> None:
        if notice.get("stream") == self.stream and self._on:
            self._spawn(self.subscribe())

    async def _repair_holes(self) -> None:
        while True:
            await asyncio.sleep(HOLE_REPAIR_S / 3)
            if self._on and self.sequence.hole_outstanding():
                self.sequence.repairing()
                self._spawn(self.subscribe())

    async def subscribe(self) -> None:
        payload: dict = {"streams": [self.stream]}
        asked = self.sequence.request()
        if "since" in asked:
            payload["since"] = {self.stream: asked["since"]}
            if asked.get("epoch"):
                payload["epoch"] = asked["epoch"]
        try:
            ack = await self.sio.call("subscribe", payload, namespace=self.namespace, timeout=10)
        except Exception as exc:  # reported by the tests, which wait for `subscribed`
            self.sequence.abandoned()
            self.errors.append(f"{type(exc).__name__}: {exc}")
            return
        if not ack.get("ok"):
            self.sequence.abandoned()
            self.errors.append(f"refused: {ack}")
            return
        gap, resumed, history, live = self.sequence.acked(ack, self.stream)
        if resumed:
            self.answers.append(gap)
        if gap:
            self.gaps += 1
        self._take(history)
        self._take(live)
        self.subscribed += 1


def silently_lost(follower: StreamFollower, *, epochs_with_source: str | None = None) -> list[tuple[int, list[int]]]:
    """(client epoch, seqs) of the envelopes a follower missed without being told: inside one
    client epoch every seq between its first and last envelope must be there, unless a later
    epoch (the `gap`'s answer) brought it. `epochs_with_source`: only epochs holding an envelope
    of that source count (an instance's local epoch, numbered on its own, is left out)."""
    by_epoch: dict[int, set[int]] = {}
    sources: dict[int, set[str]] = {}
    for epoch, envelope in follower.accepted:
        by_epoch.setdefault(epoch, set()).add(envelope["seq"])
        sources.setdefault(epoch, set()).add(envelope.get("source"))
    epochs = [epoch for epoch in sorted(by_epoch)
              if epochs_with_source is None or epochs_with_source in sources[epoch]]
    lost = []
    for index, epoch in enumerate(epochs):
        got = by_epoch[epoch]
        later = set().union(*(by_epoch[after] for after in epochs[index + 1:]))
        missing = set(range(min(got), max(got) + 1)) - got
        if index < len(epochs) - 1:
            missing -= later
        if missing:
            lost.append((epoch, sorted(missing)))
    return lost


@contextlib.asynccontextmanager
async def following(url: str, **options):
    """A StreamFollower joined to `url`, closed on the way out."""
    follower = StreamFollower(**options)
    try:
        await follower.join(url)
        yield follower
    finally:
        await follower.close()
