"""Tiers: synthetic samples with an injected clock give exact buckets; series come from the
stream contract (wildcards filled with their keys)."""

from __future__ import annotations

import pytest

from aura_dashboard.app import STREAMS
from aura_dashboard.contract import FieldSpec, PayloadModel, StreamContract
from aura_dashboard.history import Aggregator, TierSpec, concrete_name, series_fields, tokens_of

FINE, COARSE = TierSpec("fine", 10, 86400), TierSpec("coarse", 300, 30 * 86400)


class Any_(PayloadModel):
    model_config = {"extra": "allow"}


TOY = StreamContract(name="toy", namespace="/omni_monitor", payload=Any_, fields=(
    FieldSpec("cpu.percent", "percent", "", series=True),
    FieldSpec("cpu.count", "count", ""),
    FieldSpec("net.*.rx", "bytes/s", "", series=True, labels=("interface",)),
    FieldSpec("[].power_w", "watts", "", series=True, labels=("gpu",)),
    FieldSpec("load[]", "count", "", series=True, labels=("index",)),
))


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def env(ts, data, stream="toy", source="host-a"):
    return {"stream": stream, "seq": 1, "ts": ts, "source": source, "data": data}


def test_paths_and_names():
    assert tokens_of("cpu.per_cpu[]") == ("cpu", "per_cpu", "[]")
    assert tokens_of("[].processes[].pid") == ("[]", "processes", "[]", "pid")
    assert tokens_of("sensors.*.*") == ("sensors", "*", "*")
    assert concrete_name("network.*.bytes_recv_per_s", ("eth0",)) == "network.eth0.bytes_recv_per_s"
    assert concrete_name("cpu.per_cpu[]", ("3",)) == "cpu.per_cpu[3]"
    assert concrete_name("[].power_w", ("1",)) == "[1].power_w"
    fields = {f.path: f for f in series_fields(TOY)}
    assert set(fields) == {"cpu.percent", "net.*.rx", "[].power_w", "load[]"}
    assert list(fields["net.*.rx"].values({"net": {"eth0": {"rx": 5}, "lo": {"rx": None}}})) == [(("eth0",), 5.0)]
    assert list(fields["load[]"].values({"load": [1, 2.5, True]})) == [(("0",), 1.0), (("1",), 2.5)]
    assert list(fields["[].power_w"].values({"available": False})) == []


def test_every_streams_series_fields_compile():
    for contract in STREAMS:
        for field in series_fields(contract):
            assert "" not in field.tokens, (contract.name, field.path)


def test_exact_min_avg_max_last_count_per_bucket():
    clock = Clock(1000.0)
    agg = Aggregator([TOY], [FINE, COARSE], grace_s=5, clock=clock)
    # Bucket [1000, 1010): 1, 7, 4 (last 4); [1010, 1020): 10; out of order within a bucket.
    for ts, value in ((1000.0, 1), (1003.0, 7), (1009.9, 4), (1001.0, 2), (1010.0, 10)):
        agg.add(env(ts, {"cpu": {"percent": value, "count": 8}}))
    assert agg.close(1014.9) == []  # [1000, 1010) ends at 1010, plus 5 s of grace: not yet
    (row,) = agg.close(1015.0)
    assert (row.tier, row.field, row.keys, row.start) == ("fine", "cpu.percent", (), 1000)
    assert (row.min, row.avg, row.max, row.last, row.count) == (1, 3.5, 7, 4, 4)
    agg.add(env(1005.0, {"cpu": {"percent": 99}}))  # too late for the fine bucket, still in the coarse one
    assert agg.late == 1
    rows = agg.close(1300.0 + 5)
    fine = [r for r in rows if r.tier == "fine"]
    coarse = [r for r in rows if r.tier == "coarse"]
    assert [(r.start, r.count, r.last) for r in fine] == [(1010, 1, 10)]
    (c,) = coarse
    assert (c.start, c.min, c.max, c.count, c.last) == (900, 1, 99, 6, 10)
    assert c.avg == pytest.approx((1 + 7 + 4 + 2 + 10 + 99) / 6)


def test_wildcards_sources_and_shutdown_flush():
    clock = Clock(0)
    agg = Aggregator([TOY], [FINE], grace_s=0, clock=clock)
    agg.add(env(20.0, {"net": {"eth0": {"rx": 1}, "wlan0": {"rx": 3}}, "load": [0.5]}))
    agg.add(env(21.0, {"net": {"eth0": {"rx": 2}}}, source="host-b"))
    agg.add(env(22.0, [{"power_w": 100}, {"power_w": 50}]))
    rows = agg.close(25.0, everything=True)  # the open bucket [20, 30) is flushed at shutdown
    got = {(r.source, r.field, r.keys): (r.avg, r.count) for r in rows}
    assert got == {("host-a", "net.*.rx", ("eth0",)): (1, 1), ("host-a", "net.*.rx", ("wlan0",)): (3, 1),
                   ("host-a", "load[]", ("0",)): (0.5, 1), ("host-b", "net.*.rx", ("eth0",)): (2, 1),
                   ("host-a", "[].power_w", ("0",)): (100, 1), ("host-a", "[].power_w", ("1",)): (50, 1)}
    assert agg.open_buckets() == 0
    agg.add(env(29.0, {"cpu": {"percent": 1}}))
    assert agg.late == 1  # that bucket was flushed


def test_series_are_bounded():
    agg = Aggregator([TOY], [FINE], max_series=2, clock=Clock(0))
    agg.add(env(1.0, {"net": {f"if{i}": {"rx": i} for i in range(5)}}))
    assert agg.dropped_series == 3
    assert len(agg.close(100.0)) == 2


def test_streams_without_series_are_ignored():
    agg = Aggregator(STREAMS, [FINE], clock=Clock(0))
    assert "audit" not in agg.fields and "system" in agg.fields
    agg.add(env(1.0, {"id": "x"}, stream="audit"))
    assert agg.samples == 0


def test_a_range_reads_the_widest_buckets_that_give_its_step():
    """A day at 1,500 points is a 60 s step: the fine tier's 1-minute rollup gives it reading a
    sixth of the rows; a month's 1,800 s step comes from the coarse rollup; 6 hours (20 s) and
    7 days (600 s) from the tiers themselves."""
    from aura_dashboard.config.schema import HistorySettings
    from aura_dashboard.history import HistoryReader, tiers_of
    from tests.conftest import make_settings

    async def live(stream):
        return []
    tiers = tiers_of(make_settings().history)
    assert isinstance(make_settings().history, HistorySettings)
    reader = HistoryReader({}, None, tiers, max_points=1500, live=live, own_source="h", clock=lambda: 10**9)
    now = 10**9
    chosen = {span: reader._tier_for(now - span, span / 1500, now).name
              for span in (3600, 6 * 3600, 86400, 7 * 86400, 30 * 86400)}
    assert chosen == {3600: "fine", 6 * 3600: "fine", 86400: "fine_rollup", 7 * 86400: "coarse",
                      30 * 86400: "coarse_rollup"}
