"""The authorization-code store contract: its record, its outcomes and its Protocol.

Spec: authward spec/stores.md §2.3 (table), §3.0 (hashed secrets, one-statement claims), §3.1
(entry shape, bridge, validation, operations), §6.2 (CODE tests); RFC 6749 §4.1, RFC 7636,
RFC 7800.

Codes are stored only as ``code_hash`` (``authward.stores.digest.digest`` of the plaintext).
A code is claimed by ``take`` before any validation and finalised by ``mark_consumed`` only after
the whole token response was built; a replay after finalisation is ``Consumed`` and lets the
caller revoke the grant family. No SQLAlchemy here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

#: The only PKCE method authward accepts (RFC 7636 §4.2; OAuth 2.1 drops ``plain``).
S256: Final = "S256"


@dataclass(frozen=True, slots=True, kw_only=True)
class CodeEntry:
    """One issued authorization code, as the core hands it to the store and gets it back.

    ``code_challenge_method`` is ``"S256"`` or None, and is None whenever ``code_challenge``
    is None. ``dpop_jkt`` is the RFC 7800 ``cnf.jkt`` of a DPoP-bound code. ``claims`` carries
    the opaque request claims (``nonce``, ``auth_time``, ``acr``, ``amr``, ``sid``, ...).
    ``expires_at`` is integer Unix seconds.
    """

    code_hash: str
    client_id: str
    subject: str
    redirect_uri: str
    expires_at: int
    scope: tuple[str, ...] = ()
    resource: tuple[str, ...] = ()
    code_challenge: str | None = None
    code_challenge_method: str | None = None
    dpop_jkt: str | None = None
    nonce: str | None = None
    claims: Mapping[str, Any] = field(default_factory=dict)
    family_id: str | None = None


@dataclass(frozen=True, slots=True)
class ConsumedMeta:
    """What a replay of a finalised code tells the caller: the family to revoke, and whose."""

    family_id: str | None
    subject: str


@dataclass(frozen=True, slots=True)
class Taken:
    """``take`` claimed the code: the entry as issued (expiry is NOT checked by the store)."""

    entry: CodeEntry


@dataclass(frozen=True, slots=True)
class Bound:
    """``take(..., unbound_only=True)`` found an unclaimed code bound to a DPoP key
    (``dpop_jkt``); it was NOT claimed and stays redeemable with a proof of that key."""


@dataclass(frozen=True, slots=True)
class Consumed:
    """``take`` found a code that was already redeemed successfully: a replay (reuse)."""

    meta: ConsumedMeta


@dataclass(frozen=True, slots=True)
class Found:
    """``get`` found an unconsumed code."""

    entry: CodeEntry


@dataclass(frozen=True, slots=True)
class Missing:
    """No such code, or (for ``take``) a code claimed but never finalised, or (for ``get``) a
    code that is already claimed."""


@dataclass(frozen=True, slots=True)
class AccessTokenRevoked:
    """``revoke_access_token`` marked the recorded, unexpired access token revoked."""


@dataclass(frozen=True, slots=True)
class NoAccessTokenRecord:
    """``revoke_access_token`` found no code row recording this unexpired ``jti``."""


AccessTokenRevokeOutcome = AccessTokenRevoked | NoAccessTokenRecord
TakeOutcome = Taken | Bound | Consumed | Missing
GetOutcome = Found | Missing


class AuthorizationCodeStore(Protocol):
    """Persistence of authorization codes (spec §3.1). Every ``now`` is Unix seconds; None
    means the store's clock."""

    async def put(self, entry: CodeEntry, *, now: float | None = None) -> None:
        """Insert one code row, stamped ``inserted_at = now`` truncated to seconds.

        Raises ``StoreContractError`` for a missing required field (``code_hash``,
        ``client_id``, ``subject``, ``redirect_uri``, ``expires_at``) or a
        ``code_challenge_method`` other than ``"S256"``, ``ValueTooLongError`` for an over-long
        value (before any write), and ``DuplicateKeyError`` when ``code_hash`` exists already;
        the existing row is then left untouched (never an upsert).
        """
        ...

    async def get(self, code_hash: str, *, now: float | None = None) -> GetOutcome:
        """Read an unclaimed code without consuming it; no expiry check. Claimed: Missing."""
        ...

    async def take(
        self, code_hash: str, *, now: float | None = None, unbound_only: bool = False
    ) -> TakeOutcome:
        """Claim the code in one conditional statement (``consumed_at`` NULL -> now).

        Exactly one concurrent caller gets ``Taken``. Losers and later callers get
        ``Consumed`` if the code was finalised by ``mark_consumed``, else ``Missing``. Expiry
        is not checked: an expired code is still spent by its first presentation. With
        ``unbound_only`` (a token request without a DPoP proof) a code bound to a DPoP key is
        left unclaimed and ``Bound`` is returned.
        """
        ...

    async def mark_consumed(
        self,
        code_hash: str,
        *,
        now: float | None = None,
        access_token_jti: str | None = None,
        access_token_expires_at: int | None = None,
    ) -> None:
        """Finalise a redeemed code (``consumed_success = true``); idempotent, unguarded.

        ``access_token_jti`` and ``access_token_expires_at`` (together) record the access
        token minted from the code in the same statement, as ``record_access_token`` does.
        """
        ...

    async def record_access_token(
        self, family_id: str, jti: str, expires_at: int, *, now: float | None = None
    ) -> None:
        """Remember the ``jti`` and ``exp`` of the access token minted from the code of
        ``family_id`` so a later code replay can revoke it."""
        ...

    async def revoke_family_access_tokens(
        self, family_id: str, *, now: float | None = None
    ) -> None:
        """Mark the recorded access token of ``family_id`` revoked at ``now``; one statement."""
        ...

    async def revoke_access_token(
        self, jti: str, *, now: float | None = None
    ) -> AccessTokenRevokeOutcome:
        """Mark the recorded access token ``jti`` revoked at ``now``, in one statement
        (``UPDATE ... WHERE access_token_jti = ? AND access_token_expires_at > now``).

        ``AccessTokenRevoked`` when a code row records this ``jti`` and the token has not
        expired (idempotent: an already revoked token is revoked again with the new time);
        ``NoAccessTokenRecord`` otherwise: an expired token, or one minted by
        ``client_credentials`` or a refresh rotation, which have no row (nine tables, no tenth).
        """
        ...

    async def access_token_revoked(self, jti: str, *, now: float | None = None) -> bool:
        """Whether the access token ``jti`` was revoked and has not yet expired
        (``access_token_expires_at > now``). A yes/no predicate, read on every resource
        request."""
        ...
