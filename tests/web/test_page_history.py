"""The page's long views in Chromium: pick 1 h and see the chart span an hour of seeded
history (the live points extending its right edge), drag to zoom every chart, reload and get
the same range back from the URL, and export what a chart shows."""

from __future__ import annotations

import json
import math
import time

import pytest

from aura_dashboard.history import BucketRow
from aura_dashboard.web.keys import HISTORY
from tests.conftest import make_settings, running_server
from tests.web.test_page import FAST, WAIT_MS, Page, browser  # noqa: F401 (fixture)

pytestmark = pytest.mark.timeout(240)
SOURCE = "seeded-host"


async def seed(app, hours: float = 2.0) -> None:
    """Fine buckets of the charts' series for the last `hours`, as a writer of an earlier run left them."""
    store = app[HISTORY].writer.store
    now = time.time()
    first = int((now - hours * 3600) // 10) * 10
    run = await store.begin_run(SOURCE, first - 5)
    rows = []
    for start in range(first, int(now) - 60, 10):
        cpu = 50 + 40 * math.sin(start / 600)
        values = {("cpu.percent", ()): cpu, ("memory.percent", ()): 30.0,
                  ("network.*.bytes_recv_per_s", ("eth0",)): 1000.0, ("network.*.bytes_sent_per_s", ("eth0",)): 500.0,
                  ("disk_io.read_bytes_per_s", ()): 10.0, ("disk_io.write_bytes_per_s", ()): 20.0}
        for (field, keys), value in values.items():
            rows.append(BucketRow("fine", "system", SOURCE, field, keys, start, value - 5, value, value + 5, value, 10))
    await store.write(rows, run)


async def test_pick_an_hour_zoom_restore_and_export(browser, tmp_path):  # noqa: F811
    settings = make_settings({"DASHBOARD_INSTANCE": SOURCE, "HISTORY_STORE_PATH": str(tmp_path / "h.db")}, FAST)
    async with running_server(settings) as server:
        await seed(server.app)
        tab = await browser.new_page(viewport={"width": 1400, "height": 1200}, accept_downloads=True)
        page = Page(tab, server)
        await tab.goto(server.url + "/")
        await page.wait("document.body.dataset.ready === 'true'")
        await page.wait("() => Object.keys(window.aura.hosts()).length > 0")
        await tab.click('.range-button[data-range="1h"]')
        assert "range=1h" in tab.url
        hour = "(s) => { const h = window.aura.range().hosts[s]; return h && h.tier === 'fine' && h.charts.length === 3 && h.charts[0].points >= 300; }"
        await page.wait(hour, SOURCE)
        state = await tab.evaluate("window.aura.range()")
        host = state["hosts"][SOURCE]
        now = time.time()
        (start, end) = state["bounds"]
        assert abs((end - start) - 3600) < 1 and abs(end - now) < 60
        assert host["charts"][0]["first"] <= start + 20 and host["charts"][0]["last"] >= now - 120
        assert await tab.locator('.range-button[data-range="1h"]').get_attribute("class") == "range-button active"
        # The x axis spans the hour, whatever the data.
        span = await tab.evaluate("() => { const u = document.querySelector('[data-chart=\"cpu-mem\"] .uplot'); return u && u.offsetWidth; }")
        assert span
        await page.screenshot("history_one_hour")
        last = host["charts"][0]["last"]
        await page.wait("([s, last]) => window.aura.range().hosts[s].charts[0].last > last", [SOURCE, last])

        # Export what the chart shows.
        async with tab.expect_download() as info:
            await tab.click('[data-chart="cpu-mem"] .export-button[data-export="csv"]')
        csv = (await (await info.value).path()).read_text().splitlines()
        assert csv[0].startswith("time,t,CPU % avg,CPU % min,CPU % max,memory % avg")
        assert len(csv) >= 300
        async with tab.expect_download() as info:
            await tab.click('[data-chart="network"] .export-button[data-export="json"]')
        rows = json.loads((await (await info.value).path()).read_text())
        filled = [r for r in rows if r["received avg"] is not None]
        assert filled and filled[0]["received min"] == 995 and filled[0]["received max"] == 1005

        # Drag over the middle half of the CPU chart: every chart follows the selection.
        over = tab.locator('[data-chart="cpu-mem"] .u-over').first
        box = await over.bounding_box()
        y = box["y"] + box["height"] / 2
        await tab.mouse.move(box["x"] + box["width"] * 0.25, y)
        await tab.mouse.down()
        await tab.mouse.move(box["x"] + box["width"] * 0.5, y, steps=5)
        await tab.mouse.move(box["x"] + box["width"] * 0.75, y, steps=5)
        await tab.mouse.up()
        await page.wait("() => window.aura.range().kind === 'absolute'")
        zoomed = await tab.evaluate("window.aura.range()")
        assert 1200 < zoomed["to"] - zoomed["from"] < 2400, zoomed
        assert abs(zoomed["from"] - (start + 900)) < 300
        assert f"from={zoomed['from']}" in tab.url and f"to={zoomed['to']}" in tab.url
        await page.wait("([s, f]) => { const h = window.aura.range().hosts[s]; return h.charts.every((c) => c.first >= f - 10 && c.points > 100); }",
                        [SOURCE, zoomed["from"]])
        await page.screenshot("history_zoomed")

        # The URL restores the range.
        await tab.reload()
        await page.wait("document.body.dataset.ready === 'true'")
        restored = await tab.evaluate("window.aura.range()")
        assert (restored["kind"], restored["from"], restored["to"]) == ("absolute", zoomed["from"], zoomed["to"])
        await page.wait("([s, f]) => { const h = window.aura.range().hosts[s]; return h && h.charts.length && h.charts[0].first >= f - 10 && h.charts[0].points > 100; }",
                        [SOURCE, zoomed["from"]])
        await tab.click('.range-button[data-range="live"]')
        assert "from=" not in tab.url and "range=" not in tab.url
        assert page.errors == []
