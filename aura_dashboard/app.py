"""The composition root: `create_app(settings)` builds every component, with its collaborators
passed to its constructor, and registers one cleanup context per component in one explicit
start order (aiohttp stops them in the reverse order).

Nothing else builds components, declares application keys or starts tasks. To add a stream:
write its producer (a collector or a panel module, with its `StreamContract`), then add the
contract to `STREAMS` and its sampler to `samplers` below — two files.
"""

from __future__ import annotations

import asyncio
import logging
import os
import platform
import socket
import sys
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

from aiohttp import WSCloseCode, web

from .collectors.backends import BACKENDS, BackendMonitor
from .collectors.dashboard import DASHBOARD, DashboardSelf
from .collectors.database import DATABASE, DatabaseCollector, dsn_of
from .collectors.gpu import GPU, GpuCollector
from .collectors.models import MODELS, ModelsProbe
from .collectors.system import SYSTEM, SystemCollector
from .collectors.temperature import TEMPERATURE, TemperatureCollector
from .config import RuntimeOverrides, Settings
from .config.schema import DashboardSettings
from .contract import StreamContract, describe_features
from .health import Health
from .history import History
from .namespaces import NAMESPACE_CLASSES, PANELS, announce_features, close_disabled_panels, register_namespaces
from .namespaces.arena import ArenaNamespace
from .namespaces.chat import ChatNamespace
from .outbound import OutboundHttp
from .panels.alerts import ALERTS, AlertEngine, BackendAlerts, ThresholdWatch
from .panels.arena import DEBATES, Arena
from .panels.audit import AUDIT, AuditStore
from .panels.chat import STATUS, ChatQueue
from .panels.governance import GOVERNANCE, GovernanceSampler
from .panels.inference import INFERENCE, InferenceStats
from .realtime.backlog import BacklogWatch
from .realtime.broadcast import broadcaster_for
from .realtime.broadcast import install as install_fast_path
from .realtime.cluster import WatchedRedisManager, client_manager
from .realtime.cluster_link import ClusterLink, advertised_url
from .realtime.emitters import Emitter, EmitterSet
from .realtime.forwarding import HolderForwarder, LocalOnly
from .realtime.hub import StreamHub
from .realtime.replay import LocalReplay
from .realtime.server import build_socketio, follow_fallback_flag
from .security import AccessGuard, AllowedOrigins, ClientAddress, SecurityEvents
from .security.packets import ClientMistakes
from .signals import Mailbox, Signal
from .tasks import TaskSet
from .web import keys as k
from .web.cache import HubReadCache
from .web.compression import gzip_middleware
from .web.forwarding import forwarding_middleware, peer_middleware
from .web.metrics import setup_metrics
from .web.middleware import UPGRADED, error_middleware
from .web.routes import setup_routes
from .web.security import security_middlewares, setup_cors

log = logging.getLogger(__name__)
WS_CLOSE_TIMEOUT_S = 1.0

# The table of streams, in the order the docs and the page list them.
STREAMS: tuple[StreamContract, ...] = (
    SYSTEM, GPU, TEMPERATURE, DATABASE, BACKENDS, ALERTS, GOVERNANCE, AUDIT, MODELS, INFERENCE, DEBATES, STATUS,
    DASHBOARD,
)


def instance_name(dashboard: DashboardSettings) -> str:
    return dashboard.instance_name or socket.gethostname()


