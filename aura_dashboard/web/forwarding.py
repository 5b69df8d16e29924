"""In a cluster, the arena and the inference statistics live on the lease holder.

Requests for them that reach another instance (REST from producers, arena events from
browsers) are forwarded to the holder's advertised address and its answer is passed back,
so every instance serves the same debates and the same statistics.
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from ..appkeys import CLUSTER, SETTINGS
from ..errors import DashboardError

log = logging.getLogger(__name__)
FORWARDED = "X-Aura-Forwarded"
OWNED_BY_HOLDER = ("/api/arena/", "/api/ingest/")
PASSED_HEADERS = ("Content-Type", "Authorization", "X-API-Key", "X-Forwarded-For")
FORWARD_TIMEOUT_S = 10.0


def _cluster(app: web.Application):
    return app.get(CLUSTER)


async def forward(app: web.Application, method: str, path: str, body: bytes | None,
                  headers: dict[str, str]) -> tuple[int, Any]:
    """Send one request to the lease holder; returns (status, JSON body)."""
    cluster = _cluster(app)
    try:
        target = await cluster.holder_url()
    except Exception as exc:
        raise DashboardError(f"the cluster cannot be reached: {exc}", code="unavailable", status=503) from None
    if not target or target == cluster.url:
        raise DashboardError("no instance holds the arena right now; try again in a moment",
                             code="unavailable", status=503)
    if cluster.http is None:
        cluster.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=FORWARD_TIMEOUT_S))
    try:
        async with cluster.http.request(method, target + path, data=body,
                                        headers={**headers, FORWARDED: cluster.owner}) as response:
            return response.status, orjson.loads(await response.read() or b"null")
    except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError) as exc:
        raise DashboardError(f"the instance holding the arena ({target}) did not answer: {exc}",
                             code="unavailable", status=503) from None


def must_forward(app: web.Application, already_forwarded: bool = False) -> bool:
    cluster = _cluster(app)
    return cluster is not None and not cluster.lease.held and not already_forwarded


@web.middleware
async def forwarding_middleware(request: web.Request, handler):
    if request.path.startswith(OWNED_BY_HOLDER) and must_forward(request.app, FORWARDED in request.headers):
        body = await request.read() if request.can_read_body else None
        headers = {k: v for k, v in request.headers.items() if k in PASSED_HEADERS}
        status, data = await forward(request.app, request.method, request.path_qs, body, headers)
        return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")
    return await handler(request)


async def forward_event(app: web.Application, path: str, payload: Any) -> dict[str, Any]:
    """An arena event on a non-holder, as the holder's REST answer in acknowledgement shape."""
    headers = {"Content-Type": "application/json"}
    security = app[SETTINGS].security
    if security.api_key_enabled and security.api_keys():  # the browser was let in by this instance
        headers[security.api_key_header] = security.api_keys()[0]
    status, data = await forward(app, "POST", path, orjson.dumps(payload), headers)
    if isinstance(data, dict) and "error" in data:
        return {"ok": False, **data}
    return data
