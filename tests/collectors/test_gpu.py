"""GPU collector: the NVML path against a stand-in NVML module with recorded values, the
GPUtil path likewise, and the no-GPU path for real on this machine."""

from __future__ import annotations

import asyncio
import types
from collections import namedtuple

import aiohttp
import pytest

from aura_dashboard.collectors.gpu import GpuCollector
from tests.conftest import make_settings, running_server

Memory = namedtuple("c_nvmlMemory_t", "total free used")
Utilization = namedtuple("c_nvmlUtilization_t", "gpu memory")
Process = namedtuple("c_nvmlProcessInfo_t", "pid usedGpuMemory")


class NVMLError(Exception):
    pass


def stand_in_nvml(count=2, init_error=None, power_error=False):
    """A module shaped like pynvml, returning values recorded from an A100 and an L4."""
    calls = {"init": 0, "shutdown": 0}
    devices = [
        dict(name=b"NVIDIA A100-SXM4-40GB", uuid="GPU-aaaa", mem=Memory(42949672960, 32212254720, 10737418240),
             util=Utilization(87, 40), temp=61, power=312456, procs=[Process(4242, 10737418240)]),
        dict(name="NVIDIA L4", uuid="GPU-bbbb", mem=Memory(24152899584, 24152899584, 0),
             util=Utilization(0, 0), temp=34, power=16000, procs=[]),
    ][:count]

    def init():
        calls["init"] += 1
        if init_error:
            raise NVMLError(init_error)

    def power(handle):
        if power_error:
            raise NVMLError("Not Supported")
        return devices[handle]["power"]

    module = types.SimpleNamespace(
        NVML_TEMPERATURE_GPU=0, calls=calls,
        nvmlInit=init, nvmlShutdown=lambda: calls.__setitem__("shutdown", calls["shutdown"] + 1),
        nvmlDeviceGetCount=lambda: len(devices),
        nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetName=lambda h: devices[h]["name"],
        nvmlDeviceGetUUID=lambda h: devices[h]["uuid"],
        nvmlDeviceGetMemoryInfo=lambda h: devices[h]["mem"],
        nvmlDeviceGetUtilizationRates=lambda h: devices[h]["util"],
        nvmlDeviceGetTemperature=lambda h, sensor: devices[h]["temp"],
        nvmlDeviceGetPowerUsage=power,
        nvmlDeviceGetComputeRunningProcesses=lambda h: devices[h]["procs"],
    )
    return module


def gpu_settings(include_processes=True):
    return make_settings({"ENABLE_GPU_MONITORING": "true"},
                         {"monitoring": {"gpu": {"include_processes": include_processes}}}).monitoring.gpu


async def test_nvml_path_reads_every_gpu_and_initialises_once():
    nvml = stand_in_nvml()
    collector = GpuCollector(gpu_settings(), nvml=nvml, load_libraries=False)
    first = await collector.sample()
    await collector.sample()
    assert nvml.calls["init"] == 1 and collector.backend == "nvml"
    a100, l4 = first
    assert a100 == {"index": 0, "name": "NVIDIA A100-SXM4-40GB", "uuid": "GPU-aaaa",
                    "utilization_percent": 87.0, "memory_total": 42949672960,
                    "memory_used": 10737418240, "memory_percent": 25.0, "temperature_c": 61.0,
                    "power_w": 312.456, "processes": [{"pid": 4242, "memory_used": 10737418240}]}
    assert l4["name"] == "NVIDIA L4" and l4["memory_percent"] == 0.0 and l4["processes"] == []
    collector.close()
    assert nvml.calls["shutdown"] == 1


async def test_nvml_unsupported_reading_is_none_and_processes_optional():
    collector = GpuCollector(gpu_settings(include_processes=False), nvml=stand_in_nvml(power_error=True),
                             load_libraries=False)
    gpus = await collector.sample()
    assert gpus[0]["power_w"] is None and "processes" not in gpus[0]


async def test_gputil_is_the_fallback_when_nvml_fails():
    gpu = types.SimpleNamespace(id=0, name="NVIDIA T4", uuid="GPU-cccc", load=0.5, memoryTotal=15360.0,
                                memoryUsed=3840.0, temperature=48.0)
    gputil = types.SimpleNamespace(getGPUs=lambda: [gpu])
    collector = GpuCollector(gpu_settings(), nvml=stand_in_nvml(init_error="Driver Not Loaded"),
                             gputil=gputil, load_libraries=False)
    (entry,) = await collector.sample()
    assert collector.backend == "gputil"
    assert entry["utilization_percent"] == 50.0 and entry["memory_percent"] == 25.0
    assert entry["memory_total"] == 15360 * 1024 * 1024 and entry["temperature_c"] == 48.0


async def test_neither_library_gives_available_false_with_reasons():
    collector = GpuCollector(gpu_settings(), nvml=stand_in_nvml(init_error="Driver Not Loaded"),
                             gputil=types.SimpleNamespace(getGPUs=lambda: []), load_libraries=False)
    result = await collector.sample()
    assert result["available"] is False
    assert "Driver Not Loaded" in result["reason"] and "GPUtil: no GPU found" in result["reason"]


async def test_no_gpu_for_real_on_this_machine():
    """The real nvidia-ml-py and GPUtil libraries, on a machine without an NVIDIA driver."""
    collector = GpuCollector(gpu_settings())
    result = await collector.sample()
    if isinstance(result, list):
        pytest.skip("this machine has an NVIDIA GPU: the no-GPU path cannot be seen here")
    assert result["available"] is False and result["reason"]
    collector.close()


async def test_gpu_stream_end_to_end_says_no_gpu():
    settings = make_settings({"ENABLE_GPU_MONITORING": "true", "FEATURE_GPU_MONITORING": "true"},
                             {"updates": {"intervals": {"gpu_metrics": 200}}})
    async with running_server(settings) as srv, aiohttp.ClientSession() as http:
        for _ in range(100):
            async with http.get(srv.url + "/api/gpu/metrics") as response:
                if response.status == 200:
                    body = await response.json()
                    break
            await asyncio.sleep(0.1)
        data = body["data"]
        assert isinstance(data, list) or data["available"] is False
