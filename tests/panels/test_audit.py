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


# -- GET /api/audit?limit=N&before=<cursor>: paging, PostgreSQL first ------------------------
from tests.collectors.test_database import machine_db  # noqa: E402,F401 (fixture)


def ticking(start: float = 1000.0):
    now = [start]

    def clock() -> float:
        now[0] += 1.0
        return now[0]
    return clock


async def read_all_pages(store, limit):
    pages, before = [], None
    while True:
        page = await store.page(limit, before)
        pages.append(page)
        if not page["more"]:
            return pages
        assert page["next_before"]
        before = page["next_before"]


async def test_local_pages_walk_every_entry_newest_first_once(tmp_path):
    store = AuditStore(str(tmp_path / "a.db"), clock=ticking())
    for i in range(7):
        await store.record("test", "system", f"t{i}")
    pages = await read_all_pages(store, 3)
    assert [len(p["entries"]) for p in pages] == [3, 3, 1]
    assert all(p["source"] == "local" and p["limit"] == 3 for p in pages)
    assert pages[-1]["next_before"] is None
    targets = [e["target"] for p in pages for e in p["entries"]]
    assert targets == [f"t{i}" for i in reversed(range(7))]
    with pytest.raises(ValueError):
        await store.page(3, "not-a-cursor")
    await store.close()


async def test_postgres_pages_hold_every_instances_entries_and_fall_back_to_local(tmp_path, machine_db):  # noqa: F811
    env = {"DATABASE_HOST": pg.MACHINE_PG["host"], "DATABASE_PORT": str(pg.MACHINE_PG["port"]),
           "DATABASE_NAME": machine_db, "DATABASE_USER": "postgres"}
    dsn = dsn_of(db_settings(env), 3)
    a = AuditStore(str(tmp_path / "a.db"), postgres_dsn=dsn, clock=ticking(1000))
    b = AuditStore(str(tmp_path / "b.db"), postgres_dsn=dsn, clock=ticking(1000.5))
    for i in range(3):
        await a.record("test", "a", f"a{i}")
        await b.record("test", "b", f"b{i}")
    await a.sync_once()
    await b.sync_once()
    await a.record("test", "a", "a-pending")  # not yet copied: still read, from the local file
    pages = await read_all_pages(a, 4)
    assert {p["source"] for p in pages} == {"postgres"}
    targets = [e["target"] for p in pages for e in p["entries"]]
    assert targets == ["a-pending", "b2", "a2", "b1", "a1", "b0", "a0"]
    # PostgreSQL unreachable: the local file, saying so.
    dead = AuditStore(str(tmp_path / "a.db"), postgres_dsn=dsn.replace(str(pg.MACHINE_PG["port"]), "1"))
    page = await dead.page(10, None)
    assert page["source"] == "local"
    assert [e["target"] for e in page["entries"]] == ["a-pending", "a2", "a1", "a0"]
    for store in (a, b, dead):
        await store.close()


async def test_api_audit_pages_over_http():
    async with running_server(make_settings()) as srv, aiohttp.ClientSession() as http:
        for value in (True, False, True):
            async with http.patch(srv.url + "/api/features", json={"debug_mode": value}) as response:
                assert response.status == 200

        async def page(query):
            async with http.get(srv.url + "/api/audit" + query) as response:
                return response.status, await response.json()

        async def three():
            while len((await page("?limit=50"))[1]["entries"]) < 3:
                await asyncio.sleep(0.1)
        await asyncio.wait_for(three(), 20)
        status, first = await page("?limit=2")
        assert status == 200
        assert set(first) == {"entries", "limit", "more", "next_before", "source"}
        assert first["limit"] == 2 and first["more"] is True and first["source"] == "local"
        status, second = await page(f"?limit=2&before={first['next_before']}")
        assert status == 200 and second["entries"]
        assert not {e["id"] for e in first["entries"]} & {e["id"] for e in second["entries"]}
        assert second["entries"][0]["ts"] <= first["entries"][-1]["ts"]
        status, bad = await page("?before=nonsense")
        assert status == 400 and "before" in bad["error"]["message"]
