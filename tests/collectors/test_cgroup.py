"""cgroup v2 limits: read from a cgroup directory laid out as the kernel does, and the bare host."""

from __future__ import annotations

from aura_dashboard.collectors.cgroup import CgroupReader, own_cgroup_dir


def cgroup_tree(tmp_path, cpu_max="200000 100000", memory_max="1073741824", usage=0, current=268435456):
    root = tmp_path / "sys"
    directory = root / "system.slice" / "dash.scope"
    directory.mkdir(parents=True)
    (directory / "cpu.max").write_text(cpu_max + "\n")
    (directory / "memory.max").write_text(memory_max + "\n")
    (directory / "memory.current").write_text(f"{current}\n")
    (directory / "cpu.stat").write_text(f"usage_usec {usage}\nuser_usec 0\nsystem_usec 0\n")
    proc = tmp_path / "cgroup"
    proc.write_text("0::/system.slice/dash.scope\n")
    return root, proc, directory


def test_limits_and_usage_against_them(tmp_path):
    root, proc, directory = cgroup_tree(tmp_path)
    clock = {"t": 10.0}
    reader = CgroupReader.detect(root, proc)
    assert reader is not None and reader.directory == directory
    reader._monotonic = lambda: clock["t"]
    first = reader.sample()
    assert first == {"cpu_limit_cores": 2.0, "memory_limit_bytes": 1073741824, "cpu_percent_of_limit": 0.0,
                     "memory_used_bytes": 268435456, "memory_percent_of_limit": 25.0}
    (directory / "cpu.stat").write_text("usage_usec 1000000\n")  # one CPU-second in 1 s of 2 cores
    clock["t"] = 11.0
    assert reader.sample()["cpu_percent_of_limit"] == 50.0


def test_unlimited_cgroup_is_absent(tmp_path):
    root, proc, _ = cgroup_tree(tmp_path, cpu_max="max 100000", memory_max="max")
    assert CgroupReader.detect(root, proc) is None


def test_memory_limit_only(tmp_path):
    root, proc, _ = cgroup_tree(tmp_path, cpu_max="max 100000")
    data = CgroupReader.detect(root, proc).sample()
    assert data["cpu_limit_cores"] is None and "cpu_percent_of_limit" not in data
    assert data["memory_percent_of_limit"] == 25.0


def test_no_cgroup_v2_at_all(tmp_path):
    assert own_cgroup_dir(tmp_path, tmp_path / "missing") is None
    v1 = tmp_path / "v1"
    v1.write_text("12:memory:/docker/abc\n")
    assert own_cgroup_dir(tmp_path, v1) is None


def test_this_machine_real_cgroup_does_not_fail():
    reader = CgroupReader.detect()
    assert reader is None or isinstance(reader.sample(), (dict, type(None)))
