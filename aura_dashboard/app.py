"""create_app(settings): wiring only. Every component is built here and hung on the app."""

from __future__ import annotations

import asyncio
import logging
import socket
import weakref
from collections.abc import AsyncIterator

from aiohttp import WSCloseCode, web

from .appkeys import (ALERTS, BACKLOG_WATCH, CLIENT_ADDRESS, CLUSTER, COLLECTORS, EMITTERS, HEALTH,
                      HUB, NAMESPACES, OVERRIDES, PROM_REGISTRY, READ_CACHE, SECURITY_EVENTS,
                      SETTINGS, SIO, TASKS, WEBSOCKETS)
from .collectors.cgroup import CgroupReader
from .collectors.gpu import GpuCollector
from .collectors.system import SystemCollector
from .collectors.temperature import TemperatureCollector
from .config import RuntimeOverrides, Settings
from .namespaces import register_namespaces
from .panels.alerts import AlertEngine, ThresholdWatch
from .realtime.cluster import client_manager
from .realtime.cluster_link import ClusterLink
from .realtime.broadcast import Broadcaster
from .realtime.broadcast import install as install_fast_path
from .realtime.emitters import Emitter, EmitterSet
from .realtime.hub import StreamHub
from .realtime.limits import BacklogWatch, SocketGuard
from .realtime.server import build_socketio
from .realtime.tasks import TaskSet
from .security import ClientAddress, SecurityEvents
from .streams import stream_specs
from .web.api import setup_api
from .web.cache import HubReadCache
from .web.compression import gzip_middleware
from .web.dependencies import setup_dependencies
from .web.forwarding import forward_event, forwarding_middleware, must_forward
from .web.health import Health
from .web.interactive import setup_interactive
from .web.metrics import build_registry, metrics
from .web.page import setup_page
from .web.middleware import error_middleware
from .web.routes import setup_routes
from .web.security import security_middlewares, setup_cors

log = logging.getLogger(__name__)
WS_CLOSE_TIMEOUT_S = 1.0


def instance_name(settings: Settings) -> str:
    return settings.dashboard.instance_name or socket.gethostname()


def create_app(settings: Settings) -> web.Application:
    middlewares = [error_middleware, *security_middlewares(settings)]
    if settings.performance.gzip_compression:
        middlewares.insert(0, gzip_middleware(settings.performance))
    app = web.Application(middlewares=middlewares)
    overrides = RuntimeOverrides(settings.features)
    sio = build_socketio(settings, overrides, client_manager(settings.websocket))
    sio.attach(app, socketio_path=settings.websocket.path)
    updates = settings.updates
    cluster = ClusterLink.create(settings, instance_name(settings), overrides)
    broadcaster = Broadcaster(sio)
    install_fast_path(sio, broadcaster, compress=updates.websocket_compression)

    hub = StreamHub(sio, source=instance_name(settings),
                    buffer_size=settings.websocket.message_buffer_size,
                    batch_interval_s=updates.batch_interval_ms / 1000 if updates.batch_updates else None,
                    pushing=lambda: overrides.is_on("real_time_updates"),
                    store=cluster.replay if cluster else None,
                    leader=(lambda: cluster.lease.held) if cluster else (lambda: True),
                    broadcaster=broadcaster)
    for spec in stream_specs(settings, overrides):
        hub.add_stream(spec)

    app[SETTINGS] = settings
    app[OVERRIDES] = overrides
    app[SIO] = sio
    app[TASKS] = TaskSet()
    app[HEALTH] = Health(instance_name(settings))
    app[HUB] = hub
    app[NAMESPACES] = register_namespaces(sio, settings, overrides, hub)
    app[SECURITY_EVENTS] = SecurityEvents()
    app[CLIENT_ADDRESS] = ClientAddress(settings.security.trusted_proxies)
    guard = SocketGuard(settings, app[SECURITY_EVENTS], app[CLIENT_ADDRESS])
    for namespace in app[NAMESPACES].values():
        namespace.guard = guard
    app[BACKLOG_WATCH] = BacklogWatch(sio, settings.websocket.max_client_backlog, settings.websocket.path)
    app[WEBSOCKETS] = weakref.WeakSet()
    app[READ_CACHE] = HubReadCache(settings.performance.cache)
    app[EMITTERS] = EmitterSet(hub, app[TASKS])
    app[COLLECTORS] = {}
    thresholds = settings.monitoring.thresholds
    app[ALERTS] = AlertEngine(lambda alert: hub.publish("alerts", alert),
                              consecutive=thresholds.consecutive_samples,
                              margin=thresholds.hysteresis_margin_percent)
    watch = ThresholdWatch(app[ALERTS], thresholds)
    hub.watch("system", watch.on_system)
    hub.watch("gpu", watch.on_gpu)
    overrides.add_listener(app[EMITTERS].reconcile)
    app[PROM_REGISTRY] = build_registry(app)
    if cluster is not None:
        app[CLUSTER] = cluster
        app.middlewares.append(forwarding_middleware)
        arena_ns = app[NAMESPACES]["arena"]
        arena_ns.is_remote = lambda: must_forward(app)
        arena_ns.remote = lambda path, payload: forward_event(app, path, payload)
        app[HEALTH].register("message_queue", cluster.health)
        app.cleanup_ctx.append(_cluster)

    setup_routes(app)
    setup_api(app)
    setup_page(app)
    setup_interactive(app)
    setup_dependencies(app)
    app.router.add_get("/metrics", metrics)
    setup_cors(app, settings)  # after every route
    app.on_response_prepare.append(_track_websockets)
    app.on_response_prepare.append(app[BACKLOG_WATCH].track_upgrade)
    app.on_shutdown.append(_disconnect_clients)
    app.cleanup_ctx.append(_background_tasks)
    app.cleanup_ctx.append(_host_streams)
    return app


