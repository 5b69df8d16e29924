"""The `aura-dashboard` command as a user runs it: a real process, real signals."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
import socketio
import yaml

from tests.conftest import free_port

BIN = Path(sys.executable).parent / "aura-dashboard"


def command() -> list[str]:
    # The console script when installed (as the README's command does), else the module.
    return [str(BIN)] if BIN.exists() else [sys.executable, "-m", "aura_dashboard"]


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DASHBOARD_", "DATABASE_"))}
    env.update({"LOG_FILE": "", "DATABASE_HOST": ""}, **extra)
    return env


def run(*args: str, cwd, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(command() + list(args), cwd=cwd, env=cli_env(**env),
                          capture_output=True, text=True, timeout=60)


async def until_healthy(url: str) -> None:
    """Until the started command answers /healthz (10 s at most)."""
    async with aiohttp.ClientSession() as http:
        for _ in range(100):
            try:
                async with http.get(url + "/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)


def test_console_script_is_installed():
    assert BIN.exists() or shutil.which("aura-dashboard"), "pip install did not create aura-dashboard"


def test_bad_port_exits_2_naming_the_key(tmp_path):
    done = run(cwd=tmp_path, DASHBOARD_PORT="abc")
    assert done.returncode == 2
    assert "dashboard.port: 'abc' is not an integer (from DASHBOARD_PORT)" in done.stderr
    assert "Traceback" not in done.stderr


def test_check_config_lists_every_problem(tmp_path):
    done = run("check-config", cwd=tmp_path, DASHBOARD_PORT="abc", LOG_LEVEL="LOUD")
    assert done.returncode == 2
    assert "dashboard.port:" in done.stderr and "logging.level:" in done.stderr
    assert "2 problem(s)" in done.stderr


def test_check_config_redacts_secrets(tmp_path):
    done = run("check-config", cwd=tmp_path, DATABASE_PASSWORD="pg-Secret-1",
               DASHBOARD_API_KEY="key-Secret-2", SECURITY_API_KEY_ENABLED="true")
    assert done.returncode == 0, done.stderr
    assert "pg-Secret-1" not in done.stdout + done.stderr
    assert "key-Secret-2" not in done.stdout + done.stderr
    body = yaml.safe_load(done.stdout)
    assert body["backends"]["database"]["password"] == "<redacted>"
    assert body["security"]["api_key"] == "<redacted>"
    assert body["security"]["api_key_enabled"] is True


def test_check_config_reads_dot_env_of_the_working_directory(tmp_path):
    (tmp_path / ".env").write_text("DASHBOARD_PORT=9123\nDATABASE_PASSWORD=from-dot-env\n")
    done = run("check-config", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert yaml.safe_load(done.stdout)["dashboard"]["port"] == 9123
    assert "from-dot-env" not in done.stdout


def test_options_after_the_command_and_config_file(tmp_path):
    config = tmp_path / "mine.yaml"
    config.write_text("dashboard:\n  port: 9321\n  shade: grey\n")
    done = run("check-config", "--config", str(config), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert yaml.safe_load(done.stdout)["dashboard"]["port"] == 9321
    assert "dashboard.shade: unknown key" in done.stderr


async def test_sigterm_stops_cleanly_with_a_client_connected(tmp_path):
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        *command(), cwd=tmp_path, env=cli_env(DASHBOARD_HOST="127.0.0.1", DASHBOARD_PORT=str(port)),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    client = socketio.AsyncClient(reconnection=False)
    disconnected = asyncio.Event()
    client.on("disconnect", lambda *a: disconnected.set(), namespace="/omni_monitor")
    try:
        url = f"http://127.0.0.1:{port}"
        await until_healthy(url)
        await client.connect(url, socketio_path="/ws", namespaces=["/omni_monitor"],
                             transports=["websocket"])
        proc.send_signal(signal.SIGTERM)
        # Its own waits are bounded (1 s for WebSockets, 3 s for tasks); on a loaded machine the
        # whole stop takes longer, so this bounds a hang, not a speed (bench/ measures speed).
        code = await asyncio.wait_for(proc.wait(), 20)
        await asyncio.wait_for(disconnected.wait(), 5)
        stderr = (await proc.stderr.read()).decode()
        stdout = (await proc.stdout.read()).decode()
        assert code == 0, stderr
        assert f"serving on http://127.0.0.1:{port}/" in stdout
        assert "Traceback" not in stderr
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await client.disconnect()


async def test_container_logging_is_json_on_stdout_naming_instance_and_client(tmp_path):
    """What the image sets (LOG_CONSOLE=stdout, no file) behind a proxy: every stdout line is
    one JSON record naming the instance; the access log names the forwarded client; python-
    engineio's records are not printed a second time in plain text."""
    port = free_port()
    env = cli_env(DASHBOARD_HOST="127.0.0.1", DASHBOARD_PORT=str(port), LOG_CONSOLE="stdout",
                  DASHBOARD_INSTANCE="replica-a", TRUSTED_PROXIES="127.0.0.1")
    proc = await asyncio.create_subprocess_exec(*command(), cwd=tmp_path, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        await until_healthy(url)
        async with aiohttp.ClientSession() as http:
            async with http.get(url + "/api/features", headers={"X-Forwarded-For": "203.0.113.9"}) as response:
                assert response.status == 200
            async with http.get(url + "/ws/?EIO=4&transport=polling",
                                headers={"Origin": "http://evil.example", "Host": "evil.example"}) as response:
                assert response.status == 400
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
        stdout = (await proc.stdout.read()).decode()
        stderr = (await proc.stderr.read()).decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    records = [json.loads(line) for line in stdout.splitlines()]  # each line one JSON record
    assert records and {r["instance"] for r in records} == {"replica-a"}
    assert any(f"serving on http://127.0.0.1:{port}/" in r["message"] for r in records)
    access = [r for r in records if r["logger"] == "aiohttp.access" and r.get("path") == "/api/features"]
    assert access and access[0]["client"] == "203.0.113.9" and access[0]["status"] == 200
    assert any("evil.example" in r["message"] for r in records if r["level"] in ("WARNING", "ERROR"))
    assert "evil.example" not in stderr, "no plain-text copy of a record"


async def test_serving_on_is_printed_once_the_port_is_bound(tmp_path):
    """When the banner is read, the port answers at once (no retries)."""
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        *command(), cwd=tmp_path, env=cli_env(DASHBOARD_HOST="127.0.0.1", DASHBOARD_PORT=str(port)),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert f"serving on http://127.0.0.1:{port}/" in line
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                assert response.status in (200, 503)
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 20)


