"""Reads the configuration: YAML defaults, a user's YAML, `.env`, the environment.

Precedence, lowest first: the shipped YAML's defaults, the user's YAML, variables from the
`.env` file, variables from the process environment (runtime overrides live in
`overrides.py`). Variables enter only through `${VAR}` / `${VAR:default}` references in YAML
string values; a key the shipped file binds to a variable takes the variable when it is set,
even where the user's YAML gives that key a literal. Every problem is collected and reported at once, each naming its dotted key.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml
from dotenv import dotenv_values
from pydantic import BaseModel, ValidationError

from .schema import Settings

_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([^}]*))?\}")
SECRET_KEYS = frozenset({("backends", "database", "password"), ("security", "api_key")})
DEFAULT_LOCAL_CONFIG = Path("config/dashboard_config.yaml")
CONFIG_ENV_VAR = "AURA_CONFIG"


# Keys of the seed's design that nothing read: removed from the shipped file. A user's file that
# still sets one is told, at start and by check-config, that it is not supported and why.
UNSUPPORTED = {
    "websocket.enabled": "Socket.IO is always served, at websocket.path",
    "websocket.protocol": "the page dials the address it was loaded from (websocket.path on it)",
    "websocket.host": "the page dials the address it was loaded from (websocket.path on it)",
    "websocket.port": "the page dials the address it was loaded from (websocket.path on it)",
    "monitoring.gpu.nvidia_only": "GPUs are read through NVML, so NVIDIA only",
    "backends.mcp.websocket_url": "the MCP backend is reached over HTTP only (backends.mcp.url)",
    "backends.governance.websocket_url": "the governance service is reached over HTTP only "
                                         "(backends.governance.url)",
    "logging.websocket_events": "Socket.IO's own records follow logging.level (ERROR and up)",
    "performance.connection_pool_size": "each PostgreSQL user keeps its own small pool",
    # Where two keys governed one thing, the one that was read stays (see README, "Which key wins").
    "monitoring.system.cpu.sample_interval_ms": "CPU use is measured between two samples of the "
                                                "system stream (updates.intervals.system_metrics)",
    "monitoring.gpu.sample_interval_ms": "the gpu stream samples at updates.intervals.gpu_metrics",
    "backends.mcp.timeout_ms": "chat waits panels.chat.timeout_seconds; health checks health_checks.timeout_ms",
    "backends.mcp.retry_attempts": "chat retries panels.chat.retry_attempts times; health checks "
                                   "health_checks.retries",
    "backends.ml.timeout_ms": "the models list and health checks wait health_checks.timeout_ms",
    "backends.ml.retry_attempts": "health checks retry health_checks.retries times",
    "backends.governance.timeout_ms": "health checks wait health_checks.timeout_ms",
    "panels.governance.refresh_interval_ms": "the governance stream is sampled at "
                                             "updates.intervals.governance_data",
    "panels.intelligence_arena.refresh_interval_ms": "debates are published as they change",
    "panels.omni_monitor.refresh_interval_ms": "each stream has its own interval (updates.intervals.*)",
    "health_checks.interval_ms": "each backend is checked at backends.<name>.health_check_interval_ms",
    "dashboard.debug": "debug output is features.debug_mode (FEATURE_DEBUG_MODE); log detail is logging.level",
    "backends.database.health_check_interval_ms": "the database stream samples at updates.intervals.database_metrics",
    "health_checks.endpoints.database": "the database is checked by its own stream (a PostgreSQL query), not over HTTP",
    "logging.performance_metrics": "the server's own metrics are the dashboard stream and /metrics (features.performance_metrics, performance.collect_metrics)",
    "features.error_logging": "errors are always logged, at logging.level and up (logging.file, logging.console)",
    "panels.omni_monitor.show_gpu_metrics": "the gpu card follows the gpu stream (monitoring.gpu.enabled, "
                                            "features.gpu_monitoring) and says 'switched off' while it is off",
    "panels.omni_monitor.show_system_metrics": "the system card follows the system stream "
                                               "(monitoring.system.enabled, features.system_monitoring)",
    "panels.omni_monitor.show_database_metrics": "the database card follows the database stream "
                                                 "(backends.database.host, features.database_monitoring)",
    "panels.ai_system.show_model_performance": "the models card follows the models stream "
                                               "(panels.ai_system.enabled, features.ai_system_panel)",
}


class ConfigError(Exception):
    """The configuration cannot be used; `problems` lists every reason, each naming its key."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class VariableUse:
    """One `${VAR}` reference: where its value came from (environment, .env or default)."""

    name: str
    origin: str  # "environment", "env-file" or "default"

    def describe(self) -> str:
        if self.origin == "environment":
            return f"from {self.name}"
        if self.origin == "env-file":
            return f"from {self.name} in the .env file"
        return f"default of ${{{self.name}}}"


