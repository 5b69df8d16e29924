"""The page's weight: static files gzipped, uPlot minified, ETag and `no-cache` so a reload
asks and gets 304; nothing outside the static folder is served."""

from __future__ import annotations

import gzip

import aiohttp

from aura_dashboard.web.page import STATIC_DIR
from tests.conftest import make_settings, running_server

GZIP = {"Accept-Encoding": "gzip"}


async def test_static_files_are_gzipped_validated_and_light():
    async with running_server(make_settings()) as srv, aiohttp.ClientSession(auto_decompress=False) as http:
        async with http.get(srv.url + "/", headers=GZIP) as r:
            assert r.status == 200 and r.headers["Cache-Control"] == "no-cache"
            assert r.headers["Content-Encoding"] == "gzip" and r.content_type == "text/html"
            etag = r.headers["ETag"]
            assert b"<title>" in gzip.decompress(await r.read())
        async with http.get(srv.url + "/", headers={**GZIP, "If-None-Match": etag}) as r:
            assert r.status == 304 and await r.read() == b""

        total_raw = total_sent = 0
        names = ["index.html", "app.css", *(f"js/{p.name}" for p in (STATIC_DIR / "js").glob("*.js")),
                 "vendor/socket.io.esm.min.js", "vendor/uPlot.esm.min.js", "vendor/uPlot.min.css"]
        for name in names:
            async with http.get(f"{srv.url}/static/{name}", headers=GZIP) as r:
                assert r.status == 200, name
                body = await r.read()
                raw = gzip.decompress(body) if r.headers.get("Content-Encoding") == "gzip" else body
                assert raw == (STATIC_DIR / name).read_bytes(), name
                assert r.headers["Cache-Control"] == "no-cache" and r.headers["ETag"], name
                total_raw += len(raw)
                total_sent += len(body)
        async with http.get(srv.url + "/static/vendor/uPlot.esm.min.js", headers=GZIP) as r:
            assert r.headers["Content-Encoding"] == "gzip" and r.content_type == "text/javascript"
            assert len(gzip.decompress(await r.read())) < 60_000, "the minified uPlot"
        assert total_sent < total_raw / 2.5, (total_sent, total_raw)
        assert total_sent < 80_000, f"the page sends {total_sent} bytes compressed"

        async with http.get(srv.url + "/static/js/main.js", headers={"Accept-Encoding": "identity"}) as r:
            assert r.status == 200 and "Content-Encoding" not in r.headers
        for bad in ("/static/%2e%2e/page.py", "/static/..%2fpage.py", "/static/js", "/static/nothing.js"):
            async with http.get(srv.url + bad) as r:
                assert r.status == 404, bad
