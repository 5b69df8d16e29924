"""Builds the python-socketio AsyncServer from the settings."""

from __future__ import annotations

import logging

import socketio

from ..config import FeatureChange, RuntimeOverrides, Settings
from ..origins import AllowedOrigins

log = logging.getLogger(__name__)


class OriginPolicy:
    """python-engineio's `cors_allowed_origins` callable: which browser origins may open a
    Socket.IO session, the same as REST's (`origins.AllowedOrigins`). Clients that send no
    Origin (scripts) are not affected."""

    def __init__(self, origins: AllowedOrigins):
        self.origins = origins

    def __call__(self, origin: str | None, environ: dict | None = None) -> bool:
        return self.origins.allows(origin)


def transports(websocket_fallback: bool) -> list[str]:
    return ["polling", "websocket"] if websocket_fallback else ["websocket"]


def build_socketio(settings: Settings, overrides: RuntimeOverrides,
                   client_manager: socketio.AsyncManager | None = None) -> socketio.AsyncServer:
    ws = settings.websocket
    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        client_manager=client_manager,
        ping_interval=ws.ping_interval_ms / 1000,
        ping_timeout=ws.pong_timeout_ms / 1000,
        max_http_buffer_size=ws.max_message_size_bytes,
        cors_allowed_origins=OriginPolicy(AllowedOrigins(settings.dashboard, settings.security.cors)),
        cors_credentials=settings.security.cors.allow_credentials,
        transports=transports(overrides.is_on("websocket_fallback")),
        http_compression=settings.updates.compression_enabled,
        compression_threshold=settings.updates.compression_threshold_bytes,
        logger=False,
        engineio_logger=False,
    )

    async def follow_fallback_flag(change: FeatureChange) -> None:
        # New sessions honour the flag at once; sessions already open keep their transport.
        if change.flag == "websocket_fallback":
            sio.eio.transports = transports(change.new)
            log.info("transports now %s", sio.eio.transports)

    overrides.add_listener(follow_fallback_flag)
    return sio
