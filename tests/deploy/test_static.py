"""compose.yaml, deploy/ and the Dockerfile, checked statically: these hold on machines
without Docker too (test_compose.py runs them for real)."""

from __future__ import annotations

import re

import yaml

from aura_dashboard.app import create_app
from tests.conftest import ROOT, make_settings

COMPOSE_TEXT = (ROOT / "compose.yaml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
ENV_EXAMPLE = dict(re.findall(r"^([A-Z_][A-Z0-9_]*)=(.*)$", (ROOT / ".env.example").read_text(), re.M))
NGINX = (ROOT / "deploy" / "nginx.conf").read_text()
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def compose_variables(text: str = COMPOSE_TEXT) -> list[tuple[str, str | None]]:
    """Every `${NAME}` / `${NAME:-default}` (defaults may nest another reference), `$$` skipped."""
    out: list[tuple[str, str | None]] = []
    i = 0
    while (i := text.find("${", i)) != -1:
        if i > 0 and text[i - 1] == "$":
            i += 2
            continue
        depth, j = 1, i + 2
        while depth:
            if text.startswith("${", j):
                depth, j = depth + 1, j + 2
            else:
                depth -= text[j] == "}"
                j += 1
        body = text[i + 2:j - 1]
        name, sep, default = body.partition(":-")
        out.append((name, default if sep else None))
        out.extend(compose_variables(default))
        i = j
    return out


def test_every_service_has_a_healthcheck_and_waits_for_healthy_dependencies():
    services = COMPOSE["services"]
    assert {"dashboard", "dashboard-gpu", "nginx", "postgres", "redis"} == set(services)
    for name, service in services.items():
        assert "healthcheck" in service, name
        for dependency, condition in (service.get("depends_on") or {}).items():
            assert dependency in services
            assert condition == {"condition": "service_healthy"}, (name, dependency)


def test_every_variable_compose_passes_is_in_env_example_with_its_default():
    variables = compose_variables()
    assert ("DASHBOARD_PORT", "8080") in variables
    for name, default in variables:
        assert name in ENV_EXAMPLE, f"{name} is used by compose.yaml but missing from .env.example"
        if default is not None and "${" not in default:
            assert default == ENV_EXAMPLE[name], f"{name}: compose default {default!r} != .env.example"


def test_one_image_for_every_replica_named_by_its_host():
    services = COMPOSE["services"]
    for name in ("dashboard", "dashboard-gpu"):
        service = services[name]
        assert service["image"] == "aura-dashboard:${VERSION:-latest}" and service["build"] == "."
        env = service["environment"]
        assert env["MESSAGE_QUEUE_URL"].startswith("redis://redis:")
        assert env["DASHBOARD_INSTANCE"] == "" and env["DASHBOARD_ADVERTISE_URL"] == "", \
            "replicas name themselves (host name), so scaling gives unique names"
        assert "audit-data:/app/data" in service["volumes"]
    assert services["dashboard"]["deploy"]["replicas"] == "${DASHBOARD_REPLICAS:-2}"
    assert [s for s in services if s.startswith("dashboard-") and s != "dashboard-gpu"] == []


def test_nginx_hashes_full_client_addresses_and_follows_dns():
    assert "ip_hash" not in NGINX.split("upstream", 1)[1].split("}")[0]
    assert "hash $remote_addr consistent;" in NGINX
    assert "include /etc/nginx/aura-upstream.conf;" in NGINX
    assert "proxy_set_header Upgrade $http_upgrade" in NGINX
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for" in NGINX
    assert "proxy_connect_timeout 2s;" in NGINX, "a dead replica's address fails over in seconds"
    nginx = COMPOSE["services"]["nginx"]
    assert "./deploy/nginx-run.sh:/usr/local/bin/aura-nginx-run.sh:ro" in nginx["volumes"]
    assert nginx["entrypoint"] == ["/bin/sh", "/usr/local/bin/aura-nginx-run.sh"]
    assert "/healthz" in " ".join(nginx["healthcheck"]["test"]), "nginx's health goes through to a dashboard"
    assert nginx["depends_on"] == {"dashboard": {"condition": "service_healthy"}}


def test_dashboards_trust_exactly_the_stacks_network():
    env = COMPOSE["services"]["dashboard"]["environment"]
    (subnet,) = [c["subnet"] for c in COMPOSE["networks"]["default"]["ipam"]["config"]]
    assert env["TRUSTED_PROXIES"] == subnet == "${STACK_SUBNET:-172.30.118.0/24}"
    assert env["DASHBOARD_PUBLIC_URLS"] == "${DASHBOARD_PUBLIC_URLS:-http://localhost:${DASHBOARD_PORT:-8080}}"


def test_logs_go_to_stdout_in_containers():
    env = COMPOSE["services"]["dashboard"]["environment"]
    assert env["LOG_CONSOLE"] == "stdout" and env["LOG_FILE"] == "${CONTAINER_LOG_FILE:-}"
    assert "LOG_CONSOLE=stdout" in DOCKERFILE and re.search(r"^\s+LOG_FILE= \\$", DOCKERFILE, re.M)


def test_gpu_profile_reserves_nvidia_gpus():
    gpu = COMPOSE["services"]["dashboard-gpu"]
    assert gpu["profiles"] == ["gpu"]
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert gpu["environment"]["ENABLE_GPU_MONITORING"] == "true"
    assert "dashboard" in gpu["networks"]["default"]["aliases"], "nginx finds them under the same name"


def test_healthcheck_paths_exist_in_the_app():
    app = create_app(make_settings())
    paths = {resource.canonical for resource in app.router.resources()}
    for text in (DOCKERFILE, COMPOSE_TEXT):
        for path in re.findall(r"http://127\.0\.0\.1(?::8080)?(/[a-z]+)", text):
            assert path in paths, path


def test_image_is_multi_stage_non_root_with_healthcheck_and_no_wheel_layer():
    stages = re.findall(r"^FROM\s+\S+", DOCKERFILE, re.M)
    assert len(stages) >= 2, "build the page's assets in their own stage"
    users = re.findall(r"^USER\s+(\S+)", DOCKERFILE, re.M)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*", DOCKERFILE, re.M | re.S)
    assert "/healthz" in DOCKERFILE
    final = DOCKERFILE.rsplit("\nFROM ", 1)[1]
    assert "wheel" not in final and "COPY --from=build /opt/aura /opt/aura" in final
    assert "extras_require']['nvml']" in DOCKERFILE, "nvidia-ml-py is installed in the image"
