"""The chat queue against a fake MCP backend (a real aiohttp app on a free port)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from aura_dashboard.web.keys import CHAT
from tests.conftest import free_port, make_settings, running_server, serve_app
from tests.panels.live import LiveClient, fast


class FakeMcp:
    """POST /api/chat: fails `fail_first` times with `fail_status`, then answers (or hangs)."""

    def __init__(self, *, fail_first: int = 0, fail_status: int = 503, hang: bool = False,
                 gate: asyncio.Event | None = None):
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.hang = hang
        self.gate = gate
        self.calls: list[dict] = []

    async def chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.calls.append(body)
        if self.gate is not None:
            await self.gate.wait()
        if self.hang:
            await asyncio.sleep(3600)
        if len(self.calls) <= self.fail_first:
            return web.json_response({"error": "nope"}, status=self.fail_status)
        return web.json_response({"id": body["id"], "reply": f"echo: {body['text']}"})

    @asynccontextmanager
    async def serve(self) -> AsyncIterator[str]:
        app = web.Application()
        app.router.add_post("/api/chat", self.chat)
        async with serve_app(app, shutdown_timeout=0.5) as port:
            yield f"http://127.0.0.1:{port}"


@asynccontextmanager
async def chat_server(mcp: FakeMcp, extra: dict | None = None, env: dict | None = None):
    async with mcp.serve() as url:
        settings = make_settings(env={"MCP_BACKEND_URL": url, **(env or {})}, extra=fast(extra))
        async with running_server(settings) as server:
            yield server


def states(client: LiveClient, message_id: str) -> list[str]:
    return [u["state"] for u in client.of("chat_update") if u["id"] == message_id]


def final(client: LiveClient, message_id: str):
    return lambda: any(s in ("done", "failed") for s in states(client, message_id))


async def test_retries_two_503s_then_done():
    mcp = FakeMcp(fail_first=2)
    async with chat_server(mcp) as server:
        client = await LiveClient("/chat").connect(server)
        ack = await client.call("message", {"text": "hi", "mode": "auto"})
        assert ack["ok"] is True and ack["position"] >= 1
        await client.wait_for(final(client, ack["id"]))
        updates = [u for u in client.of("chat_update") if u["id"] == ack["id"]]
        assert [u["state"] for u in updates] == ["queued", "sending", "retrying", "retrying", "done"]
        assert [u["attempt"] for u in updates if u["state"] == "retrying"] == [2, 3]
        assert "503" in updates[2]["reason"]
        assert updates[-1]["reply"] == "echo: hi" and updates[-1]["attempt"] == 3
        assert len(mcp.calls) == 3
        assert mcp.calls[0] == {"id": ack["id"], "text": "hi", "mode": "auto", "session": mcp.calls[0]["session"]}
        await client.close()


async def test_4xx_is_not_retried():
    mcp = FakeMcp(fail_first=5, fail_status=422)
    async with chat_server(mcp) as server:
        client = await LiveClient("/chat").connect(server)
        ack = await client.call("message", {"text": "bad", "mode": "general"})
        await client.wait_for(final(client, ack["id"]))
        assert states(client, ack["id"]) == ["queued", "sending", "failed"]
        failed = client.of("chat_update")[-1]
        assert "422" in failed["reason"]
        assert len(mcp.calls) == 1
        await client.close()


async def test_slow_backend_times_out_and_fails_with_the_reason():
    mcp = FakeMcp(hang=True)
    extra = {"panels": {"chat": {"timeout_seconds": 0.3, "retry_attempts": 1}}}
    async with chat_server(mcp, extra) as server:
        client = await LiveClient("/chat").connect(server)
        ack = await client.call("message", {"text": "slow", "mode": "auto"})
        await client.wait_for(final(client, ack["id"]))
        assert states(client, ack["id"]) == ["queued", "sending", "retrying", "failed"]
        failed = client.of("chat_update")[-1]
        assert "did not answer within 0.3s" in failed["reason"] and "2 attempts" in failed["reason"]
        assert server.app[CHAT].status()["failed"] == 1
        await client.close()


async def test_unreachable_backend_is_retried_then_fails():
    port = free_port()  # nothing listens there
    settings = make_settings(env={"MCP_BACKEND_URL": f"http://127.0.0.1:{port}"},
                             extra=fast({"panels": {"chat": {"retry_attempts": 2}}}))
    async with running_server(settings) as server:
        client = await LiveClient("/chat").connect(server)
        ack = await client.call("message", {"text": "x"})
        await client.wait_for(final(client, ack["id"]))
        assert states(client, ack["id"]) == ["queued", "sending", "retrying", "retrying", "failed"]
        assert "cannot reach" in client.of("chat_update")[-1]["reason"]
        await client.close()


async def test_queue_bound_holds_under_a_burst_from_many_clients():
    gate = asyncio.Event()  # the backend holds every request until the burst is over
    mcp = FakeMcp(gate=gate)
    extra = {"panels": {"chat": {"max_queue_size": 5, "workers": 2}}}
    async with chat_server(mcp, extra) as server:
        clients = [await LiveClient("/chat").connect(server) for _ in range(6)]
        acks = await asyncio.gather(*(c.call("message", {"text": f"m{i}-{j}"})
                                      for i, c in enumerate(clients) for j in range(3)))
        accepted = [a for a in acks if a["ok"]]
        refused = [a for a in acks if not a["ok"]]
        # At most 2 in flight (one per worker) plus 5 waiting; the rest refused at once.
        assert len(accepted) <= 2 + 5 and len(accepted) >= 5
        assert len(refused) == 18 - len(accepted)
        assert {a["error"]["code"] for a in refused} == {"queue_full"}
        assert server.app[CHAT].status()["queue_depth"] <= 5
        assert all(a["position"] <= 5 for a in accepted)
        gate.set()
        ids = {a["id"] for a in accepted}
        owners = {}
        for c in clients:
            for u in c.of("chat_update"):
                owners.setdefault(u["id"], c)
        for message_id in ids:
            await owners[message_id].wait_for(final(owners[message_id], message_id))
            assert states(owners[message_id], message_id)[-1] == "done"
        # Each client saw only its own messages' updates.
        for c in clients:
            seen = {u["id"] for u in c.of("chat_update")}
            assert all(owners[i] is c for i in seen)
        for c in clients:
            await c.close()


async def test_a_gone_client_leaves_nothing_queued():
    gate = asyncio.Event()
    mcp = FakeMcp(gate=gate)
    extra = {"panels": {"chat": {"workers": 1}}}
    async with chat_server(mcp, extra) as server:
        leaving = await LiveClient("/chat").connect(server)
        for i in range(4):
            assert (await leaving.call("message", {"text": f"t{i}"}))["ok"]
        queue = server.app[CHAT]
        await leaving.close()
        async with asyncio.timeout(10):
            while queue.status()["queue_depth"]:
                await asyncio.sleep(0.02)
        gate.set()  # the message in flight finishes, unheard
        async with asyncio.timeout(10):
            while queue.status()["in_flight"]:
                await asyncio.sleep(0.02)
        status = queue.status()
        assert status["dropped"] == 3 and status["completed"] == 1
        # The queue serves the next client at once.
        staying = await LiveClient("/chat").connect(server)
        ack = await staying.call("message", {"text": "after"})
        await staying.wait_for(final(staying, ack["id"]))
        assert states(staying, ack["id"])[-1] == "done"
        await staying.close()


async def test_bad_payloads_are_bad_request_and_the_connection_stays():
    async with chat_server(FakeMcp()) as server:
        client = await LiveClient("/chat").connect(server)
        for payload in ({}, {"text": ""}, {"text": 5}, "hi", {"text": "a", "extra": 1},
                        {"text": "x" * 9000}):
            ack = await client.call("message", payload)
            assert ack["ok"] is False and ack["error"]["code"] == "bad_request", payload
        ack = await client.call("message", {"text": "a", "mode": "poetry"})
        assert ack["error"]["code"] == "bad_mode"
        assert client.sio.connected
        ack = await client.call("message", {"text": "still here"})
        assert ack["ok"] is True
        await client.close()


async def test_debug_mode_only_while_debug_is_on():
    mcp = FakeMcp()
    async with chat_server(mcp) as server:
        client = await LiveClient("/chat").connect(server)
        ack = await client.call("message", {"text": "diag", "mode": "debug"})
        assert ack["ok"] is False and ack["error"]["code"] == "debug_disabled"
        await client.close()
    async with chat_server(mcp, env={"FEATURE_DEBUG_MODE": "true"}) as server:
        client = await LiveClient("/chat").connect(server)
        ack = await client.call("message", {"text": "diag", "mode": "debug"})
        assert ack["ok"] is True
        await client.wait_for(final(client, ack["id"]))
        done = client.of("chat_update")[-1]
        assert done["state"] == "done" and "pid" in done["reply"]["diagnostics"]
        assert "queue_depth" in done["reply"]["queue"]
        assert mcp.calls == []  # answered by the server itself
        await client.close()


async def test_status_stream_counts_the_queue():
    async with chat_server(FakeMcp()) as server:
        client = await LiveClient("/chat").connect(server)
        sub = await client.call("subscribe", {"streams": ["status"]})
        assert sub["ok"] is True
        ack = await client.call("message", {"text": "count me"})
        await client.wait_for(final(client, ack["id"]))

        def completed():
            return [e["data"] for e in client.of("status") if e["data"]["completed"] >= 1]
        await client.wait_for(lambda: bool(completed()))
        data = completed()[-1]
        assert {"queue_depth", "in_flight", "completed", "failed", "latency_p50_ms",
                "latency_p95_ms"} <= data.keys()
        assert data["latency_p50_ms"] > 0 and data["failed"] == 0
        await client.close()
