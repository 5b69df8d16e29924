"""One Socket.IO namespace per panel, registered from one table."""

from __future__ import annotations

import socketio

from ..config import FeatureChange, RuntimeOverrides, Settings
from ..realtime.hub import StreamHub
from .ai_system import AiSystemNamespace
from .arena import ArenaNamespace
from .base import PanelNamespace, PanelSpec, panel_enabled
from .chat import ChatNamespace
from .governance import GovernanceNamespace
from .omni_monitor import OmniMonitorNamespace

NAMESPACE_CLASSES: tuple[type[PanelNamespace], ...] = (
    OmniMonitorNamespace, GovernanceNamespace, AiSystemNamespace, ArenaNamespace, ChatNamespace,
)
PANELS: tuple[PanelSpec, ...] = tuple(cls.spec for cls in NAMESPACE_CLASSES)


def register_namespaces(sio: socketio.AsyncServer, settings: Settings,
                        overrides: RuntimeOverrides, hub: StreamHub) -> dict[str, PanelNamespace]:
    """Register every panel's namespace; a panel switched off at run time drops its clients."""
    handlers = {cls.spec.name: cls(settings, overrides, hub) for cls in NAMESPACE_CLASSES}
    for handler in handlers.values():
        sio.register_namespace(handler)

    async def close_disabled_panels(change: FeatureChange) -> None:
        if change.new:
            return
        for handler in handlers.values():
            if handler.spec.feature == change.flag:
                await handler.disconnect_all()

    overrides.add_listener(close_disabled_panels)
    return handlers


__all__ = ["NAMESPACE_CLASSES", "PANELS", "PanelNamespace", "PanelSpec", "panel_enabled",
           "register_namespaces"]
