"""`GET /healthz` and `/health`: liveness and each dependency's state.

Both are public. With the API key on, a request without a valid key gets the brief answer:
each component only `ok`, `degraded` or `down` (no hosts, ports, owners or error text); the
key shows the details. With the key off everything is public (as `/api/backends` is), with
credentials redacted either way.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..config.loader import redact_value
from ..security import TooManyFailures, Unauthorized
from .keys import GUARD, HEALTH
from .security import client_of

_OK = frozenset({"ok", "up", "disabled", "connected", "idle", "running"})
_DOWN = frozenset({"down", "error", "failed", "unreachable", "stopped"})


def _word(status: Any) -> str:
    text = str(status).lower()
    return "ok" if text in _OK else "down" if text in _DOWN else "degraded"


def brief(state: Any) -> Any:
    """Each component's state reduced to `{"status": ok | degraded | down}`; a group of
    components (the backends) is reduced member by member."""
    if not isinstance(state, dict):
        return {"status": "degraded"}
    if "status" in state:
        return {"status": _word(state["status"])}
    return {name: brief(member) for name, member in state.items() if isinstance(member, dict)}


async def _shows_details(request: web.Request) -> bool:
    guard = request.app[GUARD]
    if not guard.key_required:
        return True
    candidate = guard.candidate(request.headers)
    if not candidate:
        return False
    try:  # a wrong key counts as a failed authentication, as anywhere else
        await guard.authenticate(candidate, client=client_of(request), target=request.path,
                                 detail={"method": request.method}, hint=f"header {guard.header}")
    except (Unauthorized, TooManyFailures):
        return False
    return True


async def healthz(request: web.Request) -> web.Response:
    report = redact_value(await request.app[HEALTH].report())
    if not await _shows_details(request):
        report["dependencies"] = {name: brief(state) for name, state in report["dependencies"].items()}
        report["details"] = "send the API key for each component's details"
    return web.json_response(report, status=200 if report["status"] == "ok" else 503)
