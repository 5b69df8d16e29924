"""User-facing failures, each with a stable code; mapped once to `{"error": {code, message}}`."""

from __future__ import annotations


class DashboardError(Exception):
    """A failure the client caused or must know about."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status

    def body(self) -> dict:
        return error_body(self.code, self.message)


class BadRequest(DashboardError):
    status, code = 400, "bad_request"


class NotFound(DashboardError):
    status, code = 404, "not_found"


class SwitchedOff(DashboardError):
    """A feature flag turned on while the configuration switch its streams need is off."""
    status, code = 409, "switched_off_in_configuration"


class ClusterStoreUnavailable(DashboardError):
    """The cluster's shared buffer (Redis) cannot be read now."""
    status, code = 503, "cluster_unavailable"


class AppendUnsure(ClusterStoreUnavailable):
    """An append to the cluster's buffer timed out: it may have landed there all the same,
    without the other instances being sent it (they are owed a resync)."""


class PanelDisabled(DashboardError):
    status, code = 403, "panel_disabled"


def error_body(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


def ack_error(code: str, message: str) -> dict:
    """The same shape inside a Socket.IO acknowledgement."""
    return {"ok": False, **error_body(code, message)}
