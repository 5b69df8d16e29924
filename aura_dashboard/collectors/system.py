"""Host metrics through psutil: CPU, memory, disk usage, disk I/O and network rates.

The psutil calls run in the default executor: disk usage on a network mount can block, and
the set of calls costs a few hundred microseconds that the event loop should not pay.
Rates (bytes and packets per second) come from the previous sample's counters.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import psutil as _psutil

from ..config.schema import SystemMonitoringSettings
from .cpu import CpuWindow
from ..contract import FieldSpec, PayloadModel, StreamContract
from .cgroup import CgroupReader

log = logging.getLogger(__name__)


class SystemCollector:
    """`await sample()` returns the `system` stream's data as plain dicts and numbers."""

    def __init__(self, settings: SystemMonitoringSettings, *, psutil: Any = _psutil,
                 cgroup: CgroupReader | None = None, detect_cgroup: bool = False,
                 monotonic: Callable[[], float] = time.monotonic):
        self.settings = settings
        self.psutil = psutil
        self.cgroup = cgroup
        self._detect_cgroup = detect_cgroup and cgroup is None
        self._monotonic = monotonic
        self._previous: tuple[float, Any, dict] | None = None  # (time, disk io, net io)
        self._missing_reported: set[str] = set()
        self._primed = False
        self._cpu = CpuWindow(psutil)
        self._per_cpu = CpuWindow(psutil, percpu=True)

    async def start(self) -> None:
        """Open the CPU windows and find the container's cgroup, off the event loop."""
        await asyncio.get_running_loop().run_in_executor(None, self._start_now)

    def _start_now(self) -> None:
        self._prime()
        if self._detect_cgroup:
            self.cgroup = CgroupReader.detect()
            self._detect_cgroup = False

    def _prime(self) -> None:
        # The first reading only opens each CPU window.
        self._primed = True
        self._cpu.percent()
        if self.settings.cpu.include_per_cpu:
            self._per_cpu.percent()

    async def sample(self) -> dict[str, Any]:
        return await asyncio.get_running_loop().run_in_executor(None, self.sample_now)

    def sample_now(self) -> dict[str, Any]:
        """The blocking part; runs in a worker thread."""
        if not self._primed:
            self._prime()
        s = self.settings
        data: dict[str, Any] = {}
        if s.cpu.enabled:
            cpu: dict[str, Any] = {"percent": self._cpu.percent(), "count": self.psutil.cpu_count()}
            if s.cpu.include_per_cpu:
                cpu["per_cpu"] = self._per_cpu.percent()
            try:
                cpu["load_avg"] = list(self.psutil.getloadavg())
            except (AttributeError, OSError):
                cpu["load_avg"] = None
            data["cpu"] = cpu
        if s.memory.enabled:
            vm = self.psutil.virtual_memory()
            memory = {"total": vm.total, "available": vm.available, "used": vm.used,
                      "percent": vm.percent}
            if s.memory.include_virtual:
                swap = self.psutil.swap_memory()
                memory.update(swap_total=swap.total, swap_used=swap.used, swap_percent=swap.percent)
            data["memory"] = memory
        if s.disk.enabled:
            data["disk"], missing = self._disk_usage()
            if missing:
                data["disk_missing"] = missing
        now = self._monotonic()
        disk_io = self.psutil.disk_io_counters() if s.disk.enabled else None
        net_io = self.psutil.net_io_counters(pernic=True) if s.network.enabled else {}
        if s.network.interfaces:
            net_io = {name: c for name, c in net_io.items() if name in s.network.interfaces}
        previous, self._previous = self._previous, (now, disk_io, net_io)
        if s.disk.enabled:
            data["disk_io"] = _disk_rates(previous, now, disk_io)
        if s.network.enabled:
            data["network"] = _network_rates(previous, now, net_io)
        if self.cgroup is not None:
            limits = self.cgroup.sample()
            if limits is not None:
                data["cgroup"] = limits
        return data

    def _disk_usage(self) -> tuple[dict[str, Any], list[str]]:
        usage, missing = {}, []
        for path in self.settings.disk.monitor_paths:
            if not os.path.exists(path):
                missing.append(path)
                if path not in self._missing_reported:
                    self._missing_reported.add(path)
                    log.warning("monitored disk path %s does not exist; reported as missing", path,
                                extra={"key": "monitoring.system.disk.monitor_paths", "path": path})
                continue
            try:
                du = self.psutil.disk_usage(path)
            except OSError as exc:
                missing.append(path)
                if path not in self._missing_reported:
                    self._missing_reported.add(path)
                    log.warning("disk usage of %s cannot be read: %s", path, exc)
                continue
            self._missing_reported.discard(path)
            usage[path] = {"total": du.total, "used": du.used, "free": du.free, "percent": du.percent}
        return usage, missing


def _per_second(new: float, old: float, elapsed: float) -> float:
    # Counters can wrap or reset (an interface re-created): never report a negative rate.
    return round(max(0.0, (new - old) / elapsed), 3) if elapsed > 0 else 0.0


def _disk_rates(previous, now: float, current) -> dict[str, float] | None:
    if current is None:
        return None
    if previous is None or previous[1] is None:
        return {"read_bytes_per_s": 0.0, "write_bytes_per_s": 0.0,
                "read_count_per_s": 0.0, "write_count_per_s": 0.0}
    elapsed, old = now - previous[0], previous[1]
    return {
        "read_bytes_per_s": _per_second(current.read_bytes, old.read_bytes, elapsed),
        "write_bytes_per_s": _per_second(current.write_bytes, old.write_bytes, elapsed),
        "read_count_per_s": _per_second(current.read_count, old.read_count, elapsed),
        "write_count_per_s": _per_second(current.write_count, old.write_count, elapsed),
    }


