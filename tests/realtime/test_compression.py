"""Engine.IO's HTTP compression follows updates.compression_enabled and its threshold."""

import aiohttp
import pytest

from tests.conftest import make_settings, running_server


@pytest.mark.parametrize("enabled,threshold,compressed", [(True, 0, True), (False, 0, False), (True, 100000, False)])
async def test_polling_handshake_compression(enabled, threshold, compressed):
    extra = {"updates": {"compression_enabled": enabled, "compression_threshold_bytes": threshold}}
    async with running_server(make_settings({}, extra)) as srv:
        async with aiohttp.ClientSession(auto_decompress=False) as http:
            async with http.get(srv.url + "/ws/?EIO=4&transport=polling",
                                headers={"Accept-Encoding": "gzip"}) as response:
                assert response.status == 200
                assert (response.headers.get("Content-Encoding") == "gzip") is compressed
