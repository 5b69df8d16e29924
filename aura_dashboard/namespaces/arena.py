"""The /arena namespace: the intelligence arena's debates."""

from .base import PanelNamespace, PanelSpec


class ArenaNamespace(PanelNamespace):
    spec = PanelSpec(
        name="arena",
        namespace="/arena",
        feature="intelligence_arena",
        config_section="intelligence_arena",
        streams=("debates",),
    )