def _network_rates(previous, now: float, current: dict) -> dict[str, dict[str, float]]:
    rates = {}
    for name, counters in current.items():
        old = previous[2].get(name) if previous else None
        elapsed = now - previous[0] if previous else 0.0
        if old is None:
            rates[name] = {"bytes_sent_per_s": 0.0, "bytes_recv_per_s": 0.0,
                           "packets_sent_per_s": 0.0, "packets_recv_per_s": 0.0}
            continue
        rates[name] = {
            "bytes_sent_per_s": _per_second(counters.bytes_sent, old.bytes_sent, elapsed),
            "bytes_recv_per_s": _per_second(counters.bytes_recv, old.bytes_recv, elapsed),
            "packets_sent_per_s": _per_second(counters.packets_sent, old.packets_sent, elapsed),
            "packets_recv_per_s": _per_second(counters.packets_recv, old.packets_recv, elapsed),
        }
    return rates


# -- the `system` stream's contract ----------------------------------------------------------
class CpuData(PayloadModel):
    percent: float
    count: int | None
    per_cpu: list[float] | None = None
    load_avg: list[float] | None


class MemoryData(PayloadModel):
    total: int
    available: int
    used: int
    percent: float
    swap_total: int | None = None
    swap_used: int | None = None
    swap_percent: float | None = None


class DiskUsage(PayloadModel):
    total: int
    used: int
    free: int
    percent: float


class DiskRates(PayloadModel):
    read_bytes_per_s: float
    write_bytes_per_s: float
    read_count_per_s: float
    write_count_per_s: float


class NetworkRates(PayloadModel):
    bytes_sent_per_s: float
    bytes_recv_per_s: float
    packets_sent_per_s: float
    packets_recv_per_s: float


class CgroupData(PayloadModel):
    cpu_limit_cores: float | None
    memory_limit_bytes: int | None
    cpu_percent_of_limit: float | None = None
    memory_used_bytes: int | None = None
    memory_percent_of_limit: float | None = None


class SystemData(PayloadModel):
    cpu: CpuData | None = None
    memory: MemoryData | None = None
    disk: dict[str, DiskUsage] | None = None
    disk_missing: list[str] | None = None
    disk_io: DiskRates | None = None
    network: dict[str, NetworkRates] | None = None
    cgroup: CgroupData | None = None


SYSTEM = StreamContract(
    name="system", namespace="/omni_monitor", payload=SystemData,
    summary="The host's CPU, memory, disks and network, sampled by every instance for its own host.",
    switches=("monitoring.system.enabled",), feature="system_monitoring",
    interval=("updates.intervals.system_metrics",),
    fields=(
        FieldSpec("cpu.percent", "percent", "CPU in use, all cores", series=True),
        FieldSpec("cpu.count", "count", "logical CPUs"),
        FieldSpec("cpu.per_cpu[]", "percent", "CPU in use per core (monitoring.system.cpu.include_per_cpu)",
                  series=True, labels=("cpu",)),
        FieldSpec("cpu.load_avg[]", "count", "load average over 1, 5 and 15 minutes", series=True, labels=("index",)),
        FieldSpec("memory.total", "bytes", "physical memory"),
        FieldSpec("memory.available", "bytes", "memory available to new processes", series=True),
        FieldSpec("memory.used", "bytes", "memory in use", series=True),
        FieldSpec("memory.percent", "percent", "memory in use", series=True),
        FieldSpec("memory.swap_total", "bytes", "swap space (monitoring.system.memory.include_virtual)"),
        FieldSpec("memory.swap_used", "bytes", "swap in use", series=True),
        FieldSpec("memory.swap_percent", "percent", "swap in use", series=True),
        FieldSpec("disk.*.total", "bytes", "size of the file system holding the monitored path"),
        FieldSpec("disk.*.used", "bytes", "space used", series=True, labels=("path",)),
        FieldSpec("disk.*.free", "bytes", "space free"),
        FieldSpec("disk.*.percent", "percent", "space used", series=True, labels=("path",)),
        FieldSpec("disk_missing[]", "text", "monitored paths that do not exist here"),
        FieldSpec("disk_io.read_bytes_per_s", "bytes/s", "disk reads", series=True),
        FieldSpec("disk_io.write_bytes_per_s", "bytes/s", "disk writes", series=True),
        FieldSpec("disk_io.read_count_per_s", "1/s", "disk read operations", series=True),
        FieldSpec("disk_io.write_count_per_s", "1/s", "disk write operations", series=True),
        FieldSpec("network.*.bytes_sent_per_s", "bytes/s", "bytes sent on the interface", series=True, labels=("interface",)),
        FieldSpec("network.*.bytes_recv_per_s", "bytes/s", "bytes received on the interface", series=True, labels=("interface",)),
        FieldSpec("network.*.packets_sent_per_s", "1/s", "packets sent on the interface", series=True, labels=("interface",)),
        FieldSpec("network.*.packets_recv_per_s", "1/s", "packets received on the interface", series=True, labels=("interface",)),
        FieldSpec("cgroup.cpu_limit_cores", "cores", "the container's CPU limit (when it has one)"),
        FieldSpec("cgroup.memory_limit_bytes", "bytes", "the container's memory limit"),
        FieldSpec("cgroup.cpu_percent_of_limit", "percent", "CPU used, of the container's limit", series=True),
        FieldSpec("cgroup.memory_used_bytes", "bytes", "memory the container uses", series=True),
        FieldSpec("cgroup.memory_percent_of_limit", "percent", "memory used, of the container's limit",
                  series=True),
    ),
)
