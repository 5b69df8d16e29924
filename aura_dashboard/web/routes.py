"""Every URL the dashboard answers, in one table."""

from __future__ import annotations

from aiohttp import web

from . import api, dependencies, producers
from .health import healthz
from .metrics import metrics
from .page import setup_page


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/healthz", healthz)
    r.add_get("/health", healthz)
    r.add_get("/api/streams", api.streams)
    r.add_get("/api/system/metrics", api.latest_of("system"))
    r.add_get("/api/gpu/metrics", api.latest_of("gpu"))
    r.add_get("/api/temperature", api.latest_of("temperature"))
    r.add_get("/api/history/{stream}", api.history)
    r.add_get("/api/alerts", api.alerts)
    r.add_get("/api/features", api.get_features)
    r.add_patch("/api/features", api.patch_features)
    r.add_get("/api/config", api.config)
    r.add_get("/api/database/health", dependencies.database_health)
    r.add_get("/api/backends", dependencies.backends)
    r.add_get("/api/audit", dependencies.audit_log)
    r.add_post("/api/ingest/inference", producers.ingest_inference)
    r.add_get("/api/arena/debates", producers.list_debates)
    r.add_post("/api/arena/debates", producers.create_debate)
    r.add_get("/api/arena/debates/{id}", producers.get_debate)
    r.add_get("/api/arena/debates/{id}/turns", producers.debate_turns)
    r.add_post("/api/arena/debates/{id}/turns", producers.add_turn)
    r.add_post("/api/arena/debates/{id}/close", producers.close_debate)
    r.add_get("/metrics", metrics)
    setup_page(app)
