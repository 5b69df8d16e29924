"""CPU and memory against the container's cgroup v2 limits, when there are limits.

Reads the process's own cgroup (from /proc/self/cgroup, "0::/path") under /sys/fs/cgroup:
`cpu.max` ("quota period" or "max period"), `cpu.stat` (usage_usec), `memory.max` and
`memory.current`. On a bare host, or without limits, `detect()` returns None and the
`system` stream has no `cgroup` entry. The files are small pseudo-files: reading them is
cheap and happens in the system collector's worker thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def own_cgroup_dir(root: Path = Path("/sys/fs/cgroup"), proc_self: Path = Path("/proc/self/cgroup")) -> Path | None:
    """The cgroup v2 directory of this process, or None on a v1 or cgroup-less system."""
    text = _read(proc_self)
    if text is None:
        return None
    for line in text.splitlines():
        if line.startswith("0::"):
            relative = line[3:].lstrip("/")
            directory = root / relative if relative else root
            return directory if directory.is_dir() else None
    return None


class CgroupReader:
    """Samples usage against limits in one cgroup v2 directory."""

    def __init__(self, directory: Path, monotonic: Callable[[], float] = time.monotonic):
        self.directory = directory
        self._monotonic = monotonic
        self._previous: tuple[float, int] | None = None

    @classmethod
    def detect(cls, root: Path = Path("/sys/fs/cgroup"),
               proc_self: Path = Path("/proc/self/cgroup")) -> CgroupReader | None:
        """A reader when this process runs under a CPU or memory limit, else None."""
        directory = own_cgroup_dir(root, proc_self)
        if directory is None:
            return None
        reader = cls(directory)
        return reader if reader.limits() != (None, None) else None

    def limits(self) -> tuple[float | None, int | None]:
        """(CPU limit in cores, memory limit in bytes); None where unlimited."""
        cpu_limit = None
        cpu_max = _read(self.directory / "cpu.max")
        if cpu_max:
            quota, _, period = cpu_max.partition(" ")
            if quota != "max" and period:
                cpu_limit = int(quota) / int(period)
        memory_limit = None
        memory_max = _read(self.directory / "memory.max")
        if memory_max and memory_max != "max":
            memory_limit = int(memory_max)
        return cpu_limit, memory_limit

    def sample(self) -> dict[str, Any] | None:
        cpu_limit, memory_limit = self.limits()
        if cpu_limit is None and memory_limit is None:
            return None
        out: dict[str, Any] = {"cpu_limit_cores": cpu_limit, "memory_limit_bytes": memory_limit}
        usage_usec = None
        for line in (_read(self.directory / "cpu.stat") or "").splitlines():
            key, _, value = line.partition(" ")
            if key == "usage_usec":
                usage_usec = int(value)
        now = self._monotonic()
        if usage_usec is not None and cpu_limit:
            previous, self._previous = self._previous, (now, usage_usec)
            if previous is not None and now > previous[0]:
                cores_used = (usage_usec - previous[1]) / 1e6 / (now - previous[0])
                out["cpu_percent_of_limit"] = round(max(0.0, 100.0 * cores_used / cpu_limit), 2)
            else:
                out["cpu_percent_of_limit"] = 0.0
        current = _read(self.directory / "memory.current")
        if current is not None:
            out["memory_used_bytes"] = int(current)
            if memory_limit:
                out["memory_percent_of_limit"] = round(100.0 * int(current) / memory_limit, 2)
        return out
