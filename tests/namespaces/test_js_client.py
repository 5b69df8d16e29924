"""The official JavaScript socket.io-client, under Node, against the real server."""

import json

import aiohttp

from tests.conftest import run_node

NAMESPACES = ["/omni_monitor", "/governance", "/ai_system", "/arena", "/chat"]


async def probe(node, srv, checks):
    spec = {"url": srv.url, "path": srv.ws_path, "checks": checks}
    return json.loads(await run_node(node, "probe.mjs", json.dumps(spec)))


async def test_every_namespace_over_websocket_and_polling(node, server):
    checks = [{"namespace": ns, "transports": [t]} for ns in NAMESPACES for t in ("websocket", "polling")]
    results = await probe(node, server, checks)
    assert len(results) == len(checks)
    for result in results:
        assert result["connected"], result
        assert result["transport"] == result["transports"][0], result


async def test_disabled_panel_refused_others_still_connect(node, start_server):
    async with start_server(env={"FEATURE_OMNI_MONITOR": "false"}) as srv:
        checks = [{"namespace": ns, "transports": ["websocket"]} for ns in NAMESPACES]
        checks.append({"namespace": "/omni_monitor", "transports": ["polling"]})
        results = await probe(node, srv, checks)
    by_ns = {(r["namespace"], r["transports"][0]): r for r in results}
    for transport in ("websocket", "polling"):
        refused = by_ns[("/omni_monitor", transport)]
        assert not refused["connected"]
        assert refused["error"]["data"]["code"] == "panel_disabled"
        assert "omni_monitor" in refused["error"]["data"]["message"]
    for ns in NAMESPACES[1:]:
        assert by_ns[(ns, "websocket")]["connected"], by_ns[(ns, "websocket")]


async def test_polling_refused_without_fallback(node, start_server):
    async with start_server(env={"FEATURE_WEBSOCKET_FALLBACK": "false"}) as srv:
        results = await probe(node, srv, [
            {"namespace": "/chat", "transports": ["polling"]},
            {"namespace": "/chat", "transports": ["websocket"]},
        ])
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{srv.url}{srv.ws_path}/?EIO=4&transport=polling") as resp:
                status = resp.status
    assert not results[0]["connected"]
    assert results[1]["connected"] and results[1]["transport"] == "websocket"
    assert status == 400


async def test_api_key_on_every_namespace_and_both_transports(node, start_server):
    env = {"SECURITY_API_KEY_ENABLED": "true", "DASHBOARD_API_KEY": "key-one,key-two"}
    # 20 failed authentications from one address in a few seconds: each also takes a token of
    # the address's bucket (issue 15), so the burst must hold them and the 40 handshakes.
    async with start_server(env=env, extra={"security": {"rate_limiting": {"burst_size": 200}}}) as srv:
        checks = []
        for ns in NAMESPACES:
            for t in ("websocket", "polling"):
                checks += [
                    {"namespace": ns, "transports": [t]},
                    {"namespace": ns, "transports": [t], "auth": {"api_key": "key-on"}},
                    {"namespace": ns, "transports": [t], "auth": {"api_key": "key-one"}},
                    {"namespace": ns, "transports": [t], "extraHeaders": {"X-API-Key": "key-two"}},
                ]
        results = await probe(node, srv, checks)
    assert len(results) == len(checks)
    for check, result in zip(checks, results):
        good = (check.get("auth") or {}).get("api_key") == "key-one" or "extraHeaders" in check
        if good:
            assert result["connected"], result
        else:
            assert not result["connected"], result
            assert result["error"]["data"]["code"] == "unauthorized"
            assert "key-" not in json.dumps(result["error"])
