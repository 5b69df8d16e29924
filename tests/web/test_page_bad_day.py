"""The page on the bad day, in Chromium: a server stopped and started again (a deploy), flags
switched off and on, streams that stop. The page must be right afterwards without a reload.

Few tests, each doing several things: every Chromium start costs seconds on a small machine.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import free_port, in_ci, make_settings, running_server
from tests.web.test_page import FAST, HAS_POINTS, WAIT_MS, Page, browser, open_page  # noqa: F401 (fixture)

# A deploy: 120 s under CI (the measure); a short stop in a developer's run.
OUTAGE_S = 120 if in_ci() else 10

pytestmark = pytest.mark.timeout(240 + OUTAGE_S)

# Escalation after two failed attempts, so even the short stop goes past it; attempts at most
# 5 s apart, so "retry now" is visibly sooner than the schedule.
RIDE_OUT = {**FAST, "websocket": {"reconnect": {"enabled": True, "initial_delay_ms": 500, "backoff_multiplier": 2,
                                                "max_delay_ms": 5000, "max_attempts": 2}}}

PANEL_CONNECTED = "() => document.querySelector('#panel-omni_monitor .conn').textContent.startsWith('connected')"


async def test_page_rides_out_a_server_stop_and_recovers_without_reload(browser):  # noqa: F811
    port = free_port()
    settings = make_settings(extra=RIDE_OUT)
    async with running_server(settings, port) as first:
        page = await open_page(browser, first)
        await page.wait(HAS_POINTS, 3)
        await page.page.evaluate("window.sameDocument = true")
    # Stopped: the page keeps trying, past max_attempts, and says so louder.
    await page.wait("() => !document.getElementById('connection-notice').hidden")
    await asyncio.sleep(OUTAGE_S)
    await page.wait("() => document.getElementById('connection-notice').dataset.escalated === 'true'")
    text = await page.page.locator("#connection-text").text_content()
    assert "unreachable" in text and "Still trying" in text, text
    assert "reload" not in text.lower()
    # "Retry now" starts an attempt at once, outside the schedule.
    started = await page.page.evaluate(
        "() => { const before = window.aura.connection.attempts; document.getElementById('retry-now').click();"
        " return window.aura.connection.attempts - before; }")
    assert started == 1
    await page.screenshot("bad_day_server_away")
    # Started again on the same port: the page comes back by itself, in the same document.
    async with running_server(settings, port) as second:
        await page.wait(PANEL_CONNECTED)
        await page.wait("() => window.aura.reconnects() >= 1")
        # The new server's numbers may already be past the page's: the run tells them apart.
        await page.wait("() => Object.values(window.aura.hosts()).some((h) => h.epochs >= 2)")
        await page.wait("() => document.getElementById('connection-notice').hidden")
        assert await page.page.evaluate("window.sameDocument") is True
        assert second.port == port
        await page.screenshot("bad_day_server_back")
