"""Building DPoP proofs for tests, without the JOSE library.

``proof`` signs through ``authward.core.jose.sign_jwt`` (which always adds ``kid`` = the key's
thumbprint); ``raw_es256`` and ``unsigned`` assemble a compact JWS by hand so a test controls
every header member (no ``kid``, a foreign ``jwk``, ``alg: none``, HMAC).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from authward.core.jose import JsonWebKey, sign_jwt

TOKEN_URL = "https://server.example.com/token"
RESOURCE_URL = "https://resource.example.org/protectedresource"

_MEMBERS = {"EC": ("kty", "crv", "x", "y"), "OKP": ("kty", "crv", "x"), "RSA": ("kty", "n", "e")}
_OMIT = object()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def public_members(key: JsonWebKey) -> dict[str, str]:
    """The key's public JWK as a client would send it (only the thumbprint members)."""
    public: Mapping[str, str] = key.public_jwk()  # type: ignore[assignment]
    return {name: public[name] for name in _MEMBERS[key.kty]}


def claims_for(
    *,
    htm: str = "POST",
    htu: str = TOKEN_URL,
    iat: float | object,
    jti: str | object | None = None,
    **extra: object,
) -> dict[str, object]:
    """Proof claims; pass ``_OMIT``-valued ``omit(...)`` members to leave a claim out."""
    claims: dict[str, object] = {
        "jti": jti if jti is not None else secrets.token_urlsafe(16),
        "htm": htm,
        "htu": htu,
        "iat": iat,
        **extra,
    }
    return {name: value for name, value in claims.items() if value is not _OMIT}


def omit() -> object:
    """A claim value meaning "leave this claim out"."""
    return _OMIT


def proof(
    key: JsonWebKey,
    *,
    header: Mapping[str, object] | None = None,
    **claims: object,
) -> str:
    """A proof signed by ``key`` with ``typ`` dpop+jwt and its public ``jwk`` (plus ``kid``)."""
    protected: dict[str, object] = {"typ": "dpop+jwt", "jwk": public_members(key)}
    protected.update(header or {})
    return sign_jwt(key, claims_for(**claims), header=protected)  # type: ignore[arg-type]


def _segments(header: Mapping[str, object], claims: Mapping[str, object]) -> str:
    head = b64(json.dumps(dict(header), separators=(",", ":")).encode())
    body = b64(json.dumps(dict(claims), separators=(",", ":")).encode())
    return f"{head}.{body}"


def raw_es256(
    key: JsonWebKey, header: Mapping[str, object], claims: Mapping[str, object]
) -> str:
    """A compact JWS over exactly ``header`` and ``claims``, signed ES256 with ``key``."""
    private = key.private_jwk()
    number = int.from_bytes(unb64(private["d"]), "big")
    signer = ec.derive_private_key(number, ec.SECP256R1())
    signing_input = _segments(header, claims)
    der = signer.sign(signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256()))
    r, s = utils.decode_dss_signature(der)
    return f"{signing_input}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def unsigned(header: Mapping[str, object], claims: Mapping[str, object]) -> str:
    """A compact JWS with an empty signature (``alg: none``)."""
    return f"{_segments(header, claims)}."


def hs256(secret: bytes, header: Mapping[str, object], claims: Mapping[str, object]) -> str:
    """A compact JWS MACed with HMAC-SHA-256."""
    signing_input = _segments(header, claims)
    mac = hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"
