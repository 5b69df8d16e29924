"""What a client may send on a Socket.IO connection, and what becomes of anything else.

A packet the server cannot or will not handle gets a defined outcome, never silence: a
`bad_request` acknowledgement when it is an event that carries an acknowledgement id on a
connected namespace, else the connection is closed with a reason (see docs/protocol.md,
"Malformed input"). `ClientMistakes` reports such input without ever logging a traceback.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import re
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import Any

from socketio import packet as sio_packet

from .buckets import Clock
from ..tasks import stop_if_cancelled

log = logging.getLogger(__name__)

# Event names python-socketio reserves for its own dispatch: a client sending one would call
# the connect or disconnect handler with arguments of its choosing.
RESERVED_EVENTS = frozenset({"connect", "disconnect", "connect_error"})
MAX_ACK_ID_DIGITS = 15
# type, attachments, namespace, id: enough of the header to answer a packet whose body is unreadable
_HEADER = re.compile(r"(?P<type>\d)(?:\d+-)?(?P<namespace>/[^,]*)?,?(?P<id>\d+)?")


@dataclass(frozen=True)
class Refusal:
    """Why a packet is refused: `kind` (the code the client sees), a message, the namespace
    it named, and its acknowledgement id when the refusal can be answered there."""

    kind: str
    message: str
    namespace: str = "/"
    ack_id: int | None = None

    def data(self) -> dict[str, str]:
        return {"code": self.kind, "message": self.message}


def _namespace(raw: str | None) -> str:
    if not raw:
        return "/"
    return raw.split("?", 1)[0] or "/"


def _unreadable(data: str, why: str) -> Refusal:
    """A packet that did not decode: answered on its namespace when its header shows an event
    with a plausible ack id, else a reason to close."""
    header = _HEADER.match(data)
    namespace, ack_id = "/", None
    if header is not None:
        namespace = _namespace(header["namespace"])
        digits = header["id"]
        if header["type"] == str(sio_packet.EVENT) and digits and len(digits) <= MAX_ACK_ID_DIGITS:
            ack_id = int(digits)
    return Refusal("bad_request", f"unreadable packet: {why}", namespace, ack_id)


def inspect_packet(packet_class: type, data: Any) -> Any:
    """The decoded Socket.IO packet of one Engine.IO message, or the `Refusal` it earns.

    Refused: binary messages (the project speaks the JSON parser only, so a msgpack client or a
    binary attachment is refused on its first packet), binary events (the announcing packet
    itself, however many attachments it announces), packets that do not decode (bad JSON,
    integers past Python's digit limit, nesting past the recursion limit, over-long ids),
    acknowledgements and connect errors (the server never asks a client for one), and events
    that are not a list starting with an event name.
    """
    if not isinstance(data, str):
        return Refusal("binary_not_allowed",
                       "binary messages are not accepted; use the default (JSON) Socket.IO parser")
    try:
        pkt = packet_class(encoded_packet=data)
    except RecursionError:
        return _unreadable(data, "nested too deep")
    except Exception as exc:  # ValueError and friends: whatever the decoder says is a client's mistake
        return _unreadable(data, str(exc)[:120] or type(exc).__name__)
    namespace = _namespace(pkt.namespace)
    kind = pkt.packet_type
    if kind in (sio_packet.BINARY_EVENT, sio_packet.BINARY_ACK):
        return Refusal("binary_not_allowed", "binary attachments are not accepted", namespace)
    if kind in (sio_packet.CONNECT, sio_packet.DISCONNECT):
        return pkt
    if kind != sio_packet.EVENT:
        return Refusal("unexpected_packet", f"packet type {kind!r} is not accepted from a client", namespace)
    ack_id = pkt.id if pkt.id is not None and pkt.id < 10 ** MAX_ACK_ID_DIGITS else None
    if not isinstance(pkt.data, list) or not pkt.data or not isinstance(pkt.data[0], str):
        return Refusal("bad_request", "an event is a list that starts with the event name", namespace, ack_id)
    if pkt.data[0] in RESERVED_EVENTS:
        return Refusal("bad_request", f"{pkt.data[0]!r} is a reserved event name", namespace, ack_id)
    return pkt


def engineio_text_ok(data: str) -> bool:
    """Whether a WebSocket text frame is an Engine.IO packet at all (a type digit, or `b` and
    base64 for a binary message)."""
    if not data:
        return False
    if data[0] == "b":
        try:
            base64.b64decode(data[1:], validate=True)
        except (binascii.Error, ValueError):
            return False
        return True
    return data[0] in "0123456"


class ClientMistakes:
    """Malformed client input, reported without a traceback: one WARNING for the first mistake
    of each connection, and a summary of every mistake by kind once a minute.

    :param interval_s: how often the summary is logged (when there was anything).
    :param max_tracked: connections remembered as already reported, least recent dropped first.
    :param clock: monotonic seconds, injectable for tests.
    """

    def __init__(self, interval_s: float = 60.0, max_tracked: int = 10_000, clock: Clock = time.monotonic):
        self.interval_s = interval_s
        self.counts: Counter[str] = Counter()  # since the last summary
        self.total: Counter[str] = Counter()
        self._reported: OrderedDict[str, None] = OrderedDict()
        self._max_tracked = max_tracked
        self._clock = clock

    def note(self, connection: str, kind: str, message: str, client: str | None = None) -> bool:
        """Count one mistake; True when it was logged (the connection's first)."""
        self.counts[kind] += 1
        self.total[kind] += 1
        if connection in self._reported:
            return False
        self._reported[connection] = None
        while len(self._reported) > self._max_tracked:
            self._reported.popitem(last=False)
        log.warning("malformed input from %s (connection %s), %s: %s; later mistakes of this "
                    "connection are only counted", client or "-", connection, kind, message)
        return True

    def forget(self, connection: str) -> None:
        self._reported.pop(connection, None)

    def summary(self) -> dict[str, int]:
        """Log and reset the counts since the last summary."""
        counts, self.counts = dict(self.counts), Counter()
        if counts:
            log.warning("malformed client input in the last %.0fs: %s", self.interval_s,
                        ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items())))
        return counts

    async def run(self) -> None:
        while True:
            stop_if_cancelled()
            await asyncio.sleep(self.interval_s)
            self.summary()
