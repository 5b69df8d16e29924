"""Engine.IO's ping settings are honoured as configured, or rounded up with a warning naming
the key: python-engineio advertises the ping interval in whole seconds, so a value between
seconds used to be advertised shorter than the server pings (and the official client dropped
the connection with "ping timeout")."""

from __future__ import annotations

import json
import os

import aiohttp

from aura_dashboard.config import load_config
from aura_dashboard.web import keys
from tests.conftest import SHIPPED_CONFIG, TEST_ENV, make_settings, running_server


def loaded(ws: dict):
    return load_config(SHIPPED_CONFIG, env_file=os.devnull, environ=TEST_ENV,
                       extra_yaml={"websocket": ws})


async def open_packet(srv) -> dict:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{srv.url}{srv.ws_path}/?EIO=4&transport=polling") as resp:
            text = await resp.text()
    assert text.startswith("0"), text
    return json.loads(text[1:])


def test_ping_interval_between_seconds_is_rounded_up_naming_the_key():
    config = loaded({"ping_interval_ms": 1500})
    assert config.settings.websocket.ping_interval_ms == 2000
    assert any(w.startswith("websocket.ping_interval_ms: 1500") and "2000" in w for w in config.warnings)
    assert not [w for w in loaded({"ping_interval_ms": 3000}).warnings if "ping_interval" in w]


async def test_the_handshake_advertises_what_the_server_does():
    settings = make_settings(extra={"websocket": {"ping_interval_ms": 1500, "pong_timeout_ms": 1250}})
    async with running_server(settings) as srv:
        packet = await open_packet(srv)
        assert packet["pingInterval"] == 2000
        assert packet["pingTimeout"] == 1250
        assert srv.app[keys.SIO].eio.ping_interval * 1000 == packet["pingInterval"]
