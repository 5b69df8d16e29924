"""Builds the python-socketio AsyncServer from the settings."""

from __future__ import annotations

import logging
from collections.abc import Callable

import socketio

from ..config import FeatureChange
from ..config.schema import CorsSettings, UpdateSettings, WebSocketSettings
from ..security import AllowedOrigins, OriginPolicy

log = logging.getLogger(__name__)


def transports(websocket_fallback: bool) -> list[str]:
    return ["polling", "websocket"] if websocket_fallback else ["websocket"]


def build_socketio(ws: WebSocketSettings, cors: CorsSettings, updates: UpdateSettings, *,
                   origins: AllowedOrigins, websocket_fallback: bool,
                   client_manager: socketio.AsyncManager | None = None) -> socketio.AsyncServer:
    """The server: Engine.IO's ping, payload limit and transports from `websocket`, the allowed
    `origins` (credentials per `security.cors`), long-polling compression from `updates`;
    `client_manager` is the message queue's manager in a cluster (None: this process alone)."""
    return socketio.AsyncServer(
        async_mode="aiohttp",
        client_manager=client_manager,
        ping_interval=ws.ping_interval_ms / 1000,
        ping_timeout=ws.pong_timeout_ms / 1000,
        max_http_buffer_size=ws.max_message_size_bytes,
        cors_allowed_origins=OriginPolicy(origins),
        cors_credentials=cors.allow_credentials,
        transports=transports(websocket_fallback),
        http_compression=updates.compression_enabled,
        compression_threshold=updates.compression_threshold_bytes,
        logger=False,
        engineio_logger=False,
    )


def follow_fallback_flag(sio: socketio.AsyncServer) -> Callable[[FeatureChange], None]:
    """A flag listener: new sessions honour `features.websocket_fallback` at once; sessions
    already open keep their transport."""

    def follow(change: FeatureChange) -> None:
        if change.flag == "websocket_fallback":
            sio.eio.transports = transports(change.new)
            log.info("transports now %s", sio.eio.transports)

    return follow
