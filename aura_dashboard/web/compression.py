"""gzip for REST answers of at least `performance.min_gzip_size_bytes`, when the client accepts it."""

from __future__ import annotations

from aiohttp import web
from aiohttp.web import ContentCoding

from ..config.schema import PerformanceSettings


def gzip_middleware(settings: PerformanceSettings):
    minimum = settings.min_gzip_size_bytes

    @web.middleware
    def middleware(request: web.Request, handler):
        # Only our own REST answers: Engine.IO compresses its polling responses itself (and its
        # WebSocket handler runs without a frame of this middleware around it).
        if request.path.startswith(("/api/", "/metrics", "/health")):
            return compressed(request, handler)
        return handler(request)

    async def compressed(request: web.Request, handler):
        response = await handler(request)
        if ("Content-Encoding" not in response.headers and isinstance(response, web.Response)
                and not isinstance(response, web.WebSocketResponse)
                and response.body is not None and len(response.body) >= minimum
                and "gzip" in request.headers.get("Accept-Encoding", "")):
            response.enable_compression(ContentCoding.gzip)
        return response

    return middleware
