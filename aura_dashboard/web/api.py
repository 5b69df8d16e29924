"""REST reads of the hub (latest data, history, the stream contract), alerts, and the feature
and config routes."""

from __future__ import annotations

import math
from datetime import datetime, timezone

import orjson
from aiohttp import web

from ..config import redacted
from ..config.reference import variables_by_key
from ..contract import describe_features
from ..errors import BadRequest, DashboardError, SwitchedOff
from ..history import HistoryUnavailable
from ..namespaces import PANELS
from ..realtime.cluster import ClusterUnavailable
from ..realtime.hub import UnknownStream
from .keys import ALERTS, CLUSTER, HISTORY, HUB, OVERRIDES, READ_CACHE, SETTINGS
from .security import ACTOR, client_of


def json_response(data, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json",
                        headers=headers)


async def read_json(request: web.Request, what: str = "the body must be JSON"):
    try:
        return await request.json(loads=orjson.loads)
    except (ValueError, orjson.JSONDecodeError):
        raise BadRequest(what) from None


def unknown_stream(stream: str) -> DashboardError:
    return DashboardError(f"no stream named {stream!r}", code="unknown_stream", status=404)


async def _cached_latest(request: web.Request, stream: str) -> web.Response:
    hub, cache = request.app[HUB], request.app[READ_CACHE]
    if not hub.is_on(stream):
        raise DashboardError(f"the {stream} stream is switched off", code="stream_disabled", status=409)
    seq = await hub.last_seq(stream)
    key = f"latest:{stream}"
    body = cache.get(key, seq)
    if body is None:
        envelope = await hub.latest(stream)
        if envelope is None:
            raise DashboardError(f"no {stream} sample yet; try again in a moment",
                                 code="no_data", status=503)
        body = orjson.dumps(envelope)
        cache.put(key, seq, body)
    return web.Response(body=body, content_type="application/json")


def latest_of(stream: str):
    async def handler(request: web.Request) -> web.Response:
        return await _cached_latest(request, stream)

    handler.__name__ = f"latest_{stream}"
    return handler


RANGE_PARAMS = ("from", "to", "fields", "source", "step")


def _instant(name: str, raw: str) -> float:
    """UNIX seconds, or an ISO 8601 time (UTC when it names no zone)."""
    try:
        value = float(raw)
    except ValueError:
        try:
            parsed = datetime.fromisoformat(raw.strip().replace("z", "Z"))
        except ValueError:
            raise BadRequest(f"{name}: {raw[:64]!r} is neither UNIX seconds nor an ISO 8601 time",
                             code="bad_range") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        value = parsed.timestamp()
    if not math.isfinite(value) or value < 0:
        raise BadRequest(f"{name}: {raw[:64]!r} is not a time", code="bad_range")
    return value


async def history_range(request: web.Request, stream: str) -> web.Response:
    """The range form: columns of min/avg/max per series field, from the tier that fits."""
    query = request.query
    if "points" in query:
        raise BadRequest("points belongs to the buffer form; the range form takes from, to, fields, source, step",
                         code="bad_range")
    if "from" not in query:
        raise BadRequest("from is required (UNIX seconds or ISO 8601)", code="bad_range")
    end = _instant("to", query["to"]) if "to" in query else None
    start = _instant("from", query["from"])
    step = None
    if "step" in query:
        try:
            step = float(query["step"])
        except ValueError:
            raise BadRequest(f"step: {query['step'][:64]!r} is not a number of seconds", code="bad_range") from None
    fields = [f.strip() for f in query["fields"].split(",") if f.strip()] if "fields" in query else None
    source = query.get("source") or None
    if source is not None and len(source) > 256:
        raise BadRequest("source: at most 256 characters", code="bad_request")
    reader = request.app[HISTORY].reader
    try:
        answer = await reader.read(stream, start, end if end is not None else reader.now(),
                                   fields=fields or None, source=source, step=step)
    except DashboardError:
        raise
    except Exception as exc:  # the store is unreachable (PostgreSQL down): this request fails, nothing else
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise HistoryUnavailable(f"the history store cannot be read now: {reason}") from None
    return json_response(answer)


