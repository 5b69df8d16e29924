"""REST against a real server: the API key, the rate limit and CORS."""

import asyncio
import os

import aiohttp
import pytest

from aura_dashboard.web.keys import SECURITY_EVENTS
from aura_dashboard.cli import main
from aura_dashboard.security import key_id

KEYS = {"SECURITY_API_KEY_ENABLED": "true", "DASHBOARD_API_KEY": "old-secret-1,new-secret-2"}
NO_LIMIT = {"security": {"rate_limiting": {"enabled": False}}}


async def test_every_api_route_needs_the_key_and_both_rotated_keys_work(start_server):
    async with start_server(env=KEYS, extra=NO_LIMIT) as srv:
        failures = []
        srv.app[SECURITY_EVENTS].raised.connect(failures.append)
        async with aiohttp.ClientSession() as http:
            for path in ["/api/features", "/api/config", "/api/alerts", "/api/history/system", "/metrics"]:
                for headers in [{}, {"X-API-Key": "wrong"}, {"X-API-Key": "old-secret"}]:
                    async with http.get(srv.url + path, headers=headers) as resp:
                        assert resp.status == 401, (path, headers)
                        body = await resp.json()
                        assert body["error"]["code"] == "unauthorized"
                        assert "secret" not in (await resp.text())
                for key in ["old-secret-1", "new-secret-2"]:
                    async with http.get(srv.url + path, headers={"X-API-Key": key}) as resp:
                        assert resp.status != 401, (path, key)
            async with http.get(srv.url + "/api/features",
                                headers={"Authorization": "Bearer new-secret-2"}) as resp:
                assert resp.status == 200
            for public in ["/healthz", "/health", "/", "/static/app.css"]:
                async with http.get(srv.url + public) as resp:
                    assert resp.status == 200, public
            async with http.patch(srv.url + "/api/features", json={"debug_mode": True},
                                  headers={"X-API-Key": "new-secret-2"}) as resp:
                assert resp.status == 200
    assert failures and failures[0]["action"] == "auth_failed"
    assert failures[0]["actor"] == "127.0.0.1" and failures[0]["target"] == "/api/features"
    assert all("secret" not in str(f) for f in failures)


async def test_patch_features_records_the_key_id_as_actor(start_server):
    from aura_dashboard.web.keys import OVERRIDES
    async with start_server(env=KEYS, extra=NO_LIMIT) as srv:
        changes = []
        srv.app[OVERRIDES].changed.connect(changes.append)
        async with aiohttp.ClientSession() as http:
            async with http.patch(srv.url + "/api/features", json={"debug_mode": True},
                                  headers={"X-API-Key": "old-secret-1"}) as resp:
                assert resp.status == 200
    assert changes and changes[-1].actor == key_id("old-secret-1")


def test_server_refuses_to_start_without_a_key(capsys, monkeypatch):
    monkeypatch.setenv("SECURITY_API_KEY_ENABLED", "true")
    monkeypatch.setenv("DASHBOARD_API_KEY", "")
    monkeypatch.setenv("LOG_FILE", "")
    assert main(["--env-file", os.devnull]) == 2  # before any port is opened
    assert "security.api_key" in capsys.readouterr().err


async def test_rate_limit_answers_429_with_retry_after_after_the_burst(start_server):
    extra = {"security": {"rate_limiting": {"requests_per_minute": 6, "burst_size": 5}}}
    async with start_server(extra=extra) as srv:
        async with aiohttp.ClientSession() as http:
            statuses = []
            for _ in range(8):
                async with http.get(srv.url + "/api/features") as resp:
                    statuses.append(resp.status)
                    if resp.status == 429:
                        retry = int(resp.headers["Retry-After"])
                        assert 1 <= retry <= 10
                        assert (await resp.json())["error"]["code"] == "rate_limited"
            assert statuses[:5] == [200] * 5 and statuses[5:] == [429] * 3
            async with http.get(srv.url + "/healthz") as resp:  # liveness is never throttled
                assert resp.status == 200


