"""The HTTP adapters of the security package: rate limit, API key, bounded polling POSTs, CORS.

Each middleware only reads the request and asks `AccessGuard`; the rules live in `security/`.
The Socket.IO path is left to Engine.IO and the namespaces, except that a new Engine.IO
session (a handshake) takes a token from its address's bucket like any REST request.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp_cors
from aiohttp import hdrs, web

from ..config.schema import SecuritySettings, WebSocketSettings
from ..errors import error_body
from ..realtime.server import session_in_query
from ..security import AccessGuard, AllowedOrigins, TooManyFailures, Unauthorized, retry_after
from .keys import GUARD
from .middleware import answer

# Open without a key: liveness for load balancers, and the page itself (it asks for the key).
PUBLIC_PATHS = frozenset({"/healthz", "/health", "/", "/favicon.ico"})
PUBLIC_PREFIXES = ("/static/",)
UNLIMITED_PATHS = frozenset({"/healthz", "/health"})
# Who made an authenticated request (a key id, never the key), for the audit log.
ACTOR = web.RequestKey("actor", str)


@dataclass(frozen=True)
class Peer:
    """A request forwarded by another instance of the cluster (proven by the cluster's secret):
    the client and actor it was made for, as that instance authenticated them."""

    instance: str
    client: str
    actor: str


PEER = web.RequestKey("peer", Peer)
POLLING_POST_TIMEOUT_S = 5.0


def client_of(request: web.BaseRequest) -> str:
    """The client behind `request` (believing X-Forwarded-For only from a trusted proxy); the
    peer when the request never reached the app (a malformed request line). A request an
    instance of the cluster forwarded is its original client's."""
    peer = request.get(PEER) if isinstance(request, web.Request) else None
    if peer is not None:
        return peer.client
    try:
        guard = request.app[GUARD]  # type: ignore[attr-defined]
    except (AttributeError, KeyError):
        return request.remote or "-"
    return guard.client(request.remote, request.headers.get(hdrs.X_FORWARDED_FOR))


def _is_socketio(request: web.Request, socketio_path: str) -> bool:
    return request.path.rstrip("/") == socketio_path.rstrip("/")


# Each middleware below passes a request on with `return handler(request)` from a plain `def`
# (no frame of it alive while the handler runs: for the Engine.IO path, a WebSocket's life);
# see web/middleware.py.


def rate_limit_middleware(guard: AccessGuard, socketio_path: str):
    """429 with `Retry-After` once an address has spent its burst (`security.rate_limiting`)."""

    @web.middleware
    def rate_limit(request: web.Request, handler):
        if request.path in UNLIMITED_PATHS or PEER in request or (
                _is_socketio(request, socketio_path) and session_in_query(request.query_string) is not None):
            # An open session's traffic has its own limits; a forwarded request was limited
            # where its client came in.
            return handler(request)
        wait = guard.take_request(client_of(request))
        if wait > 0:
            return answer(web.json_response(
                error_body("rate_limited", "too many requests; slow down"), status=429,
                headers={hdrs.RETRY_AFTER: str(retry_after(wait))}))
        return handler(request)

    return rate_limit


def api_key_middleware(guard: AccessGuard, socketio_path: str):
    """401 `unauthorized` without an accepted key; sets `request[ACTOR]` to the key's id."""

    @web.middleware
    def api_key(request: web.Request, handler):
        path = request.path
        if (request.method == hdrs.METH_OPTIONS or path in PUBLIC_PATHS
                or path.startswith(PUBLIC_PREFIXES) or _is_socketio(request, socketio_path)):
            return handler(request)
        peer = request.get(PEER)
        if peer is not None:  # authenticated by the instance that forwarded it
            request[ACTOR] = peer.actor
            return handler(request)
        return authenticated(request, handler)

    async def authenticated(request: web.Request, handler):
        path = request.path
        try:
            kid = await guard.authenticate(guard.candidate(request.headers), client=client_of(request),
                                           target=path, detail={"method": request.method},
                                           hint=f"header {guard.header}")
        except Unauthorized as exc:
            return web.json_response(exc.body(), status=exc.status)
        except TooManyFailures as exc:
            return web.json_response(exc.body(), status=exc.status,
                                     headers={hdrs.RETRY_AFTER: str(retry_after(exc.wait_s))})
        request[ACTOR] = kid
        return await handler(request)

    return api_key


def polling_post_timeout(socketio_path: str):
    """Bounds a long-polling POST on the Socket.IO path.

    On a packet it refuses (too large, an OPEN from the client...) python-engineio closes the
    session and waits for its close packet to be polled; a client that never polls again
    would hold that POST, and its handler, forever. A POST only hands packets over, so a
    few seconds is plenty; past them it is answered 400 and the session is gone.
    """

    @web.middleware
    def bounded_post(request: web.Request, handler):
        if request.method != hdrs.METH_POST or not _is_socketio(request, socketio_path):
            return handler(request)
        return bounded(request, handler)

    async def bounded(request: web.Request, handler):
        try:
            async with asyncio.timeout(POLLING_POST_TIMEOUT_S):
                return await handler(request)
        except TimeoutError:
            return web.json_response(error_body("bad_request", "the session was closed"), status=400)

    return bounded_post


def body_timeout(socketio_path: str, timeout_s: float):
    """A request body (REST) must arrive within `dashboard.body_timeout_s`: it is read here,
    before any handler, and a sender that stalls is answered 408 and its connection closed.
    (The Socket.IO path has its own bound, `polling_post_timeout`.)"""

    @web.middleware
    def bounded_body(request: web.Request, handler):
        if request.body_exists and not _is_socketio(request, socketio_path):
            return read_first(request, handler)
        return handler(request)

    async def read_first(request: web.Request, handler):
        try:
            async with asyncio.timeout(timeout_s):
                await request.read()  # kept by aiohttp for the handler's json()/post()
        except TimeoutError:
            response = web.json_response(
                error_body("request_timeout", f"the request body did not arrive within {timeout_s:g}s "
                                              "(dashboard.body_timeout_s)"), status=408)
            response.force_close()
            await response.prepare(request)
            await response.write_eof()
            if request.transport is not None:  # aiohttp would linger reading the rest of the body
                request.transport.close()
            return response
        return await handler(request)

    return bounded_body


def security_middlewares(guard: AccessGuard, ws: WebSocketSettings, body_timeout_s: float = 30.0) -> list:
    """The middlewares to put after the error middleware: rate limit first, so guessing keys
    is throttled too, then the API key, then the body read with its timeout (an upload only
    starts once its sender is known)."""
    out = [polling_post_timeout(ws.path)]
    if guard.requests is not None:
        out.append(rate_limit_middleware(guard, ws.path))
    if guard.key_required:
        out.append(api_key_middleware(guard, ws.path))
    out.append(body_timeout(ws.path, body_timeout_s))
    return out


def setup_cors(app: web.Application, security: SecuritySettings, ws: WebSocketSettings,
               origins: AllowedOrigins) -> None:
    """CORS on every REST route (`security.cors`, for `origins`); call once all routes are added.

    The Socket.IO path is skipped: Engine.IO answers its own CORS with the same origins
    (`security.OriginPolicy`).
    """
    cors = security.cors
    if not cors.enabled:
        return
    headers = list(dict.fromkeys([*cors.allowed_headers, security.api_key_header]))
    options = aiohttp_cors.ResourceOptions(
        allow_credentials=cors.allow_credentials, allow_headers=headers,
        allow_methods=cors.allowed_methods, expose_headers=[hdrs.RETRY_AFTER], max_age=600)
    config = aiohttp_cors.setup(app, defaults={origin: options for origin in origins.for_cors()})
    socketio_path = ws.path.rstrip("/")
    for resource in list(app.router.resources()):
        info = resource.get_info()
        where = info.get("path") or info.get("formatter") or info.get("prefix") or ""
        if where.rstrip("/") == socketio_path:
            continue
        config.add(resource)
