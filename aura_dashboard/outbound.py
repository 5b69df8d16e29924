"""The one outbound HTTP session: backend health checks, the ML models list, the chat queue's
requests to the MCP backend and, in a cluster, requests forwarded to the lease holder."""

from __future__ import annotations

import aiohttp


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
