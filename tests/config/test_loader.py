"""Table-driven loader tests: every variable of .env.example, precedence, errors, warnings."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml
from pydantic import SecretStr

from aura_dashboard.config import ConfigError, load_config, redacted
from tests.conftest import ROOT, SHIPPED_CONFIG

ENV_EXAMPLE = ROOT / ".env.example"
# The variables the configuration file reads; compose.yaml's own come after this line.
CONTAINERS_SECTION = "# -- containers"
APP_ENV_TEXT = ENV_EXAMPLE.read_text().split(CONTAINERS_SECTION)[0]


def load(env=None, env_file=os.devnull, config=SHIPPED_CONFIG, extra=None):
    return load_config(config, env_file=env_file, environ=env or {}, extra_yaml=extra)


def get(settings, dotted):
    node = settings
    for part in dotted.split("."):
        node = node[int(part)] if part.isdigit() else getattr(node, part)
    return node.get_secret_value() if isinstance(node, SecretStr) else node


# variable, dotted key, default (as typed), a good raw value, its typed value, a bad raw value
# (None: every string is acceptable).
TABLE = [
    ("DASHBOARD_HOST", "dashboard.host", "0.0.0.0", "127.0.0.1", "127.0.0.1", None),
    ("DASHBOARD_PORT", "dashboard.port", 8080, "9090", 9090, "abc"),
    ("DASHBOARD_ENV", "dashboard.environment", "development", "production", "production", "prod"),
    ("DASHBOARD_INSTANCE", "dashboard.instance_name", "", "node-a", "node-a", None),
    ("DASHBOARD_ADVERTISE_URL", "dashboard.advertise_url", "", "http://dashboard-1:8080",
     "http://dashboard-1:8080", "dashboard-1:8080"),
    ("DASHBOARD_PUBLIC_URLS", "dashboard.public_urls", [], "http://localhost:9000, https://ops.example.com/",
     ["http://localhost:9000", "https://ops.example.com"], "ops.example.com"),
    ("MESSAGE_QUEUE_URL", "websocket.message_queue", "", "redis://127.0.0.1:6379/0",
     "redis://127.0.0.1:6379/0", "ftp://x"),
    ("DASHBOARD_CLUSTER", "websocket.cluster_name", "aura", "prod-eu", "prod-eu", "no spaces"),
    ("ENABLE_GPU_MONITORING", "monitoring.gpu.enabled", False, "yes", True, "maybe"),
    ("ENABLE_TEMPERATURE_MONITORING", "monitoring.temperature.enabled", False, "1", True, "2"),
    ("MCP_BACKEND_URL", "backends.mcp.url", "http://localhost:8000", "http://mcp:8000",
     "http://mcp:8000", "mcp:8000"),
    ("ML_BACKEND_URL", "backends.ml.url", "http://localhost:8001", "https://ml:8001",
     "https://ml:8001", "not a url"),
    ("GOVERNANCE_URL", "backends.governance.url", "http://localhost:9206", "http://gov:9206",
     "http://gov:9206", "gov"),
    ("DATABASE_HOST", "backends.database.host", "localhost", "db", "db", None),
    ("DATABASE_PORT", "backends.database.port", 5432, "6543", 6543, "pg"),
    ("DATABASE_NAME", "backends.database.database", "aura_ia", "metrics", "metrics", None),
    ("DATABASE_USER", "backends.database.username", "aura", "reader", "reader", None),
    ("DATABASE_PASSWORD", "backends.database.password", "", "s3cret", "s3cret", None),
    ("FEATURE_REAL_TIME_UPDATES", "features.real_time_updates", True, "no", False, "nope"),
    ("FEATURE_WEBSOCKET_FALLBACK", "features.websocket_fallback", True, "false", False, "off-ish"),
    ("FEATURE_SYSTEM_MONITORING", "features.system_monitoring", True, "0", False, "x"),
    ("FEATURE_GPU_MONITORING", "features.gpu_monitoring", False, "true", True, "x"),
    ("FEATURE_TEMPERATURE_MONITORING", "features.temperature_monitoring", False, "yes", True, "x"),
    ("FEATURE_DATABASE_MONITORING", "features.database_monitoring", True, "no", False, "x"),
    ("FEATURE_GOVERNANCE_PANEL", "features.governance_panel", True, "false", False, "x"),
    ("FEATURE_AI_SYSTEM_PANEL", "features.ai_system_panel", True, "false", False, "x"),
    ("FEATURE_INTELLIGENCE_ARENA", "features.intelligence_arena", True, "false", False, "x"),
    ("FEATURE_OMNI_MONITOR", "features.omni_monitor", True, "false", False, "x"),
    ("FEATURE_CHAT_OPTIMIZATION", "features.chat_optimization", True, "false", False, "x"),
    ("FEATURE_DEBUG_MODE", "features.debug_mode", False, "true", True, "x"),
    ("FEATURE_PERFORMANCE_METRICS", "features.performance_metrics", False, "1", True, "x"),
    ("LOG_LEVEL", "logging.level", "INFO", "DEBUG", "DEBUG", "LOUD"),
    ("LOG_CONSOLE", "logging.console", "stderr", "stdout", "stdout", "syslog"),
    ("LOG_FILE", "logging.file.path", "/var/log/aura/dashboard.log", "/tmp/a.log", "/tmp/a.log", None),
    ("COLLECT_METRICS", "performance.collect_metrics", False, "true", True, "x"),
    ("SECURITY_API_KEY_ENABLED", "security.api_key_enabled", False, "false", False, "x"),
    ("DASHBOARD_API_KEY", "security.api_key", "", "k1,k2", "k1,k2", None),
    ("TRUSTED_PROXIES", "security.trusted_proxies", [], "10.0.0.1, 172.16.0.0/12",
     ["10.0.0.1", "172.16.0.0/12"], "proxy.local"),
    ("NAS_IP", "security.cors.allowed_origins.2", "http://localhost:8080", "10.0.0.5",
     "http://10.0.0.5:8080", None),
    ("AUDIT_STORE_PATH", "panels.governance.audit_store_path", "./data/audit.db", "/srv/a.db",
     "/srv/a.db", None),
    ("HISTORY_ENABLED", "history.enabled", True, "false", False, "x"),
    ("HISTORY_STORE", "history.store", "sqlite", "postgres", "postgres", "mysql"),
    ("HISTORY_STORE_PATH", "history.sqlite_path", "./data/history.db", "/srv/h.db", "/srv/h.db", None),
]
IDS = [row[0] for row in TABLE]


def test_table_covers_every_variable_of_env_example():
    listed = set(re.findall(r"^([A-Z_][A-Z0-9_]*)=", APP_ENV_TEXT, re.M))
    assert listed == {row[0] for row in TABLE}


def yaml_strings(node):
    if isinstance(node, dict):
        for value in node.values():
            yield from yaml_strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from yaml_strings(value)
    elif isinstance(node, str):
        yield node


SHIPPED_VALUES = "\n".join(yaml_strings(yaml.safe_load(SHIPPED_CONFIG.read_text())))


def test_every_variable_the_file_reads_is_in_env_example():
    read = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", SHIPPED_VALUES))
    listed = set(re.findall(r"^([A-Z_][A-Z0-9_]*)=", APP_ENV_TEXT, re.M))
    assert read == listed


def test_env_example_states_the_shipped_defaults():
    defaults = dict(re.findall(r"\$\{([A-Z_][A-Z0-9_]*):([^}]*)\}", SHIPPED_VALUES))
    listed = dict(re.findall(r"^([A-Z_][A-Z0-9_]*)=(.*)$", APP_ENV_TEXT, re.M))
    assert listed == defaults


@pytest.mark.parametrize("var,key,default,good,typed,bad", TABLE, ids=IDS)
def test_default_applies_when_unset(var, key, default, good, typed, bad):
    assert get(load().settings, key) == default


@pytest.mark.parametrize("var,key,default,good,typed,bad", TABLE, ids=IDS)
def test_environment_value_is_converted(var, key, default, good, typed, bad):
    env = {var: good}
    if var == "SECURITY_API_KEY_ENABLED":
        env.update({var: "true", "DASHBOARD_API_KEY": "k"})
        typed = True
    assert get(load(env).settings, key) == typed


@pytest.mark.parametrize("var,key,default,good,typed,bad",
                         [row for row in TABLE if row[5] is not None],
                         ids=[row[0] for row in TABLE if row[5] is not None])
def test_bad_value_names_key_value_and_variable(var, key, default, good, typed, bad):
    with pytest.raises(ConfigError) as caught:
        load({var: bad})
    assert len(caught.value.problems) == 1
    problem = caught.value.problems[0]
    assert problem.startswith(f"{key}: {bad!r} "), problem
    assert f"(from {var})" in problem


@pytest.mark.parametrize("var,key,default,good,typed,bad", TABLE, ids=IDS)
def test_precedence_yaml_then_env_file_then_environment(tmp_path, var, key, default, good, typed, bad):
    env_file = tmp_path / ".env"
    env_file.write_text(f"{var}={good}\n")
    if var == "SECURITY_API_KEY_ENABLED":  # turning it on needs a key as well
        good, typed = "true", True
        env_file.write_text(f"{var}=true\nDASHBOARD_API_KEY=k\n")
    assert get(load(env_file=env_file).settings, key) == typed           # .env over YAML
    # The real environment wins over the .env file.
    assert get(load({var: default_raw(var)}, env_file=env_file).settings, key) == default


def default_raw(var):
    return dict(re.findall(r"\$\{([A-Z_][A-Z0-9_]*):([^}]*)\}", SHIPPED_VALUES))[var]


def test_the_bad_port_message_of_the_issue():
    with pytest.raises(ConfigError) as caught:
        load({"DASHBOARD_PORT": "abc"})
    assert caught.value.problems == ["dashboard.port: 'abc' is not an integer (from DASHBOARD_PORT)"]


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as caught:
        load({"DASHBOARD_PORT": "abc", "LOG_LEVEL": "LOUD", "FEATURE_DEBUG_MODE": "perhaps"})
    keys = sorted(p.split(":")[0] for p in caught.value.problems)
    assert keys == ["dashboard.port", "features.debug_mode", "logging.level"]


def test_env_file_problem_is_named_as_such(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("DASHBOARD_PORT=abc\n")
    with pytest.raises(ConfigError) as caught:
        load(env_file=env_file)
    assert caught.value.problems == [
        "dashboard.port: 'abc' is not an integer (from DASHBOARD_PORT in the .env file)"]


def test_interpolation_inside_a_longer_string_and_without_default(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("dashboard:\n  host: \"${PREFIX:10.0}.${SUFFIX}\"\n")
    assert load({"SUFFIX": "0.7"}, config=config).settings.dashboard.host == "10.0.0.7"
    with pytest.raises(ConfigError) as caught:
        load({}, config=config)
    assert caught.value.problems == ["dashboard.host: ${SUFFIX} is not set and has no default"]


def test_user_yaml_over_shipped_defaults_and_unknown_keys_warn(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("dashboard:\n  port: 9000\n  colour: blue\nextras:\n  a: 1\n")
    loaded = load({}, config=config)
    assert loaded.settings.dashboard.port == 9000
    assert loaded.settings.websocket.path == "/ws"  # untouched default
    assert loaded.warnings == ["dashboard.colour: unknown key, ignored", "extras: unknown key, ignored"]


def test_yaml_type_errors_name_the_key_without_variable(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("websocket:\n  message_buffer_size: lots\n  path: ws\nupdates: 3\n")
    with pytest.raises(ConfigError) as caught:
        load({}, config=config)
    text = "\n".join(caught.value.problems)
    assert "websocket.message_buffer_size: 'lots' is not an integer" in text
    assert "websocket.path:" in text
    assert "updates: 3 is not a section" in text


def test_broken_yaml_reports_line(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("dashboard:\n  port: [1,\n")
    with pytest.raises(ConfigError) as caught:
        load({}, config=config)
    assert "not valid YAML at line" in caught.value.problems[0]


def test_missing_env_file_given_explicitly(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load(env_file=tmp_path / "nope.env")
    assert "does not exist" in caught.value.problems[0]


def test_api_key_enabled_without_key_is_refused_naming_the_key():
    with pytest.raises(ConfigError) as caught:
        load({"SECURITY_API_KEY_ENABLED": "true"})
    assert caught.value.problems[0].startswith("security.api_key: is empty")


def test_secrets_never_appear_in_messages_or_redacted_dump():
    loaded = load({"DATABASE_PASSWORD": "hunter2", "DASHBOARD_API_KEY": "k-123"})
    data = redacted(loaded.settings)
    assert data["backends"]["database"]["password"] == "<redacted>"
    assert data["security"]["api_key"] == "<redacted>"
    assert "hunter2" not in repr(loaded.settings) and "k-123" not in repr(loaded.settings)


def test_settings_are_frozen():
    settings = load().settings
    with pytest.raises(Exception):
        settings.dashboard.port = 1


def test_lists_from_comma_separated_strings(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("monitoring:\n  system:\n    network:\n      interfaces: \"${IFACES:}\"\n")
    assert load({"IFACES": "eth0, lo"}, config=config).settings.monitoring.system.network.interfaces == [
        "eth0", "lo"]
    assert load({}, config=config).settings.monitoring.system.network.interfaces == []


def test_dot_env_does_not_override_real_environment_in_os_environ(tmp_path, monkeypatch):
    env_file = tmp_path / ".env"
    env_file.write_text("DASHBOARD_PORT=7000\n")
    monkeypatch.setenv("DASHBOARD_PORT", "7100")
    settings = load_config(SHIPPED_CONFIG, env_file=env_file).settings
    assert settings.dashboard.port == 7100
    assert os.environ["DASHBOARD_PORT"] == "7100"


def test_cors_star_refused_in_production_only():
    star = {"security": {"cors": {"allowed_origins": ["*"]}}}
    with pytest.raises(ConfigError) as caught:
        load({"DASHBOARD_ENV": "production"}, extra=star)
    assert any(p.startswith("security.cors.allowed_origins:") and "production" in p
               for p in caught.value.problems), caught.value.problems
    assert load({"DASHBOARD_ENV": "development"}, extra=star).settings.security.cors.allowed_origins == ["*"]


@pytest.mark.parametrize("env,extra,message", [
    ({}, {"history": {"coarse": {"resolution_s": 25}}}, "history.coarse.resolution_s: 25 is not a multiple"),
    ({}, {"history": {"coarse": {"retention_hours": 2}}}, "history.coarse.retention_hours: 2.0 is shorter"),
    ({"HISTORY_STORE": "postgres", "DATABASE_HOST": ""}, None, "history.store: postgres needs backends.database.host"),
])
def test_history_settings_that_do_not_fit_together_are_refused(env, extra, message):
    with pytest.raises(ConfigError) as caught:
        load(env=env, extra=extra)
    assert any(problem.startswith(message) for problem in caught.value.problems), caught.value.problems


def literal_yaml_for(key: str, raw: str) -> dict:
    """A user YAML that sets `key` to the literal `raw` (lists as given)."""
    parts = key.split(".")
    node: dict = {}
    top = node
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = raw
    return top


# A literal of the right type for each key, different from the variable's value.
LITERALS = {"DASHBOARD_PUBLIC_URLS": "http://yaml.example", "TRUSTED_PROXIES": "192.168.9.9",
            "SECURITY_API_KEY_ENABLED": False}


@pytest.mark.parametrize("var,key,default,good,typed,bad",
                         [row for row in TABLE if row[0] != "NAS_IP"],
                         ids=[row[0] for row in TABLE if row[0] != "NAS_IP"])
def test_variable_beats_a_literal_in_the_user_yaml(tmp_path, var, key, default, good, typed, bad):
    """README: shipped < your YAML < .env < environment, for every key that has a variable."""
    literal = LITERALS.get(var, default)
    config = tmp_path / "user.yaml"
    config.write_text(yaml.safe_dump(literal_yaml_for(key, literal)))
    env = {var: good}
    if var == "SECURITY_API_KEY_ENABLED":
        env.update({var: "true", "DASHBOARD_API_KEY": "k"})
        typed = True
    loaded = load(env, config=config)
    assert get(loaded.settings, key) == typed
    assert any(key in w and var in w for w in loaded.warnings), loaded.warnings
    # From the .env file too.
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{name}={value}\n" for name, value in env.items()))
    assert get(load(env_file=env_file, config=config).settings, key) == typed
    # Unset: the literal holds.
    if var != "SECURITY_API_KEY_ENABLED":
        assert get(load(config=config).settings, key) != typed


def test_nas_ip_only_composes_the_shipped_origin_list(tmp_path):
    """NAS_IP is part of one shipped origin, not a key: a user's own list wins, and says so."""
    config = tmp_path / "user.yaml"
    config.write_text("security:\n  cors:\n    allowed_origins: ['http://a.example']\n")
    loaded = load({"NAS_IP": "10.0.0.5"}, config=config)
    assert loaded.settings.security.cors.allowed_origins == ["http://a.example"]
    assert any("NAS_IP" in w and "security.cors.allowed_origins" in w for w in loaded.warnings)


