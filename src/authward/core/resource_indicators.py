"""Resource indicators: the one parser for the ``resource`` parameter at every endpoint.

Spec: RFC 8707 §2 (``resource`` is an absolute URI, RFC 3986 §4.3, without a fragment; it may
repeat; ``invalid_target`` otherwise); RFC 3986 §3 (an absolute URI is a scheme and a
hierarchical part, so ``urn:example:api`` is one); RFC 6749 §3.1 (a parameter sent without a
value counts as omitted).

The authorization, pushed authorization, device authorization and token endpoints all read
``resource`` through :func:`parse_resources`, so a value one accepts the others accept too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final
from urllib.parse import urlsplit

from authward.core.errors import InvalidTargetError

__all__ = ["MAX_RESOURCES", "MAX_RESOURCE_CHARS", "parse_resources"]

#: The most distinct resource indicators one request may name.
MAX_RESOURCES: Final = 16
#: The longest resource indicator accepted (it becomes an ``aud`` value and a stored column).
MAX_RESOURCE_CHARS: Final = 255

# RFC 3986 §3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), then ":" and a non-empty
# hierarchical part (an authority and path, or a path such as a URN's).
_ABSOLUTE: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:[^\s#]+")
# Visible US-ASCII only: an identifier, not text (a URI has no spaces or controls).
_VISIBLE: Final = re.compile(r"[\x21-\x7e]+")


def _authority(uri: str) -> str:
    try:
        return urlsplit(uri).netloc
    except ValueError:  # e.g. an unbalanced IPv6 bracket
        return ""


def parse_resources(values: Sequence[str]) -> tuple[str, ...]:
    """The distinct ``resource`` values of a request, first occurrence first; empty values
    are ignored. ``InvalidTargetError`` for a value that is not an absolute URI without a
    fragment, for more than :data:`MAX_RESOURCES` values or one longer than
    :data:`MAX_RESOURCE_CHARS` characters."""
    present = tuple(dict.fromkeys(value for value in values if value != ""))
    if len(present) > MAX_RESOURCES:
        raise InvalidTargetError("too many resource indicators")
    for uri in present:
        if len(uri) > MAX_RESOURCE_CHARS:
            raise InvalidTargetError("a resource indicator is too long")
        if not (_VISIBLE.fullmatch(uri) and _ABSOLUTE.fullmatch(uri)):
            raise InvalidTargetError(
                "resource must be an absolute URI without a fragment",
                detail=f"bad resource {uri[:64]!r}",
            )
        if uri.partition(":")[2].startswith("//") and not _authority(uri):
            raise InvalidTargetError(
                "resource must name a host after //", detail=f"bad resource {uri[:64]!r}"
            )
    return present
