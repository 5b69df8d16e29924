"""The /ai_system namespace: the ML backend's models and inference statistics."""

from .base import PanelNamespace, PanelSpec


class AiSystemNamespace(PanelNamespace):
    spec = PanelSpec(
        name="ai_system",
        namespace="/ai_system",
        feature="ai_system_panel",
        config_section="ai_system",
        streams=("models", "inference"),
    )