async def _cluster(app: web.Application) -> AsyncIterator[None]:
    """The lease for the shared collectors and the flag sync, for as long as the app runs."""
    cluster, emitters, tasks = app[CLUSTER], app[EMITTERS], app[TASKS]

    async def lease_changed(held: bool) -> None:
        await emitters.reconcile()

    cluster.lease._on_change = lease_changed
    await cluster.lease_round()
    tasks.spawn(cluster.run_lease(), name="cluster:lease")
    tasks.spawn(cluster.flags.run(), name="cluster:flags")
    yield
    await cluster.close()


async def _host_streams(app: web.Application) -> AsyncIterator[None]:
    """The per-host collectors and their emitters (system, gpu, temperature)."""
    settings, hub, emitters = app[SETTINGS], app[HUB], app[EMITTERS]
    m, intervals = settings.monitoring, settings.updates.intervals
    loop = asyncio.get_running_loop()
    cgroup = await loop.run_in_executor(None, CgroupReader.detect)
    system = await loop.run_in_executor(None, lambda: SystemCollector(m.system, cgroup=cgroup))
    gpu = GpuCollector(m.gpu)
    temperature = TemperatureCollector()
    app[COLLECTORS].update(system=system, gpu=gpu, temperature=temperature)
    emitters.add(Emitter("system", system.sample, intervals.system_metrics / 1000, hub))
    emitters.add(Emitter("gpu", gpu.sample, intervals.gpu_metrics / 1000, hub))
    emitters.add(Emitter("temperature", temperature.sample, m.temperature.sample_interval_ms / 1000, hub))
    await emitters.start()
    yield
    await emitters.stop()
    await loop.run_in_executor(None, gpu.close)


async def _background_tasks(app: web.Application) -> AsyncIterator[None]:
    hub = app[HUB]
    if hub.batch_interval_s:
        app[TASKS].spawn(hub.run_batcher(), name="hub:batcher")
    app[TASKS].spawn(app[BACKLOG_WATCH].run(), name="limits:backlog")
    yield
    await app[TASKS].close()


async def _disconnect_clients(app: web.Application) -> None:
    """Runs first on shutdown: stop answering healthy, close every Socket.IO session."""
    app[HEALTH].serving = False
    sio = app[SIO]
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
    open_ws = [ws for ws in app[WEBSOCKETS] if not ws.closed]
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
        request.app[WEBSOCKETS].add(response)
