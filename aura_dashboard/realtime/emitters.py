"""One background task per stream: sample at the stream's interval, publish through the hub.

A stream samples while it is on, whether or not anyone listens, so history is ready when a
client subscribes. A slow or failing sample is logged and skipped; it never stops the stream.
Flags flipped at run time start or stop emitters through `reconcile()`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .hub import StreamHub
from ..tasks import TaskSet, stop_if_cancelled

log = logging.getLogger(__name__)

Sampler = Callable[[], Awaitable[Any]]


@dataclass
class EmitterStats:
    samples: int = 0
    failures: int = 0
    timeouts: int = 0
    last_lag_s: float = 0.0
    last_duration_s: float = 0.0


class Emitter:
    """Samples one stream every `interval_s`; each sample may take at most `timeout_s`."""

    def __init__(self, stream: str, sample: Sampler, interval_s: float, hub: StreamHub,
                 *, timeout_s: float | None = None,
                 monotonic: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time):
        self.stream = stream
        self.sample = sample
        self.interval_s = interval_s
        self.timeout_s = timeout_s if timeout_s is not None else max(interval_s, 1.0)
        self.hub = hub
        self.stats = EmitterStats()
        self._monotonic = monotonic
        self._wall = wall

    async def tick(self) -> bool:
        """One sample and publish; returns whether something was published."""
        started = self._monotonic()
        ts = self._wall()
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation
            # that arrives as the sample completes, and the emitter would never stop.
            async with asyncio.timeout(self.timeout_s):
                data = await self.sample()
        except asyncio.TimeoutError:
            self.stats.timeouts += 1
            log.warning("sample of %s took over %.1fs, skipped", self.stream, self.timeout_s,
                        extra={"stream": self.stream})
            return False
        except Exception as exc:
            self.stats.failures += 1
            log.warning("sample of %s failed, skipped: %s", self.stream, exc,
                        extra={"stream": self.stream}, exc_info=log.isEnabledFor(logging.DEBUG))
            return False
        finally:
            self.stats.last_duration_s = self._monotonic() - started
        if data is None:  # the collector has nothing to say this time
            return False
        self.stats.samples += 1
        await self.hub.publish(self.stream, data, ts=ts)
        return True

    async def run(self) -> None:
        """Tick at a fixed rate (no drift) until cancelled; late ticks are measured as lag."""
        next_at = self._monotonic()
        while True:
            stop_if_cancelled()
            now = self._monotonic()
            self.stats.last_lag_s = max(0.0, now - next_at)
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # publishing itself failed: log and keep the stream alive
                self.stats.failures += 1
                log.exception("publishing %s failed", self.stream)
            next_at += self.interval_s
            now = self._monotonic()
            if next_at < now:  # we fell behind: skip the missed ticks instead of bursting
                next_at = now
            await asyncio.sleep(next_at - now)


class EmitterSet:
    """The emitters of every stream, each running exactly while its stream is on."""

    def __init__(self, hub: StreamHub, tasks: TaskSet, emitters: Iterable[Emitter] = ()):
        self.hub = hub
        self.tasks = tasks
        self.emitters: dict[str, Emitter] = {}
        for emitter in emitters:
            self.add(emitter)
        self._running: dict[str, asyncio.Task] = {}
        self._started = False
        # One reconcile at a time: a flag PATCH, a flag synced from the cluster and a lease
        # change may ask at once, and two passes must not stop the same task twice.
        self._reconciling = asyncio.Lock()

    def add(self, emitter: Emitter) -> None:
        self.emitters[emitter.stream] = emitter

    def running(self) -> list[str]:
        return sorted(name for name, task in self._running.items() if not task.done())

    async def start(self) -> None:
        self._started = True
        await self.reconcile()

    async def reconcile(self, *_: Any) -> None:
        """Start the emitters of streams that are on and stop those of streams that are off."""
        async with self._reconciling:
            await self._reconcile()

    async def _reconcile(self) -> None:
        if not self._started:
            return
        for name, emitter in self.emitters.items():
            task = self._running.get(name)
            alive = task is not None and not task.done()
            on = self.hub.samples_here(name)
            if on and not alive:
                self._running[name] = self.tasks.spawn(emitter.run(), name=f"emitter:{name}")
                log.info("stream %s started", name, extra={"stream": name})
            elif not on and alive:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                self._running.pop(name, None)
                log.info("stream %s stopped", name, extra={"stream": name})

    async def stop(self) -> None:
        async with self._reconciling:
            self._started = False
            tasks = list(self._running.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._running.clear()
