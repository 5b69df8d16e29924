"""The shared pieces: key ring, buckets (with an injected clock), client addresses, events."""

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from aura_dashboard.errors import BadRequest
from aura_dashboard.security import BucketTable, ClientAddress, KeyRing, SecurityEvents, key_id
from aura_dashboard.security.validation import MAX_STRING_LENGTH, Payload, parse


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_key_ring_matches_each_rotated_key_and_nothing_else():
    ring = KeyRing(["old-key", "new-key"])
    assert ring.match("old-key") == key_id("old-key")
    assert ring.match("new-key") == key_id("new-key")
    for wrong in ["", None, "old-ke", "old-key ", "NEW-KEY", 123, {"k": 1}]:
        assert ring.match(wrong) is None
    assert key_id("new-key").startswith("key:") and "new-key" not in key_id("new-key")


def test_bucket_burst_then_refill_and_retry_after():
    clock = Clock()
    table = BucketTable(per_minute=60, burst=3, max_keys=10, clock=clock)
    assert [table.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = table.take("a")
    assert wait == pytest.approx(1.0)
    assert table.take("b") == 0.0  # another client is not affected
    clock.now += 1.0
    assert table.take("a") == 0.0


def test_bucket_table_is_bounded_when_addresses_cycle():
    table = BucketTable(per_minute=60, burst=1, max_keys=100, clock=Clock())
    for i in range(10_000):
        table.take(f"10.0.{i // 256}.{i % 256}")
    assert len(table) == 100


def test_forwarded_for_trusted_only_from_configured_proxies():
    plain = ClientAddress([])
    assert plain("10.0.0.5", "1.2.3.4") == "10.0.0.5"
    behind = ClientAddress(["10.0.0.0/24", "127.0.0.1"])
    assert behind("10.0.0.5", "1.2.3.4") == "1.2.3.4"
    assert behind("10.0.0.5", "6.6.6.6, 1.2.3.4, 10.0.0.7") == "1.2.3.4"  # spoofed left part ignored
    assert behind("192.168.1.1", "1.2.3.4") == "192.168.1.1"  # not a proxy: header ignored
    assert behind("10.0.0.5", None) == "10.0.0.5"


async def test_security_events_rate_limited_per_actor_and_count_suppressed():
    clock = Clock()
    events = SecurityEvents(per_minute=60, burst=2, clock=clock)
    seen = []

    async def listener(event):
        seen.append(event)

    events.raised.connect(listener)
    events.raised.connect(lambda event: 1 / 0)  # a broken listener never stops the others
    for _ in range(10):
        await events.emit("auth_failed", "1.2.3.4", "/chat", {"reason": "wrong API key"})
    await events.emit("auth_failed", "5.6.7.8", "/api/config", {"reason": "missing API key"})
    assert [e["actor"] for e in seen] == ["1.2.3.4", "1.2.3.4", "5.6.7.8"]
    clock.now += 1.0
    await events.emit("auth_failed", "1.2.3.4", "/chat", {"reason": "wrong API key"})
    assert seen[-1]["detail"]["suppressed"] == 8
    assert seen[0] == {"action": "auth_failed", "actor": "1.2.3.4", "target": "/chat",
                       "detail": {"reason": "wrong API key"}}


class Sample(Payload):
    name: str
    tags: list[str] = []


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
    | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_parse_never_raises_anything_but_bad_request(value):
    try:
        parse(Sample, value)
    except BadRequest:
        pass


def test_parse_refuses_huge_strings_binary_and_depth():
    with pytest.raises(BadRequest, match="longer than"):
        parse(Sample, {"name": "x" * (MAX_STRING_LENGTH + 1)})
    with pytest.raises(BadRequest, match="longer than"):
        parse(Sample, {"name": "a", "x" * (MAX_STRING_LENGTH + 1): 1})
    with pytest.raises(BadRequest, match="binary"):
        parse(Sample, {"name": "a", "tags": [b"\x00"]})
    deep = {"name": "a"}
    node = deep
    for _ in range(20):
        node["n"] = {}
        node = node["n"]
    with pytest.raises(BadRequest, match="nested"):
        parse(Sample, deep)
    assert parse(Sample, {"name": "ok", "tags": ["a"]}).name == "ok"
