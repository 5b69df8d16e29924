"""The project's compose.yaml, run for real by the deployment tests: one stack per test module.

`ComposeStack` writes an env file (a free host port, a free subnet, a unique project name and
image tag), brings the stack up with `docker compose up --build --wait`, runs compose
commands against it and always takes it down with `down -v`. `Probe` is a container of the
dashboard's image on the stack's network at an address of our choosing: nginx routes by
client address, so each probe is a different client.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import os
import re
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import ROOT, free_port

COMPOSE_MIN = (2, 24)  # env_file entries with path/required
COMMAND_TIMEOUT_S = 120
UP_TIMEOUT_S = 420  # a first build on a fresh machine installs every dependency


def docker_problem() -> str | None:
    """Why the deployment tests cannot run here, or None when Docker and Compose v2 work."""
    if shutil.which("docker") is None:
        return "docker is not installed (as root: bash ../shared/containers/setup.sh)"
    info = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"],
                          capture_output=True, text=True, timeout=30)
    if info.returncode != 0:
        return f"the Docker daemon does not answer: {info.stderr.strip()[:200]}"
    version = subprocess.run(["docker", "compose", "version", "--short"],
                             capture_output=True, text=True, timeout=30)
    found = re.match(r"v?(\d+)\.(\d+)", version.stdout.strip())
    if version.returncode != 0 or not found:
        return "Docker Compose v2 is not installed (the `docker compose` plugin)"
    if tuple(map(int, found.groups())) < COMPOSE_MIN:
        return f"Docker Compose {version.stdout.strip()} is older than 2.24"
    return None


def _used_subnets() -> list[ipaddress.IPv4Network]:
    ids = subprocess.run(["docker", "network", "ls", "-q"], capture_output=True, text=True,
                         timeout=30, check=True).stdout.split()
    if not ids:
        return []
    inspected = json.loads(subprocess.run(["docker", "network", "inspect", *ids], capture_output=True,
                                          text=True, timeout=30, check=True).stdout)
    out = []
    for network in inspected:
        for config in (network.get("IPAM") or {}).get("Config") or []:
            try:
                out.append(ipaddress.ip_network(config.get("Subnet", ""), strict=False))
            except ValueError:
                continue
    return [n for n in out if n.version == 4]


def free_subnet(seed: str) -> ipaddress.IPv4Network:
    """A /24 of 172.30.0.0/16 that no Docker network uses, chosen from `seed`."""
    used = _used_subnets()
    start = int(hashlib.sha256(seed.encode()).hexdigest(), 16) % 256
    for step in range(256):
        candidate = ipaddress.ip_network(f"172.30.{(start + step) % 256}.0/24")
        if not any(candidate.overlaps(n) for n in used):
            return candidate
    raise RuntimeError("no free /24 in 172.30.0.0/16 for the stack's network")


@dataclass
class Result:
    returncode: int
    out: str
    err: str

    def check(self, what: str) -> "Result":
        assert self.returncode == 0, f"{what} failed ({self.returncode}):\n{self.err[-3000:]}\n{self.out[-2000:]}"
        return self


async def run(*args: str, stdin: str | None = None, timeout: float = COMMAND_TIMEOUT_S,
              cwd: Path = ROOT) -> Result:
    """A command, without blocking the event loop (clients keep running meanwhile)."""
    proc = await asyncio.create_subprocess_exec(
        *args, cwd=cwd, stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin is not None else None), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"{' '.join(args[:6])} did not finish in {timeout}s") from None
    return Result(proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"))


@dataclass
class ComposeStack:
    """One compose project of the repository's compose.yaml, on its own port and subnet."""

    workdir: Path
    project: str = field(default_factory=lambda: f"auratest{uuid.uuid4().hex[:10]}")
    port: int = field(default_factory=free_port)
    subnet: ipaddress.IPv4Network | None = None
    version: str = ""  # the image tag: the project's name (removed at the end; BuildKit keeps the cache)
    probes: list["Probe"] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.version = self.version or self.project

    @property
    def env_file(self) -> Path:
        return self.workdir / "stack.env"

    @property
    def network(self) -> str:
        return f"{self.project}_default"

    @property
    def image(self) -> str:
        return f"aura-dashboard:{self.version}"

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}"

    def write_env(self, **extra: str) -> None:
        self.subnet = self.subnet or free_subnet(self.project)
        values = {"DASHBOARD_PORT": str(self.port), "VERSION": self.version,
                  "STACK_SUBNET": str(self.subnet), **extra}
        self.env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()))

    def base(self) -> list[str]:
        return ["docker", "compose", "-p", self.project, "--env-file", str(self.env_file)]

    async def compose(self, *args: str, timeout: float = COMMAND_TIMEOUT_S) -> Result:
        return await run(*self.base(), *args, timeout=timeout)

    async def up(self, *args: str, timeout: float = UP_TIMEOUT_S) -> None:
        result = await self.compose("up", "-d", "--wait", "--wait-timeout", str(int(timeout)), *args,
                                    timeout=timeout + 60)
        if result.returncode != 0:
            logs = await self.compose("logs", "--no-color", "--tail", "40")
            raise AssertionError(f"compose up {' '.join(args)} failed:\n{result.err[-4000:]}\n"
                                 f"--- logs ---\n{logs.out[-6000:]}")

    def up_blocking(self, *args: str) -> None:
        """`up` for a fixture's setup, where no event loop runs."""
        asyncio.run(self.up(*args))

    def down(self) -> None:
        """Everything the stack made goes, whatever happened (blocking: runs at teardown)."""
        for probe in self.probes:
            subprocess.run(["docker", "rm", "-f", "-v", probe.name], capture_output=True, timeout=60)
        subprocess.run([*self.base(), "down", "-v", "--remove-orphans", "--timeout", "5"],
                       capture_output=True, timeout=180)
        subprocess.run(["docker", "image", "rm", self.image], capture_output=True, timeout=60)

    async def containers(self, service: str = "dashboard") -> list[dict]:
        """The running containers of `service`: ID, Name, State, Health."""
        result = (await self.compose("ps", "--format", "json", service)).check("compose ps")
        rows = [json.loads(line) for line in result.out.splitlines() if line.strip().startswith("{")]
        if len(rows) == 1 and isinstance(rows[0], list):
            rows = rows[0]
        return [r for r in rows if r.get("State") == "running"]

    async def exec_python(self, container: str, script: str, *args: str, timeout: float = 60) -> str:
        result = await run("docker", "exec", "-i", container, "python", "-", *args, stdin=script,
                           timeout=timeout)
        return result.check(f"python in {container}").out

    def probe_address(self, index: int) -> str:
        """The index-th probe address: from the top of the subnet, far from what Docker hands out."""
        assert self.subnet is not None
        return str(self.subnet.network_address + 250 - index)

    async def probe(self, index: int) -> "Probe":
        """The index-th client (created on first use) at `probe_address(index)`."""
        for probe in self.probes:
            if probe.index == index:
                return probe
        return await self.client_at(self.probe_address(index), index)

    async def client_at(self, address: str, index: int = -1) -> "Probe":
        """A container of the dashboard's image at `address` on the stack's network (it also
        keeps that address from being handed to anything else while it lives)."""
        probe = Probe(self, index, address, f"{self.project}-client-{address.replace('.', '-')}")
        result = await run("docker", "run", "-d", "--rm", "--name", probe.name, "--network", self.network,
                           "--ip", address, "--entrypoint", "sleep", self.image, "900")
        result.check(f"a client at {address}")
        self.probes.append(probe)
        return probe

    async def addresses(self, service: str = "dashboard") -> set[str]:
        """The addresses of the running containers of `service` on the stack's network."""
        out = set()
        for container in await self.containers(service):
            inspect = json.loads((await run("docker", "inspect", container["Name"])).check("inspect").out)[0]
            out |= {n["IPAddress"] for n in inspect["NetworkSettings"]["Networks"].values()}
        return out


