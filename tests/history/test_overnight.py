"""A month left running, on a fast clock: samples through the aggregator, the writer and the
retention task into each store, then the reader shows the night at 10 s resolution and the
month at 5 min, and the fine tier holds only its last day."""

from __future__ import annotations

import pytest

from aura_dashboard.history import Aggregator, HistoryReader, HistoryWriter, TierSpec
from aura_dashboard.history.store import ReadRequest
from tests.history.test_tiers import TOY, Clock, env

DAY = 86400
TIERS = [TierSpec("fine", 10, DAY), TierSpec("coarse", 300, 30 * DAY)]


async def test_a_month_on_a_fast_clock(store):
    start = 1_700_006_400.0  # a midnight (UTC)
    clock = Clock(start)
    agg = Aggregator([TOY], TIERS, grace_s=30, clock=clock)
    writer = HistoryWriter(agg, store, source="host-a", clock=clock)
    writer.started = start
    end = start + 30 * DAY

    async def live(stream):
        return []
    reader = HistoryReader({"toy": TOY}, store, TIERS, max_points=1500, live=live, own_source="host-a",
                           interval_s=lambda s: 10.0, clock=clock)
    while clock.now < end:
        # A sample a minute for the first 29 days, then one every 10 s (what the fine tier keeps).
        step = 60 if clock.now < end - DAY else 10
        hour_end = clock.now + 3600
        while clock.now < hour_end:
            agg.add(env(clock.now, {"cpu": {"percent": (clock.now % 3600) / 36}}))
            clock.now += step
        writer.collect()
        await writer.flush()
        if int(clock.now) % (6 * 3600) == 0:
            await writer.retain()
    await writer.retain()

    # The last night, 01:00 to 05:00, at 10 s resolution.
    night = end - DAY + 3600
    answer = await reader.read("toy", night, night + 4 * 3600, fields=["cpu.percent"])
    assert (answer["tier"], answer["step"]) == ("fine", 10)
    avg = answer["fields"]["cpu.percent"]["avg"]
    assert len([v for v in avg if v is not None]) == 4 * 360
    assert answer["t"][:2] == [night, night + 10]
    # Five days of the month at 5 min, and the whole month merged to at most 1,500 points.
    answer = await reader.read("toy", start + 10 * DAY, start + 15 * DAY)
    assert (answer["tier"], answer["step"]) == ("coarse", 300)
    assert len(answer["t"]) == 5 * 288
    c = answer["fields"]["cpu.percent"]
    assert c["min"][0] == 0 and c["max"][0] == pytest.approx(4 * 60 / 36) and c["avg"][0] == pytest.approx(2 * 60 / 36)
    month = await reader.read("toy", start, end)
    assert month["tier"] == "coarse" and month["step"] == 1800 and len(month["t"]) <= 1500
    assert len([v for v in month["fields"]["cpu.percent"]["avg"] if v is not None]) >= 1400
    # The fine tier keeps a day: a range before it is answered from the coarse tier.
    early = await reader.read("toy", end - 2 * DAY, end - 2 * DAY + 3600)
    assert early["tier"] == "coarse"
    (fine,) = await store.read(ReadRequest("fine", "toy", "host-a", None, 0, 10**10, DAY))
    assert min(fine.t) >= end - 2 * DAY and sum(fine.count) <= DAY // 10 + 360
