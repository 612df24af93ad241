"""The device authorization endpoint: authenticate the client and start a device flow.

Spec: RFC 8628 §3.1 (POST, form, client authentication, ``scope``), §3.2 (the response:
``device_code``, ``user_code``, ``verification_uri``, ``verification_uri_complete``,
``expires_in``, ``interval``), §6.1 (user-code entropy); RFC 8707 §2 (``resource``); RFC 9449
§10 (``dpop_jkt``) and §5 (a proof binds the key); RFC 6749 §5.2 (errors, ``no-store``);
authward spec/stores.md §3.3 ("Device-authorization endpoint").

Order of checks (the first failure answers; nothing is written before the last step):

1. ``POST`` with ``application/x-www-form-urlencoded``, no repeated parameter except
   ``resource``, no over-long value (``invalid_request``);
2. client authentication (``invalid_client``, 401 with a Basic challenge after Basic);
3. the client must be registered for ``urn:ietf:params:oauth:grant-type:device_code``
   (``unauthorized_client``);
4. the DPoP proof, if sent (``invalid_dpop_proof``, ``use_dpop_nonce``); a ``dpop_jkt``
   parameter must be a thumbprint and equal the proof's key (``invalid_request``). A proof
   binds the device code to its key. A proof is required (``invalid_request``) only from a
   client registered with ``dpop_bound_access_tokens`` (RFC 9449 §5.2), or from any public
   client when ``device_authorization.require_dpop_for_public_clients`` is on: neither RFC 8628
   nor RFC 9449 asks for one here;
5. ``scope`` (``invalid_scope``: malformed, or nothing requested is grantable by the host's
   scope policy, asked with no subject yet) and ``resource`` (``invalid_target``);
6. the device code is stored (five user-code draws; all taken is ``server_error``).

The answer is 200 JSON with ``Cache-Control: no-store``. Events: ``device.authorization_issued``
and ``device.authorization_refused`` (client id, scope, error code; never a code).
"""

from __future__ import annotations

import re
from typing import Final, TypedDict
from urllib.parse import urlencode

from authward.core import scopes as scope_values
from authward.core.authorization_request import (
    MAX_SCOPE_CHARS,
    MAX_VALUE_CHARS,
)
from authward.core.clients import Client
from authward.core.device_codes import IssuedDeviceCode, issue_device_code
from authward.core.dpop import TokenEndpoint
from authward.core.errors import (
    InvalidRequestError,
    InvalidScopeError,
    OAuthError,
    ServerError,
    UnauthorizedClientError,
)
from authward.core.grants.device_code import GRANT_TYPE
from authward.core.http import Headers, Request, Response, error_response, json_response
from authward.core.policy import Event
from authward.core.resource_indicators import parse_resources
from authward.core.server import AuthorizationServer

__all__ = ["DeviceAuthorizationResponse", "handle", "verification_uri_complete"]

_FORM_TYPE: Final = "application/x-www-form-urlencoded"
_MAY_REPEAT: Final = frozenset({"resource"})
_JKT: Final = re.compile(r"[A-Za-z0-9_-]{43}")
#: At most this many resource indicators per request (each fits a 255-character column).
_SCOPE_TOKEN_CHARS: Final = 255


class DeviceAuthorizationResponse(TypedDict):
    """The 200 body (RFC 8628 §3.2)."""

    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str
    expires_in: int
    interval: int


def verification_uri_complete(server: AuthorizationServer, user_code: str) -> str:
    """The verification URI carrying ``user_code`` (RFC 8628 §3.3.1), for a QR code."""
    return server.url(server.paths.device_verification) + "?" + urlencode(
        {"user_code": user_code}
    )


