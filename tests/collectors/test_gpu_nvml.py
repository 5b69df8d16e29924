"""A real NVIDIA GPU through the real nvidia-ml-py, end to end.

test_gpu.py covers the NVML and GPUtil paths against stand-ins and the no-GPU path for real; this
file is the part only a machine with a GPU and its driver can show: what NVML really returns fits
the `gpu` stream's contract, memory that a process takes on the GPU shows in the stream, on
`/metrics` and as a `gpu_memory_percent` alert, over a real Socket.IO connection.

Skipped where NVML finds no GPU. That is every CI machine, and it is a normal state rather than a
missing service (`test_gpu.py::test_no_gpu_for_real_on_this_machine` is the other half). The GPU
machine some sessions are lent runs it; the README says when it last passed on one.
"""

from __future__ import annotations

import asyncio
import ctypes.util
import sys

import aiohttp
import pytest
import socketio

from aura_dashboard.collectors.gpu import GPU, GpuCollector
from tests.conftest import make_settings, running_server, until_event

GIB = 1 << 30

# A process that holds `size` bytes of GPU memory through the CUDA driver API (libcuda, which
# comes with the driver: no CUDA toolkit or framework needed), prints "ready" and keeps them
# until its stdin closes.
HOLD_GPU_MEMORY = r"""
import ctypes, sys
cuda = ctypes.CDLL("libcuda.so.1")
def check(result, what):
    if result != 0:
        sys.exit(f"{what}: CUresult {result}")
size = int(sys.argv[1])
device, context, pointer = ctypes.c_int(), ctypes.c_void_p(), ctypes.c_uint64()
check(cuda.cuInit(0), "cuInit")
check(cuda.cuDeviceGet(ctypes.byref(device), 0), "cuDeviceGet")
check(cuda.cuCtxCreate_v2(ctypes.byref(context), 0, device), "cuCtxCreate")
check(cuda.cuMemAlloc_v2(ctypes.byref(pointer), ctypes.c_size_t(size)), "cuMemAlloc")
check(cuda.cuMemsetD8_v2(pointer, ctypes.c_ubyte(7), ctypes.c_size_t(size)), "cuMemsetD8")
check(cuda.cuCtxSynchronize(), "cuCtxSynchronize")
print("ready", flush=True)
sys.stdin.read()
"""


def nvml_gpus() -> list[str]:
    """The UUIDs NVML sees here, or [] (no library, no driver, no GPU)."""
    try:
        import pynvml
        pynvml.nvmlInit()
    except Exception:
        return []
    try:
        return [_text(pynvml.nvmlDeviceGetUUID(pynvml.nvmlDeviceGetHandleByIndex(i)))
                for i in range(pynvml.nvmlDeviceGetCount())]
    finally:
        pynvml.nvmlShutdown()


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


UUIDS = nvml_gpus()
pytestmark = pytest.mark.skipif(not UUIDS, reason="NVML finds no NVIDIA GPU here (a normal state; "
                                                   "test_gpu.py covers it)")


def gpu_settings(extra: dict | None = None):
    return make_settings({"ENABLE_GPU_MONITORING": "true", "FEATURE_GPU_MONITORING": "true"},
                         {"monitoring": {"gpu": {"include_processes": True}}, **(extra or {})})


class HeldGpuMemory:
    """`async with HeldGpuMemory(size)`: a child process holding `size` bytes on GPU 0."""

    def __init__(self, size: int):
        self.size = size
        self.process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> "HeldGpuMemory":
        assert ctypes.util.find_library("cuda"), "NVML sees a GPU but the driver's libcuda is missing"
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", HOLD_GPU_MEMORY, str(self.size),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        line = await asyncio.wait_for(self.process.stdout.readline(), 60)
        if line.strip() != b"ready":
            await self.process.wait()
            raise AssertionError(f"holding GPU memory failed: {(await self.process.stderr.read()).decode()}")
        return self

    async def __aexit__(self, *exc) -> None:
        self.process.stdin.close()
        await asyncio.wait_for(self.process.wait(), 30)