def create_app(settings: Settings) -> web.Application:
    ws, updates, hc = settings.websocket, settings.updates, settings.health_checks
    monitoring, panels, security = settings.monitoring, settings.panels, settings.security
    instance = instance_name(settings.dashboard)
    overrides = RuntimeOverrides(settings.features)
    tasks = TaskSet()
    http = OutboundHttp()

    # -- who may come in: the key, the rate limits, what a client may send -------------------------
    security_events = SecurityEvents()
    guard = AccessGuard(security, security_events, ClientAddress(security.trusted_proxies))
    mistakes = ClientMistakes()

    # -- the real-time core -----------------------------------------------------------------
    queue_resubscribed: Signal[None] = Signal("message queue resubscribed")  # the hub follows it
    manager = client_manager(ws, on_resubscribed=lambda: queue_resubscribed.send(None))
    origins = AllowedOrigins(settings.dashboard, security.cors)
    sio = build_socketio(ws, security.cors, updates, origins=origins,
                         websocket_fallback=overrides.is_on("websocket_fallback"), client_manager=manager,
                         guard=guard, mistakes=mistakes)
    broadcaster = broadcaster_for(sio, manager)
    install_fast_path(sio, broadcaster, compress=updates.websocket_compression)
    lease_changed: Signal[bool] = Signal("cluster lease")  # the emitters follow it (below)
    cluster = ClusterLink.create(ws, advertised_url(settings.dashboard), instance, overrides,
                                 on_lease_change=lease_changed.send)
    hub = StreamHub(STREAMS, store=cluster.replay if cluster else LocalReplay(ws.message_buffer_size),
                    broadcaster=broadcaster, source=instance,
                    is_on=lambda contract: contract.is_on(settings, overrides),
                    batch_interval_s=updates.batch_interval_ms / 1000 if updates.batch_updates else None,
                    pushing=lambda: overrides.is_on("real_time_updates"),
                    leader=(lambda: cluster.lease.held) if cluster else (lambda: True),
                    on_unsure_append=manager.owe if isinstance(manager, WatchedRedisManager) else None,
                    store_retry_s=ws.lease_ttl_ms / 3000)  # the lease's renewal period: Redis is tried as often
    queue_resubscribed.connect(lambda _: hub.resync())
    if isinstance(manager, WatchedRedisManager):
        manager.hold_back = hub.holds_back  # the cluster's envelopes kept out of a local epoch

    # -- collectors -----------------------------------------------------------------------
    system = SystemCollector(monitoring.system, detect_cgroup=True)
    gpu = GpuCollector(monitoring.gpu)
    temperature = TemperatureCollector()
    db = settings.backends.database
    database = DatabaseCollector(db, query_timeout_s=settings.performance.query_timeout_ms / 1000)
    backends = BackendMonitor(hc, settings.backends, http)
    models = ModelsProbe(settings.backends.ml, hc.timeout_ms / 1000, http, lambda: backends.snapshot()["ml"],
                         max_reply_bytes=settings.backends.max_reply_bytes)
    itself = DashboardSelf(
        clients=lambda: {ns.namespace: ns.clients() for ns in namespaces.values()},
        publish_p99_s=lambda: hub.publish_p99_s(), mailboxes=lambda: {box.name: box.pending() for box in mailboxes},
        emitter_lags_s=lambda: {name: e.stats.last_lag_s for name, e in emitters.emitters.items()})

    # -- panels ---------------------------------------------------------------------------
    thresholds = monitoring.thresholds
    alerts = AlertEngine(lambda alert: hub.publish("alerts", alert),
                         consecutive=thresholds.consecutive_samples, margin=thresholds.hysteresis_margin_percent)
    audit = AuditStore(panels.governance.audit_store_path,
                       postgres_dsn=dsn_of(db, db.connection_timeout_ms / 1000) if db.host else None,
                       publish=lambda entry: hub.publish("audit", entry),
                       retention_days=panels.governance.audit_retention_days,
                       max_rows=panels.governance.audit_max_rows)
    governance = GovernanceSampler(lambda: backends.snapshot()["governance"], audit)
    started = time.monotonic()

    def diagnostics() -> dict[str, Any]:
        return {"instance": instance, "pid": os.getpid(), "python": sys.version.split()[0],
                "platform": platform.platform(), "uptime_s": round(time.monotonic() - started, 3),
                "streams_running": emitters.running(), "published": hub.published(),
                "clients": {name: ns.clients() for name, ns in namespaces.items()}}

    async def notify(sid: str, update: dict[str, Any]) -> None:
        await sio.emit("chat_update", update, to=sid, namespace="/chat")

    chat_settings = panels.chat
    chat = ChatQueue(
        url=settings.backends.mcp.url, max_queue_size=chat_settings.max_queue_size,
        timeout_s=chat_settings.timeout_seconds, retry_attempts=chat_settings.retry_attempts,
        workers=chat_settings.workers, backoff_base_s=chat_settings.backoff_base_ms / 1000,
        backoff_max_s=chat_settings.backoff_max_ms / 1000, session=http, notify=notify,
        modes=chat_settings.modes, debug_on=lambda: overrides.is_on("debug_mode"), diagnostics=diagnostics,
        max_reply_bytes=settings.backends.max_reply_bytes)
    arena_settings = panels.intelligence_arena
    arena = Arena(max_debates=arena_settings.max_debates, timeout_s=arena_settings.debate_timeout_seconds,
                  finished_kept=arena_settings.finished_kept, publish=hub.publish,
                  keeper=cluster.documents("arena") if cluster else None,
                  turns_in_envelope=arena_settings.turns_in_envelope)
    inference = InferenceStats(panels.ai_system.inference_window_seconds,
                               keeper=cluster.documents("inference") if cluster else None)

    # -- long-range history: tiers of every series field, fed after each publish -------------------
    history = History.create(
        settings.history, STREAMS, source=instance,
        postgres_dsn=dsn_of(db, db.connection_timeout_ms / 1000) if db.host else None,
        live=lambda stream: hub.history(stream),
        interval_s=lambda stream: (hub.contract(stream).interval_ms(settings) or 0) / 1000 or None)

    # -- emitters: one per sampled stream, at its contract's interval -----------------------------
    samplers: dict[str, Callable[[], Awaitable[Any]]] = {
        "system": system.sample, "gpu": gpu.sample, "temperature": temperature.sample,
        "database": database.sample, "backends": backends.sample, "governance": governance.sample,
        "models": models.sample, "inference": inference.sample, "status": chat.sample,
        "dashboard": itself.sample,
    }
    timeouts = {"backends": hc.timeout_ms / 1000 * (hc.retries + 1) + 1, "models": hc.timeout_ms / 1000 + 1}
    emitters = EmitterSet(hub, tasks, [
        Emitter(name, sample, hub.contract(name).interval_ms(settings) / 1000, hub, timeout_s=timeouts.get(name))
        for name, sample in samplers.items()])

    # -- the namespaces ---------------------------------------------------------------------
    forwarder = (HolderForwarder(cluster, http, settings.backends.max_reply_bytes) if cluster
                 else LocalOnly())
    own = {ArenaNamespace: {"arena": arena, "forwarder": forwarder}, ChatNamespace: {"queue": chat}}
    namespaces = register_namespaces(sio, [
        cls(hub=hub, guard=guard, history_points=panels.omni_monitor.graph_history_points,
            max_ack_bytes=ws.max_ack_bytes, max_ack_multiple=ws.max_ack_multiple,
            enabled=(lambda panel=cls.panel: panel.is_on(settings, overrides)), **own.get(cls, {}))
        for cls in NAMESPACE_CLASSES])

    # -- who hears what: slow listeners through mailboxes, on their own tasks ------------------
    mailboxes: list[Mailbox] = []

    def mailbox(name: str, listener: Callable[[Any], Any]) -> Mailbox:
        mailboxes.append(Mailbox(name, listener))
        return mailboxes[-1]

    watch = ThresholdWatch(alerts, thresholds)
    hub.published_signal("system").connect(mailbox("alerts from system", watch.on_system))
    hub.published_signal("gpu").connect(mailbox("alerts from gpu", watch.on_gpu))
    hub.published_signal("backends").connect(mailbox("alerts from backends", BackendAlerts(alerts, hc).on_backends))
    if history.writer is not None:
        to_history = mailbox("history", history.aggregator.add)
        for name in history.aggregator.fields:
            hub.published_signal(name).connect(to_history)
    overrides.changed.connect(follow_fallback_flag(sio))
    overrides.changed.connect(announce_features(
        sio, namespaces, lambda: describe_features(overrides, settings, hub.contracts(), list(PANELS))))
    overrides.changed.connect(close_disabled_panels(namespaces))
    overrides.changed.connect(emitters.reconcile)
    # In this order: the new holder takes up the debates and inference windows kept in Redis
    # before its shared collectors start (the inference sampler keeps the windows it has).
    lease_changed.connect(arena.resume)
    lease_changed.connect(inference.resume)
    lease_changed.connect(emitters.reconcile)  # the shared collectors run on the lease holder
    if cluster is not None:
        overrides.changed.connect(mailbox("flags to the cluster", cluster.flags.on_local_change))
    overrides.changed.connect(mailbox("audit of flags", audit.record_flag_change))
    alerts.changed.connect(mailbox("audit of alerts", audit.record_alert))
    security_events.raised.connect(mailbox("audit of security events", audit.record_security_event))

    # -- health ---------------------------------------------------------------------------
    health = Health(instance)
    if cluster is not None:
        health.register("message_queue", cluster.health)

    async def database_state() -> dict[str, Any]:
        latest = await hub.latest("database")
        return _brief(latest["data"] if latest is not None else database.last)

    async def backends_state() -> dict[str, Any]:
        latest = await hub.latest("backends")
        states = latest["data"] if latest is not None else backends.snapshot()
        return {name: _brief(state) for name, state in states.items()}

    health.register("database", database_state)
    health.register("backends", backends_state)
    health.register("audit_postgres", lambda: {"status": audit.postgres_status})
    health.register("history", history.state)
    backlog = BacklogWatch(sio, ws.max_client_backlog, ws.path, max_backlog_bytes=ws.max_client_backlog_bytes)

    # -- the application ------------------------------------------------------------------
    middlewares = [error_middleware, *security_middlewares(guard, ws, settings.dashboard.body_timeout_s)]
    if settings.performance.gzip_compression:
        middlewares.insert(0, gzip_middleware(settings.performance))
    if cluster is not None:
        middlewares.insert(middlewares.index(error_middleware) + 1, peer_middleware)
        middlewares.append(forwarding_middleware)
    # aiohttp's keep-alive timeout also closes a connection whose request head has not arrived
    # (half-sent heads, slowloris): it is the header timeout.
    app = web.Application(middlewares=middlewares,
                          handler_args={"keepalive_timeout": settings.dashboard.header_timeout_s})
    sio.attach(app, socketio_path=ws.path)
    for key, value in ((k.SETTINGS, settings), (k.OVERRIDES, overrides), (k.SIO, sio), (k.TASKS, tasks),
                       (k.HEALTH, health), (k.HUB, hub), (k.NAMESPACES, namespaces), (k.EMITTERS, emitters),
                       (k.ALERTS, alerts), (k.READ_CACHE, HubReadCache(settings.performance.cache)),
                       (k.SECURITY_EVENTS, security_events), (k.GUARD, guard), (k.BACKLOG_WATCH, backlog),
                       (k.FORWARDER, forwarder), (k.MAILBOXES, mailboxes), (k.DATABASE, database),
                       (k.BACKENDS, backends), (k.AUDIT, audit), (k.CHAT, chat), (k.ARENA, arena),
                       (k.INFERENCE, inference), (k.HISTORY, history), (k.WEBSOCKETS, weakref.WeakSet())):
        app[key] = value
    if cluster is not None:
        app[k.CLUSTER] = cluster
    setup_routes(app)
    setup_metrics(app)
    setup_cors(app, security, ws, origins)  # after every route
    app.on_response_prepare.append(_track_websockets)
    app.on_response_prepare.append(backlog.track_upgrade)
    app.on_shutdown.append(_disconnect_clients)

    # -- start order (stopped in reverse) ------------------------------------------------------
    contexts = [
        lifecycle(tasks, "tasks", stop=tasks.close),
        lifecycle(tasks, "outbound http", start=http.start, stop=http.close),
    ]
    if cluster is not None:
        contexts.append(lifecycle(tasks, "cluster", start=cluster.start, stop=cluster.close,
                                  loops=[("cluster:lease", cluster.run_lease), ("cluster:flags", cluster.flags.run),
                                         ("cluster:flags-reconcile", cluster.run_flag_reconcile)]))
    contexts += [
        lifecycle(tasks, "audit", loops=[("audit:sync", audit.run_sync), ("audit:retention", audit.run_retention)],
                  stop=audit.close),
    ]
    if history.writer is not None:  # stopped after the mailboxes drained into it
        contexts.append(lifecycle(tasks, "history", start=history.writer.open, stop=history.writer.stop,
                                  loops=[("history:writer", history.writer.run),
                                         ("history:retention", history.writer.run_retention)]))
    contexts += [
        lifecycle(tasks, "mailboxes", loops=[(f"mailbox:{box.name}", box.run) for box in mailboxes],
                  before_cancel=lambda: _drain(mailboxes)),
        lifecycle(tasks, "chat and arena", loops=[(f"chat:worker{i}", chat.run_worker) for i in range(chat.workers)]
                  + [("arena:sweeper", arena.run_sweeper)]),
        lifecycle(tasks, "collectors", start=system.start,
                  stop=lambda: _close_collectors(gpu, database)),
        lifecycle(tasks, "emitters", start=emitters.start, stop=emitters.stop),
        lifecycle(tasks, "hub and backlog", loops=[("limits:backlog", backlog.run),
                                                   ("limits:client mistakes", mistakes.run)]
                  + ([("hub:batcher", hub.run_batcher)] if hub.batch_interval_s else [])),
    ]
    app.cleanup_ctx.extend(contexts)
    return app