@dataclass(frozen=True)
class LoadedConfig:
    """Validated settings plus what the loader noticed on the way."""

    settings: Settings
    config_path: Path
    env_file: Path | None
    warnings: list[str] = field(default_factory=list)


def shipped_config_text() -> str:
    return resources.files("aura_dashboard.config").joinpath("dashboard_config.yaml").read_text()


def resolve_config_path(explicit: str | os.PathLike | None, environ: Mapping[str, str]) -> Path | None:
    """--config, else $AURA_CONFIG, else ./config/dashboard_config.yaml; None = shipped copy."""
    if explicit:
        return Path(explicit)
    if environ.get(CONFIG_ENV_VAR):
        return Path(environ[CONFIG_ENV_VAR])
    if DEFAULT_LOCAL_CONFIG.is_file():
        return DEFAULT_LOCAL_CONFIG
    return None


def load_config(
    config_path: str | os.PathLike | None = None,
    env_file: str | os.PathLike | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    extra_yaml: Mapping[str, Any] | None = None,
) -> LoadedConfig:
    """Load, interpolate and validate; raise ConfigError listing every problem.

    `extra_yaml` is merged over the files (tests and embedding programs use it).
    """
    environ = os.environ if environ is None else environ
    problems: list[str] = []

    defaults = _parse_yaml(shipped_config_text(), "the shipped configuration", problems)
    path = resolve_config_path(config_path, environ)
    tree = defaults
    user: dict = {}
    if path is not None:
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError([f"config file {path}: cannot be read ({exc.strerror or exc})"]) from None
        user = _parse_yaml(text, str(path), problems)
        tree = _merge(defaults, user)

    env_path, file_vars = _read_env_file(env_file, problems)
    if problems:
        raise ConfigError(problems)

    variables = {name: (value, "env-file") for name, value in file_vars.items() if value is not None}
    variables.update({name: (value, "environment") for name, value in environ.items()})
    warnings: list[str] = []
    tree = _variables_over_literals(tree, defaults, user, variables, path, warnings)
    if extra_yaml:
        tree = _merge(tree, dict(extra_yaml))
    uses: dict[tuple, list[VariableUse]] = {}
    tree = _interpolate(tree, (), variables, uses, problems)

    tree = _drop_unknown(tree, Settings, (), warnings)
    settings = None
    try:
        settings = Settings.model_validate(tree)
    except ValidationError as exc:
        problems.extend(_describe(error, uses) for error in exc.errors())
    if settings is not None:
        problems.extend(_cross_checks(settings))
        settings = _honourable(settings, warnings)
    if problems:
        raise ConfigError(problems)
    return LoadedConfig(settings=settings, config_path=path or Path("<shipped>"),
                        env_file=env_path, warnings=warnings)


def load_settings(*args: Any, **kwargs: Any) -> Settings:
    return load_config(*args, **kwargs).settings


