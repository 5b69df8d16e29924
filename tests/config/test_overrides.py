"""The runtime override store: effective flags, listeners, reset, unknown flags."""

import pytest

from aura_dashboard.config import RuntimeOverrides
from aura_dashboard.config.overrides import UnknownFeature
from tests.conftest import make_settings


@pytest.fixture
def overrides():
    return RuntimeOverrides(make_settings({"FEATURE_DEBUG_MODE": "false"}).features)


async def test_override_wins_and_reset_restores(overrides):
    assert overrides.is_on("debug_mode") is False
    change = await overrides.set("debug_mode", True, actor="api")
    assert (change.flag, change.old, change.new, change.actor) == ("debug_mode", False, True, "api")
    assert overrides.is_on("debug_mode") and overrides.overridden() == {"debug_mode": True}
    assert overrides.configured()["debug_mode"] is False
    await overrides.reset("debug_mode")
    assert overrides.is_on("debug_mode") is False and overrides.overridden() == {}


async def test_listeners_hear_changes_only(overrides):
    heard = []

    async def async_listener(change):
        heard.append(("async", change.flag, change.new))

    def broken(change):
        raise RuntimeError("listener bug")

    overrides.changed.connect(broken)
    overrides.changed.connect(lambda change: heard.append(("sync", change.flag, change.new)))
    overrides.changed.connect(async_listener)
    assert await overrides.set("omni_monitor", True) is None  # already on: no change
    await overrides.set("omni_monitor", False)
    assert heard == [("sync", "omni_monitor", False), ("async", "omni_monitor", False)]


async def test_unknown_flag_names_the_key(overrides):
    with pytest.raises(UnknownFeature) as caught:
        await overrides.set("warp_drive", True)
    assert str(caught.value) == "features.warp_drive: no such feature flag"
    with pytest.raises(UnknownFeature):
        overrides.is_on("warp_drive")