LOOP_STOP_TIMEOUT_S = 5.0  # how long a cancelled loop may take to end before shutdown goes on


async def _stopped(running: list[asyncio.Task], name: str) -> None:
    """Wait for cancelled loops to end, at most LOOP_STOP_TIMEOUT_S: a loop can miss its
    cancellation inside a library (seen: `FlagSync.run` left "cancelling" for good inside
    redis-py's `PubSub.listen()` after a Redis restart, which held a test's shutdown until its
    120-s timeout), and shutdown must not wait for it for ever. Each one left is named."""
    if not running:
        return
    _, pending = await asyncio.wait(running, timeout=LOOP_STOP_TIMEOUT_S)
    for task in pending:
        log.warning("%s: background loop %s did not end within %.0f s of its cancellation; shutdown goes on",
                    name, task.get_name(), LOOP_STOP_TIMEOUT_S)


def lifecycle(tasks: TaskSet, name: str, *, start: Callable[[], Awaitable[Any]] | None = None,
              loops: Iterable[tuple[str, Callable[[], Awaitable[Any]]]] = (),
              before_cancel: Callable[[], Awaitable[Any]] | None = None,
              stop: Callable[[], Awaitable[Any]] | None = None):
    """One cleanup context: `start()`, spawn each loop on the task set, yield; then
    `before_cancel()`, cancel the loops (awaiting them) and `stop()`."""
    loops = list(loops)

    async def context(app: web.Application) -> AsyncIterator[None]:
        if start is not None:
            await start()
        running = [tasks.spawn(loop(), name=loop_name) for loop_name, loop in loops]
        try:
            yield
        finally:
            if before_cancel is not None:
                await before_cancel()
            for task in running:
                task.cancel()
            await _stopped(running, name)
            if stop is not None:
                await stop()

    context.__name__ = context.__qualname__ = f"lifecycle of {name}"
    return context


