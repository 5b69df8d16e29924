"""In a cluster, the arena and the inference statistics live on the lease holder.

Requests for them that reach another instance (REST from producers, arena events from
browsers) are forwarded to the holder's advertised address and its answer is passed back,
so every instance serves the same debates and the same statistics. One process alone
forwards nothing (`LocalOnly`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson

from ..config.schema import SecuritySettings
from ..errors import DashboardError
from .cluster_link import ClusterLink

log = logging.getLogger(__name__)
FORWARDED = "X-Aura-Forwarded"
OWNED_BY_HOLDER = ("/api/arena/", "/api/ingest/")
PASSED_HEADERS = ("Content-Type", "Authorization", "X-API-Key", "X-Forwarded-For")
FORWARD_TIMEOUT_S = 10.0


class LocalOnly:
    """One process: everything is served here."""

    def must_forward(self, already_forwarded: bool = False) -> bool:
        return False

    async def forward(self, method: str, path: str, body: bytes | None,
                      headers: dict[str, str]) -> tuple[int, Any]:
        raise DashboardError("nothing to forward to", code="unavailable", status=503)

    async def forward_event(self, path: str, payload: Any) -> dict[str, Any]:
        raise DashboardError("nothing to forward to", code="unavailable", status=503)


class HolderForwarder(LocalOnly):
    """Sends requests for the holder's state to the lease holder while this instance is not it.

    :param cluster: the cluster link (the lease, the holder's address).
    :param session: the shared outbound HTTP session.
    :param security: the `security` section (the key a forwarded arena event authenticates with).
    """

    def __init__(self, cluster: ClusterLink, session: Callable[[], aiohttp.ClientSession],
                 security: SecuritySettings):
        self.cluster = cluster
        self._session = session
        self.security = security

    def must_forward(self, already_forwarded: bool = False) -> bool:
        return not self.cluster.lease.held and not already_forwarded

    async def forward(self, method: str, path: str, body: bytes | None,
                      headers: dict[str, str]) -> tuple[int, Any]:
        """Send one request to the lease holder; returns (status, JSON body)."""
        cluster = self.cluster
        try:
            target = await cluster.holder_url()
        except Exception as exc:
            raise DashboardError(f"the cluster cannot be reached: {exc}", code="unavailable", status=503) from None
        if not target or target == cluster.url:
            raise DashboardError("no instance holds the arena right now; try again in a moment",
                                 code="unavailable", status=503)
        try:
            async with self._session().request(method, target + path, data=body,
                                               headers={**headers, FORWARDED: cluster.owner},
                                               timeout=aiohttp.ClientTimeout(total=FORWARD_TIMEOUT_S)) as response:
                return response.status, orjson.loads(await response.read() or b"null")
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError) as exc:
            raise DashboardError(f"the instance holding the arena ({target}) did not answer: {exc}",
                                 code="unavailable", status=503) from None

    async def forward_event(self, path: str, payload: Any) -> dict[str, Any]:
        """An arena event on a non-holder, as the holder's REST answer in acknowledgement shape."""
        headers = {"Content-Type": "application/json"}
        security = self.security
        if security.api_key_enabled and security.api_keys():  # the browser was let in by this instance
            headers[security.api_key_header] = security.api_keys()[0]
        status, data = await self.forward("POST", path, orjson.dumps(payload), headers)
        if isinstance(data, dict) and "error" in data:
            return {"ok": False, **data}
        return data
