"""The pushed-authorization-request store contract: records, outcomes and the Protocol.

Spec: authward spec/stores.md §2.9, §3.7 (RFC 9126), §7 item 9 and project decision 5
(the ``request_uri`` is stored only as its digest).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Final, Protocol, TypeAlias

from authward.stores.digest import b64url
from authward.stores.json import JsonObject as JsonObject

#: The URN prefix of every ``request_uri`` this server mints (RFC 9126 §2.2).
REQUEST_URI_PREFIX: Final = "urn:ietf:params:oauth:request_uri:"

#: Default lifetime of a pushed request in seconds (spec §8 ``par_ttl``).
DEFAULT_PAR_TTL: Final = 90


def new_request_uri() -> str:
    """Mint a ``request_uri``: the PAR URN prefix plus 32 random bytes, base64url (77 chars)."""
    return REQUEST_URI_PREFIX + b64url(secrets.token_bytes(32))


@dataclass(frozen=True, slots=True)
class Stored:
    """``put`` stored the request."""


@dataclass(frozen=True, slots=True)
class Duplicate:
    """``put`` found the ``request_uri`` already stored; the original row is unchanged."""


@dataclass(frozen=True, slots=True)
class Found:
    """``fetch`` found a live request; ``params`` is the stored JSON object."""

    params: JsonObject


@dataclass(frozen=True, slots=True)
class Taken:
    """``take`` won the request: the row is deleted and ``params`` is what it held."""

    params: JsonObject


@dataclass(frozen=True, slots=True)
class Missing:
    """No live request under that ``request_uri`` (unknown, expired or already taken)."""


PutOutcome: TypeAlias = Stored | Duplicate
FetchOutcome: TypeAlias = Found | Missing
TakeOutcome: TypeAlias = Taken | Missing


class PushedAuthorizationRequestStore(Protocol):
    """Pushed authorization requests, keyed by the digest of their ``request_uri``.

    Every method takes ``now`` (Unix seconds; ``None`` means the store's clock). A request is
    live while ``expires_at > now``. The raw ``request_uri`` is never stored.
    """

    async def put(
        self, request_uri: str, params: JsonObject, ttl: int, *, now: float | None = None
    ) -> PutOutcome:
        """Store ``params`` under ``request_uri`` until ``now + ttl`` (seconds, truncated).

        ``ttl`` must be a positive integer and ``params`` a string-keyed JSON object, else
        ``StoreContractError``. Atomic: one ``INSERT ... ON CONFLICT DO NOTHING``; an existing
        ``request_uri`` (live or expired) gives ``Duplicate`` and is left untouched.
        """
        ...

    async def fetch(self, request_uri: str, *, now: float | None = None) -> FetchOutcome:
        """Return the live request's params without consuming it (any number of times)."""
        ...

    async def take(self, request_uri: str, *, now: float | None = None) -> TakeOutcome:
        """Delete the live request and return its params; exactly one concurrent caller wins.

        Atomic: one ``DELETE ... WHERE key AND expires_at > now RETURNING params``. An expired
        row gives ``Missing`` and is left for the sweeper.
        """
        ...
