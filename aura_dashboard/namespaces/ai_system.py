"""The /ai_system namespace: the ML backend's models and inference statistics."""

from ..contract import PanelContract
from .base import PanelNamespace


class AiSystemNamespace(PanelNamespace):
    panel = PanelContract(name="ai_system", namespace="/ai_system", feature="ai_system_panel",
                          config_section="ai_system", title="AI system")
