"""Typed, frozen settings: one model per section of `dashboard_config.yaml`.

The shipped YAML is the single source of default values: a user's file is merged over it
before validation, so every field here is required and carries no default of its own.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
)


def _split_list(value: object) -> object:
    """A list may also come from one environment variable, comma-separated."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _check_url(schemes: tuple[str, ...]):
    def check(value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in schemes or not parts.netloc:
            raise ValueError(f"is not a {'/'.join(schemes)} URL")
        return value.rstrip("/")

    return check


def _check_path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError("must start with '/'")
    return value


def _check_optional_http(value: str) -> str:
    return _check_url(("http", "https"))(value) if value else value


def _check_broker(value: str) -> str:
    if value and (urlsplit(value).scheme not in ("redis", "rediss", "amqp", "amqps")
                  or not urlsplit(value).netloc):
        raise ValueError("is not a redis://, rediss://, amqp:// or amqps:// URL (or empty)")
    return value


def _check_http_urls(value: list[str]) -> list[str]:
    check = _check_url(("http", "https"))
    out = []
    for item in value:
        try:
            out.append(check(item))
        except ValueError:
            raise ValueError(f"{item!r} is not a http/https URL") from None
    return out


def _check_networks(value: list[str]) -> list[str]:
    for item in value:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or network") from None
    return value


StrList = Annotated[list[str], BeforeValidator(_split_list)]
HttpUrl = Annotated[str, AfterValidator(_check_url(("http", "https")))]
WsUrl = Annotated[str, AfterValidator(_check_url(("ws", "wss")))]
UrlPath = Annotated[str, AfterValidator(_check_path)]
Port = Annotated[int, Field(ge=1, le=65535)]
PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
Percent = Annotated[float, Field(ge=0, le=100)]


class Section(BaseModel):
    """Base of every section: immutable, strict about shapes, lax about strings."""

    # The loader drops unknown keys with a warning that names them, before validation.
    model_config = ConfigDict(frozen=True, extra="forbid")


# 1. dashboard ------------------------------------------------------------------------------
class DashboardSettings(Section):
    host: str
    port: Port
    environment: Literal["development", "staging", "production"]
    cors_origins: StrList
    instance_name: str
    advertise_url: Annotated[str, AfterValidator(_check_optional_http)]
    # Where browsers open the dashboard; empty: http://localhost:{port} (see `origins.py`).
    public_urls: Annotated[list[str], BeforeValidator(_split_list), AfterValidator(_check_http_urls)]
    # A request body must arrive within this (slow uploads hold a connection and a handler).
    body_timeout_s: Annotated[float, Field(gt=0)]
    # A request head (and an idle keep-alive connection) is given this long.
    header_timeout_s: Annotated[float, Field(gt=0)]
    # Open connections at most (lowered to fit the process's descriptor limit), and per client
    # address (a trusted proxy is held by the total only); see `security/connections.py`.
    max_connections: PositiveInt
    max_connections_per_address: PositiveInt


# 2. websocket ------------------------------------------------------------------------------
class ReconnectSettings(Section):
    enabled: bool
    max_attempts: NonNegativeInt
    initial_delay_ms: PositiveInt
    max_delay_ms: PositiveInt
    backoff_multiplier: Annotated[float, Field(ge=1)]


class WebSocketSettings(Section):
    path: UrlPath
    reconnect: ReconnectSettings
    connect_timeout_ms: PositiveInt
    ping_interval_ms: PositiveInt
    pong_timeout_ms: PositiveInt
    message_buffer_size: PositiveInt
    max_message_size_bytes: PositiveInt
    max_client_backlog: PositiveInt
    max_client_backlog_bytes: Annotated[int, Field(ge=65_536)]
    max_ack_bytes: Annotated[int, Field(ge=4096)]
    # An acknowledgement is at most this many times its request's size (and max_ack_bytes).
    max_ack_multiple: Annotated[int, Field(ge=16)]
    message_queue: Annotated[str, AfterValidator(_check_broker)]
    cluster_name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
    lease_ttl_ms: Annotated[int, Field(ge=1000)]


# 3. updates --------------------------------------------------------------------------------
class IntervalSettings(Section):
    system_metrics: PositiveInt
    gpu_metrics: PositiveInt
    database_metrics: PositiveInt
    model_status: PositiveInt
    governance_data: PositiveInt
    chat_status: PositiveInt


class UpdateSettings(Section):
    intervals: IntervalSettings
    batch_updates: bool
    batch_interval_ms: PositiveInt
    compression_enabled: bool
    compression_threshold_bytes: NonNegativeInt
    # WebSocket permessage-deflate; off like Node socket.io's default (docs/benchmarks.md).
    websocket_compression: bool = False


# 4. monitoring -----------------------------------------------------------------------------
class CpuSettings(Section):
    enabled: bool
    include_per_cpu: bool


class MemorySettings(Section):
    enabled: bool
    include_virtual: bool


class DiskSettings(Section):
    enabled: bool
    monitor_paths: StrList


class NetworkSettings(Section):
    enabled: bool
    interfaces: StrList


class SystemMonitoringSettings(Section):
    enabled: bool
    cpu: CpuSettings
    memory: MemorySettings
    disk: DiskSettings
    network: NetworkSettings


class GpuMonitoringSettings(Section):
    enabled: bool
    include_processes: bool


class TemperatureMonitoringSettings(Section):
    enabled: bool
    sample_interval_ms: PositiveInt


class ThresholdSettings(Section):
    cpu_percent: Percent
    memory_percent: Percent
    disk_percent: Percent
    gpu_memory_percent: Percent
    consecutive_samples: PositiveInt
    hysteresis_margin_percent: Percent


class MonitoringSettings(Section):
    system: SystemMonitoringSettings
    gpu: GpuMonitoringSettings
    temperature: TemperatureMonitoringSettings
    thresholds: ThresholdSettings


# 5. backends -------------------------------------------------------------------------------
class McpBackendSettings(Section):
    url: HttpUrl
    health_check_interval_ms: PositiveInt


class MlBackendSettings(Section):
    url: HttpUrl
    health_check_interval_ms: PositiveInt
    models_path: UrlPath


class GovernanceBackendSettings(Section):
    url: HttpUrl
    health_check_interval_ms: PositiveInt


class DatabaseSettings(Section):
    host: str
    port: Port
    database: str
    username: str
    password: SecretStr
    pool_size: PositiveInt
    connection_timeout_ms: PositiveInt


class BackendSettings(Section):
    mcp: McpBackendSettings
    ml: MlBackendSettings
    governance: GovernanceBackendSettings
    database: DatabaseSettings
    max_reply_bytes: Annotated[int, Field(ge=1024)]


# 6. features -------------------------------------------------------------------------------
class FeatureSettings(Section):
    real_time_updates: bool
    websocket_fallback: bool
    system_monitoring: bool
    gpu_monitoring: bool
    temperature_monitoring: bool
    database_monitoring: bool
    governance_panel: bool
    ai_system_panel: bool
    intelligence_arena: bool
    omni_monitor: bool
    chat_optimization: bool
    debug_mode: bool
    performance_metrics: bool


# 7. logging --------------------------------------------------------------------------------
LogLevel = Annotated[
    Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
    BeforeValidator(lambda v: v.upper() if isinstance(v, str) else v),
]


class LogFileSettings(Section):
    enabled: bool
    path: str
    max_size_mb: PositiveInt
    backup_count: NonNegativeInt


class LoggingSettings(Section):
    level: LogLevel
    format: Literal["json", "text"]
    console: Literal["stderr", "stdout"]
    file: LogFileSettings
    api_requests: bool


# 8. performance ----------------------------------------------------------------------------
class CacheSettings(Section):
    enabled: bool
    ttl_seconds: NonNegativeInt
    max_size_mb: PositiveInt


class PerformanceSettings(Section):
    cache: CacheSettings
    collect_metrics: bool
    metrics_interval_ms: PositiveInt
    gzip_compression: bool
    min_gzip_size_bytes: NonNegativeInt
    query_timeout_ms: PositiveInt


# 9. security -------------------------------------------------------------------------------
class RateLimitSettings(Section):
    enabled: bool
    requests_per_minute: PositiveInt
    burst_size: PositiveInt
    socket_events_per_minute: PositiveInt
    socket_burst_size: PositiveInt
    max_tracked_clients: PositiveInt


class CorsSettings(Section):
    enabled: bool
    allowed_origins: StrList
    allowed_methods: StrList
    allowed_headers: StrList
    allow_credentials: bool


class SecuritySettings(Section):
    api_key_enabled: bool
    api_key: SecretStr
    api_key_header: Annotated[str, Field(min_length=1)]
    trusted_proxies: Annotated[list[str], BeforeValidator(_split_list), AfterValidator(_check_networks)]
    rate_limiting: RateLimitSettings
    cors: CorsSettings

    def api_keys(self) -> list[str]:
        """The accepted keys: several may be configured, comma-separated, for rotation."""
        return [k.strip() for k in self.api_key.get_secret_value().split(",") if k.strip()]


# 10. panels --------------------------------------------------------------------------------
class ChatPanelSettings(Section):
    enabled: bool
    max_queue_size: PositiveInt
    timeout_seconds: Annotated[float, Field(gt=0)]
    retry_attempts: NonNegativeInt
    modes: Annotated[StrList, Field(min_length=1)]
    workers: PositiveInt
    backoff_base_ms: NonNegativeInt
    backoff_max_ms: NonNegativeInt


class GovernancePanelSettings(Section):
    enabled: bool
    show_audit_logs: bool
    audit_log_limit: PositiveInt
    audit_store_path: str
    audit_retention_days: Annotated[float, Field(gt=0)]
    audit_max_rows: PositiveInt


class AiSystemPanelSettings(Section):
    enabled: bool
    refresh_interval_ms: PositiveInt
    show_inference_stats: bool
    inference_window_seconds: Annotated[float, Field(gt=0)]


class ArenaPanelSettings(Section):
    enabled: bool
    max_debates: PositiveInt
    debate_timeout_seconds: Annotated[float, Field(gt=0)]
    finished_kept: NonNegativeInt
    turns_in_envelope: NonNegativeInt


class OmniMonitorPanelSettings(Section):
    enabled: bool
    graph_history_points: PositiveInt


class PanelSettings(Section):
    chat: ChatPanelSettings
    governance: GovernancePanelSettings
    ai_system: AiSystemPanelSettings
    intelligence_arena: ArenaPanelSettings
    omni_monitor: OmniMonitorPanelSettings


# 11. health_checks -------------------------------------------------------------------------
class HealthEndpointSettings(Section):
    mcp_api: UrlPath
    ml_backend: UrlPath
    governance: UrlPath


class HealthAlertSettings(Section):
    backend_down: bool
    slow_response: bool
    high_error_rate: bool


class HealthCheckSettings(Section):
    enabled: bool
    endpoints: HealthEndpointSettings
    timeout_ms: PositiveInt
    retries: NonNegativeInt
    alerts: HealthAlertSettings
    slow_response_ms: PositiveInt
    error_rate_window: PositiveInt
    error_rate_threshold: Annotated[float, Field(gt=0, le=1)]


# 12. history -------------------------------------------------------------------------------
class HistoryTierSettings(Section):
    resolution_s: PositiveInt
    retention_hours: Annotated[float, Field(gt=0)]

    @property
    def retention_s(self) -> float:
        return self.retention_hours * 3600


class HistorySettings(Section):
    enabled: bool
    store: Literal["sqlite", "postgres"]
    sqlite_path: Annotated[str, Field(min_length=1)]
    fine: HistoryTierSettings
    coarse: HistoryTierSettings
    max_points: Annotated[int, Field(ge=10, le=100_000)]
    retention_interval_s: PositiveInt


class Settings(Section):
    """The whole effective configuration, as components receive it."""

    dashboard: DashboardSettings
    websocket: WebSocketSettings
    updates: UpdateSettings
    monitoring: MonitoringSettings
    backends: BackendSettings
    features: FeatureSettings
    logging: LoggingSettings
    performance: PerformanceSettings
    security: SecuritySettings
    panels: PanelSettings
    health_checks: HealthCheckSettings
    history: HistorySettings
