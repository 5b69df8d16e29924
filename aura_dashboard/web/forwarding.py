"""The HTTP adapter of `realtime/forwarding.py`: requests for the lease holder's state that
reach another instance are answered by the holder."""

from __future__ import annotations

import orjson
from aiohttp import web

from ..realtime.forwarding import FORWARDED, OWNED_BY_HOLDER, PASSED_HEADERS
from .keys import FORWARDER


@web.middleware
async def forwarding_middleware(request: web.Request, handler):
    forwarder = request.app[FORWARDER]
    if request.path.startswith(OWNED_BY_HOLDER) and forwarder.must_forward(FORWARDED in request.headers):
        body = await request.read() if request.body_exists else None  # read() keeps what was read before
        headers = {k: v for k, v in request.headers.items() if k in PASSED_HEADERS}
        status, data = await forwarder.forward(request.method, request.path_qs, body, headers)
        return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")
    return await handler(request)
