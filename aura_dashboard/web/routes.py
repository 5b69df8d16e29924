"""REST routes."""

from __future__ import annotations

from aiohttp import web

from ..appkeys import HEALTH


async def healthz(request: web.Request) -> web.Response:
    report = request.app[HEALTH].report()
    return web.json_response(report, status=200 if report["status"] == "ok" else 503)


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/health", healthz)
