"""Scope values: parse, format and compare space-delimited scope strings.

Spec: RFC 6749 §3.3 (scope-token = 1*( %x21 / %x23-5B / %x5D-7E ), space-delimited,
order-insensitive).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Final

from authward.core.errors import InvalidScopeError

_TOKEN: Final = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")

Scopes = tuple[str, ...]


def parse(value: str | None) -> Scopes:
    """Split a ``scope`` parameter into its tokens, first occurrence order, duplicates dropped.

    ``None`` or ``""`` is the empty scope. Tokens are separated by single spaces (%x20);
    leading, trailing or doubled spaces, other whitespace and any character outside the
    scope-token set raise ``InvalidScopeError``.
    """
    if value is None or value == "":
        return ()
    tokens = value.split(" ")
    for token in tokens:
        if not _TOKEN.fullmatch(token):
            raise InvalidScopeError(
                "scope must be scope-tokens separated by single spaces",
                detail=f"bad scope value {value!r}",
            )
    return tuple(dict.fromkeys(tokens))


def is_scope_token(token: str) -> bool:
    """True when ``token`` is one RFC 6749 §3.3 scope-token."""
    return _TOKEN.fullmatch(token) is not None


def format_scopes(scopes: Iterable[str]) -> str:
    """Join scope tokens with single spaces, keeping order and dropping duplicates.

    Raises ``ValueError`` for a token that is not a scope-token (a caller bug).
    """
    return _format_scope_tuple(scopes if isinstance(scopes, tuple) else tuple(scopes))


@functools.lru_cache(maxsize=512)
def _format_scope_tuple(scopes: tuple[str, ...]) -> str:
    """:func:`format_scopes` of a tuple, remembered: a server formats the same few scope sets
    on every token request (twice: the token's ``scope`` claim and the response)."""
    unique = tuple(dict.fromkeys(scopes))
    for token in unique:
        if not is_scope_token(token):
            raise ValueError(f"not a scope-token: {token!r}")
    return " ".join(unique)


def is_subset(requested: Iterable[str], granted: Iterable[str]) -> bool:
    """True when every requested token is among the granted ones (order does not matter)."""
    return set(requested) <= set(granted)


def missing(requested: Iterable[str], granted: Iterable[str]) -> Scopes:
    """The requested tokens that were not granted, in request order."""
    allowed = set(granted)
    return tuple(t for t in dict.fromkeys(requested) if t not in allowed)
