"""The dashboard page: `GET /` and the static files it loads, all from inside the package.

The browser libraries (socket.io-client, uPlot) are copied into `static/vendor/` from npm by
`frontend/build.mjs`, which the README's commands run before installing the package.

`StaticFiles` serves them from memory: each file read once per change (size and mtime),
gzipped once when the client takes gzip (`performance.gzip_compression`), with an ETag from its
content. The names carry no version, so every answer says `Cache-Control: no-cache`: the
browser asks each time and gets 304 Not Modified while nothing changed (the HTML, above all,
must never be guessed from a cache).
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import logging
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from .keys import SETTINGS

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).resolve().parent / "static"
VENDOR_FILES = ("socket.io.esm.min.js", "uPlot.esm.min.js", "uPlot.min.css")
TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css", ".html": "text/html",
         ".map": "application/json", ".json": "application/json", ".svg": "image/svg+xml"}
COMPRESSIBLE = ("text/", "application/json", "image/svg+xml")


@dataclass(frozen=True)
class _File:
    stamp: tuple[int, int]   # (mtime_ns, size): read again when either changes
    content_type: str
    body: bytes
    gzipped: bytes | None
    etag: str


class StaticFiles:
    """Files under `root`, from memory, gzipped once, with ETags.

    :param root: the folder served (nothing outside it is).
    :param gzip_enabled: whether to answer gzip to clients that accept it.
    :param min_gzip_bytes: smaller files are sent as they are.
    """

    def __init__(self, root: Path, *, gzip_enabled: bool, min_gzip_bytes: int):
        self.root = root.resolve()
        self.gzip_enabled = gzip_enabled
        self.min_gzip_bytes = min_gzip_bytes
        self._files: dict[Path, _File] = {}

    def _load(self, path: Path) -> _File | None:
        try:
            stat = path.stat()
        except OSError:
            return None
        stamp = (stat.st_mtime_ns, stat.st_size)
        cached = self._files.get(path)
        if cached is not None and cached.stamp == stamp:
            return cached
        body = path.read_bytes()
        content_type = TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        gzipped = (gzip.compress(body, 6, mtime=0) if self.gzip_enabled and len(body) >= self.min_gzip_bytes
                   and content_type.startswith(COMPRESSIBLE) else None)
        entry = _File(stamp, content_type, body, gzipped, f'"{hashlib.blake2b(body, digest_size=12).hexdigest()}"')
        self._files[path] = entry
        return entry

    async def respond(self, request: web.Request, path: Path) -> web.Response:
        entry = await asyncio.get_running_loop().run_in_executor(None, self._load, path)
        if entry is None:
            raise web.HTTPNotFound()
        headers = {"ETag": entry.etag, "Cache-Control": "no-cache", "Vary": "Accept-Encoding"}
        wanted = request.headers.get("If-None-Match", "")
        if wanted and (wanted.strip() == "*" or entry.etag in (t.strip().removeprefix("W/") for t in wanted.split(","))):
            return web.Response(status=304, headers=headers)
        charset = "utf-8" if entry.content_type.startswith(("text/", "application/json")) else None
        if entry.gzipped is not None and "gzip" in request.headers.get("Accept-Encoding", ""):
            headers["Content-Encoding"] = "gzip"
            return web.Response(body=entry.gzipped, headers=headers, content_type=entry.content_type, charset=charset)
        return web.Response(body=entry.body, headers=headers, content_type=entry.content_type, charset=charset)

    async def serve(self, request: web.Request) -> web.Response:
        path = (self.root / request.match_info["path"]).resolve()
        if not path.is_relative_to(self.root) or path.is_dir():
            raise web.HTTPNotFound()
        return await self.respond(request, path)

    async def index(self, request: web.Request) -> web.Response:
        return await self.respond(request, self.root / "index.html")


def missing_vendor_files(static_dir: Path = STATIC_DIR) -> list[str]:
    return [name for name in VENDOR_FILES if not (static_dir / "vendor" / name).is_file()]


def setup_page(app: web.Application) -> None:
    missing = missing_vendor_files()
    if missing:
        log.warning("the dashboard page's libraries are missing (%s): run "
                    "`npm ci --prefix frontend && node frontend/build.mjs` before installing",
                    ", ".join(missing))
    performance = app[SETTINGS].performance
    files = StaticFiles(STATIC_DIR, gzip_enabled=performance.gzip_compression,
                        min_gzip_bytes=performance.min_gzip_size_bytes)
    app.router.add_get("/", files.index)
    app.router.add_get("/static/{path:.+}", files.serve)
