"""Password-style hashes (argon2id) for the default client secrets and user passwords.

Spec: RFC 6819 §5.1.4.2.2 (store secrets hashed); RFC 9106 (Argon2). authward stores no
plain secret: the TOML file holds ``$argon2id$...`` strings made with :func:`hash_secret`.

Produce a hash without any CLI::

    python -c "from authward.core.defaults import hash_secret; print(hash_secret('s3cret'))"

Verification runs argon2 in a worker thread (it is deliberately slow) and never raises.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError

__all__ = ["Argon2Verifier", "hash_secret", "is_argon2_hash"]

#: A syntactically valid hash nobody knows the secret of, verified against when there is no
#: real hash so an unknown user or client costs about as much time as a known one.
_PLACEHOLDER_SECRET = "authward: no such account"  # noqa: S105 - a placeholder, not a secret


def hash_secret(plain: str, *, hasher: PasswordHasher | None = None) -> str:
    """The argon2id hash of ``plain`` (a client secret or a password), for the TOML file."""
    if not isinstance(plain, str) or not plain:
        raise ValueError("cannot hash an empty secret")
    return (hasher or PasswordHasher()).hash(plain)


def is_argon2_hash(value: object) -> bool:
    """True when ``value`` looks like an encoded argon2 hash (``$argon2id$...``)."""
    if not isinstance(value, str) or not value.startswith("$argon2"):
        return False
    try:
        PasswordHasher().check_needs_rehash(value)
    except (InvalidHashError, ValueError):
        return False
    return True


class Argon2Verifier:
    """Checks a presented secret against stored argon2 hashes, in constant time per hash.

    ``hasher`` fixes the cost of the placeholder hash (tests pass a cheap one); stored hashes
    are verified with the parameters they encode.
    """

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()
        self._placeholder: str | None = None

    async def verify(self, hashes: Iterable[str], presented: str) -> bool:
        """True when ``presented`` matches one of ``hashes``; ``False`` for anything else.

        Never raises and never logs. With no hash or an empty secret it still spends one
        argon2 verification so timing does not reveal whether the account exists.
        """
        candidates = tuple(hashes)
        if not isinstance(presented, str) or not presented or not candidates:
            await asyncio.to_thread(self._verify_one, self._placeholder_hash(), "x")
            return False
        results = [
            await asyncio.to_thread(self._verify_one, stored, presented) for stored in candidates
        ]
        return any(results)

    def _placeholder_hash(self) -> str:
        if self._placeholder is None:
            self._placeholder = self._hasher.hash(_PLACEHOLDER_SECRET)
        return self._placeholder

    def _verify_one(self, stored: str, presented: str) -> bool:
        try:
            return self._hasher.verify(stored, presented)
        except Exception:  # any failure is "no match", by contract
            return False
