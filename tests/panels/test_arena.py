"""The arena's debate lifecycle through Socket.IO and REST on a real server."""

from __future__ import annotations

import asyncio

import aiohttp

from aura_dashboard.web.keys import ARENA
from tests.conftest import make_settings, running_server
from tests.panels.live import LiveClient, fast


def arena_settings(**arena):
    return make_settings(extra=fast({"panels": {"intelligence_arena": arena}} if arena else None))


def debates(client: LiveClient, debate_id: str) -> list[dict]:
    return [e["data"] for e in client.of("debates") if e["data"]["id"] == debate_id]


async def test_lifecycle_over_socketio_followed_live():
    async with running_server(arena_settings()) as server:
        watcher = await LiveClient("/arena").connect(server)
        assert (await watcher.call("subscribe", {"streams": ["debates"]}))["ok"]
        actor = await LiveClient("/arena").connect(server)
        created = await actor.call("create_debate", {"topic": "tabs or spaces", "participants": ["ada", "bob"]})
        assert created["ok"] and created["debate"]["status"] == "open"
        debate_id = created["id"]
        turn = await actor.call("add_turn", {"id": debate_id, "speaker": "ada", "text": "spaces"})
        assert turn == {"ok": True, "id": debate_id, "turn": 1}
        closed = await actor.call("close_debate", {"id": debate_id, "winner": "ada"})
        assert closed["ok"] and closed["debate"]["status"] == "finished"
        await watcher.wait_for(lambda: len(debates(watcher, debate_id)) == 3)
        states = debates(watcher, debate_id)
        assert [d["status"] for d in states] == ["open", "open", "finished"]
        assert states[1]["turns"][0]["speaker"] == "ada" and states[1]["turns"][0]["text"] == "spaces"
        assert states[2]["winner"] == "ada" and states[2]["topic"] == "tabs or spaces"
        # Acting on a finished debate, an unknown one, or with a stranger is refused; the connection stays.
        again = await actor.call("add_turn", {"id": debate_id, "speaker": "bob", "text": "tabs"})
        assert again["error"]["code"] == "debate_closed"
        unknown = await actor.call("close_debate", {"id": "d-nope"})
        assert unknown["error"]["code"] == "not_found"
        other = (await actor.call("create_debate", {"topic": "t", "participants": ["a", "b"]}))["id"]
        stranger = await actor.call("add_turn", {"id": other, "speaker": "eve", "text": "hi"})
        assert stranger["error"]["code"] == "bad_request"
        for bad in ({}, {"topic": "t", "participants": ["solo"]}, {"topic": "t", "participants": ["a", "a"]},
                    {"topic": 1, "participants": ["a", "b"]}, ["topic"], {"topic": "t", "participants": ["a", "b"], "x": 1}):
            ack = await actor.call("create_debate", bad)
            assert ack["ok"] is False and ack["error"]["code"] == "bad_request", bad
        assert actor.sio.connected
        await watcher.close()
        await actor.close()


async def test_lifecycle_over_rest_seen_on_the_stream():
    async with running_server(arena_settings()) as server:
        watcher = await LiveClient("/arena").connect(server)
        assert (await watcher.call("subscribe", {"streams": ["debates"]}))["ok"]
        async with aiohttp.ClientSession(server.url) as http:
            async with http.post("/api/arena/debates", json={"topic": "rest", "participants": ["x", "y"]}) as r:
                assert r.status == 201
                debate_id = (await r.json())["id"]
            async with http.post(f"/api/arena/debates/{debate_id}/turns", json={"speaker": "y", "text": "yes"}) as r:
                assert r.status == 200 and (await r.json())["turn"] == 1
            async with http.post(f"/api/arena/debates/{debate_id}/turns", json={"speaker": "y"}) as r:
                assert r.status == 400 and (await r.json())["error"]["code"] == "bad_request"
            async with http.post(f"/api/arena/debates/{debate_id}/close", data=b"not json") as r:
                assert r.status == 400
            async with http.post(f"/api/arena/debates/{debate_id}/close", json={}) as r:
                assert r.status == 200 and (await r.json())["debate"]["winner"] is None
            async with http.post("/api/arena/debates/d-missing/close", json={}) as r:
                assert r.status == 404
            async with http.get(f"/api/arena/debates/{debate_id}") as r:
                assert (await r.json())["status"] == "finished"
            async with http.get("/api/arena/debates") as r:
                assert [d["id"] for d in (await r.json())["debates"]] == [debate_id]
        await watcher.wait_for(lambda: len(debates(watcher, debate_id)) == 3)
        assert [d["status"] for d in debates(watcher, debate_id)] == ["open", "open", "finished"]
        await watcher.close()


