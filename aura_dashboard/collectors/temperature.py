"""Temperature sensors through psutil, by chip and label, or `available: false`."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import psutil as _psutil

from ..contract import FieldSpec, PayloadModel, StreamContract, Unavailable


class TemperatureCollector:
    """`await sample()`: {"available": True, "sensors": {chip: {label: celsius}}} or why not."""

    def __init__(self, *, psutil: Any = _psutil):
        self.psutil = psutil

    async def sample(self) -> dict[str, Any]:
        # Reading hwmon files can stall on some drivers: keep it off the event loop.
        return await asyncio.get_running_loop().run_in_executor(None, self.sample_now)

    def sample_now(self) -> dict[str, Any]:
        read = getattr(self.psutil, "sensors_temperatures", None)
        if read is None:
            return {"available": False, "reason": "this platform has no temperature sensors in psutil"}
        try:
            chips = read()
        except OSError as exc:
            return {"available": False, "reason": f"sensors cannot be read: {exc}"}
        if not chips:
            return {"available": False, "reason": "no temperature sensors found"}
        sensors: dict[str, dict[str, float]] = {}
        for chip, entries in chips.items():
            for i, entry in enumerate(entries):
                label = entry.label or f"sensor{i}"
                sensors.setdefault(chip, {})[label] = entry.current
        return {"available": True, "sensors": sensors}


# -- the `temperature` stream's contract -----------------------------------------------------
class TemperatureData(PayloadModel):
    available: Literal[True]
    sensors: dict[str, dict[str, float]]


TEMPERATURE = StreamContract(
    name="temperature", namespace="/omni_monitor", payload=TemperatureData | Unavailable,
    summary="The host's temperature sensors by chip and label, or why there are none.",
    switches=("monitoring.temperature.enabled",), feature="temperature_monitoring",
    interval=("monitoring.temperature.sample_interval_ms",),
    fields=(
        FieldSpec("available", "flag", "whether sensors could be read"),
        FieldSpec("sensors.*.*", "celsius", "a sensor's reading, by chip and label", series=True, labels=("chip", "sensor")),
        FieldSpec("reason", "text", "why there is nothing to report"),
    ),
)
