"""What every panel namespace shares: who may join, subscribing to streams, error answers.

The namespace is the Socket.IO adapter of the security package: it translates a connection's
environ and `auth` into `AccessGuard`'s questions, and a refusal into a connect error.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import socketio

from ..contract import PanelContract
from ..errors import DashboardError, ack_error
from ..realtime.hub import StreamHub
from ..realtime.subscriptions import ack_limit, subscribe, unsubscribe
from ..security import AccessGuard, TooManyFailures, Unauthorized

log = logging.getLogger(__name__)


def answers_errors(handler: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """An event handler whose failures become `{"ok": false, "error": ...}` acknowledgements.

    A client's mistake (DashboardError) is answered with its code; anything else is logged
    and answered `internal_error`. Either way the connection stays up.
    """

    @functools.wraps(handler)
    async def wrapper(self, sid: str, *args: Any) -> dict[str, Any]:
        if len(args) > 1:
            return ack_error("bad_request", "one payload argument expected")
        try:
            return await handler(self, sid, *(args or (None,)))
        except DashboardError as exc:
            return ack_error(exc.code, exc.message)
        except Exception:
            log.exception("event %s on %s failed", handler.__name__, self.namespace)
            return ack_error("internal_error", "the server failed to handle this event")

    return wrapper


def refused(code: str, message: str) -> socketio.exceptions.ConnectionRefusedError:
    return socketio.exceptions.ConnectionRefusedError(message, {"code": code, "message": message})


class PanelNamespace(socketio.AsyncNamespace):
    """A thin Socket.IO namespace: refuses connections while its panel is off, and lets
    clients subscribe to the panel's streams.

    :param hub: the stream hub (the streams this namespace offers, history and replay).
    :param guard: the API key and the per-connection event bucket.
    :param enabled: whether the panel is on now (its section's switch and feature flag).
    :param history_points: envelopes of history in a subscribe answer.
    :param max_ack_bytes: bytes of one acknowledgement at most (`websocket.max_ack_bytes`).
    :param max_ack_multiple: an acknowledgement's bytes at most per byte of its request
        (`websocket.max_ack_multiple`).
    """

    panel: PanelContract

    def __init__(self, *, hub: StreamHub, guard: AccessGuard, enabled: Callable[[], bool],
                 history_points: int, max_ack_bytes: int = 1_048_576, max_ack_multiple: int = 16_384):
        super().__init__(self.panel.namespace)
        self.hub = hub
        self.guard = guard
        self._enabled = enabled
        self.history_points = history_points
        self.who: dict[str, tuple[str, str]] = {}  # sid -> (client address, actor)
        self.max_ack_bytes = max_ack_bytes
        self.max_ack_multiple = max_ack_multiple

    def ack_limit(self, event: str, payload: Any) -> int:
        """Bytes the acknowledgement of this request may take (see `ack_limit`)."""
        return ack_limit(event, payload, self.max_ack_bytes, self.max_ack_multiple)

    @property
    def enabled(self) -> bool:
        return self._enabled()

    async def on_connect(self, sid: str, environ: dict, auth: object = None) -> None:
        kid = await self._authorize(environ, auth)
        if not self.enabled:
            p = self.panel
            raise refused("panel_disabled", f"the {p.name} panel is disabled "
                                            f"(features.{p.feature} or panels.{p.config_section}.enabled)")
        client = self._client(environ)
        self.who[sid] = (client, kid or f"socket:{client}")  # for requests forwarded on its behalf

    def _client(self, environ: dict) -> str:
        request = environ.get("aiohttp.request")
        headers = request.headers if request is not None else {}
        peer = request.remote if request is not None else environ.get("REMOTE_ADDR")
        return self.guard.client(peer, headers.get("X-Forwarded-For"))

    async def _authorize(self, environ: dict, auth: object) -> str | None:
        guard = self.guard
        if not guard.key_required:
            return None
        request = environ.get("aiohttp.request")
        headers = request.headers if request is not None else {}
        client = self._client(environ)
        try:
            return await guard.authenticate(guard.candidate(headers, auth), client=client, target=self.namespace,
                                            detail={"transport": "socket.io"},
                                            hint=f"auth.api_key or the {guard.header} header")
        except (Unauthorized, TooManyFailures) as exc:
            raise refused(exc.code, exc.message) from None

    @answers_errors
    async def on_subscribe(self, sid: str, payload: Any) -> dict[str, Any]:
        return await subscribe(self.server, self.hub, sid, self.namespace, payload, self.history_points,
                               self.ack_limit("subscribe", payload))

    @answers_errors
    async def on_unsubscribe(self, sid: str, payload: Any) -> dict[str, Any]:
        return await unsubscribe(self.server, self.hub, sid, self.namespace, payload)

    async def trigger_event(self, event: str, *args: Any) -> Any:
        """Events without a handler are answered `unknown_event` instead of being dropped."""
        handler_name = "on_" + event
        if args:
            if event == "disconnect":
                self.guard.forget(args[0])
                self.who.pop(args[0], None)
            elif event != "connect":
                wait = self.guard.take_event(args[0])
                if wait > 0:
                    return ack_error("rate_limited", f"too many events; retry in {wait:.1f}s")
        if event not in ("connect", "disconnect") and not hasattr(self, handler_name):
            sid = args[0] if args else None
            log.debug("unknown event %r from %s on %s", event, sid, self.namespace)
            return ack_error("unknown_event", f"{self.namespace} has no event {event!r}")
        return await super().trigger_event(event, *args)

    def clients(self) -> int:
        return sum(1 for _ in self.server.manager.get_participants(self.namespace, None))

    async def disconnect_all(self) -> int:
        """Disconnect every client of this namespace (the panel was switched off)."""
        sids = [sid for sid, _ in self.server.manager.get_participants(self.namespace, None)]
        for sid in sids:
            await self.server.disconnect(sid, namespace=self.namespace)
        return len(sids)
