"""Wiring of the interactive panels: the chat queue, the arena and the inference statistics.

`setup_interactive(app)` builds them, hands them to their namespaces, adds their REST
routes and one cleanup context that owns the shared HTTP client session, the chat workers,
the arena's sweeper and the `status` and `inference` emitters.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from ..appkeys import EMITTERS, HUB, NAMESPACES, OVERRIDES, SETTINGS, SIO, TASKS
from ..errors import BadRequest, PanelDisabled
from ..panels.arena import Arena, CloseBody, TurnBody
from ..panels.chat import ChatQueue
from ..panels.inference import InferenceStats, parse_results
from ..realtime.emitters import Emitter
from ..validation import parse
from .api import json_response

CHAT = web.AppKey("chat", ChatQueue)
ARENA = web.AppKey("arena", Arena)
INFERENCE = web.AppKey("inference", InferenceStats)
HTTP_CLIENT = web.AppKey("http_client", aiohttp.ClientSession)


def setup_interactive(app: web.Application) -> None:
    settings, hub, overrides = app[SETTINGS], app[HUB], app[OVERRIDES]
    panels = settings.panels
    chat = panels.chat
    started = time.monotonic()

    def session() -> aiohttp.ClientSession:
        return app[HTTP_CLIENT]

    def diagnostics() -> dict[str, Any]:
        return {"instance": hub.source, "pid": os.getpid(),
                "python": sys.version.split()[0], "platform": platform.platform(),
                "uptime_s": round(time.monotonic() - started, 3),
                "streams_running": app[EMITTERS].running(), "published": hub.published(),
                "clients": {name: ns.clients() for name, ns in app[NAMESPACES].items()}}

    async def notify(sid: str, update: dict[str, Any]) -> None:
        await app[SIO].emit("chat_update", update, to=sid, namespace="/chat")

    app[CHAT] = ChatQueue(
        url=settings.backends.mcp.url, max_queue_size=chat.max_queue_size,
        timeout_s=chat.timeout_seconds, retry_attempts=chat.retry_attempts, workers=chat.workers,
        backoff_base_s=chat.backoff_base_ms / 1000, backoff_max_s=chat.backoff_max_ms / 1000,
        session=session, notify=notify, modes=chat.modes,
        debug_on=lambda: overrides.is_on("debug_mode"), diagnostics=diagnostics)
    arena = panels.intelligence_arena
    app[ARENA] = Arena(max_debates=arena.max_debates, timeout_s=arena.debate_timeout_seconds,
                       finished_kept=arena.finished_kept, publish=hub.publish)
    app[INFERENCE] = InferenceStats(panels.ai_system.inference_window_seconds)
    app[NAMESPACES]["chat"].queue = app[CHAT]
    app[NAMESPACES]["arena"].arena = app[ARENA]

    app.router.add_post("/api/ingest/inference", ingest_inference)
    app.router.add_get("/api/arena/debates", list_debates)
    app.router.add_post("/api/arena/debates", create_debate)
    app.router.add_get("/api/arena/debates/{id}", get_debate)
    app.router.add_post("/api/arena/debates/{id}/turns", add_turn)
    app.router.add_post("/api/arena/debates/{id}/close", close_debate)
    app.cleanup_ctx.append(_interactive)


async def _interactive(app: web.Application) -> AsyncIterator[None]:
    settings, hub, emitters, tasks = app[SETTINGS], app[HUB], app[EMITTERS], app[TASKS]
    app[HTTP_CLIENT] = aiohttp.ClientSession(raise_for_status=False)
    queue = app[CHAT]
    workers = [tasks.spawn(queue.run_worker(), name=f"chat:worker{i}") for i in range(queue.workers)]
    workers.append(tasks.spawn(app[ARENA].run_sweeper(), name="arena:sweeper"))
    emitters.add(Emitter("status", queue.sample, settings.updates.intervals.chat_status / 1000, hub))
    emitters.add(Emitter("inference", app[INFERENCE].sample,
                         settings.panels.ai_system.refresh_interval_ms / 1000, hub))
    await emitters.reconcile()  # a no-op until _host_streams starts the set
    try:
        yield
    finally:
        for task in workers:
            task.cancel()
        await app[HTTP_CLIENT].close()


# -- REST ----------------------------------------------------------------------------------------
async def _body(request: web.Request) -> Any:
    try:
        return await request.json(loads=orjson.loads)
    except (ValueError, orjson.JSONDecodeError):
        raise BadRequest("the body must be JSON") from None


def _need(request: web.Request, stream: str, panel: str) -> None:
    if not request.app[HUB].is_on(stream):
        raise PanelDisabled(f"the {panel} panel is switched off")


async def ingest_inference(request: web.Request) -> web.Response:
    _need(request, "inference", "ai_system (inference statistics)")
    results = parse_results(await _body(request))
    accepted = request.app[INFERENCE].record(results)
    return json_response({"ok": True, "accepted": accepted}, status=202)


async def list_debates(request: web.Request) -> web.Response:
    _need(request, "debates", "intelligence_arena")
    return json_response({"debates": request.app[ARENA].debates()})


async def get_debate(request: web.Request) -> web.Response:
    _need(request, "debates", "intelligence_arena")
    return json_response(request.app[ARENA].get(request.match_info["id"]).state())


async def create_debate(request: web.Request) -> web.Response:
    _need(request, "debates", "intelligence_arena")
    return json_response(await request.app[ARENA].create(await _body(request)), status=201)


async def add_turn(request: web.Request) -> web.Response:
    _need(request, "debates", "intelligence_arena")
    body = parse(TurnBody, await _body(request), what="turn body")
    payload = {"id": request.match_info["id"], **body.model_dump()}
    return json_response(await request.app[ARENA].add_turn(payload))


async def close_debate(request: web.Request) -> web.Response:
    _need(request, "debates", "intelligence_arena")
    body = parse(CloseBody, await _body(request), what="close body")
    payload = {"id": request.match_info["id"], **body.model_dump()}
    return json_response(await request.app[ARENA].close(payload))