def test_the_port_case_of_the_issue(tmp_path):
    config = tmp_path / "user.yaml"
    config.write_text("dashboard: {port: 18090}\n")
    assert load({"DASHBOARD_PORT": "18080"}, config=config).settings.dashboard.port == 18080
    assert load(config=config).settings.dashboard.port == 18090


def test_keys_nothing_reads_are_gone_and_said_to_be_unsupported(tmp_path):
    from aura_dashboard.config.loader import UNSUPPORTED
    shipped = yaml.safe_load(SHIPPED_CONFIG.read_text())
    user: dict = {}
    for dotted in UNSUPPORTED:
        parts = dotted.split(".")
        node = shipped
        for part in parts[:-1]:
            node = node.get(part, {})
        assert parts[-1] not in node, f"{dotted} is still in the shipped file"
        target = user
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = True
    config = tmp_path / "seed.yaml"
    config.write_text(yaml.safe_dump(user))
    warnings = load(config=config).warnings
    for dotted in UNSUPPORTED:
        assert any(w.startswith(f"{dotted}: not supported, ignored (") for w in warnings), (dotted, warnings)


def _schema_leaves(model, prefix=()):
    from pydantic import BaseModel
    for name, info in model.model_fields.items():
        sub = info.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            yield from _schema_leaves(sub, prefix + (name,))
        else:
            yield prefix + (name,)


