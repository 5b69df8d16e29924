"""Failed authentications and other refusals, for whoever audits them."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from typing import Any

from ..signals import Signal
from .buckets import BucketTable, Clock

log = logging.getLogger(__name__)


class SecurityEvents:
    """Refusals worth an audit entry, rate-limited per actor.

    `events.raised` is a `Signal`; an event is `{"action": "auth_failed", "actor": <client
    address>, "target": <namespace or path>, "detail": {...}}`. Events are rate-limited per
    actor (a flood of bad keys produces a few events, each counting the ones suppressed since),
    and a WARNING is logged for each one passed on.
    """

    def __init__(self, per_minute: int = 30, burst: int = 5, max_actors: int = 10_000,
                 clock: Clock = time.monotonic):
        self.raised: Signal[dict[str, Any]] = Signal("security events")
        self._buckets = BucketTable(per_minute, burst, max_actors, clock)
        self._suppressed: OrderedDict[str, int] = OrderedDict()
        self._max_actors = max_actors

    async def emit(self, action: str, actor: str, target: str, detail: dict[str, Any]) -> bool:
        """Pass the event on unless this actor is over its rate; True when it was passed on."""
        if self._buckets.take(actor) > 0:
            self._suppressed[actor] = self._suppressed.get(actor, 0) + 1
            self._suppressed.move_to_end(actor)
            while len(self._suppressed) > self._max_actors:
                self._suppressed.popitem(last=False)
            return False
        suppressed = self._suppressed.pop(actor, 0)
        event = {"action": action, "actor": actor, "target": target,
                 "detail": {**detail, "suppressed": suppressed} if suppressed else dict(detail)}
        log.warning("%s from %s on %s: %s%s", action, actor, target, detail.get("reason", ""),
                    f" ({suppressed} more suppressed)" if suppressed else "")
        await self.raised.send(event)
        return True
