"""The refresh-token store contract: its records, its outcomes and its Protocol.

Spec: authward spec/stores.md §2.4 (table), §3.0 (hashed secrets), §3.2 (entry shape, bridge,
insert/get/consume/remember_successor/revoke_family, the successor payload, the atomic rotate of
§3.2.8), §6.3 (RT tests), §7 items 3 and 4; RFC 6749 §6 and §10.4, RFC 6819 §5.2.2.3.

Refresh tokens are stored only as ``token_hash``. Tokens rotate inside a family; a detected
reuse revokes the whole family, and the revocation is sticky (later inserts into it are refused).
No SQLAlchemy here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True, kw_only=True)
class RefreshData:
    """The grant a refresh token carries: who, what, for which client and key.

    ``acr`` and ``auth_time`` (Unix seconds) are the original authentication's and are never
    re-stamped on rotation. ``client_id`` None means unbound; ``dpop_jkt`` is the RFC 7800
    ``cnf.jkt`` of a DPoP-bound token. ``scope`` is deduplicated (first occurrence kept) on
    insert.
    """

    subject: str
    scope: tuple[str, ...] = ()
    resource: tuple[str, ...] = ()
    acr: str | None = None
    auth_time: int | None = None
    client_id: str | None = None
    dpop_jkt: str | None = None
    claims: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Successor:
    """The plaintext retry payload kept (encrypted) on a rotated parent.

    ``token`` is the successor's plaintext refresh token, ``generation`` its generation,
    ``context`` its grant, and ``retry_until`` (Unix seconds) the end of the grace window in
    which an honest retry of the parent may be answered with this same successor. A legacy
    plaintext payload written by another system has no ``retry_until`` (None).
    """

    token: str
    generation: int
    context: RefreshData
    retry_until: int | None
    #: The access token answered with the successor (a JWT), so an honest retry is answered
    #: with the same one instead of a new one; None when none was kept.
    access_token: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RefreshEntry:
    """One refresh token row as the contract sees it.

    ``expires_at`` and ``consumed_at`` are integer Unix seconds. ``successor`` is the decrypted
    retry payload, None when absent or when it fails to decrypt or authenticate. Entries the
    store returns always have ``family_revoked`` False (a revoked family reads as missing);
    ``insert`` refuses an entry with ``consumed``, ``consumed_at``, ``successor`` or
    ``family_revoked`` set.
    """

    token_hash: str
    family_id: str
    generation: int
    data: RefreshData
    expires_at: int
    consumed: bool = False
    consumed_at: int | None = None
    successor: Successor | None = None
    family_revoked: bool = False


# --- outcomes ---


@dataclass(frozen=True, slots=True)
class Inserted:
    """The row was written."""


@dataclass(frozen=True, slots=True)
class FamilyRevoked:
    """The family is revoked; nothing was written."""


@dataclass(frozen=True, slots=True)
class Found:
    """``get`` found a token in a live (unrevoked) family, consumed or not."""

    entry: RefreshEntry


@dataclass(frozen=True, slots=True)
class Missing:
    """No such token, or its family is revoked."""


@dataclass(frozen=True, slots=True)
class Claimed:
    """``consume`` won: the record as it stood before the claim (``consumed`` False)."""

    entry: RefreshEntry


@dataclass(frozen=True, slots=True)
class Reuse:
    """The token was already consumed: the current record, with ``consumed_at`` and the
    decrypted ``successor`` (if any). The caller decides between an honest retry and a reuse
    that revokes the family."""

    entry: RefreshEntry


@dataclass(frozen=True, slots=True)
class Expired:
    """``rotate`` found the parent expired (``expires_at <= now``); nothing was written."""


@dataclass(frozen=True, slots=True)
class Rotated:
    """``rotate`` consumed the parent, sealed the successor onto it and inserted the child."""

    child: RefreshEntry


@dataclass(frozen=True, slots=True)
class NotRotated:
    """``rotate_same_grant`` found the parent not plainly rotatable; nothing was written."""


@dataclass(frozen=True, slots=True)
class FreshChild:
    """What ``rotate_same_grant`` needs of the child beyond the parent's grant: its token's
    digest and its expiry (integer Unix seconds)."""

    token_hash: str
    expires_at: int


@dataclass(frozen=True, slots=True)
class RememberOk:
    """The successor envelope was written onto the consumed parent."""


@dataclass(frozen=True, slots=True)
class RememberFailed:
    """Nothing was written: no successor key, or the parent is unknown, unconsumed or revoked."""


InsertOutcome = Inserted | FamilyRevoked
GetOutcome = Found | Missing
ConsumeOutcome = Claimed | Reuse | Missing
RotateOutcome = Rotated | Reuse | FamilyRevoked | Expired | Missing
SameGrantOutcome = Rotated | NotRotated
RememberOutcome = RememberOk | RememberFailed


class RefreshTokenStore(Protocol):
    """Persistence of refresh-token families (spec §3.2). Every ``now`` is Unix seconds; None
    means the store's clock."""

    @property
    def seals_successors(self) -> bool:
        """Whether a successor key is configured, so retry payloads can be kept (§3.2.6)."""
        ...

    async def insert(self, entry: RefreshEntry, *, now: float | None = None) -> InsertOutcome:
        """Insert one fresh row unless its family is revoked (sticky revocation).

        One transaction holding the per-family lock: if any row of the family is revoked the
        result is ``FamilyRevoked`` and nothing is written. Raises ``StoreContractError`` for a
        missing ``token_hash``/``family_id``/``subject``/``expires_at`` or an entry smuggled in
        consumed or revoked, ``ValueTooLongError`` before any write, and ``DuplicateKeyError``
        for an existing ``token_hash`` or ``(family_id, generation)``.
        """
        ...

    async def get(self, token_hash: str, *, now: float | None = None) -> GetOutcome:
        """Read a token without consuming it. A revoked family reads ``Missing``. No expiry
        check."""
        ...

    async def consume(self, token_hash: str, *, now: float | None = None) -> ConsumeOutcome:
        """Claim the token in one conditional statement (``consumed`` false -> true,
        ``consumed_at = now``).

        Exactly one concurrent caller gets ``Claimed``. Otherwise: a revoked family or an
        unknown token is ``Missing`` (revocation wins over consumption), a consumed token is
        ``Reuse``. An unknown token is never ``Reuse``.
        """
        ...

    async def remember_successor(
        self, parent_hash: str, successor: Successor, *, now: float | None = None
    ) -> RememberOutcome:
        """Seal ``successor`` onto a consumed, unrevoked parent with one guarded UPDATE.

        The parent's (immutable) family and generation are read first in the same transaction,
        because the envelope's associated data binds them. ``RememberFailed`` without a successor
        key (nothing written: fail closed) or when the parent is unknown, unconsumed or revoked;
        a successor whose generation is not the parent's + 1 raises ``StoreContractError``.
        """
        ...

    async def revoke_family(self, family_id: str, *, now: float | None = None) -> None:
        """Mark every row of the family revoked, under the per-family lock. Rows are kept so
        the revocation stays sticky for later inserts. Idempotent; an unknown family is fine."""
        ...

    async def rotate(
        self,
        parent_hash: str,
        child: RefreshEntry,
        successor: Successor | None,
        *,
        now: float | None = None,
    ) -> RotateOutcome:
        """Rotate ``parent_hash`` into ``child`` as ONE transaction (spec §3.2.8).

        Under the per-family lock and the parent's row lock: an unknown parent is ``Missing``;
        a revoked family is ``FamilyRevoked``; a consumed parent is ``Reuse(parent)`` (with its
        decrypted successor); an expired parent (``expires_at <= now``) is ``Expired``.
        Otherwise the parent is consumed at ``now``, ``successor`` is sealed onto it, and the
        child is inserted with ``parent_hash`` filled in: ``Rotated(child)``. So no reader can
        see a consumed parent without its successor.

        ``child`` must be a fresh entry of the parent's family with generation + 1, and
        ``successor`` (if given) must describe exactly that child; otherwise
        ``StoreContractError`` and nothing is written. A successor without a successor key
        raises too (the startup check forbids that configuration).
        """
        ...

    async def rotate_same_grant(
        self,
        parent_hash: str,
        child: FreshChild,
        *,
        client_id: str,
        dpop_jkt: str | None,
        now: float | None = None,
    ) -> SameGrantOutcome:
        """The common rotation in one step, with no read before it: ``Rotated(child)`` when the
        parent is known, unconsumed, unexpired (``expires_at > now``), in an unrevoked family,
        issued to ``client_id`` and bound to ``dpop_jkt`` (None: unbound). The child carries
        the parent's grant unchanged (subject, scope, resource, acr, auth_time, binding,
        claims) in the parent's family at generation + 1, with no successor; it is written as
        ``rotate`` writes it (the same locks, one statement on PostgreSQL).

        Anything else is ``NotRotated`` and nothing is written: the caller then takes the
        reasoned path (``get``, its checks, ``rotate``), which names the reason or rotates
        what this refuses (a narrowed scope, a successor to seal, an unbound client).
        ``DuplicateKeyError`` as ``rotate``.
        """
        ...