def test_port_in_use_is_one_line_naming_the_address_and_exit_2(tmp_path):
    import socket
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run(cwd=tmp_path, DASHBOARD_HOST="127.0.0.1", DASHBOARD_PORT=str(port))
    assert done.returncode == 2, done.stderr
    assert "serving on" not in done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"127.0.0.1:{port}" in lines[0] and "dashboard.port" in lines[0]


def test_unusable_audit_store_path_is_one_line_naming_the_key_and_exit_2(tmp_path):
    (tmp_path / "adir").mkdir()
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    for path in ("adir", str(blocker / "sub" / "audit.db")):
        done = run(cwd=tmp_path, DASHBOARD_PORT=str(free_port()), AUDIT_STORE_PATH=path,
                   HISTORY_STORE_PATH=":memory:")
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert "panels.governance.audit_store_path" in lines[0] and path in lines[0]
        assert "AUDIT_STORE_PATH" in lines[0]


def test_a_chosen_log_path_that_cannot_be_written_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "ldir").mkdir()
    done = run(cwd=tmp_path, DASHBOARD_PORT=str(free_port()), LOG_FILE="ldir",
               AUDIT_STORE_PATH=":memory:", HISTORY_STORE_PATH=":memory:")
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "logging.file.path" in lines[0] and "LOG_FILE" in lines[0], done.stderr


def test_default_disk_paths_exist_and_no_warning_at_start(tmp_path):
    from tests.conftest import make_settings
    paths = make_settings().monitoring.system.disk.monitor_paths
    assert paths and all(os.path.exists(p) for p in paths)

async def test_listen_queue_holds_a_burst_of_long_polling_connections(tmp_path):
    """aiohttp's default listen queue is 128: at 500 long-polling clients the kernel dropped SYNs
    past it and polls arrived seconds late (the bench's polling/500 p99 was 18x Node's)."""
    ss = shutil.which("ss")
    if ss is None:
        pytest.skip("ss (iproute2) is not installed: cannot read the listen queue's length")
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        *command(), cwd=tmp_path, env=cli_env(DASHBOARD_HOST="127.0.0.1", DASHBOARD_PORT=str(port)),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        await until_healthy(f"http://127.0.0.1:{port}")
        # For a listening socket, `ss -ltn` shows the queue's length as Send-Q.
        out = subprocess.run([ss, "-Hltn", f"sport = :{port}"], capture_output=True, text=True).stdout
        backlog = int(out.split()[2])
        somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())
        assert backlog >= min(1024, somaxconn), out
    finally:
        proc.kill()
        await proc.wait()
