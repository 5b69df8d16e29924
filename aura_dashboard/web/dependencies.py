"""REST reads of the dependency panels: PostgreSQL, the backends and the audit log.

The database and backends answers come from the hub's store, so a replica without the lease
answers with the holder's latest sample.
"""

from __future__ import annotations

from aiohttp import web

from ..errors import BadRequest
from .api import json_response
from .keys import AUDIT, BACKENDS, DATABASE, HUB, SETTINGS


async def database_health(request: web.Request) -> web.Response:
    """The latest `database` data; `disabled` (200) when no host is configured."""
    latest = await request.app[HUB].latest("database")
    data = latest["data"] if latest is not None else request.app[DATABASE].last
    return json_response(data, status=200)


async def backends(request: web.Request) -> web.Response:
    """The latest `backends` data (every backend `unknown` before the first check)."""
    latest = await request.app[HUB].latest("backends")
    return json_response(latest["data"] if latest is not None else request.app[BACKENDS].snapshot())


async def audit_log(request: web.Request) -> web.Response:
    cap = request.app[SETTINGS].panels.governance.audit_log_limit
    raw = request.query.get("limit", "100")
    try:
        limit = int(raw)
    except ValueError:
        raise BadRequest(f"limit: {raw!r} is not an integer") from None
    if limit < 1:
        raise BadRequest("limit: must be at least 1")
    try:
        page = await request.app[AUDIT].page(min(limit, cap), request.query.get("before"))
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    return json_response(page)
