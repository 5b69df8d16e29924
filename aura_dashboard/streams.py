"""The table of every stream: its namespace and when it is on.

A stream is on while its configuration section and its feature flag (as overridden at run
time) say so; the emitters follow this, and `subscribe` refuses a stream that is off with
`stream_disabled`. Later panels add their producers, never a second table.
"""

from __future__ import annotations

from collections.abc import Callable

from .config import RuntimeOverrides, Settings
from .realtime.hub import StreamSpec


def stream_specs(settings: Settings, overrides: RuntimeOverrides) -> list[StreamSpec]:
    m, p, flag = settings.monitoring, settings.panels, overrides.is_on

    def on(config: bool, feature: str | None = None) -> Callable[[], bool]:
        return (lambda: config and flag(feature)) if feature else (lambda: config)

    omni, gov, ai = "/omni_monitor", "/governance", "/ai_system"
    return [
        StreamSpec("system", omni, on(m.system.enabled, "system_monitoring")),
        # GPU monitoring needs both the collector switch (ENABLE_GPU_MONITORING) and the
        # feature flag (FEATURE_GPU_MONITORING, the one PATCH /api/features flips).
        StreamSpec("gpu", omni, on(m.gpu.enabled, "gpu_monitoring")),
        StreamSpec("temperature", omni, on(m.temperature.enabled, "temperature_monitoring")),
        # Shared streams: in a cluster only the holder of the lease samples them.
        StreamSpec("database", omni, on(bool(settings.backends.database.host), "database_monitoring"),
                   shared=True),
        StreamSpec("backends", omni, on(settings.health_checks.enabled), shared=True),
        StreamSpec("alerts", omni, on(True)),
        StreamSpec("governance", gov, on(p.governance.enabled, "governance_panel"), shared=True),
        StreamSpec("audit", gov, on(p.governance.enabled and p.governance.show_audit_logs, "governance_panel")),
        StreamSpec("models", ai, on(p.ai_system.enabled, "ai_system_panel"), shared=True),
        StreamSpec("inference", ai, on(p.ai_system.enabled and p.ai_system.show_inference_stats,
                                       "ai_system_panel"), shared=True),
        StreamSpec("debates", "/arena", on(p.intelligence_arena.enabled, "intelligence_arena")),
        StreamSpec("status", "/chat", on(p.chat.enabled, "chat_optimization")),
    ]
