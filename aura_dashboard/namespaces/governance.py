"""The /governance namespace: the governance service and the audit log."""

from ..contract import PanelContract
from .base import PanelNamespace


class GovernanceNamespace(PanelNamespace):
    panel = PanelContract(name="governance", namespace="/governance", feature="governance_panel",
                          config_section="governance", title="Governance")
