"""compose.yaml, deploy/nginx.conf and the Dockerfile, checked statically (no Docker engine here)."""

from __future__ import annotations

import re

import yaml

from aura_dashboard.app import create_app
from tests.conftest import ROOT, make_settings

COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
ENV_EXAMPLE = dict(re.findall(r"^([A-Z_][A-Z0-9_]*)=(.*)$", (ROOT / ".env.example").read_text(), re.M))


def compose_variables() -> list[tuple[str, str | None]]:
    text = (ROOT / "compose.yaml").read_text()
    return [(name, default) for name, _, default in re.findall(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)(:-([^}]*))?\}", text)
            for default in [default if _ else None]]


def test_every_service_has_a_healthcheck_and_waits_for_healthy_dependencies():
    services = COMPOSE["services"]
    assert {"dashboard-1", "dashboard-2", "nginx", "postgres", "redis"} <= set(services)
    for name, service in services.items():
        assert "healthcheck" in service, name
        for dependency, condition in (service.get("depends_on") or {}).items():
            assert dependency in services
            assert condition == {"condition": "service_healthy"}, (name, dependency)


def test_every_variable_compose_passes_is_in_env_example_with_its_default():
    variables = compose_variables()
    assert variables
    for name, default in variables:
        assert name in ENV_EXAMPLE, f"{name} is used by compose.yaml but missing from .env.example"
        if default is not None:
            assert default == ENV_EXAMPLE[name], f"{name}: compose default {default!r} != .env.example"


def test_replicas_form_one_cluster_behind_sticky_nginx():
    services = COMPOSE["services"]
    for name in ("dashboard-1", "dashboard-2"):
        env = services[name]["environment"]
        assert env["MESSAGE_QUEUE_URL"].startswith("redis://redis:")
        assert env["DASHBOARD_INSTANCE"] == name
        assert "audit-data:/app/data" in services[name]["volumes"]
    nginx = (ROOT / "deploy" / "nginx.conf").read_text()
    assert "ip_hash;" in nginx
    assert "server dashboard-1:8080" in nginx and "server dashboard-2:8080" in nginx
    assert "proxy_set_header Upgrade $http_upgrade" in nginx


def test_healthcheck_paths_exist_in_the_app():
    app = create_app(make_settings())
    paths = {resource.canonical for resource in app.router.resources()}
    dockerfile = (ROOT / "Dockerfile").read_text()
    compose_text = (ROOT / "compose.yaml").read_text()
    for text in (dockerfile, compose_text):
        for path in re.findall(r"http://127\.0\.0\.1:8080(/[a-z]+)", text):
            assert path in paths, path


def test_image_is_multi_stage_non_root_with_healthcheck():
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+\S+", dockerfile, re.M)
    assert len(stages) >= 2, "build the page's assets in their own stage"
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.M)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*", dockerfile, re.M | re.S)
    assert "/healthz" in dockerfile
