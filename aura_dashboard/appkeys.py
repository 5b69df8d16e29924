"""Typed keys for the shared objects that hang on the aiohttp application."""

from __future__ import annotations

import weakref

import socketio
from aiohttp import web

from .config import RuntimeOverrides, Settings
from .realtime.tasks import TaskSet
from .web.health import Health

SETTINGS = web.AppKey("settings", Settings)
OVERRIDES = web.AppKey("overrides", RuntimeOverrides)
SIO = web.AppKey("sio", socketio.AsyncServer)
TASKS = web.AppKey("tasks", TaskSet)
HEALTH = web.AppKey("health", Health)
NAMESPACES = web.AppKey("namespaces", dict)
WEBSOCKETS = web.AppKey("websockets", weakref.WeakSet)
