"""The client-credentials grant: an access token for a confidential client acting for itself.

Spec: RFC 6749 §4.4 (confidential clients only; no refresh token, §4.4.3), §3.3 (scope);
RFC 8707 §2 (resource); RFC 9449 §5 (DPoP-bound when a proof is sent).

Scope: the requested ``scope``, or the client's registered ``scope`` when none is requested,
narrowed by the host's ``ScopePolicy.grantable_scopes`` (``subject`` None); nothing grantable
is ``invalid_scope``. The token's ``sub`` is the ``client_id``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from authward.core import scopes as scope_values
from authward.core.errors import InvalidScopeError, UnauthorizedClientError
from authward.core.grants.issuance import (
    GrantResult,
    TokenRequest,
    issue_access_token,
    requested_resources,
)

if TYPE_CHECKING:
    from authward.core.server import AuthorizationServer

__all__ = ["GRANT_TYPE", "grant"]

GRANT_TYPE = "client_credentials"


async def grant(server: AuthorizationServer, request: TokenRequest) -> GrantResult:
    """Issue an access token to the authenticated confidential client of ``request``.

    Raises ``UnauthorizedClientError`` for a public client and ``InvalidScopeError`` for a
    malformed scope or when nothing requested can be granted.
    """
    client = request.client
    if client.is_public:
        raise UnauthorizedClientError(
            "client_credentials is for confidential clients only", detail="public client"
        )
    requested = scope_values.parse(request.form.get_one("scope")) or client.scope
    granted = await server.policy.scopes.grantable_scopes(client, requested, None)
    granted = tuple(s for s in dict.fromkeys(granted) if s in requested)
    if not granted:
        raise InvalidScopeError(
            "none of the requested scopes can be granted", detail=f"requested {requested!r}"
        )
    proof = request.proof
    access = issue_access_token(
        server,
        subject=client.client_id,
        client_id=client.client_id,
        scopes=granted,
        resources=requested_resources(request.form) or (),
        dpop_jkt=proof.jkt if proof is not None else None,
        now=request.now,
    )
    return GrantResult(access_token=access, scopes=granted, subject=client.client_id)
