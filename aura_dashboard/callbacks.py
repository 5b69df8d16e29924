"""Calling the listeners of something that happened: one loop for every notifier."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable
from typing import Any


async def notify_all(callbacks: Iterable[Callable[[Any], Any]], value: Any, *,
                     logger: logging.Logger, what: str, extra: dict | None = None) -> None:
    """Call each callback with `value`, awaiting those that return an awaitable.

    One that fails is logged (as "`what` failed") and the others still run: a broken
    listener must never stop the notifier or its other listeners.
    """
    for callback in list(callbacks):
        try:
            result = callback(value)
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception("%s failed", what, extra=extra)
