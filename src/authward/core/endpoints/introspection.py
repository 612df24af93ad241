"""The token introspection endpoint: is this token active, and what does it carry.

Spec: RFC 7662 §2.1 (request: POST, form, ``token``, ``token_type_hint``), §2.2 (response),
§2.3 (errors), §4 (who may introspect what: the server decides); RFC 6749 §3.2 (no repeated
parameters), §5.2; RFC 9449 §6.1 (``cnf.jkt``); spec/stores.md §3.1 ("Protected resources"),
§3.2.7 ("Introspection").

Only confidential clients may introspect (they must authenticate with a credential; a public
client is refused with ``invalid_client``). Who may see which token (RFC 7662 §4):

* an access token: the client it was issued to (``client_id``), or a client whose
  ``client_id`` appears in the token's ``aud``, i.e. a resource server registered as a
  confidential client under its resource identifier;
* a refresh token: only the client it was issued to (refresh tokens never leave that client).

Anything else — an unknown, malformed, expired, revoked or consumed token, a token of another
issuer, or a token this caller may not see — answers ``{"active": false}`` with 200, so the
endpoint is no oracle. Every answer carries ``Cache-Control: no-store``.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Final, Literal, NotRequired, TypedDict

from authward.core.clients import Client
from authward.core.errors import InvalidClientError, InvalidRequestError, OAuthError
from authward.core.http import Request, Response, error_response, json_response
from authward.core.jose import SIGNING_ALGORITHMS, JoseError, validate_claims, verify_jwt
from authward.core.server import AuthorizationServer
from authward.core.tokens import Confirmation
from authward.stores.digest import digest
from authward.stores.refresh import Found, RefreshEntry

__all__ = [
    "AccessTokenIntrospection",
    "InactiveIntrospection",
    "IntrospectionResponse",
    "IssuedAccessToken",
    "RefreshTokenIntrospection",
    "TokenTypeHint",
    "handle",
    "read_access_token",
    "read_refresh_token",
    "token_type_hint",
]

TokenTypeHint = Literal["access_token", "refresh_token"]
_HINTS: Final[frozenset[str]] = frozenset({"access_token", "refresh_token"})
_ACCEPTED_TYPS: Final = frozenset({"at+jwt", "application/at+jwt"})
_REQUIRED: Final = ("iss", "sub", "aud", "exp", "iat", "jti", "client_id")
#: Longer than any token this server issues; anything longer is not ours (and is not hashed).
_MAX_TOKEN_CHARS: Final = 8192


class InactiveIntrospection(TypedDict):
    """The answer for every token that is not active (RFC 7662 §2.2)."""

    active: Literal[False]


class AccessTokenIntrospection(TypedDict):
    """An active access token (RFC 7662 §2.2; ``cnf`` per RFC 9449 §6.1)."""

    active: Literal[True]
    client_id: str
    sub: str
    exp: int
    iat: int
    iss: str
    aud: str | list[str]
    jti: str
    token_type: Literal["Bearer", "DPoP"]
    scope: NotRequired[str]
    cnf: NotRequired[Confirmation]


class RefreshTokenIntrospection(TypedDict):
    """An active refresh token."""

    active: Literal[True]
    client_id: str
    sub: str
    exp: int
    token_type: Literal["refresh_token"]
    scope: NotRequired[str]


IntrospectionResponse = (
    InactiveIntrospection | AccessTokenIntrospection | RefreshTokenIntrospection
)


@dataclass(frozen=True, slots=True)
class IssuedAccessToken:
    """An access token this server signed, unexpired, read without audience or sender checks
    (the authorization server's own view, for introspection and revocation)."""

    issuer: str
    subject: str
    client_id: str
    audience: tuple[str, ...]
    scope: str | None
    jti: str
    exp: int
    iat: int
    dpop_jkt: str | None


async def handle(server: AuthorizationServer, request: Request) -> Response:
    """Answer one introspection request (see the module docstring for the rules)."""
    try:
        body = await _introspect(server, request)
    except OAuthError as error:
        return error_response(error)
    return json_response(body)


async def _introspect(server: AuthorizationServer, request: Request) -> IntrospectionResponse:
    if request.method != "POST":
        raise InvalidRequestError("introspection requires POST", detail=request.method)
    _refuse_repeats(request)
    caller = (await server.client_authenticator().authenticate(request)).client
    if caller.is_public:
        raise InvalidClientError(
            "public clients may not introspect tokens", detail=f"{caller.client_id} is public"
        )
    token = request.form.get_one("token")
    if token is None:
        raise InvalidRequestError("the token parameter is required")
    hint = token_type_hint(request)
    inactive: InactiveIntrospection = {"active": False}
    if len(token) > _MAX_TOKEN_CHARS:
        return inactive
    order: tuple[TokenTypeHint, ...]
    if "." in token:
        order = ("access_token",)  # a refresh token never holds a dot: no lookup for one
    elif hint == "access_token":
        order = ("access_token", "refresh_token")
    else:
        order = ("refresh_token", "access_token")
    for kind in order:
        if kind == "access_token":
            access = await _active_access_token(server, token, caller)
            if access is not None:
                return access
        else:
            refresh = await _active_refresh_token(server, token, caller)
            if refresh is not None:
                return refresh
    return inactive


def token_type_hint(request: Request) -> TokenTypeHint | None:
    """The ``token_type_hint`` when it names a type this server knows; an unknown hint is
    ignored (RFC 7009 §2.1, RFC 7662 §2.1: it is only a hint)."""
    hint = request.form.get_one("token_type_hint")
    if hint == "access_token":
        return "access_token"
    if hint == "refresh_token":
        return "refresh_token"
    return None


def _refuse_repeats(request: Request) -> None:
    repeated = request.form.repeated()
    if repeated:
        raise InvalidRequestError(
            f"{repeated[0]} must not be repeated", detail=f"repeated {', '.join(repeated)}"
        )


def read_access_token(server: AuthorizationServer, token: str) -> IssuedAccessToken | None:
    """``token`` as an access token this server signed and that has not expired, else None.

    Checks the signature against the server's published keys, ``typ`` (``at+jwt``), ``iss``,
    ``exp``/``iat``/``nbf`` at the server clock and the claim types. Neither ``aud`` nor the
    sender constraint is checked, and revocation is left to the caller.
    """
    if token.count(".") != 2 or len(token) > _MAX_TOKEN_CHARS:
        return None
    now = server.clock.now()
    keys = server.keys.verification_keys(now=now, max_token_lifetime=server.max_token_lifetime)
    try:
        verified = verify_jwt(token, keys, algorithms=SIGNING_ALGORITHMS)
        typ = verified.header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in _ACCEPTED_TYPS:
            return None
        claims = verified.claims
        validate_claims(claims, now=now, issuer=server.issuer, required=_REQUIRED)
    except JoseError:
        return None
    subject, client_id, jti = claims["sub"], claims["client_id"], claims["jti"]
    scope, aud, exp, iat = claims.get("scope"), claims["aud"], claims["exp"], claims["iat"]
    if not (isinstance(subject, str) and isinstance(client_id, str) and isinstance(jti, str)):
        return None
    if scope is not None and not isinstance(scope, str):
        return None
    if not isinstance(exp, int | float) or not isinstance(iat, int | float):
        return None
    audience = _audience(aud)
    if audience is None:
        return None
    cnf = claims.get("cnf")
    dpop_jkt: str | None = None
    if cnf is not None:
        jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
        if not isinstance(jkt, str) or not jkt:
            return None
        dpop_jkt = jkt
    return IssuedAccessToken(
        issuer=server.issuer,
        subject=subject,
        client_id=client_id,
        audience=audience,
        scope=scope or None,
        jti=jti,
        exp=int(exp),
        iat=int(iat),
        dpop_jkt=dpop_jkt,
    )


async def read_refresh_token(server: AuthorizationServer, token: str) -> RefreshEntry | None:
    """The refresh-token row for ``token`` when its family is not revoked, else None (no
    expiry or consumption check: the caller decides)."""
    if len(token) > _MAX_TOKEN_CHARS:
        return None
    found = await server.stores.refresh_tokens.get(digest(token))
    return found.entry if isinstance(found, Found) else None


def _audience(aud: object) -> tuple[str, ...] | None:
    if isinstance(aud, str):
        return (aud,)
    if isinstance(aud, list) and aud and all(isinstance(a, str) for a in aud):
        return tuple(str(a) for a in aud)
    return None


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _may_see_access_token(caller: Client, token: IssuedAccessToken) -> bool:
    return _same(caller.client_id, token.client_id) or caller.client_id in token.audience


async def _active_access_token(
    server: AuthorizationServer, token: str, caller: Client
) -> AccessTokenIntrospection | None:
    issued = read_access_token(server, token)
    if issued is None or not _may_see_access_token(caller, issued):
        return None
    if await server.stores.authorization_codes.access_token_revoked(issued.jti):
        return None
    body: AccessTokenIntrospection = {
        "active": True,
        "client_id": issued.client_id,
        "sub": issued.subject,
        "exp": issued.exp,
        "iat": issued.iat,
        "iss": issued.issuer,
        "aud": issued.audience[0] if len(issued.audience) == 1 else list(issued.audience),
        "jti": issued.jti,
        "token_type": "Bearer" if issued.dpop_jkt is None else "DPoP",
    }
    if issued.scope is not None:
        body["scope"] = issued.scope
    if issued.dpop_jkt is not None:
        body["cnf"] = {"jkt": issued.dpop_jkt}
    return body


async def _active_refresh_token(
    server: AuthorizationServer, token: str, caller: Client
) -> RefreshTokenIntrospection | None:
    entry = await read_refresh_token(server, token)
    if entry is None or entry.consumed or entry.expires_at <= server.clock.now():
        return None
    owner = entry.data.client_id
    if owner is None or not _same(owner, caller.client_id):
        return None
    body: RefreshTokenIntrospection = {
        "active": True,
        "client_id": owner,
        "sub": entry.data.subject,
        "exp": entry.expires_at,
        "token_type": "refresh_token",
    }
    if entry.data.scope:
        body["scope"] = " ".join(entry.data.scope)
    return body
