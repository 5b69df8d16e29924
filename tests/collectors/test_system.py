"""System collector against the real psutil; rates against psutil's own named tuples."""

from __future__ import annotations

import logging
import types
from collections import namedtuple

import psutil

from aura_dashboard.collectors.system import SystemCollector
from tests.conftest import make_settings


def system_settings(**over):
    return make_settings({}, {"monitoring": {"system": over}}).monitoring.system


async def test_real_sample_has_every_section(tmp_path):
    settings = system_settings(cpu={"include_per_cpu": True}, disk={"monitor_paths": ["/", str(tmp_path)]})
    collector = SystemCollector(settings)
    data = await collector.sample()
    assert data["cpu"]["count"] == psutil.cpu_count()
    assert len(data["cpu"]["per_cpu"]) == psutil.cpu_count()
    assert len(data["cpu"]["load_avg"]) == 3
    assert data["memory"]["total"] == psutil.virtual_memory().total and "swap_percent" in data["memory"]
    assert set(data["disk"]) == {"/", str(tmp_path)}
    assert set(data["disk_io"]) == {"read_bytes_per_s", "write_bytes_per_s", "read_count_per_s", "write_count_per_s"}
    assert "lo" in data["network"]


async def test_missing_path_is_reported_once_in_the_log_and_every_time_in_the_data(caplog):
    collector = SystemCollector(system_settings(disk={"monitor_paths": ["/", "/no/such/path"]}))
    with caplog.at_level(logging.WARNING):
        first = await collector.sample()
        second = await collector.sample()
    assert first["disk_missing"] == second["disk_missing"] == ["/no/such/path"]
    assert sum("/no/such/path" in r.getMessage() for r in caplog.records) == 1


async def test_switches_leave_sections_out():
    settings = system_settings(cpu={"enabled": False}, memory={"include_virtual": False},
                               disk={"enabled": False}, network={"enabled": False})
    data = await SystemCollector(settings).sample()
    assert "cpu" not in data and "disk" not in data and "network" not in data
    assert "swap_percent" not in data["memory"]


Io = namedtuple("sdiskio", "read_count write_count read_bytes write_bytes read_time write_time")
Net = namedtuple("snetio", "bytes_sent bytes_recv packets_sent packets_recv errin errout dropin dropout")


class RecordedPsutil:
    """Real psutil for everything but the I/O counters, which replay a recording."""

    def __init__(self, disk, net):
        self._disk, self._net = iter(disk), iter(net)

    def __getattr__(self, name):
        return getattr(psutil, name)

    def disk_io_counters(self):
        return next(self._disk)

    def net_io_counters(self, pernic=False):
        return next(self._net)


async def test_rates_per_second_from_the_previous_sample_filtered_by_interface():
    clock = types.SimpleNamespace(t=0.0)
    recorded = RecordedPsutil(
        disk=[Io(10, 20, 1000, 2000, 0, 0), Io(30, 20, 5000, 2000, 0, 0)],
        net=[{"eth0": Net(0, 0, 0, 0, 0, 0, 0, 0), "lo": Net(0, 0, 0, 0, 0, 0, 0, 0)},
             {"eth0": Net(4000, 2000, 40, 20, 0, 0, 0, 0), "lo": Net(9, 9, 9, 9, 0, 0, 0, 0)}])
    collector = SystemCollector(system_settings(network={"interfaces": ["eth0"]}), psutil=recorded,
                                monotonic=lambda: clock.t)
    first = await collector.sample()
    assert first["disk_io"]["read_bytes_per_s"] == 0.0 and first["network"]["eth0"]["bytes_sent_per_s"] == 0.0
    clock.t = 2.0
    second = await collector.sample()
    assert second["disk_io"] == {"read_bytes_per_s": 2000.0, "write_bytes_per_s": 0.0,
                                 "read_count_per_s": 10.0, "write_count_per_s": 0.0}
    assert second["network"] == {"eth0": {"bytes_sent_per_s": 2000.0, "bytes_recv_per_s": 1000.0,
                                          "packets_sent_per_s": 20.0, "packets_recv_per_s": 10.0}}


async def test_counter_reset_never_gives_negative_rates():
    clock = types.SimpleNamespace(t=0.0)
    recorded = RecordedPsutil(disk=[Io(10, 10, 9000, 9000, 0, 0), Io(0, 0, 0, 0, 0, 0)],
                              net=[{"eth0": Net(500, 500, 5, 5, 0, 0, 0, 0)}, {"eth0": Net(0, 0, 0, 0, 0, 0, 0, 0)}])
    collector = SystemCollector(system_settings(), psutil=recorded, monotonic=lambda: clock.t)
    await collector.sample()
    clock.t = 1.0
    data = await collector.sample()
    assert all(v == 0.0 for v in data["disk_io"].values())
    assert all(v == 0.0 for v in data["network"]["eth0"].values())
