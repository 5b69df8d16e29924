"""The `features` event: every namespace hears a flag change, with GET /api/features' body."""

from __future__ import annotations

import asyncio

import aiohttp
import socketio

from tests.conftest import make_settings, running_server

NAMESPACES = ["/omni_monitor", "/governance", "/chat"]


async def test_flag_change_is_announced_on_every_namespace_with_the_features_body():
    async with running_server(make_settings()) as srv, aiohttp.ClientSession() as http:
        heard: dict[str, list[dict]] = {ns: [] for ns in NAMESPACES}
        arrived = asyncio.Event()
        client = socketio.AsyncClient(reconnection=False)
        for ns in NAMESPACES:
            def on_features(body, ns=ns):
                heard[ns].append(body)
                arrived.set()
            client.on("features", on_features, namespace=ns)
        await client.connect(srv.url, socketio_path=srv.ws_path, namespaces=NAMESPACES,
                             transports=["websocket"], wait_timeout=10)
        try:
            async def until(predicate):
                async with asyncio.timeout(15):
                    while not predicate():
                        arrived.clear()
                        await arrived.wait()

            async with http.patch(srv.url + "/api/features", json={"governance_panel": False}) as r:
                assert r.status == 200
            async with http.get(srv.url + "/api/features") as r:
                off = await r.json()
            # Even the namespace being switched off hears it before its clients are dropped.
            await until(lambda: all(heard[ns] for ns in NAMESPACES))
            for ns in NAMESPACES:
                assert heard[ns] == [off], ns
            assert off["effective"]["governance_panel"] is False

            async with http.patch(srv.url + "/api/features", json={"governance_panel": None}) as r:
                assert r.status == 200
            async with http.get(srv.url + "/api/features") as r:
                on = await r.json()
            await until(lambda: len(heard["/omni_monitor"]) == 2 and len(heard["/chat"]) == 2)
            assert heard["/omni_monitor"][1] == on and on["effective"]["governance_panel"] is True
        finally:
            await client.disconnect()
