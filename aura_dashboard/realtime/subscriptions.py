"""`subscribe` and `unsubscribe`: joining stream rooms, with history or replay in the answer."""

from __future__ import annotations

import json
from typing import Annotated, Any

import socketio
from pydantic import Field, StringConstraints

from ..errors import ClusterStoreUnavailable, DashboardError
from ..security.validation import Payload, parse
from .hub import StreamHub, room_of

StreamName = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class SubscribeRequest(Payload):
    streams: Annotated[list[StreamName], Field(min_length=1, max_length=32)]
    since: dict[StreamName, Annotated[int, Field(ge=0)]] | None = None
    # The `epoch` of the acknowledgement that gave the client its `since`: another epoch
    # means the numbers are not comparable, and the answer is `gap`.
    epoch: Annotated[str, StringConstraints(max_length=100)] | None = None


class UnsubscribeRequest(Payload):
    streams: Annotated[list[StreamName], Field(min_length=1, max_length=32)]


def _check_streams(hub: StreamHub, namespace: str, streams: list[str]) -> None:
    offered = hub.streams(namespace)
    unknown = [s for s in streams if s not in offered]
    if unknown:
        raise DashboardError(f"unknown stream(s) {', '.join(unknown)} in {namespace}; "
                             f"this namespace offers {', '.join(offered) or 'none'}",
                             code="unknown_stream", status=404)


def _size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), default=str).encode())


def ack_limit(event: str, payload: Any, max_bytes: int, multiple: int) -> int:
    """Bytes the acknowledgement of one request may take: `multiple` times the request's own
    size (its event name and payload as JSON, `websocket.max_ack_multiple`), and never more
    than `max_bytes` (`websocket.max_ack_bytes`), whichever is smaller. What one request makes
    the server hold (the answer as it is encoded and queued) is thus a bounded multiple of it."""
    return min(max_bytes, multiple * _size([event, payload]))


def bound_history(ack: dict[str, Any], max_bytes: int) -> dict[str, Any]:
    """Trim a subscribe acknowledgement to `max_bytes` of JSON (`websocket.max_ack_bytes`).

    Each stream keeps its newest envelopes that fit, streams in the order asked; what was
    left out is counted in `truncated` and flagged in `gap`, so the client knows it misses
    data (and may read it over REST) instead of the server holding an answer many times the
    size of the request.
    """
    history = ack.get("history") or {}
    budget = max_bytes - _size({k: v for k, v in ack.items() if k != "history"}) - 64
    truncated: dict[str, int] = {}
    for stream, envelopes in history.items():
        budget -= len(stream) + 8
        kept: list[Any] = []
        for envelope in reversed(envelopes):
            size = _size(envelope) + 1
            if size > budget:
                break
            budget -= size
            kept.append(envelope)
        if len(kept) < len(envelopes):
            truncated[stream] = len(envelopes) - len(kept)
            history[stream] = kept[::-1]
            ack.setdefault("gap", {})[stream] = True
    if truncated:
        ack["truncated"] = truncated
    return ack


async def subscribe(sio: socketio.AsyncServer, hub: StreamHub, sid: str, namespace: str,
                    payload: Any, history_points: int, max_ack_bytes: int | None = None) -> dict[str, Any]:
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
    epoch = None
    for stream in streams:
        # Join first, then read the buffer. In one process nothing suspends in between, so an
        # envelope is either in the history or delivered to the room, never both or neither.
        # In a cluster the read is a Redis round trip: an envelope may then come both ways
        # (never neither), and clients drop a `seq` they already hold.
        await sio.enter_room(sid, room_of(stream), namespace=namespace)
        try:
            if hub.here is not None:
                raise ClusterStoreUnavailable("the cluster's store is away")
            epoch = await hub.epoch()
            if stream in since and request.epoch is not None and request.epoch != epoch:
                # Numbers of another epoch: everything buffered, and `gap`.
                history[stream] = await hub.history(stream, None, delivered_only=True)
                gap[stream] = True
            elif stream in since:
                history[stream], gap[stream] = await hub.replay(stream, since[stream], delivered_only=True)
            else:
                history[stream] = await hub.history(stream, history_points, delivered_only=True)
                gap[stream] = False
        except ClusterStoreUnavailable:
            # The cluster's buffer is away (Redis down): what this instance published since,
            # in its local epoch, told that what came before is missing.
            here = hub.here
            epoch = here.epoch if here is not None else ""
            history[stream] = await here.history(stream, history_points) if here is not None else []
            gap[stream] = True
    ack = {"ok": True, "streams": streams, "history": history, "gap": gap, "epoch": epoch}
    return bound_history(ack, max_ack_bytes) if max_ack_bytes else ack


async def unsubscribe(sio: socketio.AsyncServer, hub: StreamHub, sid: str, namespace: str,
                      payload: Any) -> dict[str, Any]:
    request = parse(UnsubscribeRequest, payload, what="unsubscribe payload")
    streams = list(dict.fromkeys(request.streams))
    _check_streams(hub, namespace, streams)
    for stream in streams:
        await sio.leave_room(sid, room_of(stream), namespace=namespace)
    return {"ok": True, "streams": streams}