async def handle(server: AuthorizationServer, request: Request) -> Response:
    """Answer one device authorization request (see the module docstring for the order)."""
    if request.method != "POST":
        return Response(
            status=405,
            headers=Headers((("Allow", "POST"), ("Cache-Control", "no-store"))),
            json=InvalidRequestError("the device authorization endpoint accepts POST only").body(),
        )
    now = server.clock.now()
    seen: list[str] = []  # the authenticated client id, once known (for the refusal event)
    try:
        client, issued, scope = await _authorize_device(server, request, now, seen)
    except OAuthError as error:
        await server.policy.events.emit(
            Event(
                "device.authorization_refused",
                now,
                {"client_id": seen[0] if seen else "", "error": error.error},
            )
        )
        return error_response(error)
    client_id = client.client_id
    await server.policy.events.emit(
        Event(
            "device.authorization_issued",
            now,
            {
                "client_id": client_id,
                "scope": scope_values.format_scopes(scope),
                "expires_at": issued.expires_at,
            },
        )
    )
    body: DeviceAuthorizationResponse = {
        "device_code": issued.device_code,
        "user_code": issued.user_code,
        "verification_uri": server.url(server.paths.device_verification),
        "verification_uri_complete": verification_uri_complete(server, issued.user_code),
        "expires_in": issued.expires_in,
        "interval": server.settings.device_authorization.poll_interval_seconds,
    }
    return json_response(body, headers=(("Pragma", "no-cache"),))


async def _authorize_device(
    server: AuthorizationServer, request: Request, now: float, seen: list[str]
) -> tuple[Client, IssuedDeviceCode, tuple[str, ...]]:
    settings = server.settings
    if not settings.features.device_authorization_grant:
        raise InvalidRequestError("the device authorization grant is disabled")
    _check_form(request)
    authenticated = await server.client_authenticator().authenticate(request)
    client = authenticated.client
    seen.append(client.client_id)
    if GRANT_TYPE not in client.grant_types:
        raise UnauthorizedClientError(
            "the client may not use the device authorization grant",
            detail="device_code grant type not registered for the client",
        )
    form = request.form
    dpop_jkt = form.get_one("dpop_jkt")
    if dpop_jkt is not None and not _JKT.fullmatch(dpop_jkt):
        raise InvalidRequestError("dpop_jkt must be a base64url SHA-256 JWK thumbprint")
    proof = None
    if settings.features.dpop:
        proof = await server.dpop_verifier().verify(request, site=TokenEndpoint())
    if proof is not None:
        if dpop_jkt is not None and dpop_jkt != proof.jkt:
            raise InvalidRequestError("dpop_jkt does not match the DPoP proof key")
        dpop_jkt = proof.jkt
    elif settings.features.dpop and (
        client.dpop_bound_access_tokens
        or (client.is_public and settings.device_authorization.require_dpop_for_public_clients)
    ):
        raise InvalidRequestError(
            "this client must send a DPoP proof to the device authorization endpoint",
            detail="device client without a DPoP proof",
        )

    scope = await _scope(server, client, form.get_one("scope"))
    resources = parse_resources(request.form.get_all("resource"))
    outcome = await issue_device_code(
        server.stores.device_codes,
        client_id=client.client_id,
        now=now,
        scope=scope,
        resource=resources,
        dpop_jkt=dpop_jkt,
        code_ttl=settings.device_authorization.code_ttl_seconds,
        user_code_length=settings.device_authorization.user_code_length,
    )
    if not isinstance(outcome, IssuedDeviceCode):
        raise ServerError(outcome.description, detail=outcome.reason)
    return client, outcome, scope


def _check_form(request: Request) -> None:
    content_type = request.headers.get_one("content-type")
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != _FORM_TYPE:
        raise InvalidRequestError(
            f"the request body must be {_FORM_TYPE}", detail=f"content type {content_type!r}"
        )
    repeated = [name for name in request.form.repeated() if name not in _MAY_REPEAT]
    if repeated:
        raise InvalidRequestError(f"{repeated[0][:64]} must not be repeated")
    for name, value in request.form:
        limit = MAX_SCOPE_CHARS if name == "scope" else MAX_VALUE_CHARS
        if len(name) > MAX_VALUE_CHARS or len(value) > limit:
            raise InvalidRequestError(f"{name[:64]} is too long")


async def _scope(
    server: AuthorizationServer, client: Client, raw: str | None
) -> tuple[str, ...]:
    """The requested scope narrowed by the host's policy (no subject yet); () when none."""
    requested = scope_values.parse(raw)
    if not requested:
        return ()
    if any(len(token) > _SCOPE_TOKEN_CHARS for token in requested):
        raise InvalidScopeError("a scope value is too long")
    offered = await server.policy.scopes.grantable_scopes(client, requested, None)
    granted = tuple(s for s in dict.fromkeys(offered) if s in requested)
    if not granted:
        raise InvalidScopeError(
            "none of the requested scopes can be granted", detail=f"requested {requested!r}"
        )
    return granted


