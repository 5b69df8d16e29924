"""Security in one package: API keys, rate limits, client addresses, security events, allowed
origins and payload validation. The HTTP and Socket.IO adapters (`web/security.py`,
`namespaces/base.py`) only translate their requests into this package's questions."""

from .addresses import ClientAddress
from .connections import ConnectionCaps
from .buckets import BucketTable, TokenBucket, retry_after
from .events import SecurityEvents
from .guard import AccessGuard, TooManyFailures, Unauthorized
from .keys import KeyRing, bearer, key_id
from .origins import AllowedOrigins, OriginPolicy

__all__ = ["AccessGuard", "AllowedOrigins", "BucketTable", "ClientAddress", "ConnectionCaps", "KeyRing", "OriginPolicy", "SecurityEvents",
           "TokenBucket", "TooManyFailures", "Unauthorized", "bearer", "key_id", "retry_after"]
