"""Backend probes against real HTTP servers that answer, answer slowly, fail and go away."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

import aiohttp
import socketio
from aiohttp import web

from tests.conftest import free_port, make_settings, running_server, until_event


class FakeBackend:
    """A small aiohttp app whose health route does what the test says."""

    def __init__(self):
        self.mode = "ok"
        self.delay = 0.0
        self.models = None
        self.port = free_port()
        self.runner = None

    async def health(self, request):
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.mode == "fail":
            return web.json_response({"ok": False}, status=500)
        return web.json_response({"ok": True})

    async def list_models(self, request):
        if self.models is None:
            raise web.HTTPNotFound()
        return web.json_response({"models": self.models})

    async def start(self):
        app = web.Application()
        for path in ("/healthz", "/health"):
            app.router.add_get(path, self.health)
        app.router.add_get("/models", self.list_models)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self):
        await self.runner.cleanup()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"


@asynccontextmanager
async def dashboard_with(backend: FakeBackend):
    env = {"MCP_BACKEND_URL": backend.url, "ML_BACKEND_URL": backend.url, "GOVERNANCE_URL": backend.url}
    extra = {"updates": {"batch_updates": False, "intervals": {"model_status": 300, "governance_data": 300}},
             "backends": {name: {"health_check_interval_ms": 200} for name in ("mcp", "ml", "governance")},
             "health_checks": {"timeout_ms": 300, "retries": 0, "slow_response_ms": 100, "error_rate_window": 4}}
    async with running_server(make_settings(env, extra)) as srv:
        yield srv


async def test_statuses_error_rates_and_alerts_follow_the_backend():
    backend = FakeBackend()
    await backend.start()
    async with dashboard_with(backend) as srv:
        client = socketio.AsyncClient(reconnection=False)
        seen = {"backends": [], "alerts": [], "models": []}
        changed = asyncio.Event()
        for stream in seen:
            client.on(stream, (lambda s: lambda e: (seen[s].append(e["data"]), changed.set()))(stream),
                      namespace="/omni_monitor" if stream != "models" else "/ai_system")
        await client.connect(srv.url, socketio_path="/ws", namespaces=["/omni_monitor", "/ai_system"],
                             transports=["websocket"])

        def until(predicate):
            return until_event(changed, predicate)

        def status(name="ml"):
            return seen["backends"][-1][name]["status"] if seen["backends"] else None

        def alert(kind, state):
            return any(a["kind"] == kind and a["state"] == state for a in seen["alerts"])

        try:
            await client.call("subscribe", {"streams": ["backends", "alerts"]}, namespace="/omni_monitor")
            await client.call("subscribe", {"streams": ["models"]}, namespace="/ai_system")
            await until(lambda: status() == "up")
            state = seen["backends"][-1]["ml"]
            assert state["http_status"] == 200 and state["latency_ms"] >= 0 and state["last_ok"]
            await until(lambda: seen["models"] and seen["models"][-1]["backend"]["status"] == "up")
            assert seen["models"][-1]["models"] is None  # no /models route: fine
            backend.models = [{"name": "llama", "status": "ready"}]
            await until(lambda: seen["models"][-1]["models"] == [{"name": "llama", "status": "ready"}])

            backend.delay = 0.15  # over slow_response_ms, under the timeout
            await until(lambda: status() == "slow")
            await until(lambda: alert("slow_response", "firing"))
            backend.delay = 0
            await until(lambda: status() == "up")
            await until(lambda: alert("slow_response", "resolved"))

            backend.mode = "fail"
            await until(lambda: status() == "down" and seen["backends"][-1]["ml"]["http_status"] == 500)
            await until(lambda: alert("backend_down", "firing"))
            await until(lambda: seen["backends"][-1]["ml"]["error_rate"] == 1.0)
            await until(lambda: alert("high_error_rate", "firing"))
            async with aiohttp.ClientSession() as http:
                async with http.get(srv.url + "/api/backends") as response:
                    assert (await response.json())["mcp"]["status"] == "down"
                async with http.get(srv.url + "/healthz") as response:
                    assert response.status == 200  # every backend down, the server still serves

            await backend.stop()  # it goes away entirely
            await until(lambda: seen["backends"][-1]["ml"]["http_status"] is None
                        and "Error" in (seen["backends"][-1]["ml"]["error"] or ""))
            backend.mode = "ok"
            await backend.start()  # and comes back on the same port
            await until(lambda: status() == "up")
            await until(lambda: alert("backend_down", "resolved"))
        finally:
            await client.disconnect()
    await backend.stop()
