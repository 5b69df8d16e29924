"""The stream contract: every declared field exists in its payload model, GET /api/streams
serves the table, and a server with every stream on publishes envelopes that all validate
(the running_server fixture checks every envelope of every live test the same way)."""

from __future__ import annotations

import asyncio
import types
import typing
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pydantic import BaseModel

from aura_dashboard.app import STREAMS
from aura_dashboard.contract import FieldSpec, StreamContract
from aura_dashboard.namespaces import PANELS
from aura_dashboard.web.keys import HUB
from tests import pg
from tests.conftest import make_settings, need_service, running_server, serve_app


def _members(annotation: Any) -> list[Any]:
    """The alternatives of a union (Optional included), else the type itself."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [m for m in typing.get_args(annotation) if m is not type(None)]
    return [annotation]


def resolves(annotation: Any, tokens: list[str]) -> bool:
    """Whether a field path (split in tokens) names something in `annotation`."""
    if not tokens:
        return True
    if annotation is Any:
        return True
    token, rest = tokens[0], tokens[1:]
    for member in _members(annotation):
        origin, args = typing.get_origin(member), typing.get_args(member)
        if token == "[]" and origin is list:
            if resolves(args[0] if args else Any, rest):
                return True
        elif token == "*" and origin is dict:
            if resolves(args[1] if args else Any, rest):
                return True
        elif isinstance(member, type) and issubclass(member, BaseModel) and token in member.model_fields:
            if resolves(member.model_fields[token].annotation, rest):
                return True
    return False


def tokens_of(path: str) -> list[str]:
    out = []
    for part in path.split("."):
        name = part.removesuffix("[]")
        if name:
            out.append(name)
        out += ["[]"] * ((len(part) - len(name)) // 2)
    return out


@pytest.mark.parametrize("contract", STREAMS, ids=lambda c: c.name)
def test_every_declared_field_is_in_the_payload_model(contract: StreamContract):
    missing = [f.path for f in contract.fields if not resolves(contract.payload, tokens_of(f.path))]
    assert not missing, f"{contract.name}: fields not in its payload model: {missing}"
    assert contract.namespace in {panel.namespace for panel in PANELS}


def test_the_table_has_each_stream_once_and_fields_name_known_units():
    assert len({c.name for c in STREAMS}) == len(STREAMS)
    with pytest.raises(ValueError):
        FieldSpec("x", "furlongs", "an unknown unit")
    with pytest.raises(ValueError):
        FieldSpec("x", "text", "a series must be a number", series=True)


class Backends:
    """One fake backend for mcp, ml and governance: health, a models list, chat replies."""

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"models": [{"id": "llama", "status": "ready", "size": 7}, "mistral"]})

    async def chat(self, request: web.Request) -> web.Response:
        return web.json_response({"reply": "hello"})

    def app(self) -> web.Application:
        app = web.Application()
        for path in ("/healthz", "/health"):
            app.router.add_get(path, self.health)
        app.router.add_get("/models", self.models)
        app.router.add_post("/api/chat", self.chat)
        return app


FAST = {
    "updates": {"intervals": {name: 200 for name in ("system_metrics", "gpu_metrics", "database_metrics",
                                                        "model_status", "governance_data", "chat_status")}},
    "monitoring": {"temperature": {"sample_interval_ms": 200},
                   "thresholds": {"cpu_percent": 0, "consecutive_samples": 1}},
    "backends": {name: {"health_check_interval_ms": 200} for name in ("mcp", "ml", "governance")},
    "panels": {"ai_system": {"refresh_interval_ms": 200}},
    "performance": {"collect_metrics": True, "metrics_interval_ms": 200},
    "features": {"performance_metrics": True},
}


@asynccontextmanager
async def backends_and_database() -> AsyncIterator[dict[str, str]]:
    """Fake backends (mcp, ml, governance) and a database of its own on the machine's
    PostgreSQL; yields the environment that points a server at them."""
    database = pg.machine_database()
    need_service(database is not None, "PostgreSQL on 127.0.0.1:5432 is not reachable")
    try:
        async with serve_app(Backends().app()) as port:
            url = f"http://127.0.0.1:{port}"
            yield {"DATABASE_HOST": "127.0.0.1", "DATABASE_NAME": database, "DATABASE_USER": "postgres",
                   "MCP_BACKEND_URL": url, "ML_BACKEND_URL": url, "GOVERNANCE_URL": url}
    finally:
        pg.drop_machine_database(database)


async def test_every_stream_publishes_envelopes_that_fit_its_contract():
    async with backends_and_database() as services, aiohttp.ClientSession() as http:
        env = {**services, "ENABLE_GPU_MONITORING": "true", "FEATURE_GPU_MONITORING": "true",
               "ENABLE_TEMPERATURE_MONITORING": "true", "FEATURE_TEMPERATURE_MONITORING": "true"}
        async with running_server(make_settings(env, FAST)) as srv:
            async with http.get(srv.url + "/api/streams") as response:
                described = await response.json()
            assert [s["name"] for s in described["streams"]] == [c.name for c in STREAMS]
            assert all(s["on"] for s in described["streams"]), "every stream is switched on here"
            system = next(s for s in described["streams"] if s["name"] == "system")
            assert system["interval_ms"] == 200 and system["shared"] is False
            assert {"path": "cpu.percent", "unit": "percent", "meaning": "CPU in use, all cores",
                    "series": True, "labels": []} in system["fields"]
            assert [p["name"] for p in described["panels"]] == [p.name for p in PANELS]
            assert described["panels"][0]["streams"] == ["system", "gpu", "temperature", "database",
                                                         "backends", "alerts", "dashboard"]
            # The streams published when something happens, made to happen:
            async with http.patch(srv.url + "/api/features", json={"debug_mode": True}) as response:
                assert response.status == 200  # audited: an `audit` envelope
            async with http.post(srv.url + "/api/arena/debates",
                                 json={"topic": "t", "participants": ["a", "b"]}) as response:
                assert response.status == 201
            async with http.post(srv.url + "/api/ingest/inference",
                                 json={"model": "llama", "latency_ms": 12.5, "ok": True, "tokens": 3}) as response:
                assert response.status == 202
            hub = srv.app[HUB]

            async def every_stream_and_models_listed():
                while True:
                    latest = await hub.latest("models")
                    if (all(hub.published()[c.name] for c in STREAMS) and latest
                            and latest["data"]["entries"]):
                        return latest["data"]
                    await asyncio.sleep(0.1)
            models = await asyncio.wait_for(every_stream_and_models_listed(), 30)
            assert models["entries"] == [{"name": "llama", "status": "ready", "details": {"size": 7}},
                                         {"name": "mistral", "status": None, "details": {}}]
            assert models["models"] == [{"id": "llama", "status": "ready", "size": 7}, "mistral"]
            itself = (await hub.latest("dashboard"))["data"]
            assert set(itself["clients"]) == {p.namespace for p in PANELS}
            assert itself["process"]["rss_bytes"] > 0 and "audit of flags" in itself["mailboxes"]
            assert set(itself["emitter_lag_ms"]) >= {"system", "dashboard"}
        # running_server has now validated every envelope published above against its model