HTTP_SCRIPT = r"""
import json, sys, urllib.error, urllib.request
from concurrent.futures import ThreadPoolExecutor
def call(spec):
    method, url, body, headers = spec
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return [response.status, response.read().decode()]
    except urllib.error.HTTPError as error:
        return [error.code, error.read().decode()]
specs = json.loads(sys.argv[1])
if sys.argv[2:] == ["parallel"]:  # all at once, answers in the order asked
    with ThreadPoolExecutor(max_workers=len(specs)) as pool:
        out = list(pool.map(call, specs))
else:
    out = [call(spec) for spec in specs]
print(json.dumps(out))
"""


@dataclass
class Probe:
    """A client at `address` on the stack's network (a container of the dashboard's image)."""

    stack: ComposeStack = field(repr=False)
    index: int
    address: str
    name: str

    async def requests(self, calls: list[tuple], base: str = "http://nginx",
                       parallel: bool = False) -> list[tuple[int, object]]:
        """[(method, path, body or None, headers or {})...] in one round trip, one after the other
        (or all at once with `parallel`); (status, JSON or text) of each."""
        spec = [[m, base + p, b, h or {}] for m, p, b, h in calls]
        args = [json.dumps(spec), *(["parallel"] if parallel else [])]
        raw = json.loads(await self.stack.exec_python(self.name, HTTP_SCRIPT, *args))
        out = []
        for status, text in raw:
            try:
                out.append((status, json.loads(text)))
            except ValueError:
                out.append((status, text))
        return out

    async def get(self, path: str) -> tuple[int, object]:
        return (await self.requests([("GET", path, None, {})]))[0]

    async def instance(self) -> str:
        status, body = await self.get("/healthz")
        assert status == 200, (status, body)
        return body["instance"]

    async def python(self, script: str, *args: str, timeout: float = 60) -> str:
        return await self.stack.exec_python(self.name, script, *args, timeout=timeout)
