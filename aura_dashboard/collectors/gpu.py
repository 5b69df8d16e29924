"""NVIDIA GPUs: NVML through nvidia-ml-py first, GPUtil as the fallback, else "no GPU".

NVML is initialised once (in a worker thread: nvmlInit can take a second on a busy
driver), not per sample. No GPU, no driver or no library is a normal state, reported as
`{"available": false, "reason": ...}`; it is never an exception.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import shutil
from typing import Any

from ..config.schema import GpuMonitoringSettings
from ..contract import FieldSpec, PayloadModel, StreamContract, Unavailable

log = logging.getLogger(__name__)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _import(name: str) -> Any | None:
    try:
        return importlib.import_module(name)
    except Exception:  # absent, or broken at import (GPUtil imports distutils on old versions)
        return None


class GpuCollector:
    """`await sample()`: a list with one entry per GPU, or {"available": False, "reason"}."""

    def __init__(self, settings: GpuMonitoringSettings, *, nvml: Any = None, gputil: Any = None,
                 load_libraries: bool = True):
        self.settings = settings
        # The libraries are imported at the first sample, and GPUtil only when NVML cannot be
        # used: with GPU monitoring off nothing is loaded (GPUtil alone pulls in distutils and
        # pkg_resources, ~10 MiB of RSS).
        self._nvml = nvml
        self._gputil = gputil
        self._load_libraries = load_libraries
        self._backend: str | None = None  # "nvml", "gputil" or None once decided
        self._reason = ""
        self._decided = False

    @property
    def backend(self) -> str | None:
        return self._backend

    async def sample(self) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, self.sample_now)

    def sample_now(self) -> Any:
        if not self._decided:
            self._decide()
        if self._backend == "nvml":
            try:
                return self._sample_nvml()
            except Exception as exc:  # the driver went away: say so, try again next time
                log.warning("NVML sample failed: %s", exc)
                self._decided = False
                self._shutdown_nvml()
                return {"available": False, "reason": f"NVML error: {exc}"}
        if self._backend == "gputil":
            try:
                return self._sample_gputil()
            except Exception as exc:
                return {"available": False, "reason": f"GPUtil error: {exc}"}
        return {"available": False, "reason": self._reason}

    def close(self) -> None:
        self._shutdown_nvml()

    # -- choosing a backend ----------------------------------------------------------------
    def _decide(self) -> None:
        self._decided = True
        reasons = []
        if self._nvml is None and self._load_libraries:
            self._nvml = _import("pynvml")
        if self._nvml is not None:
            try:
                self._nvml.nvmlInit()
                count = self._nvml.nvmlDeviceGetCount()
            except Exception as exc:
                reasons.append(f"NVML: {_text(exc) or type(exc).__name__}")
            else:
                if count > 0:
                    self._backend = "nvml"
                    log.info("GPU monitoring through NVML: %d GPU(s)", count)
                    return
                reasons.append("NVML: no GPU found")
                self._shutdown_nvml(force=True)
        else:
            reasons.append("NVML: nvidia-ml-py is not installed")
        if self._gputil is None and self._load_libraries:
            # GPUtil reads nvidia-smi's output: without it there is nothing to import it for.
            if shutil.which("nvidia-smi") is None:
                reasons.append("GPUtil: nvidia-smi is not on PATH")
                self._backend = None
                self._reason = "; ".join(reasons)
                log.info("no GPU to monitor (%s)", self._reason)
                return
            self._gputil = _import("GPUtil")
        if self._gputil is not None:
            try:
                gpus = self._gputil.getGPUs()
            except Exception as exc:
                reasons.append(f"GPUtil: {exc}")
            else:
                if gpus:
                    self._backend = "gputil"
                    log.info("GPU monitoring through GPUtil: %d GPU(s)", len(gpus))
                    return
                reasons.append("GPUtil: no GPU found")
        else:
            reasons.append("GPUtil is not installed")
        self._backend = None
        self._reason = "; ".join(reasons)
        log.info("no GPU to monitor (%s)", self._reason)

    def _shutdown_nvml(self, force: bool = False) -> None:
        if self._nvml is not None and (force or self._backend == "nvml"):
            try:
                self._nvml.nvmlShutdown()
            except Exception:
                pass
        if self._backend == "nvml":
            self._backend = None

    # -- sampling -----------------------------------------------------------------------
    def _sample_nvml(self) -> list[dict[str, Any]]:
        nv = self._nvml
        gpus = []
        for index in range(nv.nvmlDeviceGetCount()):
            handle = nv.nvmlDeviceGetHandleByIndex(index)
            memory = nv.nvmlDeviceGetMemoryInfo(handle)
            utilization = nv.nvmlDeviceGetUtilizationRates(handle)
            entry: dict[str, Any] = {
                "index": index,
                "name": _text(nv.nvmlDeviceGetName(handle)),
                "uuid": _text(nv.nvmlDeviceGetUUID(handle)),
                "utilization_percent": float(utilization.gpu),
                "memory_total": int(memory.total),
                "memory_used": int(memory.used),
                "memory_percent": round(100.0 * memory.used / memory.total, 2) if memory.total else 0.0,
                "temperature_c": _optional(lambda: float(nv.nvmlDeviceGetTemperature(
                    handle, nv.NVML_TEMPERATURE_GPU))),
                "power_w": _optional(lambda: nv.nvmlDeviceGetPowerUsage(handle) / 1000.0),
            }
            if self.settings.include_processes:
                entry["processes"] = _optional(lambda: [
                    {"pid": p.pid, "memory_used": getattr(p, "usedGpuMemory", None)}
                    for p in nv.nvmlDeviceGetComputeRunningProcesses(handle)], default=[])
            gpus.append(entry)
        return gpus

    def _sample_gputil(self) -> list[dict[str, Any]]:
        gpus = []
        for gpu in self._gputil.getGPUs():
            total = float(gpu.memoryTotal) * 1024 * 1024  # GPUtil reports MiB
            used = float(gpu.memoryUsed) * 1024 * 1024
            entry = {
                "index": int(gpu.id),
                "name": str(gpu.name),
                "uuid": str(gpu.uuid),
                "utilization_percent": round(float(gpu.load) * 100.0, 2),
                "memory_total": int(total),
                "memory_used": int(used),
                "memory_percent": round(100.0 * used / total, 2) if total else 0.0,
                "temperature_c": float(gpu.temperature) if gpu.temperature is not None else None,
                "power_w": None,  # GPUtil does not read power
            }
            if self.settings.include_processes:
                entry["processes"] = []  # GPUtil does not list processes
            gpus.append(entry)
        return gpus


def _optional(read, default=None):
    """A reading some GPUs do not support (power on older boards) becomes None, not an error."""
    try:
        return read()
    except Exception:
        return default


# -- the `gpu` stream's contract -------------------------------------------------------------
class GpuProcess(PayloadModel):
    pid: int
    memory_used: int | None


class GpuData(PayloadModel):
    index: int
    name: str
    uuid: str
    utilization_percent: float
    memory_total: int
    memory_used: int
    memory_percent: float
    temperature_c: float | None
    power_w: float | None
    processes: list[GpuProcess] | None = None


GPU = StreamContract(
    name="gpu", namespace="/omni_monitor", payload=list[GpuData] | Unavailable,
    summary="Each NVIDIA GPU of the host (NVML, else GPUtil), or why there is none.",
    switches=("monitoring.gpu.enabled",), feature="gpu_monitoring",
    interval=("updates.intervals.gpu_metrics",),
    fields=(
        FieldSpec("[].index", "id", "the GPU's index on this host"),
        FieldSpec("[].name", "text", "the board's name"),
        FieldSpec("[].uuid", "id", "the GPU's UUID"),
        FieldSpec("[].utilization_percent", "percent", "GPU busy", series=True, labels=("gpu",)),
        FieldSpec("[].memory_total", "bytes", "GPU memory"),
        FieldSpec("[].memory_used", "bytes", "GPU memory in use", series=True, labels=("gpu",)),
        FieldSpec("[].memory_percent", "percent", "GPU memory in use", series=True, labels=("gpu",)),
        FieldSpec("[].temperature_c", "celsius", "GPU temperature", series=True, labels=("gpu",)),
        FieldSpec("[].power_w", "watts", "power drawn (NVML only)", series=True, labels=("gpu",)),
        FieldSpec("[].processes[].pid", "id", "a process using the GPU (monitoring.gpu.include_processes)"),
        FieldSpec("[].processes[].memory_used", "bytes", "GPU memory that process uses"),
        FieldSpec("available", "flag", "false when there is no GPU to report"),
        FieldSpec("reason", "text", "why there is no GPU to report"),
    ),
)
