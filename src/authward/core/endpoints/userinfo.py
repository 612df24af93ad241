"""The UserInfo endpoint: the claims about the end-user an access token with ``openid`` allows.

Spec: OIDC Core 1.0 §5.3.1 (request: GET or POST, the access token as in RFC 6750), §5.3.2
(response: ``sub`` always), §5.3.3 (errors per RFC 6750 §3); RFC 6750 §2.1 (Authorization
header only), §3 and §3.1 (challenges); RFC 9449 §7.1 (``DPoP`` scheme), §9 (nonces);
spec/stores.md §3.1 ("Protected resources": ``access_token_revoked`` on every request).

The token is checked by ``core.resource`` (the same checks any authward resource server runs):
Authorization header with ``Bearer`` or ``DPoP`` only (a token in the query or form body is
``invalid_request``); the DPoP proof with ``ath``, nonce and replay; signature, ``iss`` and
expiry against the server's own keys (any ``aud``: the server issued it); the sender constraint
(a DPoP-bound token sent as ``Bearer`` is ``invalid_token``); the revoked ``jti``; and the
``openid`` scope (``insufficient_scope``, 403). Errors are 401 with ``WWW-Authenticate: Bearer``
and ``DPoP algs=...`` challenges; a request without credentials gets them bare. The claims come
from ``server.policy.claims`` for the token's subject and scopes, and ``sub`` is always the
token's subject (a host claim named ``sub`` cannot override it).
"""

from __future__ import annotations

from typing import Final

from authward.core.http import Headers, Request, Response, json_response
from authward.core.resource import Authorized, for_server
from authward.core.server import AuthorizationServer

__all__ = ["REQUIRED_SCOPE", "handle"]

#: OIDC Core §5.3: UserInfo needs an access token granted with ``openid``.
REQUIRED_SCOPE: Final = "openid"
_METHODS: Final = ("GET", "POST")


async def handle(server: AuthorizationServer, request: Request) -> Response:
    """Answer one UserInfo request (see the module docstring); never raises an OAuthError."""
    if request.method not in _METHODS:
        return Response(
            status=405, headers=Headers((("Allow", ", ".join(_METHODS)),)), json=None
        )
    outcome = await for_server(server).authorize(request, required_scopes=(REQUIRED_SCOPE,))
    if not isinstance(outcome, Authorized):
        return outcome.response
    token = outcome.token
    released = await server.policy.claims.claims(token.subject, token.scopes)
    body: dict[str, object] = {"sub": token.subject}
    body.update((name, value) for name, value in released.items() if name != "sub")
    return json_response(body)
