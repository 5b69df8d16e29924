"""Typed keys for the components the composition root hangs on the application, for the
handlers to find. Only the web layer (handlers) and the root use them."""

from __future__ import annotations

import weakref

import socketio
from aiohttp import web

from ..config import RuntimeOverrides, Settings
from ..collectors.backends import BackendMonitor
from ..collectors.database import DatabaseCollector
from ..health import Health
from ..history import History
from ..panels.alerts import AlertEngine
from ..panels.arena import Arena
from ..panels.audit import AuditStore
from ..panels.chat import ChatQueue
from ..panels.inference import InferenceStats
from ..realtime.backlog import BacklogWatch
from ..realtime.cluster_link import ClusterLink
from ..realtime.emitters import EmitterSet
from ..realtime.forwarding import LocalOnly
from ..realtime.hub import StreamHub
from ..security import AccessGuard, SecurityEvents
from ..signals import Mailbox
from ..tasks import TaskSet
from .cache import HubReadCache

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
CLUSTER = web.AppKey("cluster", ClusterLink)
FORWARDER = web.AppKey("forwarder", LocalOnly)
SECURITY_EVENTS = web.AppKey("security_events", SecurityEvents)
GUARD = web.AppKey("guard", AccessGuard)
BACKLOG_WATCH = web.AppKey("backlog_watch", BacklogWatch)
MAILBOXES = web.AppKey("mailboxes", list[Mailbox])
DATABASE = web.AppKey("database", DatabaseCollector)
BACKENDS = web.AppKey("backends", BackendMonitor)
AUDIT = web.AppKey("audit", AuditStore)
CHAT = web.AppKey("chat", ChatQueue)
ARENA = web.AppKey("arena", Arena)
INFERENCE = web.AppKey("inference", InferenceStats)
HISTORY = web.AppKey("history", History)
