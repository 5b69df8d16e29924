"""The /chat namespace: the chat queue and its replies."""

from __future__ import annotations

from typing import Any

from ..contract import PanelContract
from ..panels.chat import ChatQueue
from .base import PanelNamespace, answers_errors


class ChatNamespace(PanelNamespace):
    """:param queue: the chat queue messages go on (the rest as `PanelNamespace`)."""

    panel = PanelContract(name="chat", namespace="/chat", feature="chat_optimization",
                          config_section="chat", title="Chat")

    def __init__(self, *, queue: ChatQueue, **common: Any):
        super().__init__(**common)
        self.queue = queue

    @answers_errors
    async def on_message(self, sid: str, payload: Any) -> dict[str, Any]:
        return await self.queue.submit(sid, payload)

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        self.queue.forget(sid)
