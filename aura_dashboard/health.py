"""Liveness and each dependency's state, as `/healthz` and `/health` report them."""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

from . import __version__

DependencyProbe = Callable[[], dict[str, Any] | Awaitable[dict[str, Any]]]


class Health:
    """Collects the state of each dependency from whoever owns it.

    Dependencies (database, backends, ...) register a probe (plain or async) returning at
    least `{"status": ...}`; a broken dependency never makes the server unhealthy, only
    `serving` does (it turns false while the server shuts down).
    """

    def __init__(self, instance: str, clock: Callable[[], float] = time.time):
        self.instance = instance
        self._clock = clock
        self._started = clock()
        self._probes: dict[str, DependencyProbe] = {}
        self.serving = True

    def register(self, name: str, probe: DependencyProbe) -> None:
        self._probes[name] = probe

    async def report(self) -> dict[str, Any]:
        dependencies = {}
        for name, probe in self._probes.items():
            try:
                state = probe()
                dependencies[name] = await state if inspect.isawaitable(state) else state
            except Exception as exc:  # a probe's own failure is that dependency's state
                dependencies[name] = {"status": "unknown", "reason": str(exc)}
        return {
            "status": "ok" if self.serving else "shutting_down",
            "version": __version__,
            "instance": self.instance,
            "uptime_s": round(self._clock() - self._started, 3),
            "dependencies": dependencies,
        }
