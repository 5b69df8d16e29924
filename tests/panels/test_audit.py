"""The audit log: SQLite first, PostgreSQL when reachable; nothing lost or doubled while it is down."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from aura_dashboard.web.keys import HUB
from aura_dashboard.collectors.database import dsn_of
from aura_dashboard.panels.audit import AuditStore
from tests import pg
from tests.collectors.test_database import db_settings, throwaway  # noqa: F401 (fixture)
from tests.conftest import make_settings, running_server


async def test_entries_written_while_postgres_is_down_arrive_once_in_order(tmp_path, throwaway):  # noqa: F811
    dsn = dsn_of(db_settings(throwaway.env()), 3)
    published = []

    async def publish(entry):
        published.append(entry)

    store = AuditStore(str(tmp_path / "audit.db"), postgres_dsn=dsn, publish=publish)
    assert await store.sync_once() == 0  # creates the table
    for i in range(3):
        await store.record("feature_toggled", "api:1.2.3.4", f"features.f{i}", {"new": True})
    assert await store.sync_once() == 3
    throwaway.stop()
    for i in range(3, 8):
        await store.record("feature_toggled", "api:1.2.3.4", f"features.f{i}", {"new": False})
    with pytest.raises(Exception):
        await store.sync_once()
    await store._drop_pool()
    assert (await store.summary())["pending_to_postgres"] == 5
    throwaway.start()
    # Half a copy already done (as if interrupted before SQLite was marked): no doubles.
    assert await store.sync_once() == 5
    assert await store.sync_once() == 0
    rows = throwaway.query("SELECT target FROM aura_audit ORDER BY ts")
    assert [r[0] for r in rows] == [f"features.f{i}" for i in range(8)]
    assert len(published) == 8 and published[0]["action"] == "feature_toggled"
    recent = await store.recent(3)
    assert [e["target"] for e in recent] == ["features.f7", "features.f6", "features.f5"]
    await store.close()


async def test_interrupted_copy_is_not_doubled(tmp_path, throwaway):  # noqa: F811
    dsn = dsn_of(db_settings(throwaway.env()), 3)
    store = AuditStore(str(tmp_path / "audit.db"), postgres_dsn=dsn)
    await store.record("alert_firing", "system", "cpu_percent")
    assert await store.sync_once() == 1
    # SQLite forgets it was copied (a crash between the PostgreSQL commit and the mark).
    store.local._conn.execute("UPDATE audit SET synced = 0")
    assert await store.sync_once() == 1
    assert throwaway.query("SELECT count(*) FROM aura_audit") == [(1,)]
    await store.close()


async def test_sync_loop_heals_by_itself_and_stops_on_cancel(tmp_path, throwaway):  # noqa: F811
    store = AuditStore(str(tmp_path / "audit.db"), postgres_dsn=dsn_of(db_settings(throwaway.env()), 3),
                       sync_interval_s=0.1)
    task = asyncio.create_task(store.run_sync())
    throwaway.stop()
    await store.record("auth_failed", "10.0.0.9", "/api/features")

    async def status(wanted):
        while store.postgres_status != wanted:
            await asyncio.sleep(0.05)
    await asyncio.wait_for(status("down"), 20)
    throwaway.start()
    await asyncio.wait_for(status("up"), 20)

    async def copied():
        while throwaway.query("SELECT count(*) FROM aura_audit") != [(1,)]:
            await asyncio.sleep(0.1)
    await asyncio.wait_for(copied(), 20)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()
    await store.close()


async def test_flag_changes_and_alerts_are_audited_and_streamed_end_to_end():
    extra = {"updates": {"intervals": {"system_metrics": 200, "governance_data": 300}, "batch_updates": False},
             "monitoring": {"thresholds": {"memory_percent": 0}}}
    async with running_server(make_settings({}, extra)) as srv, aiohttp.ClientSession() as http:
        async with http.patch(srv.url + "/api/features", json={"debug_mode": True}) as response:
            assert response.status == 200

        async def entries():
            async with http.get(srv.url + "/api/audit?limit=50") as response:
                return (await response.json())["entries"]

        async def until_audited():
            while not {"feature_toggled", "alert_firing"} <= {e["action"] for e in await entries()}:
                await asyncio.sleep(0.1)
        await asyncio.wait_for(until_audited(), 20)
        toggled = next(e for e in await entries() if e["action"] == "feature_toggled")
        assert toggled["target"] == "features.debug_mode" and toggled["actor"].startswith("api:")
        assert toggled["detail"] == {"old": False, "new": True, "reset": False}
        async with http.get(srv.url + "/api/audit?limit=x") as response:
            assert response.status == 400
        hub = srv.app[HUB]
        assert {e["data"]["action"] for e in await hub.history("audit")} >= {"feature_toggled", "alert_firing"}

        async def governance_summary():
            while True:
                latest = await hub.latest("governance")
                if latest and latest["data"]["audit"]["last_hour"].get("feature_toggled"):
                    return latest["data"]
                await asyncio.sleep(0.1)
        data = await asyncio.wait_for(governance_summary(), 20)
        assert data["service"]["status"] in ("down", "unknown") and data["audit"]["last"]["action"]


async def test_failed_authentication_is_audited():
    settings = make_settings({"SECURITY_API_KEY_ENABLED": "true", "DASHBOARD_API_KEY": "k-good"})
    async with running_server(settings) as srv, aiohttp.ClientSession() as http:
        async with http.get(srv.url + "/api/config", headers={"X-API-Key": "k-bad"}) as response:
            assert response.status == 401

        async def audited():
            while True:
                async with http.get(srv.url + "/api/audit", headers={"X-API-Key": "k-good"}) as response:
                    entries = (await response.json())["entries"]
                found = [e for e in entries if e["action"] == "auth_failed"]
                if found:
                    return found
                await asyncio.sleep(0.1)
        (entry,) = await asyncio.wait_for(audited(), 10)
        assert "/api/config" in entry["target"] and "k-bad" not in repr(entry)