async def test_limit_of_open_debates():
    async with running_server(arena_settings(max_debates=2)) as server:
        client = await LiveClient("/arena").connect(server)
        first = await client.call("create_debate", {"topic": "1", "participants": ["a", "b"]})
        await client.call("create_debate", {"topic": "2", "participants": ["a", "b"]})
        full = await client.call("create_debate", {"topic": "3", "participants": ["a", "b"]})
        assert full["ok"] is False and full["error"]["code"] == "arena_full"
        async with aiohttp.ClientSession(server.url) as http:
            async with http.post("/api/arena/debates", json={"topic": "4", "participants": ["a", "b"]}) as r:
                assert r.status == 409 and (await r.json())["error"]["code"] == "arena_full"
            # Closing one makes room; no live debate was evicted.
            assert (await client.call("close_debate", {"id": first["id"]}))["ok"]
            async with http.post("/api/arena/debates", json={"topic": "5", "participants": ["a", "b"]}) as r:
                assert r.status == 201
        assert len(server.app[ARENA].open) == 2
        await client.close()


async def test_open_debate_times_out():
    async with running_server(arena_settings(debate_timeout_seconds=0.3)) as server:
        client = await LiveClient("/arena").connect(server)
        assert (await client.call("subscribe", {"streams": ["debates"]}))["ok"]
        debate_id = (await client.call("create_debate", {"topic": "slow", "participants": ["a", "b"]}))["id"]
        await client.wait_for(lambda: any(d["status"] == "timed_out" for d in debates(client, debate_id)))
        late = await client.call("add_turn", {"id": debate_id, "speaker": "a", "text": "late"})
        assert late["error"]["code"] == "debate_closed"
        await client.close()


async def test_subscriber_gets_every_open_debate_and_recent_finished_ones():
    # A buffer of 3 envelopes and history of 2 points: far fewer than the debates' changes.
    extra = fast({"panels": {"intelligence_arena": {"finished_kept": 2},
                             "omni_monitor": {"graph_history_points": 2}},
                  "websocket": {"message_buffer_size": 3}})
    async with running_server(make_settings(extra=extra)) as server:
        actor = await LiveClient("/arena").connect(server)
        opened = []
        for i in range(4):
            opened.append((await actor.call("create_debate", {"topic": f"open {i}", "participants": ["a", "b"]}))["id"])
        finished = []
        for i in range(3):
            debate_id = (await actor.call("create_debate", {"topic": f"done {i}", "participants": ["a", "b"]}))["id"]
            await actor.call("add_turn", {"id": debate_id, "speaker": "a", "text": "hello"})
            await actor.call("close_debate", {"id": debate_id, "winner": "b"})
            finished.append(debate_id)
        late = await LiveClient("/arena").connect(server)
        ack = await late.call("subscribe", {"streams": ["debates"]})
        history = ack["history"]["debates"]
        by_id = {e["data"]["id"]: e["data"] for e in history}
        assert set(by_id) == set(opened) | set(finished[-2:])  # the oldest finished one aged out
        assert all(by_id[i]["status"] == "open" for i in opened)
        assert all(by_id[i]["status"] == "finished" and by_id[i]["winner"] == "b"
                   and len(by_id[i]["turns"]) == 1 for i in finished[-2:])
        seqs = [e["seq"] for e in history]
        assert seqs == sorted(seqs)
        # A resume the buffer still covers is an ordinary replay.
        last = server.app[ARENA].snapshot()[-1]["seq"]
        resumed = await late.call("subscribe", {"streams": ["debates"], "since": {"debates": last}})
        assert resumed["history"]["debates"] == [] and resumed["gap"]["debates"] is False
        # One too old for the buffer gets the snapshot, with the gap flagged.
        stale = await late.call("subscribe", {"streams": ["debates"], "since": {"debates": 1}})
        assert stale["gap"]["debates"] is True
        assert {e["data"]["id"] for e in stale["history"]["debates"]} == set(by_id)
        await asyncio.gather(actor.close(), late.close())


async def test_the_kept_copy_says_so_when_redis_cannot_be_read():
    """During a takeover reads are answered from the debates kept in Redis; with Redis away as
    well, the answer is 503, never an empty list that claims nothing is kept."""
    import pytest
    import redis.asyncio as aioredis
    from aura_dashboard.errors import DashboardError
    from aura_dashboard.panels.arena import Arena
    from aura_dashboard.realtime.cluster import SharedDocuments
    from tests.conftest import free_port

    async def publish(stream, data):
        return {}
    dead = aioredis.from_url(f"redis://127.0.0.1:{free_port()}/0")
    try:
        arena = Arena(max_debates=5, timeout_s=60, finished_kept=5, publish=publish,
                      keeper=SharedDocuments(dead, "aura:test:arena"))
        with pytest.raises(DashboardError) as refused:
            await arena.kept_copy()
        assert refused.value.status == 503 and "cannot be read" in refused.value.message
        assert await arena.resume() == 0  # the holder's resume goes on without them
    finally:
        await dead.aclose()
