"""Backend alerts one can act on: each names its backend, says what is wrong in words (the raw
error aside), and the error-rate alert agrees with the error rate the `backends` stream shows
and resolves within the configured window after the backend recovers. Real HTTP backends,
checks driven one by one, an injected clock: no sleeping."""

from __future__ import annotations

import aiohttp

from aura_dashboard.collectors.backends import BackendMonitor
from aura_dashboard.panels.alerts import AlertEngine, BackendAlerts
from tests.collectors.test_backends import FakeBackend
from tests.conftest import make_settings
from tests.panels.test_alerts import Clock

WINDOW = 10


async def test_error_rate_alert_follows_the_window_and_resolves_within_it_after_recovery():
    backend = FakeBackend()
    await backend.start()
    settings = make_settings({"MCP_BACKEND_URL": backend.url, "ML_BACKEND_URL": backend.url,
                              "GOVERNANCE_URL": backend.url},
                             {"health_checks": {"timeout_ms": 2000, "retries": 0, "error_rate_window": WINDOW,
                                                "error_rate_threshold": 0.5}})
    clock = Clock()
    published: list[dict] = []
    engine = AlertEngine(published.append, consecutive=2, clock=clock)
    alerts = BackendAlerts(engine, settings.health_checks)
    async with aiohttp.ClientSession() as http:
        monitor = BackendMonitor(settings.health_checks, settings.backends, lambda: http)
        probe = monitor.probe("mcp")

        async def check() -> dict:
            clock.now += 10
            state = await monitor.check(probe)
            await alerts.on_backends({"data": {"mcp": state}})
            return state

        def latest(kind: str) -> dict | None:
            mine = [a for a in published if a["id"] == f"{kind}:mcp"]
            return mine[-1] if mine else None

        try:
            for _ in range(WINDOW):
                await check()
            backend.mode = "fail"
            for _ in range(2 * WINDOW):
                state = await check()
            assert state["error_rate"] == 1.0
            down, rate = latest("backend_down"), latest("high_error_rate")
            assert down["state"] == "firing" and rate["state"] == "firing"
            # Named, in words; the raw error aside.
            assert down["target"] == "mcp" and rate["target"] == "mcp"
            assert down["message"] == "mcp answers HTTP 500" and down["detail"] == "HTTP 500"
            assert rate["message"] == "mcp fails 100% of its last 10 checks"

            backend.mode = "ok"
            for n in range(1, WINDOW + 1):
                state = await check()
                assert latest("backend_down")["state"] == "resolved"
                rate = latest("high_error_rate")
                if rate["state"] == "resolved":
                    break
                # While it fires, it says what the table says.
                assert rate["value"] == state["error_rate"], (n, rate, state)
                assert f"{round(state['error_rate'] * 100)}%" in rate["message"]
            else:
                raise AssertionError(f"high_error_rate still firing {WINDOW} checks after recovery: {rate}")
            assert rate["value"] <= 0.5 and rate["message"] == "mcp's error rate is back to 50% of its last 10 checks"
            assert latest("backend_down")["message"] == "mcp is up again"
            # The audit log (the engine's listeners) heard each alert fire and resolve, not every update.
        finally:
            await backend.stop()


async def test_audit_hears_fire_and_resolve_only():
    clock = Clock()
    published, changes = [], []
    engine = AlertEngine(published.append, consecutive=1, clock=clock)
    engine.changed.connect(changes.append)
    for rate in (0.9, 0.8, 0.7, 0.2):
        clock.now += 1
        await engine.condition("high_error_rate:ml", "high_error_rate", rate > 0.5, value=rate,
                               threshold=0.5, target="ml", message=f"ml fails {rate:.0%}",
                               resolved_message="ml is fine")
    assert [(a["state"], a["value"]) for a in published] == [("firing", 0.9), ("firing", 0.8), ("firing", 0.7),
                                                             ("resolved", 0.2)]
    assert [a["state"] for a in changes] == ["firing", "resolved"]
    assert published[1]["since"] == published[0]["since"] and published[1]["ts"] > published[0]["ts"]
