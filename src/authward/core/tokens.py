"""JWT access tokens: minting them and verifying them locally at a resource server.

Spec: RFC 9068 §2 (claims, ``typ: at+jwt``), §4 (validation); RFC 8707 §2 (``aud`` from the
resource indicators); RFC 9449 §6.1 (``cnf.jkt``), §7.1-§7.2 (DPoP and Bearer presentation);
RFC 6750 §3.1 (``invalid_token``); RFC 8725 §3.1 (algorithm allow-list).

Sender constraint at the resource (the DPoP proof itself, including ``ath``, ``htm``/``htu`` and
replay, is checked by the DPoP module first; this module receives the proof key's thumbprint):

* a DPoP-bound token (``cnf.jkt``) must be presented with the ``DPoP`` scheme and a proof whose
  key thumbprint equals ``cnf.jkt`` (RFC 9449 §7.1); presented as ``Bearer`` it is refused
  (§7.2, the downgrade guard);
* an unbound token presented with the ``DPoP`` scheme is REFUSED. §7.1 defines the DPoP scheme
  as the way a *DPoP-bound* token is sent and gives no meaning to an unbound one under it; the
  server issued that token with ``token_type: Bearer`` (§5), so the scheme contradicts the token.
  Refusing keeps the two schemes mutually exclusive and costs a correct client nothing.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Collection, Sequence
from dataclasses import dataclass
from typing import Final, Literal, NotRequired, Protocol, TypedDict, cast

from authward.core.errors import Challenge, InvalidDPoPProofError, InvalidTokenError
from authward.core.jose import (
    SIGNING_ALGORITHMS,
    JoseError,
    JsonWebKey,
    JwsAlgorithm,
    sign_jwt,
    validate_claims,
    verify_jwt,
)
from authward.core.scopes import format_scopes
from authward.core.secrets import new_secret

__all__ = [
    "ACCESS_TOKEN_TYP",
    "AccessTokenClaims",
    "Confirmation",
    "MintedAccessToken",
    "RevocationCheck",
    "Scheme",
    "VerifiedAccessToken",
    "mint_access_token",
    "never_revoked",
    "verify_access_token",
]

ACCESS_TOKEN_TYP: Final = "at+jwt"  # noqa: S105 (a media type, not a secret)
_ACCEPTED_TYPS: Final = frozenset({"at+jwt", "application/at+jwt"})
_MAX_LEEWAY: Final = 60
_REQUIRED: Final = ("iss", "sub", "aud", "exp", "iat", "jti", "client_id")

Scheme = Literal["Bearer", "DPoP"]


class Confirmation(TypedDict):
    """The ``cnf`` claim of a DPoP-bound token (RFC 9449 §6.1)."""

    jkt: str


class AccessTokenClaims(TypedDict):
    """The claims of an RFC 9068 access token as authward mints them."""

    iss: str
    sub: str
    aud: str | list[str]
    exp: int
    iat: int
    jti: str
    client_id: str
    scope: NotRequired[str]
    cnf: NotRequired[Confirmation]
    auth_time: NotRequired[int]
    acr: NotRequired[str]


@dataclass(frozen=True, slots=True)
class MintedAccessToken:
    """A freshly signed access token, with the ``jti`` and ``exp`` the stores record."""

    token: str
    jti: str
    exp: int
    claims: AccessTokenClaims


def kept_access_token(token: str) -> MintedAccessToken | None:
    """An access token this server minted and kept sealed (the refresh successor envelope,
    whose AES-GCM tag already proved it is ours and unaltered), read back without verifying
    the signature again; None when its payload cannot be read."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return None
    if not isinstance(claims, dict):
        return None
    jti, exp = claims.get("jti"), claims.get("exp")
    if not isinstance(jti, str) or not isinstance(exp, int) or isinstance(exp, bool):
        return None
    return MintedAccessToken(token=token, jti=jti, exp=exp, claims=cast(AccessTokenClaims, claims))


