"""The authorization-code grant: issuing a code at /authorize and redeeming it at /token.

Spec: authward spec/stores.md §3.1 (core rules and the flow table), §3.2.7 (first refresh token
of the code's family); RFC 6749 §4.1.2, §4.1.3, §10.5 (single use, revoke on reuse); RFC 7636
§4.6 (PKCE S256); RFC 9449 §10 (``dpop_jkt``); RFC 8707 §2.2 (resource narrowing); OIDC Core
§3.1.3.3, §3.1.3.6 (ID token, ``nonce``, ``at_hash``); OIDC Back-Channel Logout 1.0 §2.5 and
spec/stores.md §3.4 (a logout session is recorded when an ID token with ``sid`` is minted).

Redemption order (spec §3.1): ``take`` claims the code before anything is validated, so a
presented code is spent even when the redemption then fails. A request without a DPoP proof
does not claim a DPoP-bound code (``invalid_dpop_proof``, the client may retry with a proof);
this is part of the claim statement rather than a read before client authentication, so an
unbound code costs one statement. After the claim, expiry, client, ``redirect_uri``, PKCE and
the DPoP binding are checked (each failure ``invalid_grant``, the code stays claimed but not
finalised, so a retry also gets ``invalid_grant``, never "reuse"). The access token, the ID
token (``openid``) and the first refresh token (``offline_access``) are minted, and
``mark_consumed`` runs LAST, recording the access token's ``jti`` in the same statement. A
replay of a finalised code revokes the code's refresh family and the access token it minted,
then answers ``invalid_grant``.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING

from authward.core import pkce
from authward.core.dpop import check_binding
from authward.core.errors import (
    InvalidDPoPProofError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidTargetError,
)
from authward.core.grants.issuance import (
    GrantResult,
    TokenRequest,
    issue_id_token,
    issue_user_access_token,
    refresh_data,
)
from authward.core.grants.refresh_token import rotation_for
from authward.core.http import MultiDict
from authward.core.policy import Event
from authward.core.refresh_rotation import IssueRefused
from authward.core.resource_indicators import parse_resources
from authward.core.secrets import new_secret
from authward.stores.codes import S256, Bound, CodeEntry, Consumed, Found, Taken
from authward.stores.digest import b64url, digest

if TYPE_CHECKING:
    from authward.core.server import AuthorizationServer

__all__ = ["GRANT_TYPE", "issue_code", "redeem", "refuse_bound_code"]

GRANT_TYPE = "authorization_code"


async def issue_code(
    server: AuthorizationServer,
    *,
    client_id: str,
    subject: str,
    redirect_uri: str,
    scope: Sequence[str],
    code_challenge: str,
    resource: Sequence[str] = (),
    dpop_jkt: str | None = None,
    nonce: str | None = None,
    auth_time: int | None = None,
    acr: str | None = None,
    amr: Sequence[str] = (),
    sid: str | None = None,
    now: float | None = None,
) -> str:
    """Issue an authorization code and return its plaintext (give it to the client once).

    Arguments are the outcome of an authorization request the caller already validated:
    ``redirect_uri`` exactly as the token request must repeat it, the GRANTED ``scope``, the
    ``resource`` indicators, the S256 ``code_challenge`` (PKCE is required), the request's
    ``dpop_jkt`` (binds the code to that DPoP key) and ``nonce``, and the signed-in user's
    ``auth_time``/``acr``/``amr``/``sid`` (carried into the ID token).

    The code is 32 random bytes (base64url); only its digest is stored. Each code gets a fresh
    ``family_id`` (32 random bytes, base64url) shared later by its refresh tokens. It expires
    after ``settings.authorization_code_ttl`` seconds. A store failure propagates (the caller
    answers ``server_error``).
    """
    at = server.clock.now() if now is None else now
    code = new_secret()
    claims: dict[str, object] = {}
    if auth_time is not None:
        claims["auth_time"] = int(auth_time)
    if acr is not None:
        claims["acr"] = acr
    if amr:
        claims["amr"] = list(amr)
    if sid is not None:
        claims["sid"] = sid
    entry = CodeEntry(
        code_hash=digest(code),
        client_id=client_id,
        subject=subject,
        redirect_uri=redirect_uri,
        expires_at=int(at) + server.settings.authorization_code_ttl,
        scope=tuple(dict.fromkeys(scope)),
        resource=tuple(dict.fromkeys(resource)),
        code_challenge=code_challenge,
        code_challenge_method=S256,
        dpop_jkt=dpop_jkt,
        nonce=nonce,
        claims=claims,
        family_id=b64url(secrets.token_bytes(32)),
    )
    await server.stores.authorization_codes.put(entry, now=at)
    return code


async def refuse_bound_code(server: AuthorizationServer, form: MultiDict, now: float) -> None:
    """For a request without a DPoP proof that is refused anyway: name a DPoP-bound code's
    failure ``invalid_dpop_proof`` (spec §3.1 pre-check) without spending the code.

    ``redeem`` folds this check into its claim, so only a refusal decided before the grant
    runs (a client that must always send proofs sent none) needs the read.
    """
    code = form.get_one("code")
    if code is None:
        return
    found = await server.stores.authorization_codes.get(digest(code), now=now)
    if isinstance(found, Found) and found.entry.dpop_jkt is not None:
        raise InvalidDPoPProofError(
            "A DPoP proof is required", detail="the code is DPoP-bound, request has no proof"
        )


async def redeem(server: AuthorizationServer, request: TokenRequest) -> GrantResult:
    """Redeem the ``code`` of ``request`` (see the module docstring for the order).

    Raises ``InvalidRequestError`` (no ``code``; the first refresh token cannot be issued
    because the code's family was revoked meanwhile), ``InvalidGrantError`` (unknown, spent,
    reused, expired or otherwise mismatched code), ``InvalidTargetError`` (a ``resource`` the
    code was not issued for) and ``InvalidDPoPProofError``.
    """
    form = request.form
    code = form.get_one("code")
    if code is None:
        raise InvalidRequestError("code is required")
    redirect_uri = form.get_one("redirect_uri")
    verifier = form.get_one("code_verifier")
    wanted_resources = parse_resources(form.get_all("resource"))
    codes = server.stores.authorization_codes
    code_hash = digest(code)
    now = request.now

    outcome = await codes.take(code_hash, now=now, unbound_only=request.proof is None)
    if isinstance(outcome, Bound):
        raise InvalidDPoPProofError(
            "A DPoP proof is required", detail="the code is DPoP-bound, request has no proof"
        )
    if isinstance(outcome, Consumed):
        family_id = outcome.meta.family_id
        if family_id:
            await server.stores.refresh_tokens.revoke_family(family_id, now=now)
            await codes.revoke_family_access_tokens(family_id, now=now)
        await server.policy.events.emit(
            Event(
                "code.reused",
                now,
                {"client_id": request.client.client_id, "family_id": family_id or ""},
            )
        )
        raise InvalidGrantError("The authorization code is invalid", detail="code reused")
    if not isinstance(outcome, Taken):
        raise InvalidGrantError("The authorization code is invalid", detail="unknown code")
    entry = outcome.entry

    if entry.expires_at <= now:
        raise InvalidGrantError("The authorization code has expired", detail="expired code")
    if entry.client_id != request.client.client_id:
        raise InvalidGrantError(
            "The authorization code was issued to another client", detail="client mismatch"
        )
    if redirect_uri is None or redirect_uri != entry.redirect_uri:
        raise InvalidGrantError(
            "redirect_uri does not match the authorization request",
            detail="redirect_uri mismatch",
        )
    _check_pkce(entry, verifier)
    check_binding(entry.dpop_jkt, request.proof)
    resources = entry.resource
    if wanted_resources:
        narrowed = wanted_resources
        if not set(narrowed) <= set(entry.resource):
            raise InvalidTargetError(
                "resource was not part of the authorization request",
                detail="resource not granted",
            )
        resources = narrowed

    return await _issue_tokens(server, request, entry, resources, code_hash)


def _check_pkce(entry: CodeEntry, verifier: str | None) -> None:
    """PKCE S256: verifier required iff a challenge is stored; missing and wrong fail alike."""
    if entry.code_challenge is None:
        if verifier is not None:
            raise InvalidGrantError("code_verifier was not expected", detail="no challenge")
        return
    try:
        pkce.verify(verifier, entry.code_challenge)
    except (InvalidRequestError, InvalidGrantError) as error:
        raise InvalidGrantError(
            "code_verifier does not match the code_challenge", detail=error.description
        ) from error


async def _issue_tokens(
    server: AuthorizationServer,
    request: TokenRequest,
    entry: CodeEntry,
    resources: tuple[str, ...],
    code_hash: str,
) -> GrantResult:
    now = request.now
    client = request.client
    claims = entry.claims
    access = issue_user_access_token(
        server, request, subject=entry.subject, scopes=entry.scope, resources=resources,
        claims=claims,
    )
    id_token = await issue_id_token(
        server, client, subject=entry.subject, scopes=entry.scope, claims=claims,
        access_token=access.token, nonce=entry.nonce, now=now,
    )
    refresh_token: str | None = None
    data = refresh_data(
        server, request, subject=entry.subject, scopes=entry.scope, resources=resources,
        claims=claims,
    )
    if data is not None:
        issued = await rotation_for(server).issue(data, family_id=entry.family_id, now=now)
        if isinstance(issued, IssueRefused):
            raise InvalidRequestError(
                "unable to issue token", detail="the code's refresh family is revoked"
            )
        refresh_token = issued.token

    await server.stores.authorization_codes.mark_consumed(
        code_hash, now=now, access_token_jti=access.jti, access_token_expires_at=access.exp
    )
    return GrantResult(
        access_token=access,
        scopes=entry.scope,
        subject=entry.subject,
        refresh_token=refresh_token,
        id_token=id_token,
        family_id=entry.family_id,
    )


