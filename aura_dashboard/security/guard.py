"""Who may come in and how fast: the API key and the rate limits, for every way in.

REST requests, Engine.IO handshakes, namespace connections and Socket.IO events all ask this
one object; the HTTP middlewares (`web/security.py`) and the namespaces' connect handler are
thin adapters that only translate a request or an environ into its questions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..config.schema import SecuritySettings
from ..errors import DashboardError
from .addresses import ClientAddress
from .buckets import BucketTable, FailureDelay
from .events import SecurityEvents
from .keys import KeyRing, bearer


class Unauthorized(DashboardError):
    status, code = 401, "unauthorized"


class TooManyFailures(DashboardError):
    """An address that failed to authenticate too often is refused before its key is looked at."""

    status, code = 429, "rate_limited"

    def __init__(self, wait_s: float):
        super().__init__(f"too many failed authentications; retry in {wait_s:.1f}s")
        self.wait_s = wait_s


class AccessGuard:
    """The API key (when `security.api_key_enabled`) and the token buckets of `security.rate_limiting`.

    :param security: the `security` section.
    :param events: where failed authentications are reported (rate-limited per address).
    :param addresses: how the client address is read behind trusted proxies.
    """

    def __init__(self, security: SecuritySettings, events: SecurityEvents, addresses: ClientAddress):
        self.keys = KeyRing.from_settings(security)
        self.header = security.api_key_header
        self.events = events
        self.addresses = addresses
        limits = security.rate_limiting
        self.requests = (BucketTable(limits.requests_per_minute, limits.burst_size, limits.max_tracked_clients)
                         if limits.enabled else None)
        self.socket_events = (BucketTable(limits.socket_events_per_minute, limits.socket_burst_size,
                                          limits.max_tracked_clients) if limits.enabled else None)
        # Failed authentications of an address, on every path (REST, handshake, namespace connect).
        self.failures = FailureDelay(max_keys=limits.max_tracked_clients)

    @property
    def key_required(self) -> bool:
        return self.keys is not None

    def client(self, peer: str | None, forwarded_for: str | None) -> str:
        return self.addresses(peer, forwarded_for)

    def candidate(self, headers: Mapping[str, str], auth: Any = None) -> str | None:
        """The key a client offers: `auth.api_key` (Socket.IO), the key header, or a Bearer token."""
        offered = auth.get("api_key") if isinstance(auth, dict) else None
        return offered or headers.get(self.header) or bearer(headers.get("Authorization"))

    async def authenticate(self, candidate: str | None, *, client: str, target: str,
                           detail: dict[str, Any], hint: str) -> str | None:
        """The key id `candidate` authenticates as (None when keys are off).

        Raises `Unauthorized` (saying nothing about the key) and reports the failure otherwise;
        `hint` says where a key is expected. Each failure takes a token from the address's
        request bucket, and repeated failures lock the address out for a growing time; while
        locked out (or out of tokens) it gets `TooManyFailures` without its key being compared.
        """
        if self.keys is None:
            return None
        wait = self.failures.wait(client)
        if wait > 0:
            raise TooManyFailures(wait)
        kid = self.keys.match(candidate)
        if kid is None:
            bucket_wait = self.requests.take(client) if self.requests is not None else 0.0
            self.failures.failed(client, at_least=bucket_wait)
            reason = "missing API key" if not candidate else "wrong API key"
            await self.events.emit("auth_failed", client, target, {"reason": reason, **detail})
            raise Unauthorized(f"a valid API key is required ({hint})")
        self.failures.succeeded(client)
        return kid

    def take_request(self, client: str) -> float:
        """0.0 when this client address may make a request now, else the seconds to wait."""
        return self.requests.take(client) if self.requests is not None else 0.0

    def take_event(self, sid: str) -> float:
        """0.0 when this connection may send an event now, else the seconds to wait."""
        return self.socket_events.take(sid) if self.socket_events is not None else 0.0

    def forget(self, sid: str) -> None:
        if self.socket_events is not None:
            self.socket_events.forget(sid)
