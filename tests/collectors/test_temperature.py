"""Temperature collector: the real platform, and sensors shaped as psutil returns them."""

import types

import psutil

from aura_dashboard.collectors.temperature import TemperatureCollector


async def test_real_platform_reports_sensors_or_says_why_not():
    data = await TemperatureCollector().sample()
    assert data["available"] in (True, False)
    assert data.get("sensors") if data["available"] else data["reason"]


async def test_chips_and_labels_in_celsius():
    # psutil's own named tuple (its module moved between psutil releases).
    shwtemp = getattr(getattr(psutil, "_ntuples", None), "shwtemp", None) or psutil._common.shwtemp
    fake = types.SimpleNamespace(sensors_temperatures=lambda: {
        "coretemp": [shwtemp("Package id 0", 54.0, 100.0, 100.0), shwtemp("", 51.0, None, None)]})
    assert await TemperatureCollector(psutil=fake).sample() == {
        "available": True, "sensors": {"coretemp": {"Package id 0": 54.0, "sensor1": 51.0}}}


async def test_platform_without_sensors():
    data = await TemperatureCollector(psutil=types.SimpleNamespace()).sample()
    assert data["available"] is False
    empty = await TemperatureCollector(psutil=types.SimpleNamespace(sensors_temperatures=dict)).sample()
    assert empty == {"available": False, "reason": "no temperature sensors found"}
