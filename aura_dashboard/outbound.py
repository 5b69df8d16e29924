"""The one outbound HTTP session: backend health checks, the ML models list, the chat queue's
requests to the MCP backend and, in a cluster, requests forwarded to the lease holder."""

from __future__ import annotations

import aiohttp

CHUNK_BYTES = 65_536


class ReplyTooLarge(Exception):
    """A backend's reply passed the byte limit (`backends.max_reply_bytes`); nothing more of it
    was read."""

    def __init__(self, limit: int):
        super().__init__(f"the reply is over {limit} bytes (backends.max_reply_bytes)")
        self.limit = limit


async def read_limited(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body of `response`, read in chunks, at most `limit` bytes; `ReplyTooLarge` as soon as
    its Content-Length or what arrived says it is larger (so a huge reply never sits in memory)."""
    declared = response.content_length
    if declared is not None and declared > limit:
        raise ReplyTooLarge(limit)
    parts: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(CHUNK_BYTES):
        size += len(chunk)
        if size > limit:
            raise ReplyTooLarge(limit)
        parts.append(chunk)
    return b"".join(parts)


class OutboundHttp:
    """Calling it gives the session; it exists between `start()` and `close()` (the app's life).

    Components take the object itself (a callable) at construction, before the event loop runs.
    """

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def __call__(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("the outbound HTTP session is not open (the app is not running)")
        return self._session

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()
