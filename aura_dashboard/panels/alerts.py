"""Alerts: thresholds with debounce and hysteresis, and debounced conditions.

A threshold alert fires after `consecutive` samples in a row over its threshold and resolves
only once the value falls `margin` points below it, so a value that wobbles around the
threshold does not flap. A condition alert (a backend down) fires after `consecutive`
observations of the condition and resolves at the first observation without it. Every fired
and resolved alert is handed to `publish` (the `alerts` stream) and to the listeners (the
audit log). The clock is injected so tests need no sleep.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..callbacks import notify_all
from ..config.schema import ThresholdSettings

log = logging.getLogger(__name__)

AlertSink = Callable[[dict[str, Any]], Awaitable[Any] | Any]


@dataclass
class _Track:
    over: int = 0
    alert: dict[str, Any] | None = None


class AlertEngine:
    """Keeps which alerts fire now; turns observations into fired and resolved alerts."""

    def __init__(self, publish: AlertSink, *, consecutive: int = 2, margin: float = 5.0,
                 clock: Callable[[], float] = time.time):
        self._publish = publish
        self.consecutive = consecutive
        self.margin = margin
        self._clock = clock
        self._tracks: dict[str, _Track] = {}
        self._listeners: list[AlertSink] = []

    def add_listener(self, listener: AlertSink) -> None:
        self._listeners.append(listener)

    def firing(self) -> list[dict[str, Any]]:
        """The alerts firing now, oldest first."""
        alerts = [t.alert for t in self._tracks.values() if t.alert is not None]
        return sorted(alerts, key=lambda a: a["since"])

    async def observe(self, key: str, kind: str, value: float, threshold: float, *,
                      severity: str = "warning", message: str = "") -> dict[str, Any] | None:
        """One sample of a value with an upper threshold; returns the alert if its state changed."""
        track = self._tracks.setdefault(key, _Track())
        if track.alert is None:
            track.over = track.over + 1 if value > threshold else 0
            if track.over >= self.consecutive:
                return await self._fire(track, key, kind, severity, value, threshold,
                                        message or f"{kind} is {value:g}, over {threshold:g}")
            return None
        track.alert["value"] = value
        if value < threshold - self.margin:
            return await self._resolve(track, value, f"{kind} is back to {value:g}")
        return None

    async def condition(self, key: str, kind: str, active: bool, *, severity: str = "critical",
                        message: str = "", value: Any = None, threshold: Any = None) -> dict[str, Any] | None:
        """One observation of a yes/no condition; returns the alert if its state changed."""
        track = self._tracks.setdefault(key, _Track())
        if track.alert is None:
            track.over = track.over + 1 if active else 0
            if track.over >= self.consecutive:
                return await self._fire(track, key, kind, severity, value, threshold, message or kind)
            return None
        if not active:
            return await self._resolve(track, value, f"{kind} cleared")
        return None

    async def _fire(self, track: _Track, key, kind, severity, value, threshold, message):
        now = self._clock()
        track.alert = {"id": key, "kind": kind, "severity": severity, "state": "firing",
                       "value": value, "threshold": threshold, "message": message,
                       "since": now, "ts": now}
        log.warning("alert %s firing: %s", key, message, extra={"alert": key})
        await self._announce(dict(track.alert))
        return track.alert

    async def _resolve(self, track: _Track, value, message):
        alert = {**track.alert, "state": "resolved", "value": value, "message": message,
                 "ts": self._clock()}
        track.alert, track.over = None, 0
        log.info("alert %s resolved", alert["id"], extra={"alert": alert["id"]})
        await self._announce(alert)
        return alert

    async def _announce(self, alert: dict[str, Any]) -> None:
        await notify_all([self._publish, *self._listeners], alert, logger=log, what="alert sink")


class ThresholdWatch:
    """Feeds the `system` and `gpu` streams' envelopes into the engine's threshold rules."""

    def __init__(self, engine: AlertEngine, thresholds: ThresholdSettings):
        self.engine = engine
        self.thresholds = thresholds

    async def on_system(self, envelope: dict[str, Any]) -> None:
        data, t = envelope["data"], self.thresholds
        if data.get("cpu") and data["cpu"].get("percent") is not None:
            await self.engine.observe("cpu_percent", "cpu_percent", data["cpu"]["percent"], t.cpu_percent,
                                      message=f"CPU at {data['cpu']['percent']:g}% (threshold {t.cpu_percent:g}%)")
        if data.get("memory"):
            value = data["memory"]["percent"]
            await self.engine.observe("memory_percent", "memory_percent", value, t.memory_percent,
                                      message=f"memory at {value:g}% (threshold {t.memory_percent:g}%)")
        for path, usage in (data.get("disk") or {}).items():
            await self.engine.observe(f"disk_percent:{path}", "disk_percent", usage["percent"], t.disk_percent,
                                      message=f"disk {path} at {usage['percent']:g}% (threshold {t.disk_percent:g}%)")

    async def on_gpu(self, envelope: dict[str, Any]) -> None:
        data, limit = envelope["data"], self.thresholds.gpu_memory_percent
        if not isinstance(data, list):
            return
        for gpu in data:
            value = gpu.get("memory_percent")
            if value is not None:
                await self.engine.observe(f"gpu_memory_percent:{gpu['index']}", "gpu_memory_percent",
                                          value, limit,
                                          message=f"GPU {gpu['index']} memory at {value:g}% (threshold {limit:g}%)")
