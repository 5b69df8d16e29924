"""Which browser origins may use the dashboard, for REST (CORS) and the Socket.IO handshake.

The page's own origins come from where it is published (`dashboard.public_urls`, by default
`http://localhost:{dashboard.port}`); a localhost, 127.0.0.1 or [::1] address stands for all
three, since a browser on the machine may use any of them. `security.cors.allowed_origins`
and `dashboard.cors_origins` add other sites (with CORS enabled; `"*"` in either: any). An Origin equal to the request's Host is *not* enough:
that is the shape of a DNS-rebinding request (a hostile page whose name now points here).
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from ..config.schema import CorsSettings, DashboardSettings

log = logging.getLogger(__name__)

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
WILDCARD_HOSTS = ("", "0.0.0.0", "::")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_REFUSALS_LOGGED = 64  # distinct refused origins logged, at most


def origin_of(url: str) -> str | None:
    """`scheme://host[:port]` as a browser writes it in `Origin` (lower case, no default
    port, no path), or None when `url` has no scheme and host."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "")
    if not scheme or not host:
        return None
    if ":" in host:
        host = f"[{host}]"
    shown_port = f":{port}" if port is not None and port != _DEFAULT_PORTS.get(scheme) else ""
    return f"{scheme}://{host}{shown_port}"


def public_urls(dashboard: DashboardSettings) -> list[str]:
    """`dashboard.public_urls`, or the address the server listens on when it is empty."""
    if dashboard.public_urls:
        return list(dashboard.public_urls)
    host = "localhost" if dashboard.host in WILDCARD_HOSTS else dashboard.host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return [f"http://{host}:{dashboard.port}"]


def public_origins(dashboard: DashboardSettings) -> frozenset[str]:
    """The origins of the page itself, the loopback names standing for one another."""
    out: set[str] = set()
    for url in public_urls(dashboard):
        origin = origin_of(url)
        if origin is None:
            continue
        out.add(origin)
        scheme, rest = origin.split("://", 1)
        host, port = _split_host_port(rest)
        if host in LOOPBACK_HOSTS:
            out.update(f"{scheme}://{name}{port}" for name in LOOPBACK_HOSTS)
    return frozenset(out)


def _split_host_port(rest: str) -> tuple[str, str]:
    if rest.startswith("["):
        end = rest.index("]") + 1
        return rest[:end], rest[end:]
    host, colon, port = rest.partition(":")
    return host, f"{colon}{port}"


class AllowedOrigins:
    """The origins that may use the dashboard: `allows(origin)` for the Socket.IO handshake,
    `for_cors()` for the REST routes' CORS.

    :param dashboard: `dashboard` settings (`public_urls`, else `host` and `port`).
    :param cors: `security.cors`; with it enabled its `allowed_origins` and the dashboard's
        `cors_origins` are added, and `"*"` among them allows any origin.
    """

    def __init__(self, dashboard: DashboardSettings, cors: CorsSettings):
        self.public = public_origins(dashboard)
        listed = [*cors.allowed_origins, *dashboard.cors_origins] if cors.enabled else []
        self.extra = frozenset(o for o in map(origin_of, listed) if o != "*" and o is not None)
        self.allow_any = "*" in listed
        self.origins = self.public | self.extra
        self._refused_logged: set[str] = set()

    def allows(self, origin: str | None) -> bool:
        """True for a request without Origin (not a browser), `"*"`, or a listed origin."""
        if origin is None or self.allow_any:
            return True
        normal = origin_of(origin)
        if normal is not None and normal in self.origins:
            return True
        self._log_refusal(origin)
        return False

    def for_cors(self) -> list[str]:
        """The origins REST answers with CORS headers (`["*"]` for any)."""
        return ["*"] if self.allow_any else sorted(self.origins)

    def _log_refusal(self, origin: str) -> None:
        # Once per origin (and for a bounded number of them): an operator who opens the page
        # under a name not configured learns which key to set, a hostile page cannot flood.
        if origin in self._refused_logged or len(self._refused_logged) >= _REFUSALS_LOGGED:
            return
        self._refused_logged.add(origin)
        log.warning("origin %s refused: not a public URL of the dashboard nor an allowed origin; "
                    "add it to dashboard.public_urls (DASHBOARD_PUBLIC_URLS) if the dashboard is "
                    "served there", origin[:200],
                    extra={"key": "dashboard.public_urls", "origin": origin[:200]})


class OriginPolicy:
    """python-engineio's `cors_allowed_origins` callable over `AllowedOrigins`: a Socket.IO
    handshake from any other origin is answered 400."""

    def __init__(self, origins: AllowedOrigins):
        self.origins = origins

    def __call__(self, origin: str | None, environ: dict | None = None) -> bool:
        return self.origins.allows(origin)
