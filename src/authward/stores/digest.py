"""At-rest digests of secrets and keys: base64url(SHA-256(value)) without padding.

Spec: authward spec/stores.md §3.0 (secret hashing), §3.6 (fixed-length replay keys).
"""

from __future__ import annotations

import base64
import hashlib


def b64url(data: bytes) -> str:
    """Encode ``data`` as base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def digest(value: str) -> str:
    """Return the 43-character base64url SHA-256 digest of the UTF-8 bytes of ``value``."""
    return b64url(hashlib.sha256(value.encode("utf-8")).digest())
