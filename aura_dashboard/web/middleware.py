"""Maps every failure of a REST request to `{"error": {"code", "message"}}`.

Also the rule the other middlewares follow: one that only passes a request on returns its
handler's awaitable (`return handler(request)` from a plain `def`) instead of awaiting it, so
no frame of it stays alive while the handler runs. The Engine.IO handler runs for a
WebSocket's whole life; each awaiting middleware around it held ~350 B per connection.
A middleware that must do something after or around its handler (this one, gzip on a REST
path, a timeout) still does it in a coroutine of its own; `answer` is the awaitable of a
response a pass-through middleware makes itself.
"""

from __future__ import annotations

import logging

from aiohttp import web

from ..errors import DashboardError, error_body

log = logging.getLogger(__name__)
# The WebSocket a request was upgraded to: past that point no HTTP response may be written.
UPGRADED = web.RequestKey("upgraded", web.WebSocketResponse)

_HTTP_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 409: "conflict", 413: "payload_too_large",
    415: "unsupported_media_type", 429: "rate_limited",
}


async def answer(response: web.StreamResponse) -> web.StreamResponse:
    """`response` as an awaitable, for a middleware written as a plain `def` (see above)."""
    return response


@web.middleware
async def error_middleware(request: web.Request, handler):
    try:
        return await handler(request)
    except Exception:
        upgraded = request.get(UPGRADED)
        if upgraded is None:
            return _as_error_response(request)
        # The connection speaks WebSocket now: an HTTP answer would be garbage inside it.
        log.exception("WebSocket handler of %s failed; closing the connection", request.path)
        return upgraded  # aiohttp finishes it by closing the WebSocket


def _as_error_response(request: web.Request) -> web.StreamResponse:
    """The failure being handled, rendered (call only inside an `except`)."""
    try:
        raise
    except DashboardError as exc:
        return web.json_response(exc.body(), status=exc.status)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        return web.json_response(error_body(code, exc.reason), status=exc.status,
                                 headers={k: v for k, v in exc.headers.items()
                                          if k.lower() in ("allow", "retry-after")})
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return web.json_response(error_body("internal_error", "internal server error"), status=500)
