"""The /omni_monitor namespace: host metrics, GPUs, temperatures, the database, backends and alerts."""

from ..contract import PanelContract
from .base import PanelNamespace


class OmniMonitorNamespace(PanelNamespace):
    panel = PanelContract(name="omni_monitor", namespace="/omni_monitor", feature="omni_monitor",
                          config_section="omni_monitor", title="Omni monitor")
