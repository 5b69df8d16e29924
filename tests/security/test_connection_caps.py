"""Connection caps (issue 15, item 8): `aura-dashboard` under a low descriptor limit, held by
half-sent request heads (slowloris) from one address and then from several, keeps answering
/healthz, and refuses the excess connections at once with a clear 503."""

from __future__ import annotations

import asyncio
import json
import select
import shutil
import socket

import aiohttp
import pytest

from aura_dashboard.security.connections import RESERVE, ConnectionCaps, effective_total
from tests.conftest import free_port
from tests.test_cli import cli_env, command, until_healthy

NOFILE = 384  # the total cap is then 240, over the per-address 128
HALF_HEAD = b"GET /api/config HTTP/1.1\r\nHost: x\r\nX-Slow: "


def half_open(address: str, port: int, count: int) -> tuple[list[socket.socket], list[bytes]]:
    """`count` connections from `address` that send half a request head; what each refused one
    was answered (the connections still open are returned)."""
    held, answers = [], []
    for _ in range(count):
        sock = socket.socket()
        sock.settimeout(5)
        sock.bind((address, 0))
        try:
            sock.connect(("127.0.0.1", port))
            sock.sendall(HALF_HEAD)
        except OSError:
            sock.close()
            continue
        held.append(sock)
    # The server works through its listen queue: collect answers until none came for 2 s.
    still = set(held)
    by_fd = {sock.fileno(): sock for sock in held}
    poller = select.poll()
    for sock in held:
        poller.register(sock, select.POLLIN)
    while still:
        ready = poller.poll(2000)
        if not ready:
            break
        for fd, _ in ready:
            sock = by_fd.pop(fd)
            poller.unregister(fd)
            try:
                data = sock.recv(4096)
            except OSError:
                data = b""
            answers.append(data)
            still.discard(sock)
            sock.close()
    return list(still), answers


async def healthz_within(url: str, seconds: float) -> int:
    timeout = aiohttp.ClientTimeout(total=seconds)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        async with http.get(url + "/healthz") as response:
            return response.status


async def test_slowloris_under_a_low_descriptor_limit_keeps_healthz_and_refuses_clearly(tmp_path):
    prlimit = shutil.which("prlimit")
    if prlimit is None:
        pytest.skip("prlimit (util-linux) is not installed: cannot lower the descriptor limit")
    port = free_port()
    log = open(tmp_path / "stderr.log", "wb")  # a pipe nobody reads would stall the server
    proc = await asyncio.create_subprocess_exec(
        prlimit, f"--nofile={NOFILE}:{NOFILE}", *command(), cwd=tmp_path,
        env=cli_env(DASHBOARD_HOST="127.0.0.1", DASHBOARD_PORT=str(port)),
        stdout=asyncio.subprocess.DEVNULL, stderr=log)
    url = f"http://127.0.0.1:{port}"
    held: list[socket.socket] = []
    try:
        await until_healthy(url)
        loop = asyncio.get_running_loop()
        # One address (127.0.0.2: loopback, another client than the probe's 127.0.0.1) opens more
        # half-sent heads than the process has descriptors.
        still, answers = await loop.run_in_executor(None, half_open, "127.0.0.2", port, NOFILE + 50)
        held += still
        assert answers, "no connection over the per-address cap was refused"
        assert all(b" 503 " in a.split(b"\r\n", 1)[0] for a in answers), answers[:3]
        body = json.loads(answers[0].split(b"\r\n\r\n", 1)[1])
        assert body["error"]["code"] == "too_many_connections"
        assert "dashboard.max_connections_per_address" in body["error"]["message"]
        assert await healthz_within(url, 5.0) == 200  # (the 1 s; a hang is what is asserted)
        # More addresses together past the total cap: still refused at once, /healthz answers.
        for n in (3, 4, 5, 6):
            still, more = await loop.run_in_executor(None, half_open, f"127.0.0.{n}", port, 100)
            held += still
            answers += more
        # (an address holding none yet may take one of the reserve: the probe's way in)
        assert len(held) <= effective_total(10_000, NOFILE) + RESERVE, len(held)
        assert any(b"dashboard.max_connections)" in a for a in answers)
        assert await healthz_within(url, 5.0) == 200
        # Once they go, the caps are free again.
        for sock in held:
            sock.close()
        held = []
        for _ in range(40):  # (the server sees the closes a moment later)
            await asyncio.sleep(0.25)
            still, answers = await loop.run_in_executor(None, half_open, "127.0.0.2", port, 10)
            held += still
            if len(still) == 10 and not answers:
                break
        assert len(still) == 10 and not answers
        assert proc.returncode is None
        # Quiet logs: the refusals are counted in a line, not logged one by one.
        said = (tmp_path / "stderr.log").read_text()
        assert 1 <= said.count("connections refused") <= 3, said[-2000:]
        assert "Traceback" not in said, said[-2000:]
    finally:
        for sock in held:
            sock.close()
        proc.kill()
        await proc.wait()
        log.close()


def test_caps_count_per_address_and_total_with_a_reserve_for_new_addresses():
    caps = ConnectionCaps(per_address=2, total=3, reserve=1)
    assert caps.admit("a") is None and caps.admit("a") is None
    assert "per address" in caps.admit("a")
    assert caps.admit("b") is None  # total reached (3)
    assert "in total" in caps.admit("b")  # b holds one already
    assert caps.admit("c") is None  # a new address: the reserve
    assert "in total" in caps.admit("d")  # reserve spent
    caps.release("a")
    caps.release("c")
    assert caps.admit("b") is None
    assert caps.open == {"a": 1, "b": 2}


def test_a_trusted_proxy_is_held_by_the_total_cap_only():
    caps = ConnectionCaps(per_address=1, total=3, reserve=0, exempt=lambda a: a == "10.0.0.1")
    assert all(caps.admit("10.0.0.1") is None for _ in range(3))
    assert "in total" in caps.admit("10.0.0.1")


def test_the_total_cap_fits_under_the_descriptor_limit():
    assert effective_total(10_000, None) == 10_000
    assert effective_total(10_000, 1024) == 1024 - 64 - 48 - 32
    assert effective_total(100, 1024) == 100
    assert effective_total(10_000, 50) == 16