async def _drain(mailboxes: list[Mailbox]) -> None:
    """What the emitters published last still reaches its listeners (the audit log) on shutdown."""
    for box in mailboxes:
        if not await box.drain(timeout_s=2.0):
            log.warning("%s: %d value(s) not handled at shutdown", box.name, box.pending())


async def _close_collectors(gpu: GpuCollector, database: DatabaseCollector) -> None:
    await asyncio.get_running_loop().run_in_executor(None, gpu.close)
    await database.close()


def _brief(state: dict[str, Any]) -> dict[str, Any]:
    return {key: state.get(key) for key in ("status", "reason", "error", "latency_ms") if state.get(key) is not None}


async def _disconnect_clients(app: web.Application) -> None:
    """Runs first on shutdown: stop answering healthy, close every Socket.IO session."""
    app[k.HEALTH].serving = False
    sio = app[k.SIO]
    # Each session gets a close packet; none is waited for, since engine.io's own
    # disconnect-all waits forever on a polling client that no longer polls.
    sockets = list(sio.eio.sockets.values())
    for eio_socket in sockets:
        await eio_socket.close(wait=False, reason=sio.eio.reason.SERVER_DISCONNECT)
    if sockets:
        await asyncio.sleep(0.05)  # let the WebSocket writers flush the close packets
    sio.eio.sockets.clear()
    await sio.shutdown()
    # Then the WebSocket connections themselves, so no handler outlives the shutdown.
    open_ws = [ws for ws in app[k.WEBSOCKETS] if not ws.closed]
    if open_ws:
        closing = asyncio.gather(*(ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
                                   for ws in open_ws), return_exceptions=True)
        try:
            async with asyncio.timeout(WS_CLOSE_TIMEOUT_S):
                await closing
        except asyncio.TimeoutError:
            log.warning("%d WebSocket(s) did not close in %.1fs", len(open_ws), WS_CLOSE_TIMEOUT_S)


async def _track_websockets(request: web.Request, response: web.StreamResponse) -> None:
    if isinstance(response, web.WebSocketResponse):
        request.app[k.WEBSOCKETS].add(response)
        request[UPGRADED] = response