async def test_forwarded_for_only_counts_behind_a_trusted_proxy(start_server):
    extra = {"security": {"trusted_proxies": ["127.0.0.1"],
                          "rate_limiting": {"requests_per_minute": 1, "burst_size": 2}}}
    async with start_server(extra=extra) as srv:
        async with aiohttp.ClientSession() as http:
            for client in ["1.1.1.1", "2.2.2.2", "3.3.3.3"]:  # each address its own bucket
                for expected in [200, 200, 429]:
                    async with http.get(srv.url + "/api/features",
                                        headers={"X-Forwarded-For": client}) as resp:
                        assert resp.status == expected, client
    async with start_server(extra={"security": {"rate_limiting": extra["security"]["rate_limiting"]}}) as srv:
        async with aiohttp.ClientSession() as http:
            seen = []
            for client in ["1.1.1.1", "2.2.2.2", "3.3.3.3"]:  # not trusted: one bucket, the peer's
                async with http.get(srv.url + "/api/features", headers={"X-Forwarded-For": client}) as resp:
                    seen.append(resp.status)
            assert seen == [200, 200, 429]


async def test_cors_echoes_allowed_origin_only(start_server):
    async with start_server(extra=NO_LIMIT) as srv:
        async with aiohttp.ClientSession() as http:
            good, bad = "http://localhost:3000", "http://evil.example"
            async with http.get(srv.url + "/api/features", headers={"Origin": good}) as resp:
                assert resp.headers["Access-Control-Allow-Origin"] == good
                assert resp.headers.get("Access-Control-Allow-Credentials") == "true"
            async with http.get(srv.url + "/api/features", headers={"Origin": bad}) as resp:
                assert not any(h.lower().startswith("access-control") for h in resp.headers)
            preflight = {"Origin": good, "Access-Control-Request-Method": "PUT",
                         "Access-Control-Request-Headers": "X-API-Key"}
            async with http.options(srv.url + "/api/features", headers=preflight) as resp:
                assert resp.status == 200
                assert resp.headers["Access-Control-Allow-Origin"] == good
            async with http.options(srv.url + "/api/features", headers={**preflight, "Origin": bad}) as resp:
                assert resp.status >= 400
                assert "Access-Control-Allow-Origin" not in resp.headers
            # The Socket.IO handshake follows the same origins.
            eio = f"{srv.url}{srv.ws_path}/?EIO=4&transport=polling"
            async with http.get(eio, headers={"Origin": good}) as resp:
                assert resp.status == 200 and resp.headers["Access-Control-Allow-Origin"] == good
            async with http.get(eio, headers={"Origin": bad}) as resp:
                assert resp.status == 400 and "Access-Control-Allow-Origin" not in resp.headers


async def test_refused_polling_post_is_answered_even_when_the_client_never_polls(start_server):
    async with start_server(extra=NO_LIMIT) as srv:
        url = f"{srv.url}{srv.ws_path}/?EIO=4&transport=polling"
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as resp:
                sid = (await resp.text())[1:]
                sid = __import__("json").loads(sid)["sid"]
            # An OPEN packet from a client: Engine.IO closes the session and waits for a poll.
            async with http.post(f"{url}&sid={sid}", data="0",
                                 timeout=aiohttp.ClientTimeout(total=60)) as resp:
                assert resp.status == 400


async def test_flag_change_without_a_key_is_audited_as_the_forwarded_client(start_server):
    from aura_dashboard.web.keys import OVERRIDES
    extra = {"security": {"trusted_proxies": ["127.0.0.1"]}}
    async with start_server(extra=extra) as srv:
        changes = []
        srv.app[OVERRIDES].changed.connect(changes.append)
        async with aiohttp.ClientSession() as http:
            async with http.patch(srv.url + "/api/features", json={"debug_mode": True},
                                  headers={"X-Forwarded-For": "203.0.113.7"}) as resp:
                assert resp.status == 200
            toggles = []
            for _ in range(100):  # the audit log is written by its own mailbox, after the answer
                async with http.get(srv.url + "/api/audit") as resp:
                    toggles = [e for e in (await resp.json())["entries"] if e["action"] == "feature_toggled"]
                if toggles:
                    break
                await asyncio.sleep(0.1)
    assert changes and changes[-1].actor == "api:203.0.113.7", "the client, not the proxy in front"
    assert toggles and toggles[0]["actor"] == "api:203.0.113.7"
