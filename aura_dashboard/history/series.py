"""Which numbers of an envelope are series, and under which key.

The stream contract marks series fields with paths in which `*` stands for every key of a
mapping and `[]` for every item of a list. A concrete series is the field's path plus the
keys that filled its wildcards, in order: `network.*.bytes_recv_per_s` with `("eth0",)`, or
`cpu.per_cpu[]` with `("3",)` (a list item is keyed by its position).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..contract import FieldSpec, StreamContract

WILDCARDS = ("*", "[]")


def tokens_of(path: str) -> tuple[str, ...]:
    """`cpu.per_cpu[]` -> ("cpu", "per_cpu", "[]"); `[].power_w` -> ("[]", "power_w")."""
    out: list[str] = []
    for part in path.split("."):
        name = part.removesuffix("[]") if part != "[]" else ""
        while name.endswith("[]"):
            name = name.removesuffix("[]")
        if name:
            out.append(name)
        out += ["[]"] * ((len(part) - len(name)) // 2)
    return tuple(out)


def concrete_name(field: str, keys: tuple[str, ...] | list[str]) -> str:
    """The field's path with its wildcards filled: `network.eth0.bytes_recv_per_s`, `cpu.per_cpu[3]`."""
    out, rest = [], list(keys)
    for token in tokens_of(field):
        if token == "*":
            out.append("." + (rest.pop(0) if rest else "*"))
        elif token == "[]":
            out.append(f"[{rest.pop(0) if rest else ''}]")
        else:
            out.append("." + token)
    return "".join(out).lstrip(".")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _walk(node: Any, tokens: tuple[str, ...], keys: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], float]]:
    if not tokens:
        number = _number(node)
        if number is not None:
            yield keys, number
        return
    token, rest = tokens[0], tokens[1:]
    if token == "*":
        if isinstance(node, dict):
            for key, child in node.items():
                yield from _walk(child, rest, keys + (str(key),))
    elif token == "[]":
        if isinstance(node, list):
            for index, child in enumerate(node):
                yield from _walk(child, rest, keys + (str(index),))
    elif isinstance(node, dict) and token in node:
        yield from _walk(node[token], rest, keys)


@dataclass(frozen=True)
class SeriesField:
    """One series field of a stream, its path compiled once."""

    spec: FieldSpec
    tokens: tuple[str, ...]

    @property
    def path(self) -> str:
        return self.spec.path

    def values(self, data: Any) -> Iterator[tuple[tuple[str, ...], float]]:
        """(keys, value) for every number this field names in `data`; missing or null ones are skipped."""
        return _walk(data, self.tokens, ())


def series_fields(contract: StreamContract) -> list[SeriesField]:
    return [SeriesField(spec, tokens_of(spec.path)) for spec in contract.series()]