def redacted(settings: Settings) -> dict[str, Any]:
    """The settings as plain data with every secret replaced (empty secrets stay empty): the
    declared secrets, every key whose name says secret, password, token or key, and the
    credentials inside any URL (`redis://:pw@host` becomes `redis://<redacted>@host`)."""
    data = settings.model_dump(mode="python")
    for path in SECRET_KEYS:
        parent = data
        for part in path[:-1]:
            parent = parent[part]
        secret = parent[path[-1]]
        value = secret.get_secret_value() if hasattr(secret, "get_secret_value") else secret
        parent[path[-1]] = REDACTED if value else ""
    return redact_value(data)


REDACTED = "<redacted>"
_SECRET_WORDS = frozenset({"secret", "secrets", "password", "passwd", "token", "key", "credentials"})
_NOT_SECRET_SUFFIXES = ("_header", "_enabled", "_path", "_prefix")


def secret_named(name: str) -> bool:
    """Whether a key's name says it holds a secret (`api_key`, `db_password`; not `api_key_header`)."""
    lowered = name.lower()
    return (not lowered.endswith(_NOT_SECRET_SUFFIXES)
            and bool(_SECRET_WORDS & set(re.split(r"[^a-z0-9]+", lowered))))


def redact_url(text: str) -> str:
    """`text` with the userinfo of every URL in it and every secret-named query value replaced."""
    return _URL.sub(_redact_one_url, text) if "://" in text else text


_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def _redact_one_url(match: re.Match[str]) -> str:
    url = match.group(0)
    try:
        parts = urlsplit(url)
    except ValueError:
        return re.sub(r"//[^/@]*@", f"//{REDACTED}@", url, count=1)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        query = "&".join(f"{k}={REDACTED}" if secret_named(k) and v else (f"{k}={v}" if "=" in pair else pair)
                         for pair in query.split("&") for k, _, v in [pair.partition("=")])
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_value(value: Any, name: str = "") -> Any:
    """Plain data (dicts, lists, strings) with secrets replaced, by key name and inside URLs."""
    if isinstance(value, dict):
        return {key: redact_value(item, str(key)) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(item, name) for item in value]
    if hasattr(value, "get_secret_value"):
        return REDACTED if value.get_secret_value() else ""
    if isinstance(value, str):
        if value and value != REDACTED and secret_named(name):
            return REDACTED
        return redact_url(value)
    return value


# -- internals ------------------------------------------------------------------------------
def _parse_yaml(text: str, where: str, problems: list[str]) -> dict:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problems.append(f"{where}: not valid YAML{at}: {getattr(exc, 'problem', exc)}")
        return {}
    if data is None:
        return {}
    if not isinstance(data, dict):
        problems.append(f"{where}: the top level must be a mapping of sections")
        return {}
    return data


def _read_env_file(env_file, problems: list[str]) -> tuple[Path | None, dict[str, str | None]]:
    if env_file is not None:
        path = Path(env_file)
        if not path.exists():
            problems.append(f"env file {path}: does not exist")
            return None, {}
    else:
        path = Path(".env")
        if not path.is_file():
            return None, {}
    return path, dict(dotenv_values(path))


def _merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        merged = dict(base)
        for key, value in over.items():
            merged[key] = _merge(base.get(key), value) if key in base else value
        return merged
    return over


