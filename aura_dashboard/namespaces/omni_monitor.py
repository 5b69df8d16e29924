"""The /omni_monitor namespace: host metrics, GPUs, temperatures, the database, backends and alerts."""

from .base import PanelNamespace, PanelSpec


class OmniMonitorNamespace(PanelNamespace):
    spec = PanelSpec(
        name="omni_monitor",
        namespace="/omni_monitor",
        feature="omni_monitor",
        config_section="omni_monitor",
        streams=("system", "gpu", "temperature", "database", "backends", "alerts"),
    )
