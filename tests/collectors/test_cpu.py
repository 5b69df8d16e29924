"""CPU utilisation over each sampler's own window: two system collectors in one process (as in
a test process holding several servers) must not shorten each other's window."""

from __future__ import annotations

import types
from collections import namedtuple

import psutil
import pytest

from aura_dashboard.collectors.cpu import CpuWindow
from aura_dashboard.collectors.system import SystemCollector
from tests.collectors.test_system import system_settings

Times = namedtuple("Times", "user nice system idle iowait irq softirq steal guest guest_nice")


def times(busy: float, idle: float, guest: float = 0.0) -> Times:
    return Times(busy, 0.0, 0.0, idle, 0.0, 0.0, 0.0, 0.0, guest, 0.0)


class SharedStatePsutil:
    """A stand-in for psutil whose cpu_times follow a script, and whose cpu_percent keeps one
    state for the whole process, as the real one does."""

    def __init__(self, script):
        self.now = script[0]
        self._last = self.now

    def cpu_times(self, percpu=False):
        return [self.now, self.now] if percpu else self.now

    def cpu_percent(self, interval=None, percpu=False):
        last, self._last = self._last, self.now
        total = sum(self.now) - sum(last)
        return 0.0 if total <= 0 else round((self.now.user - last.user) / total * 100, 1)

    def __getattr__(self, name):
        return getattr(psutil, name)


async def test_two_collectors_in_one_process_keep_their_own_window():
    fake = SharedStatePsutil([times(0, 0)])
    settings = system_settings(disk={"enabled": False}, network={"enabled": False})
    slow, busy_reader = SystemCollector(settings, psutil=fake), SystemCollector(settings, psutil=fake)
    await slow.start()
    await busy_reader.start()
    fake.now = times(10, 0)          # ten seconds all busy
    assert (await busy_reader.sample())["cpu"]["percent"] == 100.0
    fake.now = times(10, 10)         # then ten seconds all idle
    # The slow collector's window is the whole twenty seconds: half busy (psutil's shared
    # state would have given it only the idle half, 0 %).
    assert (await slow.sample())["cpu"]["percent"] == 50.0


def test_guest_time_is_not_counted_twice_and_per_cpu_is_per_cpu():
    window = CpuWindow(types.SimpleNamespace(cpu_times=lambda percpu=False: clock[0]))
    clock = [times(0, 0)]
    window.percent()
    clock[0] = times(10, 10, guest=5)  # guest is part of user on Linux: 10 busy of 20
    assert window.percent() == pytest.approx(50.0)
    per = CpuWindow(types.SimpleNamespace(cpu_times=lambda percpu=False: cores[0]), percpu=True)
    cores = [[times(0, 0), times(0, 0)]]
    assert per.percent() == [0.0, 0.0]
    cores[0] = [times(4, 0), times(1, 3)]
    assert per.percent() == [100.0, 25.0]


def test_the_real_psutil_reads_a_sane_figure():
    window = CpuWindow(psutil)
    window.percent()
    sum(i * i for i in range(200_000))
    assert 0.0 <= window.percent() <= 100.0