def _bindings(node: Any, path: tuple = ()):
    """(path, variable, whole) for every `${VAR}` of the shipped tree; whole = the value is it."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _bindings(value, path + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _bindings(value, path + (i,))
    elif isinstance(node, str):
        matches = list(_REFERENCE.finditer(node))
        for match in matches:
            yield path, match.group(1), len(matches) == 1 and match.group(0) == node


def _lookup(node: Any, path: tuple) -> tuple[bool, Any]:
    for part in path:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return False, None
    return True, node


def _assign(node: dict, path: tuple, value: Any) -> dict:
    head, rest = path[0], path[1:]
    copy = dict(node)
    copy[head] = _assign(copy.get(head) or {}, rest, value) if rest else value
    return copy


def _variables_over_literals(tree, defaults, user, variables, path, warnings):
    """A set variable beats a literal the user's YAML gives its key (the README's precedence).

    The shipped file binds a key to a variable by a value that is exactly `${VAR...}`; the
    user's file may replace that value with a literal, which the variable, when set, overrides
    (said in a warning, since the file then says something that does not hold). A variable that
    is only part of a shipped value (NAS_IP inside the third CORS origin) has no key of its own:
    a user's value for the key that holds it wins, with a warning that the variable is unused.
    """
    for key, name, whole in _bindings(defaults):
        if name not in variables:
            continue
        top = key[: next((i for i, part in enumerate(key) if isinstance(part, int)), len(key))]
        found, given = _lookup(user, top)
        if not found or (isinstance(given, str) and f"${{{name}" in given):
            continue
        where = f" in {path}" if path else ""
        if whole:
            shipped = _lookup(defaults, key)[1]
            tree = _assign(tree, key, shipped)
            shown = "<redacted>" if _is_secret(key) else repr(given)
            warnings.append(f"{_dotted(key)}: {shown}{where} is overridden by {name} "
                            "(a set variable wins over the YAML file)")
        else:
            warnings.append(f"{_dotted(top)}: your value{where} replaces the shipped one that "
                            f"uses {name}; {name} is set but unused")
    return tree


def _interpolate(node: Any, path: tuple, variables, uses, problems) -> Any:
    if isinstance(node, dict):
        return {key: _interpolate(value, path + (key,), variables, uses, problems)
                for key, value in node.items()}
    if isinstance(node, list):
        return [_interpolate(value, path + (i,), variables, uses, problems)
                for i, value in enumerate(node)]
    if not isinstance(node, str) or "${" not in node:
        return node

    def substitute(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        if name in variables:
            value, origin = variables[name]
            uses.setdefault(path, []).append(VariableUse(name, origin))
            return value
        if default is None:
            problems.append(f"{_dotted(path)}: ${{{name}}} is not set and has no default")
            return ""
        uses.setdefault(path, []).append(VariableUse(name, "default"))
        return default

    return _REFERENCE.sub(substitute, node)


def _drop_unknown(node: Any, model: type[BaseModel], path: tuple, warnings: list[str]) -> Any:
    if not isinstance(node, dict):
        return node
    kept = {}
    for key, value in node.items():
        info = model.model_fields.get(key) if isinstance(key, str) else None
        if info is None:
            dotted = _dotted(path + (key,))
            if dotted in UNSUPPORTED:
                warnings.append(f"{dotted}: not supported, ignored ({UNSUPPORTED[dotted]})")
            else:
                warnings.append(f"{dotted}: unknown key, ignored")
            continue
        sub = info.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            value = _drop_unknown(value, sub, path + (key,), warnings)
        kept[key] = value
    return kept


_MESSAGES = {
    "int_parsing": "is not an integer",
    "int_type": "is not an integer",
    "int_from_float": "is not an integer",
    "float_parsing": "is not a number",
    "float_type": "is not a number",
    "bool_parsing": "is not a boolean (true/false, yes/no, 1/0)",
    "bool_type": "is not a boolean (true/false, yes/no, 1/0)",
    "string_type": "is not a string",
    "list_type": "is not a list",
    "model_type": "is not a section (a mapping of keys)",
    "model_attributes_type": "is not a section (a mapping of keys)",
    "dict_type": "is not a mapping",
}


def _describe(error: dict, uses: dict[tuple, list[VariableUse]]) -> str:
    loc = tuple(error["loc"])
    key = _dotted(loc)
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "missing":
        return f"{key}: is missing (the shipped configuration defines it; was it removed?)"
    if kind in _MESSAGES:
        message = _MESSAGES[kind]
    elif kind == "literal_error":
        message = f"is not one of {ctx.get('expected')}"
    elif kind == "greater_than":
        message = f"must be greater than {ctx.get('gt')}"
    elif kind == "greater_than_equal":
        message = f"must be at least {ctx.get('ge')}"
    elif kind == "less_than_equal":
        message = f"must be at most {ctx.get('le')}"
    elif kind == "too_short":
        message = f"must have at least {ctx.get('min_length')} item(s)"
    elif kind == "value_error":
        message = str(ctx.get("error", error["msg"]))
    else:
        message = error["msg"]
    value = "<redacted>" if _is_secret(loc) else repr(error.get("input"))
    origin = _origin(loc, uses)
    return f"{key}: {value} {message}{origin}"


def _origin(loc: tuple, uses: dict[tuple, list[VariableUse]]) -> str:
    for end in range(len(loc), 0, -1):
        found = uses.get(loc[:end])
        if found:
            return " (" + ", ".join(use.describe() for use in found) + ")"
    return ""


def _is_secret(loc: tuple) -> bool:
    return any(loc[: len(path)] == path for path in SECRET_KEYS)


def _dotted(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _honourable(settings: Settings, warnings: list[str]) -> Settings:
    """Values the server can only approximate, rounded up to what it really does, said once.

    python-engineio pings every `ping_interval` seconds but advertises the interval to clients
    in whole seconds (truncated): 1500 ms would be announced as 1000 and the client, waiting
    1000 + pong timeout, would drop a healthy connection. `pong_timeout_ms` is kept to the
    millisecond by both sides, so it stands as written.
    """
    ws = settings.websocket
    if ws.ping_interval_ms % 1000:
        rounded = -(-ws.ping_interval_ms // 1000) * 1000
        warnings.append(f"websocket.ping_interval_ms: {ws.ping_interval_ms} is rounded up to {rounded} "
                        "(Engine.IO announces the ping interval in whole seconds)")
        ws = ws.model_copy(update={"ping_interval_ms": rounded})
        settings = settings.model_copy(update={"websocket": ws})
    return settings


def _cross_checks(settings: Settings) -> list[str]:
    """Rules that span several keys."""
    problems = []
    security = settings.security
    if security.api_key_enabled and not security.api_keys():
        problems.append("security.api_key: is empty while security.api_key_enabled is true "
                        "(set DASHBOARD_API_KEY, or turn SECURITY_API_KEY_ENABLED off)")
    cors = security.cors
    if cors.enabled and "*" in cors.allowed_origins and settings.dashboard.environment == "production":
        problems.append("security.cors.allowed_origins: \"*\" is refused while dashboard.environment "
                        "is production (any web site could then call the API from a visitor's "
                        "browser); list the dashboard's origins instead")
    if cors.enabled and "*" in settings.dashboard.cors_origins and settings.dashboard.environment == "production":
        problems.append("dashboard.cors_origins: \"*\" is refused while dashboard.environment is "
                        "production (like security.cors.allowed_origins); list the origins instead")
    reconnect = settings.websocket.reconnect
    if reconnect.initial_delay_ms > reconnect.max_delay_ms:
        problems.append(f"websocket.reconnect.initial_delay_ms: {reconnect.initial_delay_ms} is over "
                        f"websocket.reconnect.max_delay_ms ({reconnect.max_delay_ms})")
    history = settings.history
    if history.coarse.resolution_s % history.fine.resolution_s:
        problems.append(f"history.coarse.resolution_s: {history.coarse.resolution_s} is not a multiple of "
                        f"history.fine.resolution_s ({history.fine.resolution_s})")
    if history.coarse.retention_hours < history.fine.retention_hours:
        problems.append(f"history.coarse.retention_hours: {history.coarse.retention_hours} is shorter than "
                        f"history.fine.retention_hours ({history.fine.retention_hours})")
    if history.enabled and history.store == "postgres" and not settings.backends.database.host:
        problems.append("history.store: postgres needs backends.database.host (DATABASE_HOST); "
                        "set it, or use the embedded store (HISTORY_STORE=sqlite)")
    return problems
