"""Helpers shared by the interactive panels' live tests: a collecting Socket.IO client."""

from __future__ import annotations

import asyncio
from typing import Any

import socketio

from tests.conftest import RunningServer

# No batching, fast status and inference streams, tiny backoff: tests stay quick.
FAST = {"updates": {"batch_updates": False, "intervals": {"chat_status": 100}},
        "panels": {"chat": {"backoff_base_ms": 10, "backoff_max_ms": 50},
                   "ai_system": {"refresh_interval_ms": 100}}}


def fast(extra: dict | None = None) -> dict:
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in FAST.items()}
    for key, value in (extra or {}).items():
        if isinstance(value, dict):
            merged = dict(out.get(key, {}))
            for k, v in value.items():
                merged[k] = {**merged.get(k, {}), **v} if isinstance(v, dict) else v
            out[key] = merged
        else:
            out[key] = value
    return out


class LiveClient:
    """A python-socketio client on one namespace, keeping every event it receives."""

    def __init__(self, namespace: str):
        self.namespace = namespace
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: list[tuple[str, Any]] = []
        self._arrived = asyncio.Event()

        @self.sio.on("*", namespace=namespace)
        async def any_event(event, data):
            self.events.append((event, data))
            self._arrived.set()

    async def connect(self, server: RunningServer) -> "LiveClient":
        await self.sio.connect(server.url, socketio_path=server.ws_path, namespaces=[self.namespace],
                               transports=["websocket"], wait_timeout=15)
        return self

    async def call(self, event: str, data: Any = None) -> Any:
        return await self.sio.call(event, data, namespace=self.namespace, timeout=15)

    async def close(self) -> None:
        await self.sio.disconnect()

    def of(self, event: str) -> list[Any]:
        return [data for name, data in self.events if name == event]

    async def wait_for(self, predicate, timeout: float = 20) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self._arrived.clear()
                await self._arrived.wait()
