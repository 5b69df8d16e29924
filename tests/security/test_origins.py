"""Allowed origins follow where the dashboard is published (`dashboard.public_urls`), against
the real server: the Socket.IO handshake and REST's CORS agree, localhost and 127.0.0.1 stand
for each other, and an Origin equal to a foreign Host (DNS rebinding) is refused."""

from __future__ import annotations

import logging

import aiohttp
import pytest

from aura_dashboard.security.origins import AllowedOrigins, origin_of
from tests.conftest import free_port, make_settings, running_server


async def handshake(srv, origin: str, host: str | None = None) -> tuple[int, str | None]:
    headers = {"Origin": origin, **({"Host": host} if host else {})}
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{srv.url}{srv.ws_path}/?EIO=4&transport=polling", headers=headers) as resp:
            return resp.status, resp.headers.get("Access-Control-Allow-Origin")


async def rest(srv, origin: str) -> str | None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{srv.url}/api/features", headers={"Origin": origin}) as resp:
            assert resp.status == 200
            return resp.headers.get("Access-Control-Allow-Origin")


def serve(env: dict | None = None, extra: dict | None = None, port: int | None = None):
    port = port or free_port()
    return running_server(make_settings({"DASHBOARD_PORT": str(port), **(env or {})}, extra), port)


async def test_page_origin_follows_the_port_under_every_loopback_name():
    # The default public URL is http://localhost:DASHBOARD_PORT (here not 8080).
    async with serve() as srv:
        for host in ("localhost", "127.0.0.1", "[::1]"):
            origin = f"http://{host}:{srv.port}"
            assert await handshake(srv, origin) == (200, origin), origin
            assert await rest(srv, origin) == origin
        assert (await handshake(srv, f"http://localhost:{srv.port + 1}"))[0] == 400, "another port, another site"


async def test_origin_equal_to_a_foreign_host_is_refused():
    async with serve() as srv:
        rebound = f"rebound.example:{srv.port}"
        status, allowed = await handshake(srv, f"http://{rebound}", host=rebound)
        assert (status, allowed) == (400, None)
        assert await rest(srv, f"http://{rebound}") is None
        # The dashboard's own name passes, with or without a Host that matches.
        own = f"http://127.0.0.1:{srv.port}"
        assert (await handshake(srv, own, host=rebound))[0] == 200


async def test_configured_public_urls_replace_the_default_and_cover_their_loopback_twins():
    env = {"DASHBOARD_PUBLIC_URLS": "https://ops.example.com/dash/, http://127.0.0.1:9000"}
    async with serve(env) as srv:
        for origin in ("https://ops.example.com", "http://127.0.0.1:9000", "http://localhost:9000"):
            assert await handshake(srv, origin) == (200, origin), origin
            assert await rest(srv, origin) == origin
        for origin in (f"http://localhost:{srv.port}", "http://ops.example.com", "https://ops.example.com:8443"):
            assert (await handshake(srv, origin))[0] == 400, origin
            assert await rest(srv, origin) is None


async def test_cors_disabled_still_lets_the_page_in_and_nobody_else():
    extra = {"security": {"cors": {"enabled": False}}}
    async with serve(extra=extra) as srv:
        assert (await handshake(srv, f"http://localhost:{srv.port}"))[0] == 200
        assert (await handshake(srv, "http://localhost:3000"))[0] == 400, "a configured CORS origin, CORS off"


async def test_star_allows_any_origin():
    extra = {"security": {"cors": {"allowed_origins": ["*"]}}}
    async with serve(extra=extra) as srv:
        assert (await handshake(srv, "http://anywhere.example"))[0] == 200


async def test_a_refused_origin_is_logged_once_naming_the_key(caplog):
    async with serve() as srv:
        with caplog.at_level(logging.WARNING, logger="aura_dashboard.security.origins"):
            for _ in range(3):
                assert (await handshake(srv, "http://192.168.1.5:8080"))[0] == 400
        records = [r for r in caplog.records if r.name == "aura_dashboard.security.origins"]
        assert len(records) == 1 and "dashboard.public_urls" in records[0].getMessage()
        async with aiohttp.ClientSession() as http:  # the server is still up
            async with http.get(srv.url + "/healthz") as resp:
                assert resp.status == 200


@pytest.mark.parametrize("url,origin", [
    ("http://Example.COM:80/x", "http://example.com"),
    ("https://example.com:443", "https://example.com"),
    ("https://example.com:8443/", "https://example.com:8443"),
    ("http://[::1]:9000", "http://[::1]:9000"),
    ("null", None),
    ("http://", None),
])
def test_origin_of_writes_origins_as_browsers_do(url, origin):
    assert origin_of(url) == origin


def test_wildcard_listen_address_means_localhost_a_named_one_itself():
    settings = make_settings({"DASHBOARD_HOST": "10.1.2.3", "DASHBOARD_PORT": "8181"})
    origins = AllowedOrigins(settings.dashboard, settings.security.cors)
    assert "http://10.1.2.3:8181" in origins.public and "http://localhost:8181" not in origins.public


async def test_another_allowed_origin_may_flip_a_flag_by_patch():
    """The default `security.cors.allowed_methods` lets a browser's PATCH /api/features pass."""
    async with serve() as srv:
        headers = {"Origin": "http://localhost:3000", "Access-Control-Request-Method": "PATCH",
                   "Access-Control-Request-Headers": "Content-Type"}
        async with aiohttp.ClientSession() as http:
            async with http.options(f"{srv.url}/api/features", headers=headers) as resp:
                assert resp.status == 200, await resp.text()
                assert "PATCH" in resp.headers.get("Access-Control-Allow-Methods", "")


async def test_dashboard_cors_origins_are_merged_into_the_allowed_origins():
    extra = {"dashboard": {"cors_origins": ["https://ops.example.com:8443"]}}
    async with serve(extra=extra) as srv:
        origin = "https://ops.example.com:8443"
        assert await handshake(srv, origin) == (200, origin)
        assert await rest(srv, origin) == origin
        assert (await handshake(srv, "https://evil.example"))[0] == 400


async def test_the_shipped_dashboard_cors_origins_open_no_origin():
    async with serve() as srv:
        assert srv.settings.dashboard.cors_origins == []
        assert (await handshake(srv, "https://evil.example"))[0] == 400
        assert await rest(srv, "https://evil.example") is None


def test_star_in_dashboard_cors_origins_is_treated_as_in_security_cors():
    settings = make_settings(extra={"dashboard": {"cors_origins": ["*"]}})
    assert AllowedOrigins(settings.dashboard, settings.security.cors).allows("https://any.example")
    off = make_settings(extra={"dashboard": {"cors_origins": ["*"]}, "security": {"cors": {"enabled": False}}})
    assert not AllowedOrigins(off.dashboard, off.security.cors).allows("https://any.example")
    from aura_dashboard.config import ConfigError
    with pytest.raises(ConfigError) as caught:
        make_settings({"DASHBOARD_ENV": "production"}, {"dashboard": {"cors_origins": ["*"]}})
    assert any(p.startswith("dashboard.cors_origins:") for p in caught.value.problems)
