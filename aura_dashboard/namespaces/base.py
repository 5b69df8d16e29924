"""What every panel namespace shares: who may join, and the panel's on/off state."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import socketio

from ..config import RuntimeOverrides, Settings

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


class PanelNamespace(socketio.AsyncNamespace):
    """A thin Socket.IO namespace: refuses connections while its panel is off."""

    spec: PanelSpec

    def __init__(self, settings: Settings, overrides: RuntimeOverrides):
        super().__init__(self.spec.namespace)
        self.settings = settings
        self.overrides = overrides

    @property
    def enabled(self) -> bool:
        return panel_enabled(self.spec, self.settings, self.overrides)

    async def on_connect(self, sid: str, environ: dict, auth: object = None) -> None:
        if not self.enabled:
            message = (f"the {self.spec.name} panel is disabled "
                       f"(features.{self.spec.feature} or panels.{self.spec.config_section}.enabled)")
            raise socketio.exceptions.ConnectionRefusedError(
                message, {"code": "panel_disabled", "message": message})

    async def disconnect_all(self) -> int:
        """Disconnect every client of this namespace (the panel was switched off)."""
        sids = [sid for sid, _ in self.server.manager.get_participants(self.namespace, None)]
        for sid in sids:
            await self.server.disconnect(sid, namespace=self.namespace)
        return len(sids)
