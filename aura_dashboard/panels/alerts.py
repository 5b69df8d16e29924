"""Alerts: thresholds with debounce and hysteresis, and debounced conditions.

A threshold alert fires after `consecutive` samples in a row over its threshold and resolves
only once the value falls `margin` points below it, so a value that wobbles around the
threshold does not flap. A condition alert (a backend down) fires after `consecutive`
observations of the condition and resolves at the first observation without it. Every fired
and resolved alert is handed to `publish` (the `alerts` stream) and to the listeners (the
audit log); while a condition alert fires, a new value (an error rate moving) is published
again with its message, so the alert says what the table says, but not audited. Each alert
names its `target` and says what is wrong in words; a raw error goes in `detail`. The clock is
injected so tests need no sleep.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from ..config.schema import HealthCheckSettings, ThresholdSettings
from ..contract import FieldSpec, PayloadModel, StreamContract
from ..signals import Signal, call_listener

log = logging.getLogger(__name__)

AlertSink = Callable[[dict[str, Any]], Awaitable[Any] | Any]


@dataclass
class _Track:
    over: int = 0
    alert: dict[str, Any] | None = None


class AlertEngine:
    """Keeps which alerts fire now; turns observations into fired and resolved alerts.

    :param publish: where each fired and resolved alert goes first (the `alerts` stream).
    :param consecutive: observations in a row before an alert fires.
    :param margin: points below its threshold a value must fall to resolve its alert.
    :param clock: wall time, injected so tests need no sleep.

    `changed` is the `Signal` every fired and resolved alert is sent on after `publish`.
    """

    def __init__(self, publish: AlertSink, *, consecutive: int = 2, margin: float = 5.0,
                 clock: Callable[[], float] = time.time):
        self._publish = publish
        self.consecutive = consecutive
        self.margin = margin
        self._clock = clock
        self._tracks: dict[str, _Track] = {}
        self.changed: Signal[dict[str, Any]] = Signal("alerts")

    def firing(self) -> list[dict[str, Any]]:
        """The alerts firing now, oldest first."""
        alerts = [t.alert for t in self._tracks.values() if t.alert is not None]
        return sorted(alerts, key=lambda a: a["since"])

    async def observe(self, key: str, kind: str, value: float, threshold: float, *,
                      severity: str = "warning", message: str = "", target: str | None = None,
                      resolved_message: str = "") -> dict[str, Any] | None:
        """One sample of a value with an upper threshold; returns the alert if its state changed."""
        track = self._tracks.setdefault(key, _Track())
        if track.alert is None:
            track.over = track.over + 1 if value > threshold else 0
            if track.over >= self.consecutive:
                return await self._fire(track, key, kind, severity, value, threshold,
                                        message or f"{kind} is {value:g}, over {threshold:g}", target, None)
            return None
        track.alert["value"] = value
        if value < threshold - self.margin:
            return await self._resolve(track, value, resolved_message or f"{kind} is back to {value:g}")
        return None

    async def condition(self, key: str, kind: str, active: bool, *, severity: str = "critical",
                        message: str = "", value: Any = None, threshold: Any = None,
                        target: str | None = None, detail: str | None = None,
                        resolved_message: str = "") -> dict[str, Any] | None:
        """One observation of a yes/no condition; returns the alert if its state changed."""
        track = self._tracks.setdefault(key, _Track())
        if track.alert is None:
            track.over = track.over + 1 if active else 0
            if track.over >= self.consecutive:
                return await self._fire(track, key, kind, severity, value, threshold, message or kind,
                                        target, detail)
            return None
        if not active:
            return await self._resolve(track, value, resolved_message or f"{target or kind}: {kind} cleared")
        alert = track.alert
        if (value, message or alert["message"], detail) != (alert["value"], alert["message"], alert.get("detail")):
            alert.update(value=value, message=message or alert["message"], detail=detail, ts=self._clock())
            await call_listener(self._publish, dict(alert), what="alert sink", logger=log)
        return None

    async def _fire(self, track: _Track, key, kind, severity, value, threshold, message, target, detail):
        now = self._clock()
        track.alert = {"id": key, "kind": kind, "severity": severity, "state": "firing",
                       "value": value, "threshold": threshold, "message": message,
                       "target": target, "detail": detail, "since": now, "ts": now}
        log.warning("alert %s firing: %s", key, message, extra={"alert": key})
        await self._announce(dict(track.alert))
        return track.alert

    async def _resolve(self, track: _Track, value, message):
        alert = {**track.alert, "state": "resolved", "value": value, "message": message,
                 "detail": None, "ts": self._clock()}
        track.alert, track.over = None, 0
        log.info("alert %s resolved", alert["id"], extra={"alert": alert["id"]})
        await self._announce(alert)
        return alert

    async def _announce(self, alert: dict[str, Any]) -> None:
        await call_listener(self._publish, alert, what="alert sink", logger=log)
        await self.changed.send(alert)


class ThresholdWatch:
    """Feeds the `system` and `gpu` streams' envelopes into the engine's threshold rules."""

    def __init__(self, engine: AlertEngine, thresholds: ThresholdSettings):
        self.engine = engine
        self.thresholds = thresholds

    async def on_system(self, envelope: dict[str, Any]) -> None:
        data, t, host = envelope["data"], self.thresholds, envelope.get("source")
        if data.get("cpu") and data["cpu"].get("percent") is not None:
            value = data["cpu"]["percent"]
            await self.engine.observe("cpu_percent", "cpu_percent", value, t.cpu_percent, target=host,
                                      message=f"CPU at {value:g}% (threshold {t.cpu_percent:g}%)",
                                      resolved_message=f"CPU back to {value:g}%")
        if data.get("memory"):
            value = data["memory"]["percent"]
            await self.engine.observe("memory_percent", "memory_percent", value, t.memory_percent, target=host,
                                      message=f"memory at {value:g}% (threshold {t.memory_percent:g}%)",
                                      resolved_message=f"memory back to {value:g}%")
        for path, usage in (data.get("disk") or {}).items():
            value = usage["percent"]
            await self.engine.observe(f"disk_percent:{path}", "disk_percent", value, t.disk_percent, target=path,
                                      message=f"disk {path} at {value:g}% (threshold {t.disk_percent:g}%)",
                                      resolved_message=f"disk {path} back to {value:g}%")

    async def on_gpu(self, envelope: dict[str, Any]) -> None:
        data, limit = envelope["data"], self.thresholds.gpu_memory_percent
        if not isinstance(data, list):
            return
        for gpu in data:
            value = gpu.get("memory_percent")
            if value is not None:
                await self.engine.observe(f"gpu_memory_percent:{gpu['index']}", "gpu_memory_percent",
                                          value, limit, target=f"GPU {gpu['index']}",
                                          message=f"GPU {gpu['index']} memory at {value:g}% (threshold {limit:g}%)",
                                          resolved_message=f"GPU {gpu['index']} memory back to {value:g}%")


def down_in_words(name: str, state: dict[str, Any]) -> str:
    """What a `down` backend state means, for people (the raw error goes in `detail`)."""
    error = state.get("error") or ""
    if state.get("http_status"):
        return f"{name} answers HTTP {state['http_status']}"
    if error.startswith("no answer within"):
        return f"{name} does not answer ({error})"
    if "ConnectorError" in error or "Connect call failed" in error or "ClientConnection" in error:
        return f"{name} is unreachable (nothing answers at its address)"
    if "ServerDisconnected" in error:
        return f"{name} closed the connection without answering"
    return f"{name} is down"


class BackendAlerts:
    """`backend_down`, `slow_response` and `high_error_rate` from each `backends` envelope,
    as the `health_checks.alerts` switches say.

    :param engine: the alert engine.
    :param hc: the `health_checks` section (switches, slow limit, error-rate threshold).
    """

    def __init__(self, engine: AlertEngine, hc: HealthCheckSettings):
        self.engine = engine
        self.hc = hc

    async def on_backends(self, envelope: dict[str, Any]) -> None:
        switches, limit, engine = self.hc.alerts, self.hc.error_rate_threshold, self.engine
        for name, state in envelope["data"].items():
            if state.get("status") == "unknown":
                continue
            if switches.backend_down:
                await engine.condition(f"backend_down:{name}", "backend_down", state["status"] == "down",
                                       target=name, message=down_in_words(name, state),
                                       detail=state.get("error") if state["status"] == "down" else None,
                                       resolved_message=f"{name} is up again")
            if switches.slow_response:
                await engine.condition(f"slow_response:{name}", "slow_response", state["status"] == "slow",
                                       severity="warning", value=state.get("latency_ms"),
                                       threshold=self.hc.slow_response_ms, target=name,
                                       message=f"{name} answers slowly ({state.get('latency_ms')} ms, "
                                               f"limit {self.hc.slow_response_ms} ms)",
                                       resolved_message=f"{name} answers in time again")
            rate = state.get("error_rate")
            if switches.high_error_rate and rate is not None:
                # The rate the `backends` stream shows, over the same window, in the same words.
                window = min(self.hc.error_rate_window, state.get("checks") or self.hc.error_rate_window)
                await engine.condition(f"high_error_rate:{name}", "high_error_rate",
                                       rate > limit, severity="warning", value=rate, threshold=limit,
                                       target=name, message=f"{name} fails {rate:.0%} of its last {window} checks",
                                       resolved_message=f"{name}'s error rate is back to {rate:.0%} "
                                                        f"of its last {window} checks")


# -- the `alerts` stream's contract ----------------------------------------------------------
class AlertData(PayloadModel):
    id: str
    kind: str
    severity: Literal["warning", "critical"]
    state: Literal["firing", "resolved"]
    value: Any
    threshold: Any
    message: str
    since: float
    ts: float
    target: str | None = None
    detail: str | None = None


ALERTS = StreamContract(
    name="alerts", namespace="/omni_monitor", payload=AlertData,
    summary="Alerts as they fire and resolve: thresholds with debounce and hysteresis, backend conditions.",
    fields=(
        FieldSpec("id", "id", "the alert's key: its kind and target, e.g. disk_percent:/ or backend_down:ml"),
        FieldSpec("kind", "status", "cpu_percent, memory_percent, disk_percent, gpu_memory_percent, "
                  "backend_down, slow_response, high_error_rate"),
        FieldSpec("severity", "status", "warning or critical"),
        FieldSpec("state", "status", "firing or resolved"),
        FieldSpec("value", "object", "the value observed, in its kind's unit (null for a condition)"),
        FieldSpec("threshold", "object", "the threshold it is compared with"),
        FieldSpec("message", "text", "what is wrong, in words"),
        FieldSpec("target", "text", "what it is about: the host, disk path, GPU or backend (null: not said)"),
        FieldSpec("detail", "text", "the raw error behind a condition, for a closer look (null when none)"),
        FieldSpec("since", "unix_time", "when it fired"),
        FieldSpec("ts", "unix_time", "when this change happened"),
    ),
)
