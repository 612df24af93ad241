"""A short-lived, bounded memory of successful argon2 client-secret checks, under a process key.

Spec: RFC 6819 §5.1.4.1.3 (no cleartext credentials at rest);
RFC 2104 (HMAC); authward ARCHITECTURE.md (argon2 with bounded cost).

A confidential client whose secret is stored as argon2 would pay 100-200 ms of CPU on every
token request. :class:`VerifiedSecretCache` remembers that ``(client_id, stored hashes,
presented secret)`` verified, for ``ttl_seconds`` (default 300) counted from the verification,
so such a client pays argon2 once per TTL.

What is kept: only ``HMAC-SHA256(process key, client_id, stored hashes, secret)`` (each part
length-prefixed, so no two different inputs share an encoding) and an expiry. The key is 32
random bytes made when the cache is built and never leaves the process, so an entry cannot be
tested offline against guesses, and the secret itself is never stored. Because the stored
hashes are part of the input, a rotation (the client's hash list changing) misses every old
entry at once; entries are never extended, so nothing outlives its TTL. Only successes are
remembered: a wrong secret always reaches argon2 (and the failure limits in front of it).
At most ``max_entries`` (default 10 000) are kept; the least recently used goes first.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Final

from authward.core.clock import Clock, SystemClock

__all__ = ["DEFAULT_VERIFIED_SECRET_TTL", "VerifiedSecretCache"]

#: How long a successful argon2 verification is remembered, in seconds.
DEFAULT_VERIFIED_SECRET_TTL: Final = 300
_DEFAULT_MAX_ENTRIES: Final = 10_000
_KEY_BYTES: Final = 32


class VerifiedSecretCache:
    """Remembers successful ``(client_id, stored hashes, secret)`` verifications (module
    docstring); safe to share between event loops and threads."""

    def __init__(
        self,
        *,
        ttl_seconds: float = DEFAULT_VERIFIED_SECRET_TTL,
        max_entries: int = _DEFAULT_MAX_ENTRIES,
        clock: Clock | None = None,
    ) -> None:
        if not ttl_seconds > 0:
            raise ValueError("ttl_seconds must be positive")
        if type(max_entries) is not int or max_entries < 1:
            raise ValueError("max_entries must be an integer of at least 1")
        self._ttl = float(ttl_seconds)
        self._max_entries = max_entries
        self._clock: Clock = clock or SystemClock()
        self._key = secrets.token_bytes(_KEY_BYTES)
        self._expiry: OrderedDict[bytes, float] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._expiry)

    def seen(self, client_id: str, hashes: Iterable[str], secret: str) -> bool:
        """True when this exact verification succeeded less than ``ttl_seconds`` ago."""
        entry = self._entry(client_id, hashes, secret)
        now = self._clock.now()
        with self._lock:
            expiry = self._expiry.get(entry)
            if expiry is None:
                return False
            if now >= expiry:
                del self._expiry[entry]
                return False
            self._expiry.move_to_end(entry)
            return True

    def remember(self, client_id: str, hashes: Iterable[str], secret: str) -> None:
        """Record a successful verification (call only after argon2 said yes)."""
        entry = self._entry(client_id, hashes, secret)
        expiry = self._clock.now() + self._ttl
        with self._lock:
            self._expiry[entry] = expiry
            self._expiry.move_to_end(entry)
            while len(self._expiry) > self._max_entries:
                self._expiry.popitem(last=False)

    def _entry(self, client_id: str, hashes: Iterable[str], secret: str) -> bytes:
        mac = hmac.new(self._key, digestmod=hashlib.sha256)
        for part in (client_id, secret, *hashes):
            data = part.encode("utf-8", "surrogatepass")
            mac.update(len(data).to_bytes(8, "big"))
            mac.update(data)
        return mac.digest()
