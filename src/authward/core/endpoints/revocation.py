"""The token revocation endpoint: a client tells the server it no longer needs a token.

Spec: RFC 7009 §2.1 (request: POST, form, client authentication, ``token``,
``token_type_hint``), §2.2 (200 for revoked and for invalid tokens), §2.2.1 (errors,
``unsupported_token_type``); RFC 6749 §3.2 (no repeated parameters), §5.2; spec/stores.md §3.1
("Reuse", "Protected resources"), §3.2.5, §3.2.7 ("RFC 7009 revocation").

The client authenticates first (``server.client_authenticator()``; a public client identifies
with its ``client_id``, RFC 7009 §5). ``token`` is required; ``token_type_hint`` only chooses
which kind is looked up first, and an unknown hint is ignored (RFC 7009 §2.1).

Refresh tokens (looked up by digest): unknown, or in an already revoked family: 200 (no
existence oracle). Issued to another client: 200 and nothing is revoked. Otherwise the whole
family is revoked (``refresh_tokens.revoke_family``, sticky: rotation and its grace-window retry
then fail) together with the access token recorded for that family on its authorization code
(``authorization_codes.revoke_family_access_tokens``; a family that did not start at a code has
no such row and the call changes nothing).

Access tokens (self-contained JWTs, verified locally: signature, ``typ``, ``iss``, expiry):
the only per-token state of the nine-table design is the code row's ``access_token_jti``
(spec §3.1), so only an access token minted from an authorization code can be revoked one by
one (``authorization_codes.revoke_access_token``; resource servers then refuse it through
``access_token_revoked``). Access tokens minted by ``client_credentials`` or by a refresh
rotation have no row (no tenth table). So for an access token:

* invalid, expired, of another issuer, or issued to another client: 200, nothing happens
  (RFC 7009 §2.2: invalid tokens cause no error; no oracle for other clients' tokens);
* issued to the caller from a code: revoked, 200;
* issued to the caller without a row: ``unsupported_token_type`` (400), the RFC 7009 §2.2.1
  answer when the server cannot revoke the presented token: it stays valid until ``exp``
  (``access_token_ttl``, default 900 s); revoking its refresh token stops further ones.

Every answer carries ``Cache-Control: no-store``; success is 200 with an empty body.
"""

from __future__ import annotations

from authward.core.endpoints.introspection import (
    TokenTypeHint,
    read_access_token,
    read_refresh_token,
    token_type_hint,
)
from authward.core.errors import (
    InvalidRequestError,
    OAuthError,
    UnsupportedTokenTypeError,
)
from authward.core.http import Headers, Request, Response, error_response
from authward.core.policy import Event
from authward.core.server import AuthorizationServer
from authward.stores.codes import NoAccessTokenRecord

__all__ = ["handle"]


async def handle(server: AuthorizationServer, request: Request) -> Response:
    """Answer one revocation request (see the module docstring for what is revoked)."""
    try:
        await _revoke(server, request)
    except OAuthError as error:
        return error_response(error)
    return Response(status=200, headers=Headers((("Cache-Control", "no-store"),)))


async def _revoke(server: AuthorizationServer, request: Request) -> None:
    if request.method != "POST":
        raise InvalidRequestError("revocation requires POST", detail=request.method)
    repeated = request.form.repeated()
    if repeated:
        raise InvalidRequestError(
            f"{repeated[0]} must not be repeated", detail=f"repeated {', '.join(repeated)}"
        )
    caller = (await server.client_authenticator().authenticate(request)).client
    token = request.form.get_one("token")
    if token is None:
        raise InvalidRequestError("the token parameter is required")
    hint = token_type_hint(request)
    order: tuple[TokenTypeHint, ...] = (
        ("access_token", "refresh_token")
        if hint == "access_token"
        else ("refresh_token", "access_token")
    )
    for kind in order:
        if kind == "refresh_token":
            if await _revoke_refresh_token(server, token, caller.client_id):
                return
        elif await _revoke_access_token(server, token, caller.client_id):
            return


async def _revoke_refresh_token(server: AuthorizationServer, token: str, client_id: str) -> bool:
    """True when ``token`` is a live refresh token (revoked now if ``client_id`` owns it)."""
    entry = await read_refresh_token(server, token)
    if entry is None:
        return False
    owner = entry.data.client_id
    if owner is not None and owner != client_id:
        await _emit(server, "token.revocation_refused", client_id, entry.family_id)
        return True
    await server.stores.refresh_tokens.revoke_family(entry.family_id)
    await server.stores.authorization_codes.revoke_family_access_tokens(entry.family_id)
    await _emit(server, "token.revoked", client_id, entry.family_id)
    return True


async def _revoke_access_token(server: AuthorizationServer, token: str, client_id: str) -> bool:
    """True when ``token`` is a valid access token (revoked now if ``client_id`` owns it).

    Raises ``UnsupportedTokenTypeError`` for the caller's own token when no row records it.
    """
    issued = read_access_token(server, token)
    if issued is None:
        return False
    if issued.client_id != client_id:
        return True
    codes = server.stores.authorization_codes
    outcome = await codes.revoke_access_token(issued.jti)
    if isinstance(outcome, NoAccessTokenRecord):
        raise UnsupportedTokenTypeError(
            "this access token cannot be revoked; it expires at its exp",
            detail="no code row records this jti (client_credentials or refresh rotation)",
        )
    await server.policy.events.emit(
        Event(
            name="token.revoked",
            at=server.clock.now(),
            data={"client_id": client_id, "jti": issued.jti, "token_type": "access_token"},
        )
    )
    return True


async def _emit(server: AuthorizationServer, name: str, client_id: str, family_id: str) -> None:
    data = {"client_id": client_id, "family_id": family_id, "token_type": "refresh_token"}
    await server.policy.events.emit(Event(name=name, at=server.clock.now(), data=data))
