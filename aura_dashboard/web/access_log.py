"""The access log: one line per request, naming the client as the rest of the dashboard does.

aiohttp's own access logger names `request.remote`, which behind nginx is nginx; this one
names the address resolved through `security.trusted_proxies` (`X-Forwarded-For` from a
trusted proxy), like the rate limit, the audit log and the security events.
"""

from __future__ import annotations

import logging

from aiohttp import hdrs, web
from aiohttp.abc import AbstractAccessLogger

from .security import client_of


class ClientAccessLogger(AbstractAccessLogger):
    """`client "METHOD path HTTP/x.y" status bytes seconds`, with the same fields as JSON
    extras (`client`, `method`, `path`, `status`, `bytes`, `duration_s`, `user_agent`)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if not self.logger.isEnabledFor(logging.INFO):
            return
        client = client_of(request)
        version = request.version
        size = response.body_length
        self.logger.info(
            '%s "%s %s HTTP/%d.%d" %d %d %.3fs', client, request.method, request.path_qs,
            version.major, version.minor, response.status, size, time,
            extra={"client": client, "method": request.method, "path": request.path,
                   "status": response.status, "bytes": size, "duration_s": round(time, 6),
                   "user_agent": request.headers.get(hdrs.USER_AGENT, "-")})
