"""Refresh-token issue and rotation: the reuse decision over the refresh-token store.

Spec: authward spec/stores.md §3.2.7 (core rotation algorithm), §3.2.8 (one-transaction rotate),
§7 items 3 and 4; RFC 6749 §6 and §10.4, RFC 6819 §5.2.2.3, RFC 9449 §5 (DPoP-bound tokens),
RFC 8707 §2.2 (resource narrowing).

Checks that fail before the claim (client binding, expiry, DPoP, scope, resource) never burn
the token. A presented token that was already rotated is either an honest retry inside the
grace window, answered with the same successor, or a reuse that revokes the whole family.
"""

from __future__ import annotations

import dataclasses
import math
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from authward.stores.clock import Clock, SystemClock
from authward.stores.digest import b64url, digest
from authward.stores.refresh import (
    Expired,
    FamilyRevoked,
    Found,
    FreshChild,
    Missing,
    RefreshData,
    RefreshEntry,
    RefreshTokenStore,
    Reuse,
    Rotated,
    Successor,
)
from authward.stores.successor_cipher import check_successor_keys

#: ``refresh_token_ttl`` default: 14 days.
DEFAULT_TTL: Final = 1_209_600
#: ``refresh_token_rotation_grace_seconds`` default; 0 means strict (any replay revokes).
DEFAULT_GRACE_SECONDS: Final = 0

RotationError = Literal["invalid_grant", "invalid_scope", "invalid_target"]
RotationReason = Literal[
    "unknown",
    "family_revoked",
    "reuse_detected",
    "expired",
    "client_required",
    "client_mismatch",
    "dpop_proof_required",
    "dpop_binding_mismatch",
    "dpop_proof_unexpected",
    "scope_not_granted",
    "resource_not_granted",
]


class RotationConfigError(ValueError):
    """The rotation settings cannot run safely (RT-35): refused at start-up."""


def check_rotation_settings(
    grace_seconds: int, successor_keys: Mapping[str, bytes] | None, active_kid: str | None = None
) -> None:
    """Refuse a grace window above zero without a usable successor key (spec §7 item 4).

    Without a key no retry payload can be kept, so every honest retry would silently revoke its
    family. Raises ``RotationConfigError``; keys given are checked (>= 32 bytes, known kid)
    even when the grace window is zero.
    """
    _check_grace(grace_seconds)
    if successor_keys:
        try:
            check_successor_keys(successor_keys, active_kid)
        except ValueError as exc:
            raise RotationConfigError(str(exc)) from exc
    elif grace_seconds > 0:
        raise RotationConfigError(_NO_KEY.format(grace=grace_seconds))


_NO_KEY: Final = (
    "refresh_token_rotation_grace_seconds is {grace} but no refresh successor key (at least "
    "32 bytes) is configured: set one, or set the grace window to 0"
)


def _check_grace(grace_seconds: object) -> None:
    if isinstance(grace_seconds, bool) or not isinstance(grace_seconds, int) or grace_seconds < 0:
        raise RotationConfigError(
            f"refresh_token_rotation_grace_seconds must be an integer >= 0, got {grace_seconds!r}"
        )


@dataclass(frozen=True, slots=True)
class Issued:
    """A new refresh token: the plaintext (give it to the client once) and its stored entry."""

    token: str
    entry: RefreshEntry


@dataclass(frozen=True, slots=True)
class IssueRefused:
    """The family passed in is revoked (e.g. by a code replay); no token was issued."""

    reason: Literal["family_revoked"] = "family_revoked"


@dataclass(frozen=True, slots=True)
class RotationGranted:
    """The presented token rotated into ``token``; mint a fresh access token from ``context``.

    ``retried`` is True when this answers an honest retry with the successor a previous
    request already received.
    """

    token: str
    family_id: str
    generation: int
    context: RefreshData
    expires_at: int
    retried: bool
    #: For a retry: the access token kept with the successor (None when none was kept).
    access_token: str | None = None


@dataclass(frozen=True, slots=True)
class RotationDenied:
    """The request fails with the OAuth ``error`` (always HTTP 400); ``reason`` is for logs."""

    error: RotationError
    reason: RotationReason


IssueOutcome = Issued | IssueRefused
RotationOutcome = RotationGranted | RotationDenied


def new_refresh_token() -> str:
    """A fresh refresh token: 32 CSPRNG bytes, base64url without padding (43 characters)."""
    return b64url(secrets.token_bytes(32))


