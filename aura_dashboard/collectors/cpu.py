"""CPU utilisation over a window of the caller's own.

`psutil.cpu_percent(interval=None)` measures since the process's previous call of it: one
state for every caller, so two samplers in one process (several servers in a test process, a
benchmark beside the server) shorten each other's window and read 0 % or 100 %. A `CpuWindow`
keeps its own previous `cpu_times()` and computes what psutil computes over it: busy time is
everything but idle and iowait (on Linux, guest time is already counted in user and nice).
"""

from __future__ import annotations

import sys
from typing import Any

_GUEST_IN_USER = sys.platform.startswith("linux")


def _total(times: Any) -> float:
    total = sum(times)
    if _GUEST_IN_USER:
        total -= getattr(times, "guest", 0) + getattr(times, "guest_nice", 0)
    return total


def _busy_percent(before: Any, after: Any) -> float:
    deltas = type(after)(*(max(0.0, a - b) for a, b in zip(after, before)))
    total = _total(deltas)
    if total <= 0:
        return 0.0
    busy = total - deltas.idle - getattr(deltas, "iowait", 0)
    return round(min(max(0.0, busy / total * 100), 100.0), 1)


class CpuWindow:
    """Utilisation since this window's previous reading, all CPUs together or per CPU.

    :param psutil: the psutil module (a stand-in in tests).
    :param percpu: one figure per CPU instead of one for all.
    """

    def __init__(self, psutil: Any, *, percpu: bool = False):
        self.psutil = psutil
        self.percpu = percpu
        self._last: Any = None

    def percent(self) -> Any:
        """A float (a list of them per CPU); 0.0 at the first reading, which opens the window."""
        now = self.psutil.cpu_times(percpu=self.percpu)
        last, self._last = self._last, now
        if not self.percpu:
            return 0.0 if last is None else _busy_percent(last, now)
        if last is None or len(last) != len(now):
            return [0.0] * len(now)
        return [_busy_percent(b, a) for b, a in zip(last, now)]
