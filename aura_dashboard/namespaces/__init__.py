"""One Socket.IO namespace per panel: the table of panels, and their registration."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import socketio

from ..config import FeatureChange
from ..contract import PanelContract
from .ai_system import AiSystemNamespace
from .arena import ArenaNamespace
from .base import PanelNamespace
from .chat import ChatNamespace
from .governance import GovernanceNamespace
from .omni_monitor import OmniMonitorNamespace

NAMESPACE_CLASSES: tuple[type[PanelNamespace], ...] = (
    OmniMonitorNamespace, GovernanceNamespace, AiSystemNamespace, ArenaNamespace, ChatNamespace,
)
PANELS: tuple[PanelContract, ...] = tuple(cls.panel for cls in NAMESPACE_CLASSES)


def register_namespaces(sio: socketio.AsyncServer, handlers: Iterable[PanelNamespace]) -> dict[str, PanelNamespace]:
    """Register each panel's namespace on `sio`; returns them by panel name."""
    by_name = {handler.panel.name: handler for handler in handlers}
    for handler in by_name.values():
        sio.register_namespace(handler)
    return by_name


def announce_features(sio: socketio.AsyncServer, handlers: dict[str, PanelNamespace],
                      describe: Callable[[], dict]):
    """A flag listener: every namespace's clients get a `features` event, GET /api/features'
    body, so a page shows a panel or a stream switched back on without a reload.

    Connected before `close_disabled_panels`, so a panel's own clients hear it is off before
    they are dropped. Each instance of a cluster tells its own clients (it hears remote changes
    from the flag sync), so the message queue is not used.
    """

    async def announce(change: FeatureChange) -> None:
        body = describe()
        for handler in handlers.values():
            await sio.emit("features", body, namespace=handler.namespace, ignore_queue=True)

    return announce


def close_disabled_panels(handlers: dict[str, PanelNamespace]):
    """A flag listener: a panel switched off at run time drops its clients."""

    async def close(change: FeatureChange) -> None:
        if change.new:
            return
        for handler in handlers.values():
            if handler.panel.feature == change.flag:
                await handler.disconnect_all()

    return close


__all__ = ["NAMESPACE_CLASSES", "PANELS", "PanelNamespace", "announce_features", "close_disabled_panels", "register_namespaces"]
