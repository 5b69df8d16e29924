"""The /arena namespace: the intelligence arena's debates."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from ..contract import PanelContract
from ..errors import DashboardError
from ..panels.arena import Arena
from ..realtime.forwarding import LocalOnly
from ..realtime.subscriptions import bound_history, subscribe
from .base import PanelNamespace, answers_errors


class ArenaNamespace(PanelNamespace):
    """:param arena: the debates (served here on the lease holder or alone).
    :param forwarder: sends events to the lease holder while this instance is not it."""

    panel = PanelContract(name="arena", namespace="/arena", feature="intelligence_arena",
                          config_section="intelligence_arena", title="Intelligence arena")

    def __init__(self, *, arena: Arena, forwarder: LocalOnly, **common: Any):
        super().__init__(**common)
        self.arena = arena
        self.forwarder = forwarder

    @answers_errors
    async def on_subscribe(self, sid: str, payload: Any) -> dict[str, Any]:
        """As every namespace, except that `debates` history is the arena's snapshot: the
        newest envelope of each open and each kept finished debate, however old, unless the
        client resumes with `since` and nothing was lost."""
        ack = await subscribe(self.server, self.hub, sid, self.namespace, payload, self.history_points)
        if not self.forwarder.must_forward() and "debates" in ack.get("history", {}):
            if not (isinstance(payload, dict) and "debates" in (payload.get("since") or {})
                    and not ack.get("gap", {}).get("debates")):
                ack["history"]["debates"] = self.arena.snapshot()
        return bound_history(ack, self.ack_limit("subscribe", payload))

    @answers_errors
    async def on_create_debate(self, sid: str, payload: Any) -> dict[str, Any]:
        if self.forwarder.must_forward():
            return await self.forwarder.forward_event("/api/arena/debates", payload, **self._as(sid))
        return await self.arena.create(payload)

    @answers_errors
    async def on_add_turn(self, sid: str, payload: Any) -> dict[str, Any]:
        if self.forwarder.must_forward():
            return await self.forwarder.forward_event(f"/api/arena/debates/{_debate_id(payload)}/turns",
                                                      _without_id(payload), **self._as(sid))
        return await self.arena.add_turn(payload)

    @answers_errors
    async def on_close_debate(self, sid: str, payload: Any) -> dict[str, Any]:
        if self.forwarder.must_forward():
            return await self.forwarder.forward_event(f"/api/arena/debates/{_debate_id(payload)}/close",
                                                      _without_id(payload), **self._as(sid))
        return await self.arena.close(payload)

    def _as(self, sid: str) -> dict[str, str]:
        client, actor = self.who.get(sid, ("-", "socket:-"))
        return {"client": client, "actor": actor}


def _debate_id(payload: Any) -> str:
    debate_id = payload.get("id") if isinstance(payload, dict) else None
    if not isinstance(debate_id, str) or not debate_id or len(debate_id) > 64 or "/" in debate_id:
        raise DashboardError("id: a debate id (a string) is required")
    return quote(debate_id, safe="")


def _without_id(payload: dict) -> dict:
    return {k: v for k, v in payload.items() if k != "id"}
