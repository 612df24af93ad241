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
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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
from authward.core.refresh_rotation import RefreshRotation, RotationDenied

if TYPE_CHECKING:
    from authward.core.server import AuthorizationServer

__all__ = ["GRANT_TYPE", "refresh", "rotation_for"]

GRANT_TYPE = "refresh_token"


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
    outcome = await rotation_for(server).rotate(
        presented,
        client_id=client.client_id,
        scope=wanted_scope,
        resource=wanted_resource,
        dpop_jkt=proof.jkt if proof is not None and client.is_public else None,
        now=request.now,
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

    context = outcome.context
    access = issue_access_token(
        server,
        subject=context.subject,
        client_id=client.client_id,
        scopes=context.scope,
        resources=context.resource,
        dpop_jkt=proof.jkt if proof is not None else None,
        now=request.now,
        auth_time=context.auth_time,
        acr=context.acr,
    )
    return GrantResult(
        access_token=access,
        scopes=context.scope,
        subject=context.subject,
        refresh_token=outcome.token,
        family_id=outcome.family_id,
    )
