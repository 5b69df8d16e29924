"""The `governance` stream: the governance service's health and a summary of the audit log."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..collectors.backends import BackendState
from ..contract import FieldSpec, PayloadModel, StreamContract
from .audit import AuditEntry, AuditStore


class GovernanceSampler:
    """`await sample()`: the `governance` stream's data.

    :param service_state: the governance backend's latest health (from the backend monitor).
    :param audit: the audit store, summarised over the last hour.
    """

    def __init__(self, service_state: Callable[[], dict[str, Any]], audit: AuditStore):
        self._service_state = service_state
        self._audit = audit

    async def sample(self) -> dict[str, Any]:
        return {"service": self._service_state(), "audit": await self._audit.summary()}


class AuditSummary(PayloadModel):
    last_hour: dict[str, int]
    last: AuditEntry | None
    pending_to_postgres: int
    postgres: str


class GovernanceData(PayloadModel):
    service: BackendState
    audit: AuditSummary


GOVERNANCE = StreamContract(
    name="governance", namespace="/governance", payload=GovernanceData, shared=True,
    summary="The governance service's health and a summary of the audit log.",
    switches=("panels.governance.enabled",), feature="governance_panel",
    interval=("updates.intervals.governance_data",),
    fields=(
        FieldSpec("service.status", "status", "the governance service's health (as in the backends stream)"),
        FieldSpec("service.latency_ms", "ms", "its last health check's latency", series=True),
        FieldSpec("service.error_rate", "ratio", "its failed checks over the window", series=True),
        FieldSpec("service.checks", "count", "health checks made so far (0: never checked, as with "
                  "health_checks.enabled off; the status is then \"unknown\")"),
        FieldSpec("audit.last_hour.*", "count", "audited actions of the last hour, by action"),
        FieldSpec("audit.last", "object", "the newest audit entry"),
        FieldSpec("audit.pending_to_postgres", "count", "audit entries waiting to be copied to PostgreSQL",
                  series=True),
        FieldSpec("audit.postgres", "status", "the audit log's PostgreSQL copy: up, down, unknown or disabled"),
    ),
)
