"""Random secrets, their at-rest digests, and constant-time comparison.

Spec: RFC 6749 §10.10 (credential guessing), RFC 6819 §5.1.4.2.2 (secrets hashed at rest);
authward spec/stores.md §3.0 (digest format).
"""

from __future__ import annotations

import hmac
import secrets as _random

from authward.stores.digest import b64url, digest

__all__ = ["SECRET_BYTES", "digest", "equal", "matches_digest", "new_secret"]

#: Bytes of entropy in every generated secret (256 bits).
SECRET_BYTES = 32


def new_secret(nbytes: int = SECRET_BYTES) -> str:
    """Return ``nbytes`` CSPRNG bytes as base64url without padding (43 characters for 32)."""
    if nbytes < 16:
        raise ValueError("a secret needs at least 16 random bytes")
    return b64url(_random.token_bytes(nbytes))


def equal(a: str | bytes, b: str | bytes) -> bool:
    """Compare two secrets in constant time; ``str`` values are compared as UTF-8."""
    left = a.encode("utf-8") if isinstance(a, str) else a
    right = b.encode("utf-8") if isinstance(b, str) else b
    return hmac.compare_digest(left, right)


def matches_digest(secret: str, stored_digest: str) -> bool:
    """True when ``digest(secret)`` equals ``stored_digest``, compared in constant time."""
    return equal(digest(secret), stored_digest)
