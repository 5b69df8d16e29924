"""Wiring of the dependency panels: PostgreSQL, the backends, the audit log, governance and
the ML backend's models.

`setup_dependencies(app)` builds them, adds their REST routes, /healthz probes, alert and
audit hooks, and one cleanup context that owns their HTTP session, emitters and the audit
log's copy to PostgreSQL. Every dependency may be absent or fail: that changes its panel's
data, never the server.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from ..appkeys import ALERTS, EMITTERS, HEALTH, HUB, OVERRIDES, SECURITY_EVENTS, SETTINGS, TASKS
from ..collectors.backends import BackendMonitor
from ..collectors.database import DatabaseCollector, dsn_of
from ..config import FeatureChange
from ..errors import BadRequest
from ..panels.audit import AuditStore
from ..realtime.emitters import Emitter
from .api import json_response

log = logging.getLogger(__name__)

DATABASE = web.AppKey("database", DatabaseCollector)
BACKENDS = web.AppKey("backends", BackendMonitor)
AUDIT = web.AppKey("audit", AuditStore)
DEPENDENCY_HTTP = web.AppKey("dependency_http", aiohttp.ClientSession)


def setup_dependencies(app: web.Application) -> None:
    settings, hub, overrides, alerts = app[SETTINGS], app[HUB], app[OVERRIDES], app[ALERTS]
    db = settings.backends.database
    app[DATABASE] = DatabaseCollector(db, query_timeout_s=settings.performance.query_timeout_ms / 1000)
    app[BACKENDS] = BackendMonitor(settings, lambda: app[DEPENDENCY_HTTP])
    app[AUDIT] = AuditStore(
        settings.panels.governance.audit_store_path,
        postgres_dsn=dsn_of(db, db.connection_timeout_ms / 1000) if db.host else None,
        publish=lambda entry: hub.publish("audit", entry))

    async def audit_flag(change: FeatureChange) -> None:
        if not change.remote:  # a change synced from another instance was audited there
            await app[AUDIT].record("feature_toggled", change.actor, f"features.{change.flag}",
                                    {"old": change.old, "new": change.new, "reset": change.reset})

    async def audit_alert(alert: dict[str, Any]) -> None:
        await app[AUDIT].record(f"alert_{alert['state']}", "system", alert["id"],
                                {"kind": alert["kind"], "value": alert.get("value"),
                                 "message": alert.get("message")})

    async def audit_security(event: dict[str, Any]) -> None:
        # Failed authentications arrive already rate-limited per client address.
        await app[AUDIT].record(event["action"], event["actor"], event["target"], event.get("detail"))

    overrides.add_listener(audit_flag)
    alerts.add_listener(audit_alert)
    app[SECURITY_EVENTS].add_listener(audit_security)
    hub.watch("backends", BackendAlerts(app).on_backends)

    app[HEALTH].register("database", lambda: _brief(app[DATABASE].last))
    app[HEALTH].register("backends", lambda: {name: _brief(state)
                                              for name, state in app[BACKENDS].snapshot().items()})
    app[HEALTH].register("audit_postgres", lambda: {"status": app[AUDIT].postgres_status})

    app.router.add_get("/api/database/health", database_health)
    app.router.add_get("/api/backends", backends)
    app.router.add_get("/api/audit", audit_log)
    app.cleanup_ctx.append(_dependencies)


def _brief(state: dict[str, Any]) -> dict[str, Any]:
    return {k: state.get(k) for k in ("status", "reason", "error", "latency_ms") if state.get(k) is not None}


class BackendAlerts:
    """`backend_down`, `slow_response` and `high_error_rate`, per the health_checks.alerts switches."""

    def __init__(self, app: web.Application):
        self.app = app

    async def on_backends(self, envelope: dict[str, Any]) -> None:
        settings, engine = self.app[SETTINGS], self.app[ALERTS]
        switches, limit = settings.health_checks.alerts, settings.health_checks.error_rate_threshold
        for name, state in envelope["data"].items():
            if state.get("status") == "unknown":
                continue
            if switches.backend_down:
                await engine.condition(f"backend_down:{name}", "backend_down", state["status"] == "down",
                                       message=f"{name} is down: {state.get('error')}")
            if switches.slow_response:
                await engine.condition(f"slow_response:{name}", "slow_response", state["status"] == "slow",
                                       severity="warning", value=state.get("latency_ms"),
                                       threshold=settings.health_checks.slow_response_ms,
                                       message=f"{name} answers slowly ({state.get('latency_ms')} ms)")
            if switches.high_error_rate and state.get("error_rate") is not None:
                await engine.condition(f"high_error_rate:{name}", "high_error_rate",
                                       state["error_rate"] > limit, severity="warning",
                                       value=state["error_rate"], threshold=limit,
                                       message=f"{name} fails {state['error_rate']:.0%} of its checks")


async def _governance(app: web.Application) -> dict[str, Any]:
    service = app[BACKENDS].snapshot()["governance"]
    return {"service": service, "audit": await app[AUDIT].summary()}


async def _models(app: web.Application) -> dict[str, Any]:
    settings = app[SETTINGS]
    ml = settings.backends.ml
    data: dict[str, Any] = {"backend": app[BACKENDS].snapshot()["ml"], "models": None}
    try:
        async with asyncio.timeout(settings.health_checks.timeout_ms / 1000):
            async with app[DEPENDENCY_HTTP].get(ml.url + ml.models_path) as response:
                if response.status == 200:
                    body = orjson.loads(await response.read())
                    models = body.get("models", body.get("data")) if isinstance(body, dict) else body
                    data["models"] = models if isinstance(models, list) else None
                    if data["models"] is None:
                        data["models_note"] = f"{ml.models_path} answered JSON without a list of models"
                else:
                    data["models_note"] = f"{ml.models_path} answered HTTP {response.status}"
    except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError, UnicodeDecodeError) as exc:
        data["models_note"] = f"{ml.models_path}: {type(exc).__name__}"
    return data


async def _dependencies(app: web.Application) -> AsyncIterator[None]:
    settings, hub, emitters, tasks = app[SETTINGS], app[HUB], app[EMITTERS], app[TASKS]
    app[DEPENDENCY_HTTP] = aiohttp.ClientSession()
    intervals = settings.updates.intervals
    emitters.add(Emitter("database", app[DATABASE].sample, intervals.database_metrics / 1000, hub))
    emitters.add(Emitter("backends", app[BACKENDS].sample, app[BACKENDS].tick_s, hub,
                         timeout_s=(settings.health_checks.timeout_ms / 1000) * (settings.health_checks.retries + 1) + 1))
    emitters.add(Emitter("governance", lambda: _governance(app), intervals.governance_data / 1000, hub))
    emitters.add(Emitter("models", lambda: _models(app), intervals.model_status / 1000, hub,
                         timeout_s=settings.health_checks.timeout_ms / 1000 + 1))
    await emitters.reconcile()  # a no-op until the host streams start the set
    sync = tasks.spawn(app[AUDIT].run_sync(), name="audit:sync")
    try:
        yield
    finally:
        sync.cancel()
        await asyncio.gather(sync, return_exceptions=True)
        await app[AUDIT].close()
        await app[DATABASE].close()
        await app[DEPENDENCY_HTTP].close()


# -- REST ----------------------------------------------------------------------------------------
async def database_health(request: web.Request) -> web.Response:
    """The latest `database` data; `disabled` (200) when no host is configured."""
    collector = request.app[DATABASE]
    latest = request.app[HUB].latest("database")
    data = latest["data"] if latest is not None else collector.last
    return json_response(data, status=200)


async def backends(request: web.Request) -> web.Response:
    return json_response(request.app[BACKENDS].snapshot())


async def audit_log(request: web.Request) -> web.Response:
    cap = request.app[SETTINGS].panels.governance.audit_log_limit
    raw = request.query.get("limit", "100")
    try:
        limit = int(raw)
    except ValueError:
        raise BadRequest(f"limit: {raw!r} is not an integer") from None
    if limit < 1:
        raise BadRequest("limit: must be at least 1")
    entries = await request.app[AUDIT].recent(min(limit, cap))
    return json_response({"entries": entries, "limit": min(limit, cap)})
