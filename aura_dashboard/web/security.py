"""REST guards: the API key, the per-address token bucket, and CORS (`security.*`).

The Socket.IO path is left to Engine.IO and the namespaces (`realtime/limits.py`,
`namespaces/base.py`), except that a new Engine.IO session (a handshake) takes a token from
its address's bucket like any REST request.
"""

from __future__ import annotations

import asyncio

import aiohttp_cors
from aiohttp import hdrs, web

from ..appkeys import CLIENT_ADDRESS, SECURITY_EVENTS
from ..config import Settings
from ..errors import error_body
from ..origins import AllowedOrigins
from ..security import BucketTable, KeyRing, bearer, retry_after

# Open without a key: liveness for load balancers, and the page itself (it asks for the key).
PUBLIC_PATHS = frozenset({"/healthz", "/health", "/", "/favicon.ico"})
PUBLIC_PREFIXES = ("/static/",)
UNLIMITED_PATHS = frozenset({"/healthz", "/health"})
# Who made an authenticated request (a key id, never the key), for the audit log.
ACTOR = web.RequestKey("actor", str)


def client_of(request: web.BaseRequest) -> str:
    """The client's address, through `security.trusted_proxies` (`X-Forwarded-For`); the
    peer's when the request never reached the app (a malformed request line)."""
    try:
        resolve = request.app[CLIENT_ADDRESS]  # type: ignore[attr-defined]
    except (AttributeError, KeyError):
        return request.remote or "-"
    return resolve(request.remote, request.headers.get(hdrs.X_FORWARDED_FOR))


def _is_socketio(request: web.Request, socketio_path: str) -> bool:
    return request.path.rstrip("/") == socketio_path.rstrip("/")


def rate_limit_middleware(settings: Settings):
    """429 with `Retry-After` once an address has spent its burst (`security.rate_limiting`)."""
    limits = settings.security.rate_limiting
    buckets = BucketTable(limits.requests_per_minute, limits.burst_size, limits.max_tracked_clients)
    socketio_path = settings.websocket.path

    @web.middleware
    async def rate_limit(request: web.Request, handler):
        if request.path in UNLIMITED_PATHS or (
                _is_socketio(request, socketio_path) and "sid" in request.query):
            return await handler(request)  # an open session's traffic has its own limits
        wait = buckets.take(client_of(request))
        if wait > 0:
            return web.json_response(
                error_body("rate_limited", "too many requests; slow down"), status=429,
                headers={hdrs.RETRY_AFTER: str(retry_after(wait))})
        return await handler(request)

    rate_limit.buckets = buckets  # type: ignore[attr-defined]
    return rate_limit


def api_key_middleware(settings: Settings, keys: KeyRing):
    """401 `unauthorized` without an accepted key; sets `request[ACTOR]` to the key's id."""
    header = settings.security.api_key_header
    socketio_path = settings.websocket.path

    @web.middleware
    async def api_key(request: web.Request, handler):
        path = request.path
        if (request.method == hdrs.METH_OPTIONS or path in PUBLIC_PATHS
                or path.startswith(PUBLIC_PREFIXES) or _is_socketio(request, socketio_path)):
            return await handler(request)
        candidate = request.headers.get(header) or bearer(request.headers.get(hdrs.AUTHORIZATION))
        kid = keys.match(candidate)
        if kid is None:
            await request.app[SECURITY_EVENTS].emit(
                "auth_failed", client_of(request), path,
                {"reason": "missing API key" if not candidate else "wrong API key",
                 "method": request.method})
            return web.json_response(
                error_body("unauthorized", f"a valid API key is required (header {header})"),
                status=401)
        request[ACTOR] = kid
        return await handler(request)

    return api_key


POLLING_POST_TIMEOUT_S = 5.0


def polling_post_timeout(settings: Settings):
    """Bounds a long-polling POST on the Socket.IO path.

    On a packet it refuses (too large, an OPEN from the client...) python-engineio closes the
    session and waits for its close packet to be polled; a client that never polls again
    would hold that POST, and its handler, forever. A POST only hands packets over, so a
    few seconds is plenty; past them it is answered 400 and the session is gone.
    """
    socketio_path = settings.websocket.path

    @web.middleware
    async def bounded_post(request: web.Request, handler):
        if request.method != hdrs.METH_POST or not _is_socketio(request, socketio_path):
            return await handler(request)
        try:
            async with asyncio.timeout(POLLING_POST_TIMEOUT_S):
                return await handler(request)
        except TimeoutError:
            return web.json_response(error_body("bad_request", "the session was closed"), status=400)

    return bounded_post


def security_middlewares(settings: Settings) -> list:
    """The middlewares to put after the error middleware: rate limit first, so guessing keys
    is throttled too, then the API key."""
    out = [polling_post_timeout(settings)]
    if settings.security.rate_limiting.enabled:
        out.append(rate_limit_middleware(settings))
    keys = KeyRing.from_settings(settings.security)
    if keys is not None:
        out.append(api_key_middleware(settings, keys))
    return out


def setup_cors(app: web.Application, settings: Settings) -> None:
    """CORS on every REST route (`security.cors`, for the origins of `origins.py`); call
    once all routes are added.

    The Socket.IO path is skipped: Engine.IO answers its own CORS with the same origins
    (`realtime/server.py` `OriginPolicy`).
    """
    cors = settings.security.cors
    if not cors.enabled:
        return
    headers = list(dict.fromkeys([*cors.allowed_headers, settings.security.api_key_header]))
    options = aiohttp_cors.ResourceOptions(
        allow_credentials=cors.allow_credentials, allow_headers=headers,
        allow_methods=cors.allowed_methods, expose_headers=[hdrs.RETRY_AFTER], max_age=600)
    origins = AllowedOrigins(settings.dashboard, cors).for_cors()
    config = aiohttp_cors.setup(app, defaults={origin: options for origin in origins})
    socketio_path = settings.websocket.path.rstrip("/")
    for resource in list(app.router.resources()):
        info = resource.get_info()
        where = info.get("path") or info.get("formatter") or info.get("prefix") or ""
        if where.rstrip("/") == socketio_path:
            continue
        config.add(resource)
