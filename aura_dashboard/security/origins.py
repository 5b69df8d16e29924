"""Which browser origins may open a Socket.IO session (`security.cors`)."""

from __future__ import annotations

from ..config.schema import CorsSettings


class OriginPolicy:
    """The page's own origin is always allowed; with CORS enabled so are the configured
    origins, and `"*"` allows any. Clients that send no Origin (scripts) are not affected."""

    def __init__(self, cors: CorsSettings):
        self.enabled = cors.enabled
        self.allow_any = cors.enabled and "*" in cors.allowed_origins
        self.origins = frozenset(o.rstrip("/") for o in cors.allowed_origins) if cors.enabled else frozenset()

    def __call__(self, origin: str | None, environ: dict | None = None) -> bool:
        if origin is None or self.allow_any or origin.rstrip("/") in self.origins:
            return True
        return environ is not None and origin.rstrip("/") == _own_origin(environ)


def _own_origin(environ: dict) -> str | None:
    host = environ.get("HTTP_HOST")
    if not host:
        return None
    return f"{environ.get('wsgi.url_scheme', 'http')}://{host}"
