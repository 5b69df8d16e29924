"""Parsing client payloads (Socket.IO events, REST bodies) into typed models.

Every model derives from `Payload`: unknown fields are refused, strings are strict (bytes,
numbers or binary attachments where text is expected are refused), and a failure becomes one
`BadRequest` whose message names each offending field.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from ..errors import BadRequest

MAX_DEPTH = 8
MAX_STRING_LENGTH = 65_536  # characters in any one string (a key or a value) of a payload

P = TypeVar("P", bound="Payload")


class Payload(BaseModel):
    """Base of every client payload model."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _depth(value: Any, limit: int, level: int = 0) -> int:
    if level > limit:
        return level
    if isinstance(value, dict):
        return max([_depth(v, limit, level + 1) for v in value.values()] or [level + 1])
    if isinstance(value, (list, tuple)):
        return max([_depth(v, limit, level + 1) for v in value] or [level + 1])
    return level


def _hostile(value: Any, level: int = 0) -> str | None:
    """Why `value` is refused before any model sees it: depth, huge strings, binary data."""
    if level > MAX_DEPTH:
        return f"is nested deeper than {MAX_DEPTH} levels"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "carries binary data where none is expected"
    if isinstance(value, str):
        return f"has a string longer than {MAX_STRING_LENGTH} characters" if len(value) > MAX_STRING_LENGTH else None
    if isinstance(value, dict):
        for key, item in value.items():
            why = _hostile(key, level + 1) or _hostile(item, level + 1)
            if why:
                return why
    elif isinstance(value, (list, tuple)):
        for item in value:
            why = _hostile(item, level + 1)
            if why:
                return why
    return None


def _where(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "payload"


def parse(model: type[P], data: Any, *, what: str = "payload") -> P:
    """`model` from `data`, or BadRequest naming every problem (never a traceback)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise BadRequest(f"{what} must be a JSON object, not {type(data).__name__}")
    if _depth(data, MAX_DEPTH) > MAX_DEPTH:
        raise BadRequest(f"{what} is nested deeper than {MAX_DEPTH} levels")
    why = _hostile(data)
    if why:
        raise BadRequest(f"{what} {why}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False, include_input=False):
            problems.append(f"{_where(tuple(error['loc']))}: {error['msg']}")
        raise BadRequest(f"invalid {what}: " + "; ".join(problems)) from None
