"""The /chat namespace: the chat queue and its replies."""

from .base import PanelNamespace, PanelSpec


class ChatNamespace(PanelNamespace):
    spec = PanelSpec(
        name="chat",
        namespace="/chat",
        feature="chat_optimization",
        config_section="chat",
        streams=("status",),
    )
