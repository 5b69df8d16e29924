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

from ..errors import DashboardError
from ..outbound import ReplyTooLarge, read_limited
from .cluster_link import ClusterLink

log = logging.getLogger(__name__)
# Headers between instances, believed only with the cluster's secret in PEER_SECRET (a client
# may send them: they then count for nothing and are never passed on).
FORWARDED = "X-Aura-Forwarded"     # the forwarding instance (its lease owner id)
PEER_SECRET = "X-Aura-Peer"        # the cluster's instance-to-instance secret
ORIGINAL_CLIENT = "X-Aura-Client"  # the client's address, as the forwarding instance saw it
ORIGINAL_ACTOR = "X-Aura-Actor"    # who the forwarding instance authenticated (key id or address)
INTERNAL_HEADERS = (FORWARDED, PEER_SECRET, ORIGINAL_CLIENT, ORIGINAL_ACTOR)
OWNED_BY_HOLDER = ("/api/arena/", "/api/ingest/")
# Only the body's type is passed on: the client was authenticated and rate-limited where it
# came in, and the holder believes the forwarding instance (no API key travels).
PASSED_HEADERS = ("Content-Type",)
FORWARD_TIMEOUT_S = 10.0


class LocalOnly:
    """One process: everything is served here."""

    def must_forward(self, already_forwarded: bool = False) -> bool:
        return False

    async def forward(self, method: str, path: str, body: bytes | None,
                      headers: dict[str, str], *, client: str, actor: str) -> tuple[int, Any]:
        raise DashboardError("nothing to forward to", code="unavailable", status=503)

    async def forward_event(self, path: str, payload: Any, *, client: str, actor: str) -> dict[str, Any]:
        raise DashboardError("nothing to forward to", code="unavailable", status=503)


class HolderForwarder(LocalOnly):
    """Sends requests for the holder's state to the lease holder while this instance is not it.

    :param cluster: the cluster link (the lease, the holder's address).
    :param session: the shared outbound HTTP session.
    :param max_reply_bytes: bytes of the holder's answer at most (`backends.max_reply_bytes`).
    """

    def __init__(self, cluster: ClusterLink, session: Callable[[], aiohttp.ClientSession],
                 max_reply_bytes: int = 4_194_304):
        self.cluster = cluster
        self._session = session
        self.max_reply_bytes = max_reply_bytes

    def must_forward(self, already_forwarded: bool = False) -> bool:
        return not self.cluster.lease.held and not already_forwarded

    async def forward(self, method: str, path: str, body: bytes | None,
                      headers: dict[str, str], *, client: str, actor: str) -> tuple[int, Any]:
        """Send one request to the lease holder as this instance, for `client` and `actor`;
        returns (status, JSON body)."""
        cluster = self.cluster
        try:
            target = await cluster.holder_url()
            secret = await cluster.peer_secret()
        except Exception as exc:
            raise DashboardError(f"the cluster cannot be reached: {exc}", code="unavailable", status=503) from None
        if not target or target == cluster.url:
            raise DashboardError("no instance holds the arena right now; try again in a moment",
                                 code="unavailable", status=503)
        try:
            sent = {k: v for k, v in headers.items() if k in PASSED_HEADERS}
            sent.update({FORWARDED: cluster.owner, PEER_SECRET: secret,
                         ORIGINAL_CLIENT: client[:200], ORIGINAL_ACTOR: actor[:200]})
            async with self._session().request(method, target + path, data=body, headers=sent,
                                               timeout=aiohttp.ClientTimeout(total=FORWARD_TIMEOUT_S)) as response:
                return response.status, orjson.loads(await read_limited(response, self.max_reply_bytes) or b"null")
        except ReplyTooLarge as exc:
            raise DashboardError(f"the answer of the instance holding the arena ({target}) is too large: {exc}",
                                 code="reply_too_large", status=502) from None
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError) as exc:
            raise DashboardError(f"the instance holding the arena ({target}) did not answer: {exc}; "
                                 "try again in a moment (another instance takes over within the lease TTL)",
                                 code="unavailable", status=503) from None

    async def forward_event(self, path: str, payload: Any, *, client: str, actor: str) -> dict[str, Any]:
        """An arena event on a non-holder, as the holder's REST answer in acknowledgement shape
        (the browser was let in here; the holder believes this instance, whatever its keys)."""
        status, data = await self.forward("POST", path, orjson.dumps(payload),
                                          {"Content-Type": "application/json"}, client=client, actor=actor)
        if isinstance(data, dict) and "error" in data:
            return {"ok": False, **data}
        return data
