"""`subscribe` and `unsubscribe`: joining stream rooms, with history or replay in the answer."""

from __future__ import annotations

from typing import Annotated, Any

import socketio
from pydantic import Field, StringConstraints

from ..errors import DashboardError
from ..security.validation import Payload, parse
from .hub import StreamHub, room_of

StreamName = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class SubscribeRequest(Payload):
    streams: Annotated[list[StreamName], Field(min_length=1, max_length=32)]
    since: dict[StreamName, Annotated[int, Field(ge=0)]] | None = None


class UnsubscribeRequest(Payload):
    streams: Annotated[list[StreamName], Field(min_length=1, max_length=32)]


def _check_streams(hub: StreamHub, namespace: str, streams: list[str]) -> None:
    offered = hub.streams(namespace)
    unknown = [s for s in streams if s not in offered]
    if unknown:
        raise DashboardError(f"unknown stream(s) {', '.join(unknown)} in {namespace}; "
                             f"this namespace offers {', '.join(offered) or 'none'}",
                             code="unknown_stream", status=404)


async def subscribe(sio: socketio.AsyncServer, hub: StreamHub, sid: str, namespace: str,
                    payload: Any, history_points: int) -> dict[str, Any]:
    request = parse(SubscribeRequest, payload, what="subscribe payload")
    streams = list(dict.fromkeys(request.streams))
    _check_streams(hub, namespace, streams)
    since = request.since or {}
    stray = [s for s in since if s not in streams]
    if stray:
        raise DashboardError(f"since names stream(s) not subscribed: {', '.join(stray)}")
    off = [s for s in streams if not hub.is_on(s)]
    if off:
        raise DashboardError(f"stream(s) {', '.join(off)} are switched off", code="stream_disabled",
                             status=409)
    history, gap = {}, {}
    for stream in streams:
        # Join first, then read the buffer. In one process nothing suspends in between, so an
        # envelope is either in the history or delivered to the room, never both or neither.
        # In a cluster the read is a Redis round trip: an envelope may then come both ways
        # (never neither), and clients drop a `seq` they already hold.
        await sio.enter_room(sid, room_of(stream), namespace=namespace)
        if stream in since:
            history[stream], gap[stream] = await hub.replay(stream, since[stream], delivered_only=True)
        else:
            history[stream] = await hub.history(stream, history_points, delivered_only=True)
            gap[stream] = False
    return {"ok": True, "streams": streams, "history": history, "gap": gap, "run": await hub.run_id()}


async def unsubscribe(sio: socketio.AsyncServer, hub: StreamHub, sid: str, namespace: str,
                      payload: Any) -> dict[str, Any]:
    request = parse(UnsubscribeRequest, payload, what="unsubscribe payload")
    streams = list(dict.fromkeys(request.streams))
    _check_streams(hub, namespace, streams)
    for stream in streams:
        await sio.leave_room(sid, room_of(stream), namespace=namespace)
    return {"ok": True, "streams": streams}
