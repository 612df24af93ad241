"""The consent-grant store contract: the binding, its hash, the outcomes and the Protocol.

Spec: authward spec/stores.md §2.11, §3.9 (RFC 6749 §4.1.1), §7 item 9 and project decision 5
(grant tokens are stored only as their digest).

A grant binds one consent click to the exact request the user saw: subject, client,
redirect URI, scope set and PKCE challenge and method. ``binding_hash`` uses the Python JSON-array
canonicalisation (§3.9 "Python divergence"), so no field content can make two different
bindings collide; grants minted by attesto_phoenix are never verified here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeAlias

from authward.stores.digest import digest
from authward.stores.errors import StoreContractError


@dataclass(frozen=True, slots=True)
class ConsentBinding:
    """What one consent click approved. ``scope`` keeps the order given; the hash sorts it."""

    subject: str
    client_id: str
    redirect_uri: str
    scope: tuple[str, ...]
    code_challenge: str | None
    code_challenge_method: str | None
    #: The request's ``state`` and ``nonce``: a grant approved for one request cannot be
    #: replayed for another that differs only in them.
    state: str | None = None
    nonce: str | None = None


class ConsentRequest(Protocol):
    """The fields of a validated authorization request that a consent grant is bound to."""

    @property
    def client_id(self) -> str | None: ...

    @property
    def redirect_uri(self) -> str | None: ...

    @property
    def scope(self) -> Sequence[str] | str | None: ...

    @property
    def code_challenge(self) -> str | None: ...

    @property
    def code_challenge_method(self) -> str | None: ...

    @property
    def state(self) -> str | None: ...

    @property
    def nonce(self) -> str | None: ...


def binding_from_request(request: ConsentRequest, subject: str) -> ConsentBinding:
    """The binding of a validated authorization request and the consenting ``subject``.

    A ``None`` scope becomes ``()``. A scope string is split on the ASCII space (empty parts
    dropped) rather than wrapped as one entry: with the JSON-array hash a wrapped
    ``"openid profile"`` would no longer hash like ``["openid", "profile"]``, which the
    newline-joined 0.19 hash got for free. Missing PKCE fields stay ``None``. A missing
    subject, client_id or redirect_uri raises ``StoreContractError``.
    """
    scope = request.scope
    scopes: tuple[str, ...]
    if scope is None:
        scopes = ()
    elif isinstance(scope, str):
        scopes = _split(scope)
    else:
        scopes = tuple(_text("scope", s) for s in scope)
    return ConsentBinding(
        subject=_required("subject", subject),
        client_id=_required("client_id", request.client_id),
        redirect_uri=_required("redirect_uri", request.redirect_uri),
        scope=scopes,
        code_challenge=_optional(request.code_challenge),
        code_challenge_method=_optional(request.code_challenge_method),
        state=_optional(request.state),
        nonce=_optional(request.nonce),
    )


def binding_from_params(params: Mapping[str, object], subject: str) -> ConsentBinding:
    """The binding of raw string-keyed authorization params and ``subject`` (the mint side).

    Reads only ``client_id``, ``redirect_uri``, ``scope``, ``code_challenge``,
    ``code_challenge_method``, ``state`` and ``nonce``; other params are ignored. A missing
    scope gives ``()``; a scope string is split on the ASCII space with empty parts dropped; a
    list is taken as is.
    Missing PKCE fields give ``None``. Hashes identically to ``binding_from_request`` for the
    same request.
    """
    scope = params.get("scope")
    scopes: tuple[str, ...]
    if scope is None:
        scopes = ()
    elif isinstance(scope, str):
        scopes = _split(scope)
    elif isinstance(scope, list | tuple):
        scopes = tuple(_text("scope", s) for s in scope)
    else:
        raise StoreContractError("scope must be a space-delimited string or a list of strings")
    return ConsentBinding(
        subject=_required("subject", subject),
        client_id=_required("client_id", params.get("client_id")),
        redirect_uri=_required("redirect_uri", params.get("redirect_uri")),
        scope=scopes,
        code_challenge=_optional(params.get("code_challenge")),
        code_challenge_method=_optional(params.get("code_challenge_method")),
        state=_optional(params.get("state")),
        nonce=_optional(params.get("nonce")),
    )


def binding_hash(binding: ConsentBinding) -> str:
    """The 43-character digest of the canonical JSON array of ``binding``.

    ``[subject, client_id, redirect_uri, sorted(scope), challenge or "", method or "",
    state or "", nonce or ""]``, compact separators, non-ASCII kept as UTF-8, then
    ``digest()``. Scope order does not matter, duplicates do; ``None`` and ``""`` hash the
    same for the optional values.
    """
    canonical = json.dumps(
        [
            binding.subject,
            binding.client_id,
            binding.redirect_uri,
            sorted(binding.scope),
            binding.code_challenge or "",
            binding.code_challenge_method or "",
            binding.state or "",
            binding.nonce or "",
        ],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return digest(canonical)


@dataclass(frozen=True, slots=True)
class Granted:
    """``consume`` spent the grant: the consent stands for this request."""


@dataclass(frozen=True, slots=True)
class NotFound:
    """No grant under that token (or no token at all)."""


@dataclass(frozen=True, slots=True)
class BindingMismatch:
    """The grant was minted for a different request; it stays usable for its own request."""


@dataclass(frozen=True, slots=True)
class Consumed:
    """The grant was already spent (earlier, or by a concurrent consume that won)."""


@dataclass(frozen=True, slots=True)
class Expired:
    """The grant matches but its ``expires_at`` has passed."""


ConsumeOutcome: TypeAlias = Granted | NotFound | BindingMismatch | Consumed | Expired


class ConsentGrantStore(Protocol):
    """Single-use, request-bound consent grants keyed by the digest of their token.

    Every method takes ``now`` (Unix seconds; ``None`` means the store's clock). Timestamps
    keep microseconds. A grant is live while ``expires_at > now``.
    """

    async def mint(self, binding: ConsentBinding, ttl: int, *, now: float | None = None) -> str:
        """Store a grant for ``binding`` until ``now + ttl`` and return its new token.

        The token is 32 random bytes, base64url (43 characters); only its digest is stored.
        ``ttl`` must be a positive integer, else ``StoreContractError``; an over-long subject
        raises ``ValueTooLongError`` before any write; a token collision raises
        ``DuplicateKeyError``.
        """
        ...

    async def consume(
        self, token: str | None, binding: ConsentBinding, *, now: float | None = None
    ) -> ConsumeOutcome:
        """Spend the grant if it is live, unspent and minted for ``binding``.

        ``None`` or ``""`` gives ``NotFound`` without touching the database. Atomic: one
        ``UPDATE ... SET consumed_at = now WHERE token_key AND binding_hash AND consumed_at IS
        NULL AND expires_at > now``; exactly one concurrent caller gets ``Granted``. On 0 rows a
        follow-up read classifies, in order: ``NotFound``, ``BindingMismatch`` (wins over
        expired or consumed), ``Consumed``, ``Consumed`` (a concurrent consume won),
        ``Expired``. A failed consume never spends the grant; a spent grant is marked, not
        deleted.
        """
        ...


def _required(field: str, value: object) -> str:
    if value is None or value == "":
        raise StoreContractError(f"{field} is required for a consent binding")
    return str(value)


def _optional(value: object) -> str | None:
    return None if value is None else str(value)


def _split(scope: str) -> tuple[str, ...]:
    return tuple(part for part in scope.split(" ") if part)


def _text(field: str, value: object) -> str:
    if not isinstance(value, str):
        raise StoreContractError(f"{field} entries must be strings")
    return value