async def test_real_gpus_sampled_fit_the_contract():
    collector = GpuCollector(gpu_settings().monitoring.gpu)
    try:
        gpus = await collector.sample()
        assert collector.backend == "nvml"
        GPU.validate(gpus)
        assert [gpu["uuid"] for gpu in gpus] == UUIDS
        assert [gpu["index"] for gpu in gpus] == list(range(len(UUIDS)))
        for gpu in gpus:
            assert gpu["name"] and gpu["uuid"].startswith("GPU-")
            assert 0 < gpu["memory_used"] <= gpu["memory_total"]
            assert 0 <= gpu["utilization_percent"] <= 100 and 0 < gpu["memory_percent"] <= 100
            assert gpu["temperature_c"] is None or 0 < gpu["temperature_c"] < 125
            assert gpu["power_w"] is None or gpu["power_w"] > 0
            assert isinstance(gpu["processes"], list)
    finally:
        collector.close()


async def test_memory_a_process_takes_shows_in_the_sample():
    collector = GpuCollector(gpu_settings().monitoring.gpu)
    try:
        before = (await collector.sample())[0]["memory_used"]
        async with HeldGpuMemory(GIB):
            during = (await collector.sample())[0]["memory_used"]
        after = (await collector.sample())[0]["memory_used"]
    finally:
        collector.close()
    assert during - before >= GIB, (before, during)
    assert during - after >= GIB, (during, after)  # and it is given back when the process ends


async def test_gpu_stream_metrics_and_memory_alert_end_to_end():
    """The served `gpu` stream, `/api/gpu/metrics` and `/metrics` carry this GPU; a process taking
    memory past `gpu_memory_percent` fires the alert naming the GPU, and it clears when it ends."""
    probe = GpuCollector(gpu_settings().monitoring.gpu)
    try:
        idle = (await probe.sample())[0]
    finally:
        probe.close()
    held = 2 * GIB
    threshold = round(100.0 * (idle["memory_used"] + held / 2) / idle["memory_total"], 3)
    settings = gpu_settings({
        "updates": {"intervals": {"gpu_metrics": 250}, "batch_updates": False},
        "monitoring": {"gpu": {"include_processes": True},
                       "thresholds": {"gpu_memory_percent": threshold, "consecutive_samples": 1,
                                      "hysteresis_margin_percent": 0.1}}})
    async with running_server(settings) as srv, aiohttp.ClientSession() as http:
        client = socketio.AsyncClient(reconnection=False)
        gpu_envelopes: list[dict] = []
        alerts: list[dict] = []
        changed = asyncio.Event()
        client.on("gpu", lambda e: (gpu_envelopes.append(e), changed.set()), namespace="/omni_monitor")
        client.on("alerts", lambda e: (alerts.append(e), changed.set()), namespace="/omni_monitor")
        await client.connect(srv.url, socketio_path=srv.ws_path.strip("/"), namespaces=["/omni_monitor"],
                             transports=["websocket"])
        try:
            ack = await client.call("subscribe", {"streams": ["gpu", "alerts"]}, namespace="/omni_monitor")
            assert ack["ok"], ack
            await until_event(changed, lambda: gpu_envelopes, timeout=30)
            data = gpu_envelopes[-1]["data"]
            assert [gpu["uuid"] for gpu in data] == UUIDS

            async with http.get(srv.url + "/api/gpu/metrics") as response:
                assert response.status == 200
                assert [gpu["uuid"] for gpu in (await response.json())["data"]] == UUIDS
            async with http.get(srv.url + "/metrics") as response:
                exposition = await response.text()
            assert 'aura_gpu_memory_used_bytes{gpu="0"' in exposition

            def pids_on_gpu0(envelope: dict) -> list[int]:
                return [p["pid"] for p in envelope["data"][0]["processes"]]

            def gpu_alert(state: str):
                return [a for a in alerts if a["data"].get("kind") == "gpu_memory_percent"
                        and a["data"].get("state") == state]

            async with HeldGpuMemory(held) as holder:
                await until_event(changed, lambda: gpu_alert("firing"), timeout=30)
                firing = gpu_alert("firing")[-1]["data"]
                assert firing["value"] > threshold and firing["threshold"] == threshold
                assert firing["target"] == "GPU 0"
                await until_event(changed, lambda: holder.process.pid in pids_on_gpu0(gpu_envelopes[-1]),
                                  timeout=30)  # monitoring.gpu.include_processes
            await until_event(changed, lambda: gpu_alert("resolved"), timeout=30)
        finally:
            await client.disconnect()
