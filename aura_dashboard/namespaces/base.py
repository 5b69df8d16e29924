"""What every panel namespace shares: who may join, subscribing to streams, error answers."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import socketio

from ..config import RuntimeOverrides, Settings
from ..errors import DashboardError, ack_error
from ..realtime.hub import StreamHub
from ..realtime.limits import SocketGuard
from ..realtime.subscriptions import subscribe, unsubscribe

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PanelSpec:
    """A panel: its namespace, its feature flag, its `panels.*` section and its streams."""

    name: str
    namespace: str
    feature: str
    config_section: str
    streams: tuple[str, ...]


def panel_enabled(spec: PanelSpec, settings: Settings, overrides: RuntimeOverrides) -> bool:
    section = getattr(settings.panels, spec.config_section)
    return section.enabled and overrides.is_on(spec.feature)


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


class PanelNamespace(socketio.AsyncNamespace):
    """A thin Socket.IO namespace: refuses connections while its panel is off, and lets
    clients subscribe to the panel's streams."""

    spec: PanelSpec
    # The API key and the per-connection event bucket; create_app sets it on every namespace.
    guard: SocketGuard | None = None

    def __init__(self, settings: Settings, overrides: RuntimeOverrides, hub: StreamHub):
        super().__init__(self.spec.namespace)
        self.settings = settings
        self.overrides = overrides
        self.hub = hub

    @property
    def enabled(self) -> bool:
        return panel_enabled(self.spec, self.settings, self.overrides)

    @property
    def history_points(self) -> int:
        return self.settings.panels.omni_monitor.graph_history_points

    async def on_connect(self, sid: str, environ: dict, auth: object = None) -> None:
        if self.guard is not None:
            await self.guard.authorize(self.namespace, environ, auth)
        if not self.enabled:
            message = (f"the {self.spec.name} panel is disabled "
                       f"(features.{self.spec.feature} or panels.{self.spec.config_section}.enabled)")
            raise socketio.exceptions.ConnectionRefusedError(
                message, {"code": "panel_disabled", "message": message})

    @answers_errors
    async def on_subscribe(self, sid: str, payload: Any) -> dict[str, Any]:
        return await subscribe(self.server, self.hub, sid, self.namespace, payload, self.history_points)

    @answers_errors
    async def on_unsubscribe(self, sid: str, payload: Any) -> dict[str, Any]:
        return await unsubscribe(self.server, self.hub, sid, self.namespace, payload)

    async def trigger_event(self, event: str, *args: Any) -> Any:
        """Events without a handler are answered `unknown_event` instead of being dropped."""
        handler_name = "on_" + event
        if self.guard is not None and args:
            if event == "disconnect":
                self.guard.forget(args[0])
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
