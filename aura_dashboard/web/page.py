"""The dashboard page: `GET /` and the static files it loads, all from inside the package.

The browser libraries (socket.io-client, uPlot) are copied into `static/vendor/` from npm by
`frontend/build.mjs`, which the README's commands run before installing the package.
"""

from __future__ import annotations

import logging
from pathlib import Path

from aiohttp import web

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).resolve().parent / "static"
VENDOR_FILES = ("socket.io.esm.min.js", "uPlot.esm.js", "uPlot.min.css")
# The page and its scripts change with each release; the browser must ask again, not guess.
NO_CACHE = {"Cache-Control": "no-cache"}


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers=NO_CACHE)


def missing_vendor_files(static_dir: Path = STATIC_DIR) -> list[str]:
    return [name for name in VENDOR_FILES if not (static_dir / "vendor" / name).is_file()]


def setup_page(app: web.Application) -> None:
    missing = missing_vendor_files()
    if missing:
        log.warning("the dashboard page's libraries are missing (%s): run "
                    "`npm ci --prefix frontend && node frontend/build.mjs` before installing",
                    ", ".join(missing))
    app.router.add_get("/", index)
    app.router.add_static("/static/", STATIC_DIR, append_version=False)
