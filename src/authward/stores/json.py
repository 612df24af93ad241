"""The one JSON value type shared by the store contracts and the core request/response values.

Spec: RFC 8259 §3 (JSON values: object, array, number, string, true, false, null); authward
spec/stores.md §2.9 (PAR ``params``) and §2.10 (CIMD ``metadata``) store string-keyed objects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeAlias

#: A JSON value. Arrays and objects are read-only views, so a ``list`` or ``dict`` of JSON
#: values (or any other sequence/mapping of them) is accepted wherever a ``JsonValue`` is.
JsonValue: TypeAlias = (
    "str | int | float | bool | Sequence[JsonValue] | Mapping[str, JsonValue] | None"
)

#: A string-keyed JSON object.
JsonObject: TypeAlias = Mapping[str, JsonValue]

__all__ = ["JsonObject", "JsonValue"]
