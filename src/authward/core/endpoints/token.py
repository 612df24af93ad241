"""The token endpoint: checks the request, authenticates the client and runs one grant.

Spec: RFC 6749 §3.2 (POST, form-encoded, no repeated parameters), §5.1/§5.2 (responses,
``Cache-Control: no-store``, ``Pragma: no-cache``), §2.3 and §3.2.1 (client authentication);
RFC 9449 §5, §8 (DPoP proofs and nonces at the token endpoint), RFC 7591 / RFC 9449 §5.2
(``dpop_bound_access_tokens``); RFC 8628 §3.4-§3.5 (the device_code grant); authward
spec/stores.md §3.1, §3.2.7, §3.3, §3.5, §3.6.

Order of checks (the first failure answers; nothing is written before the DPoP step):

1. ``POST`` only, else ``invalid_request`` (the ASGI routing answers 405 before this);
2. ``Content-Type: application/x-www-form-urlencoded``, else ``invalid_request``;
3. no parameter repeats (``resource`` may, RFC 8707 §2), else ``invalid_request``;
4. ``grant_type`` present, else ``invalid_request``; one of the four grants and enabled in
   ``settings.features``, else ``unsupported_grant_type``;
5. the DPoP proof, if sent (and ``features.dpop`` is on): ``invalid_dpop_proof``, or
   ``use_dpop_nonce`` with a fresh ``DPoP-Nonce`` header when nonces are required;
6. client authentication (``invalid_client``, 401 with a Basic challenge after Basic);
7. the grant type must be registered for the client (``unauthorized_client``); a client with
   ``dpop_bound_access_tokens`` must send a proof (``invalid_request``, or
   ``invalid_dpop_proof`` when the code it presents is DPoP-bound);
8. the grant itself. A DPoP-bound code presented without a proof is ``invalid_dpop_proof``
   and is not spent (the claim statement skips it).

Errors are JSON with ``Cache-Control: no-store``. Events go to ``server.policy.events``:
``token.issued`` and ``token.refused`` (ids, grant type, error code; never a secret).
Unexpected exceptions are not caught here (the ASGI layer turns them into ``server_error``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Final

from authward.core.dpop import TokenEndpoint, VerifiedProof
from authward.core.errors import (
    InvalidRequestError,
    OAuthError,
    UnauthorizedClientError,
    UnsupportedGrantTypeError,
)
from authward.core.grants import (
    authorization_code,
    client_credentials,
    device_code,
    refresh_token,
)
from authward.core.grants.issuance import GrantResult, TokenRequest, TokenResponse
from authward.core.http import Request, Response, error_response, json_response
from authward.core.policy import Event
from authward.core.scopes import format_scopes

if TYPE_CHECKING:
    from authward.core.server import AuthorizationServer

__all__ = ["FORM_CONTENT_TYPE", "handle", "token_response"]

FORM_CONTENT_TYPE: Final = "application/x-www-form-urlencoded"

Grant = Callable[["AuthorizationServer", TokenRequest], Awaitable[GrantResult]]

_GRANTS: Final[Mapping[str, Grant]] = MappingProxyType(
    {
        authorization_code.GRANT_TYPE: authorization_code.redeem,
        refresh_token.GRANT_TYPE: refresh_token.refresh,
        client_credentials.GRANT_TYPE: client_credentials.grant,
        device_code.GRANT_TYPE: device_code.redeem,
    }
)
#: Parameters that may legitimately repeat (RFC 8707 §2: several resource indicators).
_MAY_REPEAT: Final = frozenset({"resource"})


async def handle(server: AuthorizationServer, request: Request) -> Response:
    """Answer one token request (see the module docstring for the order of checks)."""
    now = server.clock.now()
    grant_type: str | None = None
    client_id: str | None = None
    try:
        grant_type = _check_request(server, request)
        proof = await _verify_proof(server, request)
        authenticated = await server.client_authenticator().authenticate(request)
        client = authenticated.client
        client_id = client.client_id
        if grant_type not in client.grant_types:
            raise UnauthorizedClientError(
                f"the client may not use the {grant_type} grant",
                detail="grant type not registered for the client",
            )
        if client.dpop_bound_access_tokens and proof is None:
            if grant_type == authorization_code.GRANT_TYPE:
                await authorization_code.refuse_bound_code(server, request.form, now)
            raise InvalidRequestError(
                "this client must send a DPoP proof (dpop_bound_access_tokens)",
                detail="DPoP proof missing",
            )
        result = await _GRANTS[grant_type](
            server, TokenRequest(client=client, form=request.form, proof=proof, now=now)
        )
    except OAuthError as error:
        await server.policy.events.emit(
            Event(
                "token.refused",
                now,
                {
                    "client_id": client_id or "",
                    "grant_type": grant_type or "",
                    "error": error.error,
                },
            )
        )
        return error_response(error)
    await server.policy.events.emit(
        Event(
            "token.issued",
            now,
            {
                "client_id": client.client_id,
                "grant_type": grant_type,
                "subject": result.subject,
                "jti": result.access_token.jti,
                "token_type": result.token_type,
                "family_id": result.family_id or "",
                "refresh_token_issued": result.refresh_token is not None,
                "id_token_issued": result.id_token is not None,
            },
        )
    )
    return json_response(token_response(result, now), headers=(("Pragma", "no-cache"),))


def token_response(result: GrantResult, now: float) -> TokenResponse:
    """The RFC 6749 §5.1 body for ``result``; ``expires_in`` counts from ``now``."""
    body: TokenResponse = {
        "access_token": result.access_token.token,
        "token_type": result.token_type,
        "expires_in": max(0, result.access_token.exp - int(now)),
        "scope": format_scopes(result.scopes),
    }
    if result.refresh_token is not None:
        body["refresh_token"] = result.refresh_token
    if result.id_token is not None:
        body["id_token"] = result.id_token
    return body


def _check_request(server: AuthorizationServer, request: Request) -> str:
    """Steps 1-4: method, content type, repeated parameters, grant type. Returns it."""
    if request.method != "POST":
        raise InvalidRequestError(
            "the token endpoint accepts POST only", detail=f"method {request.method}"
        )
    content_type = request.headers.get_one("content-type")
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != FORM_CONTENT_TYPE:
        raise InvalidRequestError(
            f"the request body must be {FORM_CONTENT_TYPE}",
            detail=f"content type {content_type!r}",
        )
    repeated = [name for name in request.form.repeated() if name not in _MAY_REPEAT]
    if repeated:
        raise InvalidRequestError(
            f"{repeated[0]} must not be repeated", detail=f"repeated {repeated!r}"
        )
    grant_type = request.form.get_one("grant_type")
    if grant_type is None:
        raise InvalidRequestError("grant_type is required")
    features = server.settings.features
    enabled = {
        authorization_code.GRANT_TYPE: True,
        refresh_token.GRANT_TYPE: features.refresh_token_grant,
        client_credentials.GRANT_TYPE: features.client_credentials_grant,
        device_code.GRANT_TYPE: features.device_authorization_grant,
    }
    if not enabled.get(grant_type, False):
        raise UnsupportedGrantTypeError(
            "the grant type is not supported", detail=f"grant_type {grant_type[:64]!r}"
        )
    return grant_type


async def _verify_proof(server: AuthorizationServer, request: Request) -> VerifiedProof | None:
    """Step 5: the request's DPoP proof in the token-endpoint context (None when absent).

    With ``features.dpop`` off a ``DPoP`` header is ignored and tokens are Bearer.
    """
    if not server.settings.features.dpop:
        return None
    return await server.dpop_verifier().verify(request, site=TokenEndpoint())
