"""API keys: the accepted ring, compared in constant time, and the id a key is audited by."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from ..config.schema import SecuritySettings


def key_id(key: str) -> str:
    """A name for a key that can be logged and audited without revealing it."""
    return "key:" + hashlib.sha256(key.encode()).hexdigest()[:8]


class KeyRing:
    """The accepted API keys (several during a rotation), checked in constant time.

    Candidates and keys are compared as SHA-256 digests, so neither the content nor the length
    of a key leaks through timing; every key is compared, whichever matches.
    """

    def __init__(self, keys: Iterable[str]):
        self._keys = [(hashlib.sha256(k.encode()).digest(), key_id(k)) for k in keys]

    @classmethod
    def from_settings(cls, security: SecuritySettings) -> "KeyRing | None":
        """The ring when the API key is on, else None (everyone is let in)."""
        return cls(security.api_keys()) if security.api_key_enabled else None

    def match(self, candidate: object) -> str | None:
        """The key id of `candidate` when it is an accepted key, else None."""
        if not isinstance(candidate, str) or not candidate:
            return None
        digest = hashlib.sha256(candidate.encode()).digest()
        found = None
        for key_digest, kid in self._keys:
            if hmac.compare_digest(digest, key_digest):
                found = kid
        return found


def bearer(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header."""
    if authorization and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return None


