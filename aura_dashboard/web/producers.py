"""REST for the services that produce data: inference results, and debates for the arena."""

from __future__ import annotations

from aiohttp import web

from ..errors import BadRequest, PanelDisabled
from ..panels.arena import CloseBody, TurnBody
from ..panels.inference import parse_results
from ..security.validation import parse
from ..panels.arena import Arena
from .api import json_response, read_json
from .forwarding import FROM_KEPT
from .keys import ARENA, HUB, INFERENCE


def _need(request: web.Request, stream: str, panel: str) -> None:
    if not request.app[HUB].is_on(stream):
        raise PanelDisabled(f"the {panel} panel is switched off")


async def ingest_inference(request: web.Request) -> web.Response:
    _need(request, "inference", "ai_system (inference statistics)")
    results = parse_results(await read_json(request))
    accepted = request.app[INFERENCE].record(results)
    return json_response({"ok": True, "accepted": accepted}, status=202)


async def _arena_to_read(request: web.Request) -> Arena:
    """The holder's arena; during a takeover (no holder answers) the debates it kept in Redis."""
    arena = request.app[ARENA]
    return await arena.kept_copy() if request.get(FROM_KEPT) else arena


async def list_debates(request: web.Request) -> web.Response:
    _need(request, "debates", "intelligence_arena")
    arena = await _arena_to_read(request)
    body = {"debates": arena.debates()}
    if request.get(FROM_KEPT):
        body["source"] = "kept"
    return json_response(body)


async def get_debate(request: web.Request) -> web.Response:
    _need(request, "debates", "intelligence_arena")
    arena = await _arena_to_read(request)
    return json_response(arena.get(request.match_info["id"]).state(arena.turns_in_envelope))


async def debate_turns(request: web.Request) -> web.Response:
    """Every turn of a debate, paged: `?offset=0&limit=50` (limit at most 200)."""
    _need(request, "debates", "intelligence_arena")
    try:
        offset = int(request.query.get("offset", "0"))
        limit = int(request.query.get("limit", "50"))
    except ValueError:
        raise BadRequest("offset and limit must be integers") from None
    if offset < 0 or not 1 <= limit <= 200:
        raise BadRequest("offset must be at least 0 and limit between 1 and 200")
    arena = await _arena_to_read(request)
    return json_response(arena.get(request.match_info["id"]).turns_page(offset, limit))


async def create_debate(request: web.Request) -> web.Response:
    _need(request, "debates", "intelligence_arena")
    return json_response(await request.app[ARENA].create(await read_json(request)), status=201)


async def add_turn(request: web.Request) -> web.Response:
    _need(request, "debates", "intelligence_arena")
    body = parse(TurnBody, await read_json(request), what="turn body")
    payload = {"id": request.match_info["id"], **body.model_dump()}
    return json_response(await request.app[ARENA].add_turn(payload))


async def close_debate(request: web.Request) -> web.Response:
    _need(request, "debates", "intelligence_arena")
    body = parse(CloseBody, await read_json(request), what="close body")
    payload = {"id": request.match_info["id"], **body.model_dump()}
    return json_response(await request.app[ARENA].close(payload))
