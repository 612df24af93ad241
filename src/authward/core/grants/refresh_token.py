"""The refresh-token grant: rotation with reuse detection and the retry grace window.

Spec: authward spec/stores.md §3.2.7 (rotation, token endpoint mapping, DPoP and refresh
binding); RFC 6749 §6, §10.4; RFC 9449 §5 (DPoP-bound refresh tokens of public clients);
RFC 8707 §2.2 (resource narrowing).

Outcome mapping: ``invalid_scope`` and ``invalid_target`` pass through; every other refusal
(unknown or revoked token, reuse, expiry, client or DPoP mismatch) is ``invalid_grant``.
DPoP: only a PUBLIC client's refresh token is bound to its proof key, so only for public
clients the proof's thumbprint is passed to rotation. A confidential client's refresh token is
bound to its ``client_id`` instead; it may use a fresh proof key on every refresh and its new
access token is bound to that new key. No ID token is returned on refresh.

Honest retries (a grace window above 0): each one answered claims one of
``refresh_token_rotation_max_retries`` slots per rotation in the replay table and emits
``refresh_token.retried``; a retry beyond them is reuse (the family is revoked).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from authward.core import scopes as scope_values
from authward.core.errors import (
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    InvalidTargetError,
)
from authward.core.grants.issuance import (
    GrantResult,
    TokenRequest,
    issue_access_token,
    requested_resources,
)
from authward.core.policy import Event
from authward.core.refresh_rotation import RefreshRotation, RotationDenied, RotationGranted
from authward.core.tokens import MintedAccessToken, kept_access_token
from authward.stores.refresh import RefreshData
from authward.stores.replay import Recorded

if TYPE_CHECKING:
    from authward.core.server import AuthorizationServer

__all__ = ["GRANT_TYPE", "refresh", "rotation_for"]

GRANT_TYPE = "refresh_token"


#: Replay namespace of the honest-retry counters (one key per answered retry).
RETRY_NAMESPACE: Final = "refresh_retry"


async def _count_retry(
    server: AuthorizationServer, request: TokenRequest, outcome: RotationGranted
) -> None:
    """An honest retry inside the grace window: claim one of the
    ``refresh_token_rotation_max_retries`` slots of this rotation (the replay table, so every
    node counts together) and emit ``refresh_token.retried``. With none left, the retry is
    reuse: the family is revoked and the answer is ``invalid_grant``, so a thief replaying
    inside each window gets at most that many extra access tokens per rotation."""
    settings = server.settings
    client_id = request.client.client_id
    ttl = max(1, settings.refresh_token_rotation_grace_seconds)
    prefix = f"{outcome.family_id}:{outcome.generation}:"
    for slot in range(1, settings.refresh_token_rotation_max_retries + 1):
        claimed = await server.stores.replay.check_and_record(
            RETRY_NAMESPACE, prefix + str(slot), ttl, now=request.now
        )
        if isinstance(claimed, Recorded):
            await server.policy.events.emit(
                Event(
                    "refresh_token.retried",
                    request.now,
                    {"client_id": client_id, "family_id": outcome.family_id, "retry": slot},
                )
            )
            return
    await server.stores.refresh_tokens.revoke_family(outcome.family_id, now=request.now)
    await server.policy.events.emit(
        Event(
            "refresh_token.reused",
            request.now,
            {"client_id": client_id, "reason": "too_many_retries"},
        )
    )
    raise InvalidGrantError("The refresh token is invalid", detail="too many retries")


def _answered_access_token(
    outcome: RotationGranted, minted: list[MintedAccessToken], jkt: str | None, now: float
) -> MintedAccessToken | None:
    """The access token to answer with, when one already exists: the one minted for this
    rotation, or for a retry the one kept with the successor while it is still valid and
    bound to the same DPoP key (a confidential client may retry with a new key: it then gets
    a new token bound to that key)."""
    if not outcome.retried:
        return minted[-1] if minted else None
    kept = kept_access_token(outcome.access_token) if outcome.access_token else None
    if kept is None or kept.exp <= now:
        return None
    cnf = kept.claims.get("cnf")
    kept_jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
    return kept if kept_jkt == jkt else None


def rotation_for(server: AuthorizationServer) -> RefreshRotation:
    """Refresh rotation configured from the server: its store, clock, grace window and TTL."""
    settings = server.settings
    return RefreshRotation(
        server.stores.refresh_tokens,
        clock=server.clock,
        grace_seconds=settings.refresh_token_rotation_grace_seconds,
        ttl=settings.refresh_token_ttl,
    )


async def refresh(server: AuthorizationServer, request: TokenRequest) -> GrantResult:
    """Rotate the presented ``refresh_token`` and mint a fresh access token.

    Raises ``InvalidRequestError`` (no ``refresh_token``), ``InvalidScopeError`` (bad syntax or
    a scope beyond the grant), ``InvalidTargetError`` (a resource beyond the grant) and
    ``InvalidGrantError`` (everything else; see the module docstring).
    """
    form = request.form
    presented = form.get_one("refresh_token")
    if presented is None:
        raise InvalidRequestError("refresh_token is required")
    scope_param = form.get_one("scope")
    wanted_scope = scope_values.parse(scope_param) if scope_param is not None else None
    wanted_resource = requested_resources(form)
    client = request.client
    proof = request.proof
    jkt = proof.jkt if proof is not None else None

    def mint(context: RefreshData) -> MintedAccessToken:
        return issue_access_token(
            server,
            subject=context.subject,
            client_id=client.client_id,
            scopes=context.scope,
            resources=context.resource,
            dpop_jkt=jkt,
            now=request.now,
            auth_time=context.auth_time,
            acr=context.acr,
        )

    # With a grace window the access token is minted first and kept with the successor, so an
    # honest retry is answered with the same access token instead of a new one.
    minted: list[MintedAccessToken] = []

    def keep(context: RefreshData) -> str:
        minted.append(mint(context))
        return minted[-1].token

    outcome = await rotation_for(server).rotate(
        presented,
        client_id=client.client_id,
        scope=wanted_scope,
        resource=wanted_resource,
        dpop_jkt=jkt if client.is_public else None,
        now=request.now,
        access_token_for=keep if server.settings.refresh_token_rotation_grace_seconds else None,
    )
    if isinstance(outcome, RotationDenied):
        if outcome.reason in ("reuse_detected", "family_revoked"):
            await server.policy.events.emit(
                Event(
                    "refresh_token.reused",
                    request.now,
                    {"client_id": client.client_id, "reason": outcome.reason},
                )
            )
        if outcome.error == "invalid_scope":
            raise InvalidScopeError(
                "scope exceeds the scope originally granted", detail=outcome.reason
            )
        if outcome.error == "invalid_target":
            raise InvalidTargetError(
                "resource exceeds the resources originally granted", detail=outcome.reason
            )
        raise InvalidGrantError("The refresh token is invalid", detail=outcome.reason)
    if outcome.retried:
        await _count_retry(server, request, outcome)

    context = outcome.context
    access = _answered_access_token(outcome, minted, jkt, request.now) or mint(context)
    return GrantResult(
        access_token=access,
        scopes=context.scope,
        subject=context.subject,
        refresh_token=outcome.token,
        family_id=outcome.family_id,
    )
