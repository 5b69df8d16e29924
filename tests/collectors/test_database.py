"""The database collector against real PostgreSQL servers: the machine's, and one of the
tests' own that is stopped mid-test and started again."""

from __future__ import annotations

import asyncio

import aiohttp
import psycopg2
import pytest
import socketio

from aura_dashboard.collectors.database import DatabaseCollector
from tests import pg
from tests.conftest import make_settings, need_service, running_server, until_event


@pytest.fixture
def throwaway():
    need_service(pg.available(), f"PostgreSQL binaries not found in {pg.BIN} (initdb, pg_ctl)")
    server = pg.ThrowawayPostgres()
    server.start()
    yield server
    server.remove()


@pytest.fixture
def machine_db():
    name = pg.machine_database()
    need_service(name is not None, "the machine's PostgreSQL on 127.0.0.1:5432 is not reachable")
    yield name
    pg.drop_machine_database(name)


def db_settings(env):
    return make_settings(env).backends.database


async def test_metrics_from_the_machines_postgresql(machine_db):
    collector = DatabaseCollector(db_settings({"DATABASE_HOST": pg.MACHINE_PG["host"],
                                               "DATABASE_PORT": str(pg.MACHINE_PG["port"]),
                                               "DATABASE_NAME": machine_db, "DATABASE_USER": "postgres"}))
    first = await collector.sample()
    second = await collector.sample()
    await collector.close()
    assert first["status"] == "up", first
    assert first["latency_ms"] > 0 and first["connections"] >= 1 and first["max_connections"] > 1
    assert first["size_bytes"] > 0 and 0 <= (first["cache_hit_ratio"] or 0) <= 1
    assert first["transactions_per_s"] is None and second["transactions_per_s"] >= 0
    assert second["longest_query_s"] >= 0


async def test_disabled_without_host_and_down_with_reason_never_password():
    assert (await DatabaseCollector(db_settings({"DATABASE_HOST": ""})).sample())["status"] == "disabled"
    from tests.conftest import free_port
    collector = DatabaseCollector(db_settings({"DATABASE_HOST": "127.0.0.1", "DATABASE_PORT": str(free_port()),
                                               "DATABASE_PASSWORD": "pw-Secret-9"}))
    state = await collector.sample()
    assert state["status"] == "down" and state["reason"]
    assert "pw-Secret-9" not in repr(state)


async def test_stopped_database_turns_down_and_comes_back_up_while_the_rest_streams(throwaway):
    extra = {"updates": {"intervals": {"database_metrics": 300, "system_metrics": 200}, "batch_updates": False}}
    async with running_server(make_settings(throwaway.env(), extra)) as srv:
        client = socketio.AsyncClient(reconnection=False)
        got: dict[str, list] = {"database": [], "system": []}
        changed = asyncio.Event()
        for stream in got:
            client.on(stream, (lambda s: lambda e: (got[s].append(e), changed.set()))(stream),
                      namespace="/omni_monitor")
        await client.connect(srv.url, socketio_path="/ws", namespaces=["/omni_monitor"], transports=["websocket"])

        def until(predicate):
            return until_event(changed, predicate)

        def last_status():
            return got["database"][-1]["data"]["status"] if got["database"] else None

        try:
            assert (await client.call("subscribe", {"streams": ["database", "system"]},
                                      namespace="/omni_monitor"))["ok"]
            await until(lambda: last_status() == "up")
            throwaway.stop()
            await until(lambda: last_status() == "down")
            systems_at_down = len(got["system"])
            down = got["database"][-1]["data"]
            assert down["reason"]
            async with aiohttp.ClientSession() as http:
                async with http.get(srv.url + "/api/database/health") as response:
                    assert response.status == 200 and (await response.json())["status"] == "down"
                async with http.get(srv.url + "/healthz") as response:
                    body = await response.json()
                    assert response.status == 200 and body["dependencies"]["database"]["status"] == "down"
            await until(lambda: len(got["system"]) >= systems_at_down + 3)  # the rest keeps streaming
            throwaway.start()
            await until(lambda: last_status() == "up")
        finally:
            await client.disconnect()
