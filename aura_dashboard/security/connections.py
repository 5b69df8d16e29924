"""Caps on open connections: per client address and in total, checked as each one is accepted.

aiohttp has no per-connection hook, so the cap sits between the listening socket and aiohttp's
protocol: `ConnectionCaps.factory(inner)` is the protocol factory handed to `create_server`.
A connection over a cap is answered at once with a 503 `too_many_connections` and closed, before
a byte of it is read, so that half-sent request heads from one address (slowloris) can neither
exhaust the process's file descriptors nor starve other clients.

Past the total cap, an address that holds no connection yet is still admitted, up to `reserve`
more: a health probe (`/healthz`) keeps answering while the cap holds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import time
from collections import Counter
from collections.abc import Callable

log = logging.getLogger(__name__)

# File descriptors the process keeps for itself (database, Redis, log and store files, the
# event loop) when the total cap is derived from its descriptor limit.
FD_MARGIN = 64
RESERVE = 32
# Connections accepted in one go before the caps see them (the accept loop's batch); three
# batches may be in flight at once, so as many descriptors are kept for them.
ACCEPT_BATCH = 16
MIN_TOTAL = 16
SUMMARY_INTERVAL_S = 60.0


def refusal(reason: str) -> bytes:
    body = json.dumps({"error": {"code": "too_many_connections", "message": reason}}).encode()
    head = ("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n")
    return head.encode() + body


def descriptor_limit() -> int | None:
    """The soft RLIMIT_NOFILE of this process, or None when unlimited."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


def effective_total(configured: int, fd_limit: int | None, reserve: int = RESERVE) -> int:
    """`configured`, lowered so that the total, the reserve and the process's own descriptors fit
    under the descriptor limit (a server out of descriptors answers nobody, /healthz included)."""
    if fd_limit is None:
        return configured
    return max(MIN_TOTAL, min(configured, fd_limit - FD_MARGIN - 3 * ACCEPT_BATCH - reserve))


class ConnectionCaps:
    """Counts open connections per peer address; `admit` says whether one more may open."""

    def __init__(self, per_address: int, total: int, *, reserve: int = RESERVE,
                 exempt: Callable[[str], bool] = lambda address: False,
                 clock: Callable[[], float] = time.monotonic):
        self.per_address = per_address
        self.total = total
        self.reserve = reserve
        self._exempt = exempt
        self._clock = clock
        self.open: Counter[str] = Counter()
        self.count = 0
        self.refused: Counter[str] = Counter()  # by reason, since the last summary
        self._summary_at: float | None = None

    def admit(self, address: str) -> str | None:
        """None when a connection from `address` may open (and it is counted), else why not."""
        held = self.open[address]
        if held >= self.per_address and not self._exempt(address):
            kind = "per_address"
            reason = f"at most {self.per_address} connections per address (dashboard.max_connections_per_address)"
        elif self.count >= self.total and (held > 0 or self.count >= self.total + self.reserve):
            kind = "total"
            reason = f"at most {self.total} connections in total (dashboard.max_connections)"
        else:
            self.open[address] += 1
            self.count += 1
            return None
        self._refused(kind)
        return reason

    def release(self, address: str) -> None:
        self.count -= 1
        left = self.open[address] - 1
        if left > 0:
            self.open[address] = left
        else:
            del self.open[address]

    def _refused(self, kind: str) -> None:
        # Refusals are counted and said once a minute, never once per connection (a flood of
        # connections must not become a flood of log lines).
        self.refused[kind] += 1
        now = self._clock()
        if self._summary_at is None or now - self._summary_at >= SUMMARY_INTERVAL_S:
            log.warning("connections refused since the last report: %s; open: %d (cap %d)",
                        dict(self.refused), self.count, self.total)
            self.refused.clear()
            self._summary_at = now

    def factory(self, inner: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        """A protocol factory for `create_server` that admits connections before `inner` sees them."""
        return lambda: _CappedProtocol(self, inner)


class _CappedProtocol(asyncio.Protocol):
    """Admits the connection (or refuses it) then passes every call on to the real protocol."""

    __slots__ = ("_caps", "_inner_factory", "_inner", "_address")

    def __init__(self, caps: ConnectionCaps, inner: Callable[[], asyncio.Protocol]):
        self._caps = caps
        self._inner_factory = inner
        self._inner: asyncio.Protocol | None = None
        self._address: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        address = peer[0] if isinstance(peer, tuple) and peer else "unknown"
        reason = self._caps.admit(address)
        if reason is not None:
            transport.write(refusal(reason))  # type: ignore[attr-defined]
            transport.close()
            return
        self._address = address
        self._inner = self._inner_factory()
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._inner is None:
            return
        if self._address is not None:
            self._caps.release(self._address)
            self._address = None
        self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()
