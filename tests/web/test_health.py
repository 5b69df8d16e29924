"""/healthz and /health with the shipped configuration and nothing else running."""

import aiohttp

from tests.conftest import running_server, make_settings, SHIPPED_CONFIG


async def test_healthz_with_shipped_configuration_and_no_dependencies():
    # The shipped file as a newcomer gets it (database host localhost, backends absent).
    settings = make_settings({"DATABASE_HOST": "localhost"})
    async with running_server(settings) as srv, aiohttp.ClientSession() as http:
        for path in ("/healthz", "/health"):
            async with http.get(srv.url + path) as response:
                assert response.status == 200
                body = await response.json()
                assert body["status"] == "ok" and body["version"]
                assert isinstance(body["dependencies"], dict)


async def test_unknown_route_is_a_json_error(server):
    async with aiohttp.ClientSession() as http:
        async with http.get(server.url + "/nope") as response:
            assert response.status == 404
            body = await response.json()
            assert body["error"]["code"] == "not_found"
