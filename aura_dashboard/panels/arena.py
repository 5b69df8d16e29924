"""The intelligence arena: debates opened, argued and closed by clients or producing services.

Every change publishes the debate's whole state on the `debates` stream, so the newest
envelope of a debate is all a client needs. At most `max_debates` are open at once (one more
is refused with `arena_full`, never evicting a live one); an open debate older than
`debate_timeout_seconds` becomes `timed_out`; the last `finished_kept` finished debates are
kept for review, each with the envelope that last published it (the subscribe snapshot).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Protocol

from pydantic import Field, StringConstraints

from ..errors import DashboardError, NotFound
from ..contract import FieldSpec, PayloadModel, StreamContract
from ..security.validation import Payload, parse
from ..tasks import stop_if_cancelled

log = logging.getLogger(__name__)

MAX_TURNS = 200  # turns per debate (an envelope carries the last `turns_in_envelope` of them)

Name = Annotated[str, StringConstraints(min_length=1, max_length=128)]
DebateId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Publish = Callable[[str, Any], Awaitable[dict[str, Any]]]


class CreateDebate(Payload):
    topic: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    participants: Annotated[list[Name], Field(min_length=2, max_length=16)]


class AddTurn(Payload):
    id: DebateId
    speaker: Name
    text: Annotated[str, StringConstraints(min_length=1, max_length=4000)]


class CloseDebate(Payload):
    id: DebateId
    winner: Name | None = None


# The REST forms take the id from the path.
class TurnBody(Payload):
    speaker: Name
    text: Annotated[str, StringConstraints(min_length=1, max_length=4000)]


class CloseBody(Payload):
    winner: Name | None = None


@dataclass
class Debate:
    id: str
    topic: str
    participants: list[str]
    created: float
    created_at: float  # monotonic, for the timeout
    status: str = "open"
    turns: list[dict[str, Any]] = field(default_factory=list)
    winner: str | None = None
    finished: float | None = None
    envelope: dict[str, Any] | None = None

    def state(self, last_turns: int | None = 20) -> dict[str, Any]:
        """The debate with its last `last_turns` turns (None: all) and `turn_count` (every turn
        of a long debate: `turns_page`)."""
        turns = list(self.turns) if last_turns is None else self.turns[-last_turns:] if last_turns else []
        return {"id": self.id, "topic": self.topic, "participants": list(self.participants),
                "status": self.status, "turns": turns,
                "turn_count": len(self.turns), "winner": self.winner,
                "created": self.created, "finished": self.finished}

    def turns_page(self, offset: int, limit: int) -> dict[str, Any]:
        return {"id": self.id, "turn_count": len(self.turns), "offset": offset,
                "turns": self.turns[offset:offset + limit]}


class DebateKeeper(Protocol):
    """Where the holder keeps its debates for the next holder (a cluster's Redis)."""

    async def put(self, doc_id: str, doc: dict[str, Any]) -> None: ...
    async def delete(self, doc_id: str) -> None: ...
    async def all(self, *, strict: bool = False) -> list[dict[str, Any]]: ...


class Arena:
    """Open and recently finished debates; each change is published on `debates`.

    :param keeper: in a cluster, where each debate is kept after each change so that the next
        lease holder resumes it (`resume()`); None for one process.
    """

    def __init__(self, *, max_debates: int, timeout_s: float, finished_kept: int, publish: Publish,
                 wall: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic,
                 keeper: DebateKeeper | None = None, turns_in_envelope: int = 20):
        self.max_debates = max_debates
        self.turns_in_envelope = turns_in_envelope
        self.timeout_s = timeout_s
        self.finished_kept = finished_kept
        self._publish = publish
        self._wall = wall
        self._monotonic = monotonic
        self.open: dict[str, Debate] = {}
        self.finished: OrderedDict[str, Debate] = OrderedDict()
        self._lock = asyncio.Lock()  # one change at a time, in publish order
        self.keeper = keeper

    async def resume(self, held: bool = True) -> int:
        """On becoming the lease holder: take up the debates the last holder kept (an open
        debate's timeout runs on from when it was created); returns how many were taken."""
        if not held or self.keeper is None:
            return 0
        debates = await self._read_kept()
        taken = 0
        async with self._lock:
            for debate in debates:
                if debate.id in self.open or debate.id in self.finished:
                    continue
                if debate.status == "open":
                    self.open[debate.id] = debate
                else:
                    self.finished[debate.id] = debate
                taken += 1
        if taken:
            log.info("arena: %d debate(s) taken up from the previous holder", taken)
        return taken

    async def kept_copy(self) -> Arena:
        """The debates as the last holder kept them (a cluster's Redis), to read only: an
        instance answers arena reads from it while no holder answers (during a takeover)."""
        if self.keeper is None:
            raise DashboardError("no debates are kept here", code="unavailable", status=503)
        try:
            debates = await self._read_kept(strict=True)
        except Exception as exc:
            raise DashboardError(f"the kept debates cannot be read: {exc}", code="unavailable",
                                 status=503) from None
        copy = Arena(max_debates=self.max_debates, timeout_s=self.timeout_s,
                     finished_kept=self.finished_kept, publish=self._publish, wall=self._wall,
                     monotonic=self._monotonic, keeper=None, turns_in_envelope=self.turns_in_envelope)
        for debate in debates:
            (copy.open if debate.status == "open" else copy.finished)[debate.id] = debate
        return copy

    async def _read_kept(self, strict: bool = False) -> list[Debate]:
        docs = await self.keeper.all(strict=strict)
        now_wall, now_mono = self._wall(), self._monotonic()
        debates = []
        for doc in sorted(docs, key=lambda d: d.get("created", 0)):
            try:
                state = doc["state"]
                debates.append(Debate(state["id"], state["topic"], list(state["participants"]),
                                      state["created"], now_mono - max(0.0, now_wall - state["created"]),
                                      status=state["status"], turns=list(state["turns"]),
                                      winner=state["winner"], finished=state["finished"],
                                      envelope=doc.get("envelope")))
            except (KeyError, TypeError):
                log.warning("a kept debate could not be read; skipped")
        return debates

    # -- actions (payloads as they come from a client) ------------------------------------------
    async def create(self, payload: Any) -> dict[str, Any]:
        request = parse(CreateDebate, payload, what="create_debate payload")
        if len(set(request.participants)) != len(request.participants):
            raise DashboardError("participants: names must be distinct")
        async with self._lock:
            if len(self.open) >= self.max_debates:
                raise DashboardError(f"the arena already holds {self.max_debates} open debates",
                                     code="arena_full", status=409)
            debate = Debate(f"d-{uuid.uuid4().hex[:12]}", request.topic, list(request.participants),
                            self._wall(), self._monotonic())
            self.open[debate.id] = debate
            await self._changed(debate)
        return {"ok": True, "id": debate.id, "debate": debate.state(self.turns_in_envelope)}

    async def add_turn(self, payload: Any) -> dict[str, Any]:
        request = parse(AddTurn, payload, what="add_turn payload")
        async with self._lock:
            debate = self._open_debate(request.id)
            if request.speaker not in debate.participants:
                raise DashboardError(f"speaker: {request.speaker!r} is not a participant of {debate.id}")
            if len(debate.turns) >= MAX_TURNS:
                raise DashboardError(f"debate {debate.id} already has {MAX_TURNS} turns",
                                     code="debate_full", status=409)
            debate.turns.append({"speaker": request.speaker, "text": request.text, "ts": self._wall()})
            await self._changed(debate)
        return {"ok": True, "id": debate.id, "turn": len(debate.turns)}

    async def close(self, payload: Any) -> dict[str, Any]:
        request = parse(CloseDebate, payload, what="close_debate payload")
        async with self._lock:
            debate = self._open_debate(request.id)
            if request.winner is not None and request.winner not in debate.participants:
                raise DashboardError(f"winner: {request.winner!r} is not a participant of {debate.id}")
            debate.winner = request.winner
            await self._finish(debate, "finished")
        return {"ok": True, "id": debate.id, "debate": debate.state(self.turns_in_envelope)}

    async def expire(self) -> int:
        """Time out the open debates older than `timeout_s`; returns how many."""
        now = self._monotonic()
        async with self._lock:
            stale = [d for d in self.open.values() if now - d.created_at >= self.timeout_s]
            for debate in stale:
                await self._finish(debate, "timed_out")
        return len(stale)

    async def run_sweeper(self) -> None:
        """Expire debates until cancelled; a failed sweep is logged, never fatal."""
        interval = min(1.0, max(0.05, self.timeout_s / 4))
        while True:
            stop_if_cancelled()
            await asyncio.sleep(interval)
            try:
                async with asyncio.timeout(10):
                    await self.expire()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("arena sweep failed")

    # -- reading ------------------------------------------------------------------------------
    def get(self, debate_id: str) -> Debate:
        debate = self.open.get(debate_id) or self.finished.get(debate_id)
        if debate is None:
            raise NotFound(f"no debate {debate_id!r} (unknown, or finished long ago)")
        return debate

    def debates(self) -> list[dict[str, Any]]:
        return [d.state(self.turns_in_envelope) for d in self._kept()]

    def snapshot(self) -> list[dict[str, Any]]:
        """The last envelope of every debate kept (open and finished), oldest first by `seq`."""
        envelopes = [d.envelope for d in self._kept() if d.envelope is not None]
        return sorted(envelopes, key=lambda e: e["seq"])

    def _kept(self) -> list[Debate]:
        return [*self.open.values(), *self.finished.values()]

    def _open_debate(self, debate_id: str) -> Debate:
        debate = self.get(debate_id)
        if debate.status != "open":
            raise DashboardError(f"debate {debate_id} is {debate.status}", code="debate_closed",
                                 status=409)
        return debate

    async def _finish(self, debate: Debate, status: str) -> None:
        debate.status = status
        debate.finished = self._wall()
        self.open.pop(debate.id, None)
        self.finished[debate.id] = debate
        while len(self.finished) > self.finished_kept:
            dropped, _ = self.finished.popitem(last=False)
            if self.keeper is not None:
                await self.keeper.delete(dropped)
        await self._changed(debate)

    async def _changed(self, debate: Debate) -> None:
        debate.envelope = await self._publish("debates", debate.state(self.turns_in_envelope))
        if self.keeper is not None:  # every turn, so the next holder resumes the whole debate
            await self.keeper.put(debate.id, {"state": debate.state(None), "envelope": debate.envelope,
                                              "created": debate.created})


# -- the `debates` stream's contract ---------------------------------------------------------
class Turn(PayloadModel):
    speaker: str
    text: str
    ts: float


class DebateData(PayloadModel):
    id: str
    topic: str
    participants: list[str]
    status: Literal["open", "finished", "timed_out"]
    turns: list[Turn]
    turn_count: int
    winner: str | None
    created: float
    finished: float | None


DEBATES = StreamContract(
    name="debates", namespace="/arena", payload=DebateData,
    summary="A debate's whole state, one envelope per change; the newest envelope of a debate is all a "
            "client needs.",
    switches=("panels.intelligence_arena.enabled",), feature="intelligence_arena",
    fields=(
        FieldSpec("id", "id", "the debate's id"),
        FieldSpec("topic", "text", "what is debated"),
        FieldSpec("participants[]", "text", "who debates"),
        FieldSpec("status", "status", "open, finished or timed_out"),
        FieldSpec("turns[].speaker", "text", "who spoke"),
        FieldSpec("turns[].text", "text", "what was said"),
        FieldSpec("turns[].ts", "unix_time", "when"),
        FieldSpec("turn_count", "count", "turns so far; `turns` holds the last "
                  "panels.intelligence_arena.turns_in_envelope of them (all: GET /api/arena/debates/{id}/turns)"),
        FieldSpec("winner", "text", "the winner, when one was named"),
        FieldSpec("created", "unix_time", "when it opened"),
        FieldSpec("finished", "unix_time", "when it ended (null while open)"),
    ),
)