@dataclass(frozen=True, slots=True)
class VerifiedAccessToken:
    """An access token that passed every check of :func:`verify_access_token`."""

    issuer: str
    subject: str
    client_id: str
    audience: tuple[str, ...]
    scopes: tuple[str, ...]
    jti: str
    exp: int
    iat: int
    dpop_jkt: str | None
    auth_time: int | None
    acr: str | None


class RevocationCheck(Protocol):
    """Async callable telling whether the access token with this ``jti`` was revoked."""

    def __call__(self, jti: str, /) -> Awaitable[bool]:
        """Return True when the token is revoked (and not yet expired)."""
        ...


async def never_revoked(jti: str, /) -> bool:
    """A RevocationCheck for resource servers without access to the revocation store."""
    return False


def mint_access_token(
    key: JsonWebKey,
    *,
    issuer: str,
    subject: str,
    client_id: str,
    audience: str,
    resources: Sequence[str] = (),
    scopes: Sequence[str] = (),
    lifetime: int,
    now: float,
    dpop_jkt: str | None = None,
    auth_time: int | None = None,
    acr: str | None = None,
) -> MintedAccessToken:
    """Sign an RFC 9068 access token with ``key`` (the active key for the access-token alg).

    ``aud`` is the resource indicators when given (RFC 8707; one becomes a string, several a
    list), else ``audience``. ``scope`` is omitted when ``scopes`` is empty. ``cnf.jkt`` binds
    the token to a DPoP key. ``iat`` is ``now`` truncated to seconds, ``exp`` is iat + lifetime.
    """
    if lifetime <= 0:
        raise ValueError("lifetime must be positive")
    if not issuer or not subject or not client_id or not audience:
        raise ValueError("issuer, subject, client_id and audience are required")
    resource_list = list(dict.fromkeys(resources))
    aud: str | list[str] = audience
    if len(resource_list) == 1:
        aud = resource_list[0]
    elif resource_list:
        aud = resource_list
    iat = int(now)
    jti = new_secret()
    claims: AccessTokenClaims = {
        "iss": issuer,
        "sub": subject,
        "aud": aud,
        "exp": iat + lifetime,
        "iat": iat,
        "jti": jti,
        "client_id": client_id,
    }
    if scopes:
        claims["scope"] = format_scopes(scopes)
    if dpop_jkt is not None:
        claims["cnf"] = {"jkt": dpop_jkt}
    if auth_time is not None:
        claims["auth_time"] = auth_time
    if acr is not None:
        claims["acr"] = acr
    token = sign_jwt(key, claims, header={"typ": ACCESS_TOKEN_TYP})
    return MintedAccessToken(token=token, jti=jti, exp=claims["exp"], claims=claims)


