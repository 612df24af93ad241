"""OpenID Connect ID tokens: their claims, ``at_hash``, and signing with the ID-token key.

Spec: OIDC Core 1.0 §2 (ID token claims, ``azp``), §3.1.3.6 (``at_hash``), §3.1.3.7 (what
clients validate); OIDC Front-/Back-Channel Logout 1.0 §2.1 / §2.4 (``sid``); OIDC Discovery 1.0
§3 (RS256 support for ID tokens).

``at_hash`` is the base64url left-most half of the hash of the access token's ASCII octets,
hashed with the hash of the ID token's ``alg``: SHA-256 for ES256, PS256 and RS256. For EdDSA
OIDC Core names no hash; authward follows the OpenID Connect working group's resolution (connect
issue #1125, implemented alike by other providers): Ed25519 uses SHA-512, its own internal hash,
so ``at_hash`` is the left-most 32 bytes of SHA-512.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, NotRequired, TypedDict

from authward.core.jose import SIGNING_ALGORITHMS, JsonWebKey, SigningAlgorithm, sign_jwt
from authward.stores.digest import b64url

__all__ = ["IdTokenClaims", "MintedIdToken", "mint_id_token", "token_hash"]

_HASH_OF_ALG: Final[Mapping[SigningAlgorithm, str]] = {
    "ES256": "sha256",
    "PS256": "sha256",
    "RS256": "sha256",
    "EdDSA": "sha512",  # Ed25519's hash (OpenID connect issue #1125)
}
_REGISTERED: Final = frozenset(
    {"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp", "at_hash",
     "c_hash", "sid", "jti", "nbf", "cnf"}
)


class IdTokenClaims(TypedDict):
    """The protocol claims of an ID token as authward mints them (host claims come on top)."""

    iss: str
    sub: str
    aud: str | list[str]
    exp: int
    iat: int
    auth_time: NotRequired[int]
    nonce: NotRequired[str]
    acr: NotRequired[str]
    amr: NotRequired[list[str]]
    azp: NotRequired[str]
    at_hash: NotRequired[str]
    sid: NotRequired[str]


@dataclass(frozen=True, slots=True)
class MintedIdToken:
    """A signed ID token and the protocol claims it carries."""

    token: str
    claims: IdTokenClaims


def token_hash(value: str, alg: SigningAlgorithm) -> str:
    """The OIDC ``at_hash``/``c_hash`` of ``value`` for an ID token signed with ``alg``.

    base64url (no padding) of the left-most half of the hash of the ASCII octets of ``value``.
    """
    digest = hashlib.new(_HASH_OF_ALG[alg], value.encode("ascii")).digest()
    return b64url(digest[: len(digest) // 2])


def mint_id_token(
    key: JsonWebKey,
    *,
    issuer: str,
    subject: str,
    client_id: str,
    lifetime: int,
    now: float,
    auth_time: int | None = None,
    nonce: str | None = None,
    acr: str | None = None,
    amr: Sequence[str] = (),
    access_token: str | None = None,
    sid: str | None = None,
    extra_audiences: Sequence[str] = (),
    extra_claims: Mapping[str, object] | None = None,
) -> MintedIdToken:
    """Sign an ID token for ``client_id`` with ``key`` (the active key of the ID-token alg).

    ``aud`` is ``client_id`` (a list when ``extra_audiences`` are given, and then ``azp`` is set
    to ``client_id`` as OIDC Core §2 requires). ``nonce`` is included exactly when the
    authentication request carried one; ``at_hash`` when an ``access_token`` is issued with it.
    ``extra_claims`` (the host's user claims) must not set a protocol claim (ValueError).
    """
    if lifetime <= 0:
        raise ValueError("lifetime must be positive")
    if not issuer or not subject or not client_id:
        raise ValueError("issuer, subject and client_id are required")
    alg = key.alg
    if alg not in SIGNING_ALGORITHMS:
        raise ValueError("the ID-token key must be one of authward's signing keys")
    extras = dict(extra_claims or {})
    clashes = sorted(_REGISTERED.intersection(extras))
    if clashes:
        raise ValueError(f"extra claims may not set protocol claims {clashes}")
    iat = int(now)
    audiences = list(dict.fromkeys([client_id, *extra_audiences]))
    claims: IdTokenClaims = {
        "iss": issuer,
        "sub": subject,
        "aud": client_id if len(audiences) == 1 else audiences,
        "exp": iat + lifetime,
        "iat": iat,
    }
    if auth_time is not None:
        claims["auth_time"] = auth_time
    if nonce is not None:
        claims["nonce"] = nonce
    if acr is not None:
        claims["acr"] = acr
    if amr:
        claims["amr"] = list(amr)
    if len(audiences) > 1:
        claims["azp"] = client_id
    if access_token is not None:
        claims["at_hash"] = token_hash(access_token, alg)
    if sid is not None:
        claims["sid"] = sid
    token = sign_jwt(key, {**extras, **claims}, header={"typ": "JWT"})
    return MintedIdToken(token=token, claims=claims)