class RefreshRotation:
    """Issues and rotates refresh tokens through a ``RefreshTokenStore``.

    Construction is the start-up check: a grace window above zero over a store that cannot
    seal successors raises ``RotationConfigError`` (RT-35).
    """

    def __init__(
        self,
        store: RefreshTokenStore,
        *,
        clock: Clock | None = None,
        grace_seconds: int = DEFAULT_GRACE_SECONDS,
        ttl: int = DEFAULT_TTL,
    ) -> None:
        if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0:
            raise RotationConfigError(f"refresh_token_ttl must be a positive integer, got {ttl!r}")
        _check_grace(grace_seconds)
        if grace_seconds > 0 and not store.seals_successors:
            raise RotationConfigError(_NO_KEY.format(grace=grace_seconds))
        self._store = store
        self._clock = clock if clock is not None else SystemClock()
        self._grace = grace_seconds
        self._ttl = ttl

    async def issue(
        self, data: RefreshData, *, family_id: str | None = None, now: float | None = None
    ) -> IssueOutcome:
        """Issue generation 0 of ``family_id`` (the code's family), or of a fresh family.

        ``IssueRefused`` is only possible when an explicit, already revoked family is passed.
        """
        at = self._now(now)
        token = new_refresh_token()
        entry = RefreshEntry(
            token_hash=digest(token),
            family_id=family_id if family_id else b64url(secrets.token_bytes(16)),
            generation=0,
            data=data,
            expires_at=math.floor(at) + self._ttl,
        )
        outcome = await self._store.insert(entry, now=at)
        if isinstance(outcome, FamilyRevoked):
            return IssueRefused()
        return Issued(token, entry)

    async def rotate(
        self,
        presented: str,
        *,
        client_id: str | None,
        scope: Sequence[str] | None = None,
        resource: Sequence[str] | None = None,
        dpop_jkt: str | None = None,
        now: float | None = None,
        access_token_for: Callable[[RefreshData], str] | None = None,
    ) -> RotationOutcome:
        """Rotate the presented refresh token (spec §3.2.7).

        ``client_id`` is the authenticated client (None if none); ``scope`` and ``resource``
        are the requested narrowing (None keeps the grant); ``dpop_jkt`` is the proof key's
        thumbprint, passed by the token endpoint for public clients only. With a grace window,
        ``access_token_for(context)`` mints the access token answered with the successor before
        the rotation is written, so it is kept (sealed) with the successor and an honest retry
        gets the same one back (``RotationGranted.access_token``).
        """
        at = self._now(now)
        parent_hash = digest(presented)
        if scope is None and resource is None and self._grace == 0 and client_id is not None:
            # The common case (same grant, no successor to seal) in one store step; whatever
            # it refuses, the reasoned path below decides and names.
            token = new_refresh_token()
            plain = await self._store.rotate_same_grant(
                parent_hash,
                FreshChild(token_hash=digest(token), expires_at=math.floor(at) + self._ttl),
                client_id=client_id,
                dpop_jkt=dpop_jkt,
                now=at,
            )
            if isinstance(plain, Rotated):
                return RotationGranted(
                    token=token,
                    family_id=plain.child.family_id,
                    generation=plain.child.generation,
                    context=plain.child.data,
                    expires_at=plain.child.expires_at,
                    retried=False,
                )
        found = await self._store.get(parent_hash, now=at)
        if not isinstance(found, Found):
            return _denied("unknown")
        parent = found.entry
        if parent.consumed:
            return await self._retry_or_revoke(parent, client_id, scope, resource, dpop_jkt, at)

        denied = _check_binding(parent.data, client_id, dpop_jkt, check_dpop=False)
        if denied is None and parent.expires_at <= at:
            denied = _denied("expired")
        if denied is None:
            denied = _check_binding(parent.data, client_id, dpop_jkt, check_client=False)
        if denied is not None:
            return denied
        new_scope = _dedup(scope) if scope is not None else parent.data.scope
        if not set(new_scope) <= set(parent.data.scope):
            return RotationDenied("invalid_scope", "scope_not_granted")
        new_resource = _dedup(resource) if resource is not None else parent.data.resource
        if not set(new_resource) <= set(parent.data.resource):
            return RotationDenied("invalid_target", "resource_not_granted")

        token = new_refresh_token()
        context = dataclasses.replace(parent.data, scope=new_scope, resource=new_resource)
        child = RefreshEntry(
            token_hash=digest(token),
            family_id=parent.family_id,
            generation=parent.generation + 1,
            data=context,
            expires_at=math.floor(at) + self._ttl,
        )
        successor = (
            Successor(
                token=token,
                generation=child.generation,
                context=context,
                retry_until=math.floor(at) + self._grace,
                access_token=access_token_for(context) if access_token_for else None,
            )
            if self._grace > 0
            else None
        )
        outcome = await self._store.rotate(parent_hash, child, successor, now=at)
        if isinstance(outcome, Rotated):
            return RotationGranted(
                token=token,
                family_id=child.family_id,
                generation=child.generation,
                context=outcome.child.data,
                expires_at=child.expires_at,
                retried=False,
            )
        if isinstance(outcome, Reuse):
            # A concurrent request rotated it first: the same retry rules as a later replay.
            return await self._retry_or_revoke(
                outcome.entry, client_id, scope, resource, dpop_jkt, at
            )
        if isinstance(outcome, Expired):
            return _denied("expired")
        if isinstance(outcome, FamilyRevoked):
            return _denied("family_revoked")
        assert isinstance(outcome, Missing)
        return _denied("unknown")

    async def _retry_or_revoke(
        self,
        parent: RefreshEntry,
        client_id: str | None,
        scope: Sequence[str] | None,
        resource: Sequence[str] | None,
        dpop_jkt: str | None,
        at: float,
    ) -> RotationOutcome:
        """Answer an honest retry with the same successor, else revoke the family."""
        granted = await self._honest_retry(parent, client_id, scope, resource, dpop_jkt, at)
        if granted is not None:
            return granted
        await self._store.revoke_family(parent.family_id, now=at)
        return _denied("reuse_detected")

    async def _honest_retry(
        self,
        parent: RefreshEntry,
        client_id: str | None,
        scope: Sequence[str] | None,
        resource: Sequence[str] | None,
        dpop_jkt: str | None,
        at: float,
    ) -> RotationGranted | None:
        successor = parent.successor
        if (
            self._grace <= 0
            or parent.consumed_at is None
            or at - parent.consumed_at > self._grace
            or successor is None
            or (successor.retry_until is not None and at > successor.retry_until)
            or successor.generation != parent.generation + 1
            or _check_binding(parent.data, client_id, dpop_jkt) is not None
        ):
            return None
        wanted_scope = _dedup(scope) if scope is not None else parent.data.scope
        wanted_resource = _dedup(resource) if resource is not None else parent.data.resource
        if set(wanted_scope) != set(successor.context.scope) or set(wanted_resource) != set(
            successor.context.resource
        ):
            return None
        # The successor must still be live and unconsumed: if it rotated, the chain moved on.
        live = await self._store.get(digest(successor.token), now=at)
        if (
            not isinstance(live, Found)
            or live.entry.consumed
            or live.entry.family_id != parent.family_id
            or live.entry.generation != successor.generation
            or live.entry.expires_at <= at
        ):
            return None
        return RotationGranted(
            token=successor.token,
            family_id=parent.family_id,
            generation=successor.generation,
            context=successor.context,
            expires_at=live.entry.expires_at,
            retried=True,
            access_token=successor.access_token,
        )

    def _now(self, now: float | None) -> float:
        return self._clock.now() if now is None else now


def _denied(reason: RotationReason) -> RotationDenied:
    return RotationDenied("invalid_grant", reason)


def _dedup(values: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def _check_binding(
    data: RefreshData,
    client_id: str | None,
    dpop_jkt: str | None,
    *,
    check_client: bool = True,
    check_dpop: bool = True,
) -> RotationDenied | None:
    """The client and DPoP binding rules of §3.2.7 step 2 (also used for retries)."""
    if check_client and data.client_id is not None:
        if client_id is None:
            return _denied("client_required")
        if client_id != data.client_id:
            return _denied("client_mismatch")
    if check_dpop:
        if data.dpop_jkt is not None:
            if dpop_jkt is None:
                return _denied("dpop_proof_required")
            if dpop_jkt != data.dpop_jkt:
                return _denied("dpop_binding_mismatch")
        elif dpop_jkt is not None:
            return _denied("dpop_proof_unexpected")
    return None