async def verify_access_token(
    token: str,
    *,
    keys: Sequence[JsonWebKey],
    issuer: str,
    audience: str,
    now: float,
    scheme: Scheme,
    is_revoked: RevocationCheck,
    dpop_jkt: str | None = None,
    algorithms: Collection[JwsAlgorithm] = SIGNING_ALGORITHMS,
    leeway: int = 0,
    challenges: tuple[Challenge, ...] = (),
) -> VerifiedAccessToken:
    """Verify an access token presented to a resource server (RFC 9068 §4).

    Checks, in order: signature against ``keys`` with ``algorithms`` (never ``none`` or HMAC);
    ``typ`` is ``at+jwt`` or ``application/at+jwt`` (case-insensitive); ``iss`` equals
    ``issuer``; ``aud`` contains ``audience``; ``exp`` after ``now``; ``iat``/``nbf`` not after
    ``now`` (each within ``leeway`` seconds, at most 60); the required claims are present and
    well-typed; the sender constraint for ``scheme`` (see the module docstring), where
    ``dpop_jkt`` is the thumbprint of the already-verified DPoP proof's key; finally
    ``is_revoked(jti)``. Any failure raises InvalidTokenError (401), carrying ``challenges``; a
    ``DPoP`` presentation without a proof raises InvalidDPoPProofError.
    """
    if not 0 <= leeway <= _MAX_LEEWAY:
        raise ValueError(f"leeway must be between 0 and {_MAX_LEEWAY} seconds")

    def refuse(description: str, detail: str) -> InvalidTokenError:
        return InvalidTokenError(description, detail=detail, challenges=challenges)

    try:
        verified = verify_jwt(token, keys, algorithms=algorithms)
    except JoseError as error:
        raise refuse("The access token is invalid", error.detail) from error
    typ = verified.header.get("typ")
    if not isinstance(typ, str) or typ.lower() not in _ACCEPTED_TYPS:
        raise refuse("The access token is invalid", f"typ {typ!r} is not at+jwt")
    claims = verified.claims
    try:
        validate_claims(
            claims, now=now, leeway=leeway, issuer=issuer, audience=audience, required=_REQUIRED
        )
    except JoseError as error:
        description = {
            "expired": "The access token expired",
            "not_yet_valid": "The access token is not yet valid",
        }.get(error.reason, "The access token is invalid")
        raise refuse(description, error.detail) from error

    subject, jti, client_id = claims["sub"], claims["jti"], claims["client_id"]
    scope = claims.get("scope", "")
    auth_time, acr = claims.get("auth_time"), claims.get("acr")
    if not (isinstance(subject, str) and isinstance(jti, str) and isinstance(client_id, str)):
        raise refuse("The access token is invalid", "sub, jti and client_id must be strings")
    if not isinstance(scope, str):
        raise refuse("The access token is invalid", "scope must be a string")
    if auth_time is not None and (isinstance(auth_time, bool) or not isinstance(auth_time, int)):
        raise refuse("The access token is invalid", "auth_time must be an integer")
    if acr is not None and not isinstance(acr, str):
        raise refuse("The access token is invalid", "acr must be a string")

    bound_jkt = _bound_thumbprint(claims.get("cnf"))
    if bound_jkt is False:
        raise refuse("The access token is invalid", "cnf must be an object with a string jkt")
    if scheme == "DPoP":
        if dpop_jkt is None:
            raise InvalidDPoPProofError(
                "A DPoP proof is required", detail="DPoP scheme without a verified proof",
                challenges=challenges,
            )
        if bound_jkt is None:
            raise refuse("The access token is not DPoP-bound", "unbound token under DPoP scheme")
        if bound_jkt != dpop_jkt:
            raise refuse("Invalid DPoP key binding", "proof key does not match cnf.jkt")
    elif bound_jkt is not None:
        raise refuse("The access token is DPoP-bound", "DPoP-bound token presented as Bearer")

    if await is_revoked(jti):
        raise refuse("The access token was revoked", f"jti {jti} is revoked")

    aud = claims["aud"]
    return VerifiedAccessToken(
        issuer=issuer,
        subject=subject,
        client_id=client_id,
        audience=(aud,) if isinstance(aud, str) else tuple(str(a) for a in _as_list(aud)),
        scopes=tuple(scope.split()),
        jti=jti,
        exp=_seconds(claims["exp"]),
        iat=_seconds(claims["iat"]),
        dpop_jkt=bound_jkt,
        auth_time=auth_time,
        acr=acr,
    )


def _bound_thumbprint(cnf: object) -> str | Literal[False] | None:
    """The ``cnf.jkt`` value; None when the token is unbound; False when ``cnf`` is malformed."""
    if cnf is None:
        return None
    if not isinstance(cnf, dict):
        return False
    jkt = cnf.get("jkt")
    if jkt is None:
        return False  # a confirmation method this server does not understand: fail closed
    return jkt if isinstance(jkt, str) and jkt else False


def _seconds(value: object) -> int:
    """A NumericDate already validated by validate_claims, as whole seconds."""
    return int(value) if isinstance(value, int | float) else 0


def _as_list(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else []
