"""Runtime overrides of feature flags: the one place components ask "is X on?".

Flags start at their configured values; the API may override them while the server runs.
Each change is sent on `changed`, a `Signal` (emitters start and stop, the audit log records it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..signals import Signal
from .schema import FeatureSettings

log = logging.getLogger(__name__)


class UnknownFeature(KeyError):
    """A flag name that `features` does not define."""

    def __init__(self, flag: str):
        super().__init__(flag)
        self.flag = flag

    def __str__(self) -> str:
        return f"features.{self.flag}: no such feature flag"


@dataclass(frozen=True)
class FeatureChange:
    flag: str
    old: bool
    new: bool
    actor: str
    reset: bool = False    # the override was dropped (the configured value applies again)
    remote: bool = False   # made on another instance of the cluster and synced here


class RuntimeOverrides:
    """Configured flags plus the overrides made at run time, with change notification."""

    def __init__(self, features: FeatureSettings):
        self._configured: dict[str, bool] = features.model_dump()
        self._overrides: dict[str, bool] = {}
        self.changed: Signal[FeatureChange] = Signal("feature flags")

    def flags(self) -> list[str]:
        return list(self._configured)

    def configured(self) -> dict[str, bool]:
        return dict(self._configured)

    def overridden(self) -> dict[str, bool]:
        return dict(self._overrides)

    def effective(self) -> dict[str, bool]:
        return {**self._configured, **self._overrides}

    def describe(self) -> dict[str, dict[str, bool]]:
        """The flags as GET /api/features and the `features` event give them."""
        return {"effective": self.effective(), "configured": self.configured(), "overrides": self.overridden()}

    def is_on(self, flag: str) -> bool:
        self._check(flag)
        return self._overrides.get(flag, self._configured[flag])

    async def set(self, flag: str, value: bool, actor: str = "system", *,
                  remote: bool = False, reset: bool = False) -> FeatureChange | None:
        """Override one flag; returns the change, or None when the value was already so."""
        old = self.is_on(flag)
        if value == self._configured[flag]:
            self._overrides.pop(flag, None)
        else:
            self._overrides[flag] = bool(value)
        if old == bool(value):
            return None
        change = FeatureChange(flag, old, bool(value), actor, reset=reset, remote=remote)
        await self.changed.send(change)
        return change

    async def reset(self, flag: str, actor: str = "system", *, remote: bool = False) -> FeatureChange | None:
        """Drop an override so the configured value applies again."""
        return await self.set(flag, self._configured[self._check(flag)], actor, remote=remote, reset=True)

    def _check(self, flag: str) -> str:
        if flag not in self._configured:
            raise UnknownFeature(flag)
        return flag
