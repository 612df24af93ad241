"""Exceptions for store contract violations (caller bugs), never for expected outcomes.

Spec: authward spec/stores.md §0.5, §0.6.

Expected results (a missing code, a replayed jti, ...) are typed outcomes. These exceptions mean
a programming or contract error: a duplicate secret hash, a missing required field, a
non-positive TTL, an over-long value, or a store built without a database.
"""

from __future__ import annotations


class StoreError(Exception):
    """Base class of every error a store raises."""


class StoreContractError(StoreError, ValueError):
    """A caller passed a value the store contract forbids (missing field, bad TTL, ...)."""


class ValueTooLongError(StoreContractError):
    """A value is longer than its column allows; checked before any write."""

    def __init__(self, field: str, length: int, limit: int) -> None:
        super().__init__(f"{field} is {length} characters long; at most {limit} are allowed")
        self.field = field
        self.length = length
        self.limit = limit


class DuplicateKeyError(StoreError):
    """An insert hit an existing unique key that only a caller bug can produce."""


class NoDatabaseError(StoreError, TypeError):
    """A store was constructed without a database engine (fail closed, spec §0.5)."""


class InvalidTablePrefixError(StoreError, ValueError):
    """The table prefix is not a lowercase identifier or makes an identifier too long."""
