"""The HTTP adapter of `realtime/forwarding.py`: requests for the lease holder's state that
reach another instance are answered by the holder.

`peer_middleware` (first, before rate limit and API key) believes the internal headers only
with the cluster's secret: such a request is marked `PEER` (its original client and actor);
from a client the same headers count for nothing and are never passed on.
"""

from __future__ import annotations

import orjson
from aiohttp import web

from ..errors import DashboardError
from ..realtime.forwarding import (FORWARDED, ORIGINAL_ACTOR, ORIGINAL_CLIENT, OWNED_BY_HOLDER,
                                   PASSED_HEADERS, PEER_SECRET)
from .keys import CLUSTER, FORWARDER
from .security import ACTOR, PEER, Peer, client_of

# Set on a read that no holder answered (a takeover): the handler answers from the debates the
# last holder kept in Redis, marked `X-Aura-Source: kept`.
FROM_KEPT = "aura_from_kept"
KEPT_READS = ("/api/arena/debates",)


@web.middleware
def peer_middleware(request: web.Request, handler):
    # Passes a request on without a frame of its own around the handler (web/middleware.py).
    cluster = request.app.get(CLUSTER)
    presented = request.headers.get(PEER_SECRET)
    if cluster is not None and presented is not None:
        return _as_peer(request, handler, cluster, presented)
    return handler(request)


async def _as_peer(request: web.Request, handler, cluster, presented: str):
    if await cluster.is_peer(presented):
        request[PEER] = Peer(instance=request.headers.get(FORWARDED, "?")[:200],
                             client=request.headers.get(ORIGINAL_CLIENT, "-")[:200],
                             actor=request.headers.get(ORIGINAL_ACTOR, "-")[:200])
    return await handler(request)


@web.middleware
def forwarding_middleware(request: web.Request, handler):
    forwarder = request.app[FORWARDER]
    if request.path.startswith(OWNED_BY_HOLDER) and forwarder.must_forward(PEER in request):
        return _forwarded(request, handler, forwarder)
    return handler(request)


async def _forwarded(request: web.Request, handler, forwarder):
    body = await request.read() if request.body_exists else None  # read() keeps what was read before
    headers = {k: v for k, v in request.headers.items() if k in PASSED_HEADERS}
    client = client_of(request)
    try:
        status, data = await forwarder.forward(request.method, request.path_qs, body, headers,
                                               client=client, actor=request.get(ACTOR) or f"api:{client}")
    except DashboardError as exc:
        if exc.status == 503 and request.method == "GET" and request.path.startswith(KEPT_READS):
            request[FROM_KEPT] = True  # no holder answers: read what the last one kept
            response = await handler(request)
            response.headers["X-Aura-Source"] = "kept"
            return response
        raise
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")
