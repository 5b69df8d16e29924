"""The charts, in Chromium: what is drawn on their canvas is read back from the canvas.

The page records where each draw put a threshold line or an alert mark (window.aura.charts());
the tests read the canvas's pixels there, so a line that is not drawn fails them.
"""

from __future__ import annotations

import asyncio

import pytest

from aura_dashboard.web.keys import ALERTS
from tests.collectors.test_backends import FakeBackend
from tests.conftest import free_port, make_settings, running_server
from tests.web.test_page import FAST, HAS_POINTS, Page, browser, open_page  # noqa: F401 (fixture)

pytestmark = pytest.mark.timeout(240)

CPU_LIMIT, MEMORY_LIMIT = 50, 90
LIMITS = {**FAST, "monitoring": {"thresholds": {"cpu_percent": CPU_LIMIT, "memory_percent": MEMORY_LIMIT}}}

# The share of positions along a line (a row band or a column band of 3 canvas pixels) where
# the canvas holds the theme colour `name` (CSS variable --name), drawn at least half opaque.
# Lines drawn with alpha on a transparent canvas keep their colour (getImageData is not
# premultiplied); anti-aliasing spreads them over two pixels, hence the band.
COVERED = """([source, index, name, line]) => {
  const canvas = document.querySelectorAll(`.host[data-source="${source}"] .chart canvas`)[index];
  const probe = document.createElement('canvas').getContext('2d', {willReadFrequently: true});
  probe.fillStyle = getComputedStyle(document.documentElement).getPropertyValue(`--${name}`).trim();
  probe.fillRect(0, 0, 1, 1);
  const want = probe.getImageData(0, 0, 1, 1).data;
  const ctx = canvas.getContext('2d');
  const horizontal = line.y !== undefined;
  const [x, y, w, h] = horizontal ? [line.left, line.y - 1, line.width, 3] : [line.x - 1, line.top, 3, line.height];
  const px = ctx.getImageData(Math.round(x), Math.round(y), Math.round(w), Math.round(h)).data;
  const at = (cx, cy) => (cy * Math.round(w) + cx) * 4;
  const hit = (i) => px[i + 3] >= 100 && [0, 1, 2].every((c) => Math.abs(px[i + c] - want[c]) <= 40);
  const along = horizontal ? Math.round(w) : Math.round(h), across = 3;
  let covered = 0;
  for (let a = 0; a < along; a++) {
    for (let b = 0; b < across; b++) {
      if (hit(horizontal ? at(a, b) : at(b, a))) { covered++; break; }
    }
  }
  return covered / along;
}"""


# [the chart box's width, its canvas's width] of each chart of host `s`, in CSS pixels.
FILLS = """(s) => [...document.querySelectorAll(`.host[data-source="${s}"] .chart`)].map((box) =>
  [box.clientWidth, box.querySelector('canvas').getBoundingClientRect().width])"""
# Each legend's size, and the host's card height.
LEGENDS = """(s) => { const host = document.querySelector(`.host[data-source="${s}"]`);
  return [...host.querySelectorAll('.u-legend')].map((l) => { const r = l.getBoundingClientRect();
    return [Math.round(r.width), Math.round(r.height)]; }).concat([[0, Math.round(host.getBoundingClientRect().height)]]); }"""


# The audit table's width against its scroll box's, and its detail cells' text.
AUDIT_FITS = """() => { const box = document.querySelector('#audit .table-scroll');
  return {fits: box.scrollWidth <= box.clientWidth + 1, width: [box.scrollWidth, box.clientWidth],
    details: [...box.querySelectorAll('tbody tr td:last-child')].map((td) => td.textContent)}; }"""
# One more point of host `s` and the alerts list rendered in the same animation frame; then
# the chart's x range and its last point.
SAME_FRAME = """async (s) => {
  const omni = window.aura.views.omni_monitor, host = omni.hosts.get(s);
  const last = host.series[0].latest();
  const envelope = {source: s, epoch: last.epoch, seq: last.seq + 1000, ts: last.ts + 100, data: host.lastData};
  omni.envelopes('system', [envelope], {history: false});
  omni.dirty.add('alerts');
  await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
  const plot = host.plots[0];
  return {max: plot.scales.x.max, last: plot.data[0][plot.data[0].length - 1]};
}"""


