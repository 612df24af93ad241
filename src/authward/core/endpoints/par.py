"""The pushed authorization request endpoint: authenticate, validate and store a request.

Spec: RFC 9126 §2 (POST, form, client authentication, 201 ``{request_uri, expires_in}``),
§2.1 (no ``request_uri`` inside a pushed request), §2.3 (errors as JSON, never a redirect);
RFC 9449 §10.1 (a DPoP proof at PAR sets ``dpop_jkt``; a ``dpop_jkt`` parameter must match
it); authward spec/stores.md §3.7 (stored params, TTL ``par_ttl``).

The request is validated exactly as the authorization endpoint would validate it (client and
redirect URI, then everything else), but every error is a 400 JSON answer: the PAR client talks
to us directly. Nothing is written unless the whole request passed. The stored params are the
form minus the client credentials (``client_secret``, ``client_assertion``,
``client_assertion_type``) plus the authenticated ``client_id`` and the proof's ``dpop_jkt``.
"""

from __future__ import annotations

from typing import Final, TypedDict

from authward.core.authorization_request import params_to_json, resolve_target, validate
from authward.core.dpop import TokenEndpoint
from authward.core.errors import InvalidRequestError, OAuthError
from authward.core.http import (
    Headers,
    MultiDict,
    Request,
    Response,
    error_response,
    json_response,
)
from authward.core.server import AuthorizationServer
from authward.stores.par import Stored, new_request_uri

__all__ = ["PushedAuthorizationResponse", "handle"]

_FORM_TYPE: Final = "application/x-www-form-urlencoded"
#: Never stored: the client's credentials, and the authorization endpoint's interaction fields.
_NOT_STORED: Final = frozenset(
    {
        "client_secret",
        "client_assertion",
        "client_assertion_type",
        "consent_token",
        "decision",
        "login_started_at",
    }
)


class PushedAuthorizationResponse(TypedDict):
    """The 201 body (RFC 9126 §2.2)."""

    request_uri: str
    expires_in: int


async def handle(server: AuthorizationServer, request: Request) -> Response:
    """Answer one pushed authorization request: 201 with the ``request_uri``, or a JSON error.

    Client authentication errors are ``invalid_client`` (401 after a Basic attempt); DPoP
    errors are ``invalid_dpop_proof``/``use_dpop_nonce``; everything else is answered as the
    authorization endpoint's validation would name it (``invalid_request``,
    ``unsupported_response_type``, ``invalid_scope``, ``invalid_target``, ...), always 400 JSON.
    """
    if request.method != "POST":
        return Response(
            status=405,
            headers=Headers((("Allow", "POST"), ("Cache-Control", "no-store"))),
            json=InvalidRequestError("the PAR endpoint accepts POST only").body(),
        )
    try:
        return await _push(server, request)
    except OAuthError as error:
        return error_response(error)


async def _push(server: AuthorizationServer, request: Request) -> Response:
    if not server.settings.features.pushed_authorization_requests:
        raise InvalidRequestError("pushed authorization requests are disabled")
    content_type = (request.headers.get_one("content-type") or "").split(";")[0]
    if content_type.strip().lower() != _FORM_TYPE:
        raise InvalidRequestError(f"the PAR endpoint needs {_FORM_TYPE}")
    authenticated = await server.client_authenticator().authenticate(request)
    client_id = authenticated.client.client_id
    form = request.form
    if "request_uri" in form:
        raise InvalidRequestError("request_uri must not be pushed (RFC 9126 §2.1)")
    if len(form.get_all("client_id")) > 1:
        raise InvalidRequestError("client_id must not be repeated")
    front_id = form.get_one("client_id")
    if front_id is not None and front_id != client_id:
        raise InvalidRequestError("client_id differs from the authenticated client")
    kept = ((k, v) for k, v in form if k not in _NOT_STORED and k != "client_id")
    params = MultiDict((("client_id", client_id), *kept))
    target = await resolve_target(params, server.clients)
    authz = validate(params, target)

    dpop_jkt = authz.dpop_jkt
    if server.settings.features.dpop:
        proof = await server.dpop_verifier().verify(request, site=TokenEndpoint())
        if proof is not None:
            if dpop_jkt is not None and dpop_jkt != proof.jkt:
                raise InvalidRequestError("dpop_jkt does not match the DPoP proof key")
            dpop_jkt = proof.jkt

    stored = params_to_json(params, drop=("dpop_jkt",))
    if dpop_jkt is not None:
        stored["dpop_jkt"] = dpop_jkt
    request_uri = new_request_uri()
    ttl = server.settings.par_ttl
    outcome = await server.stores.pushed_authorization_requests.put(request_uri, stored, ttl)
    if not isinstance(outcome, Stored):
        raise InvalidRequestError("could not store pushed authorization request")
    body: PushedAuthorizationResponse = {"request_uri": request_uri, "expires_in": ttl}
    return json_response(body, status=201)