async def history(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    stream = request.match_info["stream"]
    if any(name in request.query for name in RANGE_PARAMS):
        return await history_range(request, stream)
    buffer_size = request.app[SETTINGS].websocket.message_buffer_size
    raw = request.query.get("points")
    points = None
    if raw is not None:
        try:
            points = int(raw)
        except ValueError:
            raise BadRequest(f"points: {raw!r} is not an integer") from None
        if not 1 <= points <= buffer_size:
            raise BadRequest(f"points: must be between 1 and {buffer_size}")
    try:
        envelopes = await hub.history(stream, points)
        last_seq = await hub.last_seq(stream)
    except UnknownStream:
        raise unknown_stream(stream) from None
    return json_response({"stream": stream, "last_seq": last_seq, "envelopes": envelopes})


async def streams(request: web.Request) -> web.Response:
    """The stream contract: every panel and every stream with its fields, units and interval."""
    settings, overrides, hub = request.app[SETTINGS], request.app[OVERRIDES], request.app[HUB]
    contracts = hub.contracts()
    return json_response({"panels": [p.describe(settings, overrides, contracts) for p in PANELS],
                          "streams": [c.describe(settings, overrides) for c in contracts]})


async def alerts(request: web.Request) -> web.Response:
    return json_response({"alerts": request.app[ALERTS].firing()})


def _features_body(app: web.Application) -> dict:
    return describe_features(app[OVERRIDES], app[SETTINGS], app[HUB].contracts(), list(PANELS))


def _switched_off(flag: str, switches: list[str]) -> str:
    names = variables_by_key()
    shown = ", ".join(f"{key} ({', '.join(names[key])})" if key in names else key for key in switches)
    return (f"features.{flag}: cannot be switched on while the configuration switches it off: {shown} "
            "is off; turn it on in the configuration and restart")


async def get_features(request: web.Request) -> web.Response:
    return json_response(_features_body(request.app))


async def patch_features(request: web.Request) -> web.Response:
    """Body: {flag: true | false | null}; null drops the override (the configured value applies)."""
    body = await read_json(request, "the body must be a JSON object of feature flags")
    if not isinstance(body, dict) or not body:
        raise BadRequest("the body must be a non-empty JSON object of feature flags")
    overrides = request.app[OVERRIDES]
    problems = [f"features.{flag}: no such feature flag" for flag in body if flag not in overrides.flags()]
    problems += [f"features.{flag}: {value!r} is not true, false or null"
                 for flag, value in body.items() if flag in overrides.flags()
                 and value is not None and not isinstance(value, bool)]
    if problems:
        raise BadRequest("; ".join(problems))
    blocked = _features_body(request.app)["blocked"]
    refused = [_switched_off(flag, blocked[flag]) for flag, value in body.items()
               if value is True and flag in blocked]
    if refused:
        raise SwitchedOff("; ".join(refused))
    actor = request.get(ACTOR) or f"api:{client_of(request)}"
    cluster = request.app.get(CLUSTER)
    if cluster is not None:
        # Told to the cluster first: a change the other instances cannot hear is not made.
        try:
            await cluster.flags.share(dict(body), actor)
        except ClusterUnavailable as exc:
            raise DashboardError(f"feature flags cannot be changed while the cluster's message queue "
                                 f"is unreachable; nothing was changed: {exc}",
                                 code="cluster_unavailable", status=503) from None
    changed = []
    try:
        for flag, value in body.items():
            change = (await overrides.reset(flag, actor=actor) if value is None
                      else await overrides.set(flag, value, actor=actor))
            if change is not None:
                changed.append({"flag": change.flag, "old": change.old, "new": change.new})
    finally:
        if cluster is not None:
            cluster.flags.settled(body)
    return json_response({**_features_body(request.app), "changed": changed})


async def config(request: web.Request) -> web.Response:
    return json_response(redacted(request.app[SETTINGS]))
