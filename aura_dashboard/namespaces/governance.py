"""The /governance namespace: the governance service and the audit log."""

from .base import PanelNamespace, PanelSpec


class GovernanceNamespace(PanelNamespace):
    spec = PanelSpec(
        name="governance",
        namespace="/governance",
        feature="governance_panel",
        config_section="governance",
        streams=("governance", "audit"),
    )
