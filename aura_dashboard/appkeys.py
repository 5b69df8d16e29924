"""Typed keys for the shared objects that hang on the aiohttp application."""

from __future__ import annotations

import weakref

import socketio
from aiohttp import web
from prometheus_client import CollectorRegistry

from .config import RuntimeOverrides, Settings
from .panels.alerts import AlertEngine
from .realtime.cluster_link import ClusterLink
from .realtime.emitters import EmitterSet
from .realtime.hub import StreamHub
from .realtime.limits import BacklogWatch
from .realtime.tasks import TaskSet
from .security import ClientAddress, SecurityEvents
from .web.cache import HubReadCache
from .web.health import Health

SETTINGS = web.AppKey("settings", Settings)
OVERRIDES = web.AppKey("overrides", RuntimeOverrides)
SIO = web.AppKey("sio", socketio.AsyncServer)
TASKS = web.AppKey("tasks", TaskSet)
HEALTH = web.AppKey("health", Health)
NAMESPACES = web.AppKey("namespaces", dict)
WEBSOCKETS = web.AppKey("websockets", weakref.WeakSet)
HUB = web.AppKey("hub", StreamHub)
EMITTERS = web.AppKey("emitters", EmitterSet)
ALERTS = web.AppKey("alerts", AlertEngine)
READ_CACHE = web.AppKey("read_cache", HubReadCache)
PROM_REGISTRY = web.AppKey("prom_registry", CollectorRegistry)
COLLECTORS = web.AppKey("collectors", dict)
CLUSTER = web.AppKey("cluster", ClusterLink)
# Failed authentications and other refusals: `app[SECURITY_EVENTS].add_listener(fn)`.
SECURITY_EVENTS = web.AppKey("security_events", SecurityEvents)
CLIENT_ADDRESS = web.AppKey("client_address", ClientAddress)
BACKLOG_WATCH = web.AppKey("backlog_watch", BacklogWatch)
