"""create_app(settings): wiring only. Every component is built here and hung on the app."""

from __future__ import annotations

import asyncio
import logging
import socket
import weakref
from collections.abc import AsyncIterator

from aiohttp import WSCloseCode, web

from .appkeys import HEALTH, NAMESPACES, OVERRIDES, SETTINGS, SIO, TASKS, WEBSOCKETS
from .config import RuntimeOverrides, Settings
from .namespaces import register_namespaces
from .realtime.server import build_socketio
from .realtime.tasks import TaskSet
from .web.health import Health
from .web.middleware import error_middleware
from .web.routes import setup_routes

log = logging.getLogger(__name__)
WS_CLOSE_TIMEOUT_S = 1.0


def instance_name(settings: Settings) -> str:
    return settings.dashboard.instance_name or socket.gethostname()


def create_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[error_middleware])
    overrides = RuntimeOverrides(settings.features)
    sio = build_socketio(settings, overrides)
    sio.attach(app, socketio_path=settings.websocket.path)

    app[SETTINGS] = settings
    app[OVERRIDES] = overrides
    app[SIO] = sio
    app[TASKS] = TaskSet()
    app[HEALTH] = Health(instance_name(settings))
    app[NAMESPACES] = register_namespaces(sio, settings, overrides)

    app[WEBSOCKETS] = weakref.WeakSet()
    setup_routes(app)
    app.on_response_prepare.append(_track_websockets)
    app.on_shutdown.append(_disconnect_clients)
    app.cleanup_ctx.append(_background_tasks)
    return app


async def _disconnect_clients(app: web.Application) -> None:
    """Runs first on shutdown: stop answering healthy, close every Socket.IO session."""
    app[HEALTH].serving = False
    sio = app[SIO]
    # Each session gets a close packet; none is waited for, since engine.io's own
    # disconnect-all waits forever on a polling client that no longer polls.
    sockets = list(sio.eio.sockets.values())
    for eio_socket in sockets:
        await eio_socket.close(wait=False, reason=sio.eio.reason.SERVER_DISCONNECT)
    if sockets:
        await asyncio.sleep(0.05)  # let the WebSocket writers flush the close packets
    sio.eio.sockets.clear()
    await sio.shutdown()
    # Then the WebSocket connections themselves, so no handler outlives the shutdown.
    open_ws = [ws for ws in app[WEBSOCKETS] if not ws.closed]
    if open_ws:
        closing = asyncio.gather(*(ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
                                   for ws in open_ws), return_exceptions=True)
        try:
            await asyncio.wait_for(closing, WS_CLOSE_TIMEOUT_S)
        except asyncio.TimeoutError:
            log.warning("%d WebSocket(s) did not close in %.1fs", len(open_ws), WS_CLOSE_TIMEOUT_S)


async def _track_websockets(request: web.Request, response: web.StreamResponse) -> None:
    if isinstance(response, web.WebSocketResponse):
        request.app[WEBSOCKETS].add(response)


async def _background_tasks(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[TASKS].close()
