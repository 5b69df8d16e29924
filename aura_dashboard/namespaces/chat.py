"""The /chat namespace: the chat queue and its replies."""

from __future__ import annotations

from typing import Any

from ..errors import DashboardError
from ..panels.chat import ChatQueue
from .base import PanelNamespace, PanelSpec, answers_errors


class ChatNamespace(PanelNamespace):
    spec = PanelSpec(
        name="chat",
        namespace="/chat",
        feature="chat_optimization",
        config_section="chat",
        streams=("status",),
    )
    queue: ChatQueue | None = None  # set by setup_interactive

    def _queue(self) -> ChatQueue:
        if self.queue is None:
            raise DashboardError("the chat queue is not running", code="unavailable", status=503)
        return self.queue

    @answers_errors
    async def on_message(self, sid: str, payload: Any) -> dict[str, Any]:
        return await self._queue().submit(sid, payload)

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        if self.queue is not None:
            self.queue.forget(sid)
