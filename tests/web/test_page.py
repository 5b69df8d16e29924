"""The dashboard page in a real browser: Debian's Chromium driven by Playwright.

Nothing is downloaded: Playwright launches the system `chromium`. Each test saves a
screenshot under $AURA_TEST_OUTPUT (default ./test-output)/screenshots so a person can look.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import socketio
from aiohttp import web

from aura_dashboard.app import create_app
from aura_dashboard.web.keys import HUB, OVERRIDES, WEBSOCKETS
from aura_dashboard.web.page import missing_vendor_files
from tests.conftest import ROOT, RunningServer, free_port, make_settings, need_service, running_server, serve_app

CHROMIUM = os.environ.get("AURA_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
OUTPUT = Path(os.environ.get("AURA_TEST_OUTPUT") or ROOT / "test-output")
WAIT_MS = 60_000  # generous: two cores shared with other test runs
HISTORY_POINTS = 30

# Fast samples, and a reconnect schedule short enough for a test but long enough that
# several samples are published while the page is away.
FAST = {
    "updates": {"intervals": {"system_metrics": 200}, "batch_interval_ms": 200},
    "panels": {"omni_monitor": {"graph_history_points": HISTORY_POINTS}},
    "websocket": {"reconnect": {"initial_delay_ms": 1000, "backoff_multiplier": 1.5,
                                "max_delay_ms": 3000, "max_attempts": 30}},
}

pytestmark = pytest.mark.timeout(240)


serve = running_server  # the real app on 127.0.0.1:`port` (a free one by default)


@pytest.fixture
async def browser():
    need_service(os.path.exists(CHROMIUM), f"Chromium is not installed at {CHROMIUM} "
                 "(scripts/test.sh installs Debian's chromium package)")
    assert not missing_vendor_files(), "the page's libraries are missing: run bash scripts/build_page.sh"
    from playwright.async_api import async_playwright
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM,
                                                    args=["--no-sandbox", "--disable-gpu"])
        try:
            yield chromium
        finally:
            await chromium.close()


class Page:
    """A browser tab on the dashboard, recording console errors and foreign requests."""

    def __init__(self, page, server: RunningServer):
        self.page, self.errors, self.foreign = page, [], []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        page.on("request", lambda r: None if r.url.startswith((server.url, "data:")) else self.foreign.append(r.url))

    async def hosts(self) -> dict:
        return await self.page.evaluate("window.aura.hosts()")

    async def wait(self, expression: str, arg=None) -> None:
        await self.page.wait_for_function(expression, arg=arg, timeout=WAIT_MS)

    async def screenshot(self, name: str) -> None:
        folder = OUTPUT / "screenshots"
        folder.mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


async def open_page(browser, server: RunningServer) -> Page:
    page = await browser.new_page(viewport={"width": 1400, "height": 1200})
    wrapped = Page(page, server)
    await page.goto(server.url + "/")
    await wrapped.wait("document.body.dataset.ready === 'true'")
    return wrapped


async def wait_until(condition, timeout: float = WAIT_MS / 1000) -> None:
    """Until `condition()` (plain or async) holds."""
    async with asyncio.timeout(timeout):
        while not await condition():
            await asyncio.sleep(0.1)


HAS_POINTS = "(n) => Object.values(window.aura.hosts()).some((h) => h.points >= n)"


def consecutive(seqs: list[list[int]]) -> bool:
    """Within each epoch, every seq follows the one before it."""
    return all(b[1] == a[1] + 1 for a, b in zip(seqs, seqs[1:]) if a[0] == b[0])


async def test_page_loads_without_console_errors_and_cpu_changes(browser):
    async with serve(make_settings(extra=FAST)) as server:
        page = await open_page(browser, server)
        cpu = page.page.locator('[data-metric="cpu-percent"]').first
        await page.wait("() => { const n = document.querySelector('[data-metric=\"cpu-percent\"]'); "
                        "return n && n.textContent !== '–'; }")
        first = await cpu.text_content()
        await page.wait("(first) => document.querySelector('[data-metric=\"cpu-percent\"]').textContent !== first",
                        first)
        await page.wait("() => document.querySelector('#panel-omni_monitor .conn').textContent.startsWith('connected')")
        for panel in ("omni_monitor", "governance", "ai_system", "arena", "chat"):
            assert await page.page.locator(f"#panel-{panel}").is_visible(), panel
        await page.screenshot("page_loads")
        assert page.errors == []
        assert page.foreign == [], "the page must load nothing from outside the server"


async def test_chart_is_full_from_history_on_open(browser):
    async with serve(make_settings(extra=FAST)) as server:
        hub = server.app[HUB]
        async def full():
            return await hub.last_seq("system") >= HISTORY_POINTS + 10
        await wait_until(full)
        # Stop pushing (sampling goes on): whatever the page shows can only come from the
        # history of its subscribe, however long the browser takes to open on a busy machine.
        await server.app[OVERRIDES].set("real_time_updates", False)
        page = await open_page(browser, server)
        await page.wait(HAS_POINTS, HISTORY_POINTS)
        (host,) = (await page.hosts()).values()
        assert host["points"] >= HISTORY_POINTS, "the chart must open full, from history"
        assert consecutive(host["seqs"])
        await page.screenshot("chart_full_from_history")


async def test_short_outage_reconnects_and_leaves_no_gap(browser):
    async with serve(make_settings(extra=FAST)) as server:
        hub = server.app[HUB]
        page = await open_page(browser, server)
        await page.wait(HAS_POINTS, 5)
        dropped_at = await hub.last_seq("system")
        # Cut every WebSocket under the page: the server keeps sampling while it is away.
        for ws in list(server.app[WEBSOCKETS]):
            await ws.close()
        await page.wait("() => window.aura.reconnects() >= 1")
        await page.wait("(seq) => window.aura.lastSeq('omni_monitor', 'system') >= seq + 10", dropped_at)
        (host,) = (await page.hosts()).values()
        assert host["epochs"] == 1
        assert consecutive(host["seqs"]), host["seqs"]
        assert any(s[1] == dropped_at + 3 for s in host["seqs"]), "samples published while away are in the chart"
        assert await page.page.locator("#panel-omni_monitor .notes").text_content() == ""
        await page.screenshot("short_outage_no_gap")


async def test_restarted_server_page_reconnects_and_shows_the_break(browser):
    port = free_port()
    settings = make_settings(extra=FAST)
    async with serve(settings, port) as first:
        page = await open_page(browser, first)
        await page.wait(HAS_POINTS, 10)
    # The first server is gone (its seq and buffer with it); a new one takes the same port.
    async with serve(settings, port) as second:
        await page.wait("() => window.aura.reconnects() >= 1")
        await page.wait("() => Object.values(window.aura.hosts()).some((h) => h.epochs >= 2 && "
                        "h.seqs.filter((s) => s[0] === h.seqs[h.seqs.length - 1][0]).length >= 5)")
        (host,) = (await page.hosts()).values()
        assert consecutive(host["seqs"]), host["seqs"]
        assert await second.app[HUB].last_seq("system") >= host["seqs"][-1][1]
        assert "lost" in await page.page.locator("#panel-omni_monitor .notes").text_content()
        await page.screenshot("restart_reconnects")


async def test_disabled_panel_is_hidden(browser):
    async with serve(make_settings(env={"FEATURE_INTELLIGENCE_ARENA": "false"}, extra=FAST)) as server:
        page = await open_page(browser, server)
        await page.wait(HAS_POINTS, 1)
        assert await page.page.locator("#panel-arena").is_hidden()
        assert await page.page.locator("#panel-omni_monitor").is_visible()
        await page.screenshot("disabled_panel_hidden")
        assert page.errors == []


@asynccontextmanager
async def fake_mcp(reply: str) -> AsyncIterator[str]:
    """A stand-in MCP backend answering POST /api/chat with {"reply": ...}."""

    async def chat(request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response({"id": body.get("id"), "reply": reply})

    app = web.Application()
    app.router.add_post("/api/chat", chat)
    async with serve_app(app) as port:
        yield f"http://127.0.0.1:{port}"


async def chat_has_message_event(server: RunningServer) -> bool:
    """False when /chat answers `unknown_event` to `message` (the chat queue is not built)."""
    client = socketio.AsyncClient()
    await client.connect(server.url, namespaces=["/chat"], socketio_path=server.ws_path,
                         transports=["websocket"], wait_timeout=10)
    try:
        ack = await client.call("message", {}, namespace="/chat", timeout=10)
    finally:
        await client.disconnect()
    return not (isinstance(ack, dict) and (ack.get("error") or {}).get("code") == "unknown_event")


@pytest.mark.needs_chat
async def test_chat_round_trip_shows_done(browser):
    async with fake_mcp("hello from the fake MCP") as mcp_url:
        async with serve(make_settings(env={"MCP_BACKEND_URL": mcp_url}, extra=FAST)) as server:
            if not await chat_has_message_event(server):
                pytest.skip("/chat has no `message` event on this server (the chat queue, issue 5)")
            page = await open_page(browser, server)
            await page.wait("() => document.querySelector('#panel-chat .conn').textContent.startsWith('connected')")
            await page.page.select_option("#chat-mode", "auto")
            await page.page.fill("#chat-text", "ping")
            await page.page.click("#chat-form button")
            done = page.page.locator('.msg[data-state="done"]')
            await done.wait_for(timeout=WAIT_MS)
            assert "hello from the fake MCP" in await done.text_content()
            await page.screenshot("chat_round_trip")


@web.middleware
async def block_websocket_upgrades(request, handler):
    """What a proxy that does not pass WebSocket does: the upgrade is refused, HTTP goes through."""
    if request.headers.get("Upgrade", "").lower() == "websocket":
        return web.Response(status=403, text="WebSocket blocked")
    return await handler(request)


async def test_blocked_websocket_falls_back_to_long_polling(browser):
    port = free_port()
    settings = make_settings({"DASHBOARD_PORT": str(port)}, extra=FAST)
    app = create_app(settings)
    app.middlewares.insert(0, block_websocket_upgrades)
    async with running_server(settings, port, app=app) as server:
        page = await open_page(browser, server)
        await page.wait("() => document.querySelector('#panel-omni_monitor .conn').textContent.includes('polling')")
        await page.wait(HAS_POINTS, 3)
        text = await page.page.locator("#panel-omni_monitor .conn").text_content()
        assert text.startswith("connected") and "polling" in text
        await page.screenshot("blocked_websocket_polling")


async def test_api_key_is_asked_once_and_kept_for_the_tab(browser):
    settings = make_settings(env={"SECURITY_API_KEY_ENABLED": "true", "DASHBOARD_API_KEY": "old-key,page-key"},
                             extra=FAST)
    async with serve(settings) as server:
        tab = await browser.new_page(viewport={"width": 1400, "height": 1200})
        page = Page(tab, server)
        await tab.goto(server.url + "/")
        await tab.locator("#key-dialog").wait_for(state="visible", timeout=WAIT_MS)
        await tab.fill("#key-input", "page-key")
        await tab.locator("#key-form button, #key-form [type=submit]").first.click()
        await page.wait("document.body.dataset.ready === 'true'")
        await page.wait("() => document.querySelector('#panel-omni_monitor .conn').textContent.startsWith('connected')")
        await page.wait(HAS_POINTS, 2)
        assert await tab.evaluate("sessionStorage.getItem('aura.apiKey')") == "page-key"
        # A reload in the same tab does not ask again.
        await tab.reload()
        await page.wait("document.body.dataset.ready === 'true'")
        await page.wait(HAS_POINTS, 1)
        assert await tab.locator("#key-dialog").is_hidden()
        await page.screenshot("api_key_asked_once")
