"""Conversions between store-contract values and column values (time, lengths, JSON shapes).

Spec: authward spec/stores.md §0.4 (Unix seconds in contracts, naive UTC timestamps in columns,
second resolution except the replay and consent tables), §7 item 6 (lengths checked before write).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping
from typing import Any, cast

from authward.stores.errors import StoreContractError, ValueTooLongError

_EPOCH = dt.datetime(1970, 1, 1)


def to_seconds_column(unix: float) -> dt.datetime:
    """Unix seconds to a naive UTC datetime truncated to whole seconds."""
    return _EPOCH + dt.timedelta(seconds=math.floor(unix))


def to_micros_column(unix: float) -> dt.datetime:
    """Unix seconds to a naive UTC datetime with microsecond precision."""
    return _EPOCH + dt.timedelta(microseconds=round(unix * 1_000_000))


def from_column(value: dt.datetime) -> float:
    """A column datetime (naive UTC, or aware) back to Unix seconds."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return (value - _EPOCH).total_seconds()


def from_seconds_column(value: dt.datetime) -> int:
    """A second-resolution column back to integer Unix seconds."""
    return math.floor(from_column(value))


def check_length(field: str, value: str | None, limit: int) -> None:
    """Raise ``ValueTooLongError`` if ``value`` is longer than ``limit`` characters."""
    if value is not None and len(value) > limit:
        raise ValueTooLongError(field, len(value), limit)


def check_list(field: str, values: list[str], limit: int = 255) -> None:
    """Require a list of strings, each at most ``limit`` characters."""
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise StoreContractError(f"{field} must be a list of strings")
    for v in values:
        check_length(field, v, limit)


def require(field: str, value: object) -> None:
    """Raise ``StoreContractError`` if a required field is missing or empty."""
    if value is None or value == "":
        raise StoreContractError(f"{field} is required")


def positive_ttl(ttl: object) -> int:
    """Return ``ttl`` if it is a positive integer, else raise ``StoreContractError``."""
    if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0:
        raise StoreContractError(f"ttl must be a positive integer, got {ttl!r}")
    return ttl


def json_object(field: str, value: object) -> dict[str, Any]:
    """A JSON-safe copy of a string-keyed object, else ``StoreContractError``."""
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise StoreContractError(f"{field} must be a string-keyed JSON object")
    try:
        copy = json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise StoreContractError(f"{field} is not JSON-serialisable: {exc}") from exc
    return cast(dict[str, Any], copy)
