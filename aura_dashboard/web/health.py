"""`GET /healthz` and `/health`: liveness and each dependency's state."""

from __future__ import annotations

from aiohttp import web

from ..config.loader import redact_value
from .keys import HEALTH


async def healthz(request: web.Request) -> web.Response:
    # Public: whatever a dependency reports (addresses, error text) has its credentials redacted.
    report = redact_value(await request.app[HEALTH].report())
    return web.json_response(report, status=200 if report["status"] == "ok" else 503)
