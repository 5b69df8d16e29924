"""Who is behind a request: the peer, or the client a trusted proxy names."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable


class ClientAddress:
    """The address of the client behind a request.

    `X-Forwarded-For` is believed only when the peer is one of `security.trusted_proxies`;
    the client is then the right-most forwarded address that is not itself a trusted proxy.
    """

    def __init__(self, trusted: Iterable[str]):
        self.trusted = [ipaddress.ip_network(t, strict=False) for t in trusted]

    def is_trusted(self, address: str) -> bool:
        """Whether `address` is one of `security.trusted_proxies`."""
        return self._is_trusted(address)

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.trusted)

    def __call__(self, peer: str | None, forwarded_for: str | None) -> str:
        peer = peer or "unknown"
        if not self.trusted or not forwarded_for or not self._is_trusted(peer):
            return peer
        hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
        for hop in reversed(hops):
            if not self._is_trusted(hop):
                return hop
        return hops[0] if hops else peer