def test_every_key_is_read_somewhere_or_said_to_be_unsupported():
    """Every key of the schema is read by the code (an attribute access `.leaf`, or the key or
    its last part named as a string, as in a contract's `switches`) outside config/schema.py; a
    key nothing reads belongs in UNSUPPORTED, not in the schema. Coarse (a common last part such
    as `enabled` passes on any read), but it caught the last five seed keys nobody read
    (features.error_logging, panels.omni_monitor.show_*_metrics, panels.ai_system.show_model_performance)."""
    from aura_dashboard.config.loader import UNSUPPORTED
    from aura_dashboard.config.schema import Settings
    package = ROOT / "aura_dashboard"
    source = "\n".join(path.read_text() for pattern in ("*.py", "*.js") for path in package.rglob(pattern)
                       if path != package / "config" / "schema.py")
    unread = []
    for key in _schema_leaves(Settings):
        dotted, leaf = ".".join(key), key[-1]
        if not re.search(rf"\.{leaf}\b|[\"']{re.escape(dotted)}[\"']|[\"']{leaf}[\"']", source):
            unread.append(dotted)
    assert unread == [], f"validated but never read (make them work or move them to UNSUPPORTED): {unread}"
    schema_keys = {".".join(key) for key in _schema_leaves(Settings)}
    assert not schema_keys & set(UNSUPPORTED)
    for dotted in ("features.error_logging", "panels.omni_monitor.show_system_metrics",
                   "panels.omni_monitor.show_gpu_metrics", "panels.omni_monitor.show_database_metrics",
                   "panels.ai_system.show_model_performance"):
        assert dotted in UNSUPPORTED