async def limit_lines_drawn(page: Page) -> str:
    """Until the page's first host has points and its first chart both limit lines (CPU and
    memory thresholds); returns that host's source."""
    await page.wait(HAS_POINTS, 3)
    source = next(iter(await page.hosts()))
    await page.wait("(s) => window.aura.charts()[s][0].thresholds.length === 2", source)
    return source


async def test_charts_draw_thresholds_and_alert_moments_and_share_one_cursor(browser):  # noqa: F811
    async with running_server(make_settings(extra=LIMITS)) as server:
        page = await open_page(browser, server)
        source = await limit_lines_drawn(page)
        charts = (await page.page.evaluate("window.aura.charts()"))[source]
        # monitoring.thresholds as dashed lines on the CPU and memory chart, in the "bad" colour.
        lines = {t["key"]: t for t in charts[0]["thresholds"]}
        assert {k: t["value"] for k, t in lines.items()} == {"cpu_percent": CPU_LIMIT, "memory_percent": MEMORY_LIMIT}
        assert lines["cpu_percent"]["y"] > lines["memory_percent"]["y"]  # 50 % lies below 90 %
        for line in lines.values():
            covered = await page.page.evaluate(COVERED, [source, 0, "bad", line])
            assert covered > 0.4, (line, covered)  # dashes: 6 on, 4 off
        # Control: half-way between the two lines nothing is drawn in that colour.
        between = {**lines["cpu_percent"], "y": (lines["cpu_percent"]["y"] + lines["memory_percent"]["y"]) // 2}
        assert await page.page.evaluate(COVERED, [source, 0, "bad", between]) < 0.1
        # The charts without a limit draw none.
        assert all(c["thresholds"] == [] for c in charts[1:])

        # An alert of this host fires: each of its charts marks the moment (red: critical).
        engine = server.app[ALERTS]
        for _ in range(engine.consecutive):
            await engine.condition("cpu_high:test", "cpu_high", True, target=source,
                                   message=f"CPU on {source} is over its limit")
        # (This machine's own alerts may fire too, at a CPU limit of 50 %: warnings, drawn amber.)
        await page.wait("(s) => window.aura.charts()[s].every((c) => c.marks.some((m) => m.severity === 'critical'))",
                        source)
        charts = (await page.page.evaluate("window.aura.charts()"))[source]
        for index, chart in enumerate(charts):
            mark = next(m for m in chart["marks"] if m["severity"] == "critical")
            covered = await page.page.evaluate(COVERED, [source, index, "bad", mark])
            assert covered > 0.8, (chart["id"], mark, covered)

        # Firing alerts: critical ones first, the newest first, then the warnings.
        await asyncio.sleep(0.05)
        for _ in range(engine.consecutive):
            await engine.condition("cpu_high:newer", "cpu_high", True, target=source, message="a newer one")
            await engine.condition("disk_slow:test", "disk_slow", True, severity="warning", target=source,
                                   message="a warning, newest of all")
        await page.wait("() => document.querySelectorAll('#alerts .alert.firing[data-alert=\"disk_slow:test\"]').length")
        order = await page.page.eval_on_selector_all(
            "#alerts .alert.firing", "(rows) => rows.map((r) => [r.dataset.alert, r.className])")
        ids = [i for i, _ in order]
        assert ids.index("cpu_high:newer") < ids.index("cpu_high:test") < ids.index("disk_slow:test"), order
        classes = dict(order)  # (this machine's own alerts may be among them: only ours are compared)
        assert "sev-critical" in classes["cpu_high:newer"] and "sev-warning" in classes["disk_slow:test"]

        # The audit log says what the alert was in words, and fits its card at this width.
        await page.wait("() => [...document.querySelectorAll('#audit tbody tr')].some((r) => r.textContent.includes('cpu_high:newer'))")
        audit = await page.page.evaluate(AUDIT_FITS)
        assert audit["fits"], audit
        assert all(not d.startswith("{") and ": " in d for d in audit["details"]), audit

        # Each chart fills its card, and is a picture with a name and the values it ends on.
        fit = await page.page.evaluate(FILLS, source)
        assert all(box - 2 <= canvas <= box for box, canvas in fit), fit
        label = await page.page.get_attribute(f'.host[data-source="{source}"] .chart canvas[role="img"]', "aria-label")
        assert label.startswith(f"CPU and memory (%) chart of {source}; now CPU % ") and " %" in label, label

        # One cursor across the charts: hovering one moves the others' to the same moment.
        assert {c["sync"] for c in charts} == {"aura-charts"}
        legends = await page.page.evaluate(LEGENDS, source)
        box = await page.page.locator(f'.host[data-source="{source}"] .chart .u-over').first.bounding_box()
        await page.page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        await page.wait("(s) => window.aura.charts()[s].every((c) => c.cursor > 0)", source)
        cursors = [c["cursor"] for c in (await page.page.evaluate("window.aura.charts()"))[source]]
        assert max(cursors) - min(cursors) <= 2, cursors  # same widths: the same place
        # The legends show the values there, and keep their size (the card does not jump).
        for x in (0.1, 0.5, 0.95):
            await page.page.mouse.move(box["x"] + box["width"] * x, box["y"] + box["height"] / 2)
            await page.wait("(s) => [...document.querySelectorAll(`.host[data-source=\"${s}\"] .u-legend .u-value`)]"
                            ".some((v) => /\\d/.test(v.textContent))", source)
            assert await page.page.evaluate(LEGENDS, source) == legends, x
        await page.screenshot("charts_thresholds_marks_cursor")
        # A point and an alert drawn in the same frame: the chart still reaches the new point
        # (the alert's redraw used to put back the x range from before the point, and a chart
        # drawn first with no data then stayed blank at "23:59:59 … 00:00:01" until the next one).
        reach = await page.page.evaluate(SAME_FRAME, source)
        assert reach["max"] == reach["last"], reach
        assert page.errors == []


NOTE = "(panel) => document.querySelector(`#panel-${panel} .notes`).textContent"


async def test_the_break_note_is_said_where_a_chart_shows_it_and_fades(browser):  # noqa: F811
    """A restart loses data: the charted panel says so once, the others say nothing, and the note
    goes by itself (bounded wait; how soon is not asserted)."""
    port = free_port()
    quick = {**FAST, "updates": {**FAST["updates"], "intervals": {
        **FAST["updates"]["intervals"], "model_status": 300, "governance_data": 300, "chat_status": 300}},
        "backends": {name: {"health_check_interval_ms": 300} for name in ("mcp", "ml", "governance")},
        "health_checks": {"timeout_ms": 200, "retries": 0}}
    settings = make_settings(extra=quick)
    async with running_server(settings, port) as first:
        page = await open_page(browser, first)
        await page.wait(HAS_POINTS, 3)
        await page.wait("() => document.querySelectorAll('[data-ts]').length >= 4")
        stamped = await page.page.eval_on_selector_all("[data-ts]", "(ns) => ns.map((n) => n.dataset.stream)")
        await page.page.evaluate("window.sameDocument = true")
    # The server away: every panel dims, and every value stamped with its time says how old it is.
    for panel in ("omni_monitor", "governance", "ai_system", "arena", "chat"):
        await page.wait(f"() => document.getElementById('panel-{panel}').dataset.connected === 'false'")
    try:
        await page.wait("() => [...document.querySelectorAll('[data-ts]')].every((n) => n.classList.contains('stale') && "
                        "/ s ago$/.test(((n.querySelector(':scope > .host-head') || n).querySelector(':scope > .age') || {})"
                        ".textContent || ''))")
    except Exception as exc:
        fresh = await page.page.eval_on_selector_all("[data-ts]:not(.stale)", "(ns) => ns.map((n) => n.dataset.stream)")
        raise AssertionError(f"not marked stale: {fresh} (stamped: {stamped})") from exc
    await page.screenshot("server_away_everything_stale")
    async with running_server(settings, port):
        await page.wait("() => Object.values(window.aura.hosts()).some((h) => h.epochs >= 2)")
        await page.wait(f"() => ({NOTE})('omni_monitor').includes('data was lost')")
        note = await page.page.evaluate(f"({NOTE})('omni_monitor')")
        assert note.count("lost") == 1 and "charts show the break" in note, note
        await page.screenshot("break_note")
        for panel in ("governance", "ai_system", "arena", "chat"):
            assert await page.page.evaluate(NOTE, panel) == "", panel
        # It fades, then goes; nothing else says it again while the page stays connected.
        await page.wait("() => document.querySelector('#panel-omni_monitor .notes').classList.contains('fade')")
        await page.wait(f"() => ({NOTE})('omni_monitor') === ''")
        assert await page.page.locator("#panel-omni_monitor .notes").is_hidden()
        assert await page.page.evaluate("window.sameDocument") is True
        # (Chromium itself logs each refused reconnect attempt while the server is away.)
        assert [e for e in page.errors if "ERR_CONNECTION_REFUSED" not in e] == []


def fake_ml() -> FakeBackend:
    """A small ML backend (test_backends' FakeBackend): /health and /models answer while it
    runs, listing two models; stopped, nothing listens."""
    ml = FakeBackend()
    ml.models = [{"id": "llama-3-8b", "status": "loaded", "max_tokens": 8192}, "tiny-bert"]
    return ml


BADGE = "() => { const b = document.querySelector('#models .badge'); return b && b.textContent; }"


async def test_models_card_renders_what_the_models_stream_sends(browser):  # noqa: F811
    """The ML backend up: its badge says so and each model is a row (name, status, details);
    down: the badge says down and the card says why no models are listed."""
    ml = fake_ml()
    await ml.start()
    extra = {**FAST, "updates": {**FAST["updates"], "intervals": {**FAST["updates"]["intervals"], "model_status": 300}},
             "backends": {"ml": {"health_check_interval_ms": 200}},
             "health_checks": {"timeout_ms": 300, "retries": 0}}
    try:
        async with running_server(make_settings(env={"ML_BACKEND_URL": ml.url}, extra=extra)) as server:
            page = await open_page(browser, server)
            try:
                await page.wait(f"() => ({BADGE})() === 'up'")
                await page.wait("() => document.querySelectorAll('#models tbody tr').length === 2")
            except Exception as exc:
                raise AssertionError(await page.page.locator("#models").inner_text()) from exc
            rows = await page.page.eval_on_selector_all(
                "#models tbody tr", "(rs) => rs.map((r) => [...r.cells].map((c) => c.textContent))")
            assert rows == [["llama-3-8b", "loaded", "max_tokens: 8192"], ["tiny-bert", "–", ""]], rows
            await page.screenshot("models_backend_up")
            await ml.stop()
            try:
                await page.wait(f"() => ({BADGE})() === 'down'")
                await page.wait("() => document.querySelectorAll('#models tbody tr').length === 0 && "
                                "document.getElementById('models').textContent.includes('/models')")
            except Exception as exc:
                raise AssertionError(await page.page.locator("#models").inner_text()) from exc
            await page.screenshot("models_backend_down")
            assert page.errors == []
    finally:
        await ml.stop()  # again: cleaning up twice is harmless


async def test_without_health_checks_the_backends_say_not_checked(browser):  # noqa: F811
    """health_checks.enabled off: nothing checks the ML backend's (or governance's) health, so
    its state stays "unknown" with 0 checks; the cards say "not checked" (neutral, with why), not
    a red "unknown", and the models card still lists the models the backend answered with."""
    ml = fake_ml()
    await ml.start()
    extra = {**FAST, "updates": {**FAST["updates"], "intervals": {**FAST["updates"]["intervals"], "model_status": 300}},
             "health_checks": {"enabled": False}}
    try:
        async with running_server(make_settings(env={"ML_BACKEND_URL": ml.url}, extra=extra)) as server:
            page = await open_page(browser, server)
            try:
                await page.wait("() => document.querySelectorAll('#models tbody tr').length === 2")
                await page.wait(f"() => ({BADGE})() === 'not checked'")
            except Exception as exc:
                raise AssertionError(await page.page.locator("#models").inner_text()) from exc
            badge = page.page.locator("#models .badge").first
            assert "neutral" in await badge.get_attribute("class")
            assert "health checks are off" in await page.page.locator("#models").inner_text()
            # The governance service's badge, from the same health checks, says the same.
            await page.wait("() => { const b = document.querySelector('#governance .badge'); "
                            "return b && b.textContent === 'not checked'; }")
            assert "health checks are off" in await page.page.locator("#governance").inner_text()
            await page.screenshot("models_not_checked")
            assert page.errors == []
    finally:
        await ml.stop()


# Table cells whose text runs over more than one line (a Range's client rects, one per line).
WRAPPED = """() => [...document.querySelectorAll('.table-scroll td.num, .table-scroll th')].filter((cell) => {
  const range = document.createRange();
  range.selectNodeContents(cell);
  const tops = new Set([...range.getClientRects()].filter((r) => r.width > 0).map((r) => Math.round(r.top)));
  return tops.size > 1;
}).map((cell) => cell.textContent)"""


async def test_on_a_phone_limits_and_figures_stay_readable(browser):  # noqa: F811
    """At 390 px, two limits close together (80 % and 85 %, the shipped ones) keep their labels
    clear of each other's lines, and figures with units ("100.0 %") or column names do not
    break over two lines."""
    close = {**FAST, "monitoring": {"thresholds": {"cpu_percent": 80, "memory_percent": 85}},
             "backends": {name: {"health_check_interval_ms": 200} for name in ("mcp", "ml", "governance")},
             "health_checks": {"timeout_ms": 300, "retries": 0}}
    dead = f"http://127.0.0.1:{free_port()}"
    env = {"MCP_BACKEND_URL": dead, "ML_BACKEND_URL": dead, "GOVERNANCE_URL": dead}
    async with running_server(make_settings(env=env, extra=close)) as server:
        tab = await browser.new_page(viewport={"width": 390, "height": 844})
        page = Page(tab, server)
        await tab.goto(server.url + "/")
        await page.wait("document.body.dataset.ready === 'true'")
        source = await limit_lines_drawn(page)
        lines = (await page.page.evaluate("window.aura.charts()"))[source][0]["thresholds"]
        for line in lines:
            label = line["label"]
            for other in lines:
                if other is not line:
                    assert not label["top"] - 1 < other["y"] < label["bottom"] + 1, ("crossed", line, other)
                    o = other["label"]
                    overlap = (label["left"] < o["right"] and o["left"] < label["right"]
                               and label["top"] < o["bottom"] and o["top"] < label["bottom"])
                    assert not overlap, ("labels overlap", line, other)
        # Time ticks on whole seconds: no label twice (the first seconds of data had 22:43:16 twice).
        await page.wait(HAS_POINTS, 8)
        for chart in (await page.page.evaluate("window.aura.charts()"))[source]:
            ticks = chart["timeTicks"]
            assert ticks and len(set(ticks)) == len(ticks), (chart["id"], ticks)
        # The backends table: every backend down, its error rate "100.0 %" on one line.
        await page.wait("() => [...document.querySelectorAll('#backends td.num')].some((c) => c.textContent.includes('100.0'))")
        assert await tab.evaluate(WRAPPED) == []
        await page.screenshot("charts_phone_limits")
        assert page.errors == []


BAD = "() => getComputedStyle(document.documentElement).getPropertyValue('--bad').trim()"


async def test_theme_follows_the_system_and_the_toggle_and_the_charts_follow(browser):  # noqa: F811
    """`prefers-color-scheme` picks the theme while the toggle says auto; the toggle's choice
    wins and is kept across a reload; the charts' limit lines are drawn in the theme's colour."""
    async with running_server(make_settings(extra=LIMITS)) as server:
        context = await browser.new_context(color_scheme="light", viewport={"width": 1400, "height": 1000})
        try:
            tab = await context.new_page()
            page = Page(tab, server)
            await tab.goto(server.url + "/")
            await page.wait("document.body.dataset.ready === 'true'")
            source = await limit_lines_drawn(page)

            async def drawn_in_bad() -> float:
                line = (await tab.evaluate("window.aura.charts()"))[source][0]["thresholds"][0]
                return await tab.evaluate(COVERED, [source, 0, "bad", line])

            assert await tab.evaluate(BAD) == "#c0262d"  # the light theme's
            assert await drawn_in_bad() > 0.4
            await tab.emulate_media(color_scheme="dark")
            await page.wait("() => getComputedStyle(document.documentElement).getPropertyValue('--bad').trim() === '#ff6b6b'")
            await page.wait(f"async () => ({COVERED})([{source!r}, 0, 'bad', "
                            f"window.aura.charts()[{source!r}][0].thresholds[0]]) > 0.4")
            # The toggle: auto → light, whatever the system says; kept across a reload.
            assert await tab.locator("#theme-toggle").text_content() == "theme: auto"
            await tab.click("#theme-toggle")
            assert await tab.locator("#theme-toggle").text_content() == "theme: light"
            assert await tab.evaluate(BAD) == "#c0262d"
            assert await drawn_in_bad() > 0.4
            await page.screenshot("theme_light_chosen_on_a_dark_system")
            await tab.reload()
            await page.wait("document.body.dataset.ready === 'true'")
            assert await tab.locator("#theme-toggle").text_content() == "theme: light"
            assert await tab.evaluate(BAD) == "#c0262d"
            assert page.errors == []
        finally:
            await context.close()
