"""Compact JWS signing for the bench: the floor's tokens, client assertions and DPoP proofs.

Spec: RFC 7515 §3.1, §7.1 (compact serialization); RFC 7518 §3.3-§3.5 (RS256, ES256, PS256
signature encodings); RFC 8037 §3.1 (EdDSA); RFC 7517 §4 and RFC 7638 §3 (public JWKs and
their thumbprints).

Signing goes straight to ``cryptography`` with the protected header encoded once per signer:
the least work a server or a client can do to produce a JWT, which is what the floor app and
the load driver need. Verification is not here: the floor verifies with joserfc.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

__all__ = [
    "Alg",
    "CompactSigner",
    "b64url",
    "b64url_decode",
    "ec_private_key_from_pem",
    "ec_private_key_pem",
    "ec_public_jwk",
    "generate_ec_key",
    "jwk_thumbprint",
    "sha256_b64url",
]

Alg = Literal["ES256", "RS256", "PS256", "EdDSA"]
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey

_P256_BYTES: Final = 32


def b64url(data: bytes) -> str:
    """Base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """The bytes of unpadded base64url ``text``."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sha256_b64url(text: str) -> str:
    """base64url(SHA-256(ASCII ``text``)): PKCE S256 challenges and DPoP ``ath``."""
    return b64url(hashlib.sha256(text.encode("ascii")).digest())


def _json(value: Mapping[str, object]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True)
class CompactSigner:
    """Signs claims as a compact JWS under one fixed protected ``header`` (``alg`` set from
    ``alg``) with ``key``."""

    alg: Alg
    key: PrivateKey
    header: Mapping[str, object]
    _encoded_header: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        encoded = b64url(_json({**self.header, "alg": self.alg})).encode("ascii")
        object.__setattr__(self, "_encoded_header", encoded)

    def sign(self, claims: Mapping[str, object]) -> str:
        """The compact JWS of ``claims``."""
        signing_input = self._encoded_header + b"." + b64url(_json(claims)).encode("ascii")
        return (signing_input + b"." + self._signature(signing_input).encode("ascii")).decode(
            "ascii"
        )

    def _signature(self, data: bytes) -> str:
        key = self.key
        if self.alg == "ES256" and isinstance(key, ec.EllipticCurvePrivateKey):
            r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
            return b64url(r.to_bytes(_P256_BYTES, "big") + s.to_bytes(_P256_BYTES, "big"))
        if self.alg == "RS256" and isinstance(key, rsa.RSAPrivateKey):
            return b64url(key.sign(data, padding.PKCS1v15(), hashes.SHA256()))
        if self.alg == "PS256" and isinstance(key, rsa.RSAPrivateKey):
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
            return b64url(key.sign(data, pss, hashes.SHA256()))
        if self.alg == "EdDSA" and isinstance(key, ed25519.Ed25519PrivateKey):
            return b64url(key.sign(data))
        raise ValueError(f"{self.alg} cannot sign with a {type(key).__name__}")


def generate_ec_key() -> ec.EllipticCurvePrivateKey:
    """A fresh P-256 private key (ES256)."""
    return ec.generate_private_key(ec.SECP256R1())


def ec_private_key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    """``key`` as an unencrypted PKCS#8 PEM (handed to the driver process)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def ec_private_key_from_pem(pem: str) -> ec.EllipticCurvePrivateKey:
    """The P-256 key of a PEM written by :func:`ec_private_key_pem`."""
    key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("not an EC private key")
    return key


def ec_public_jwk(key: ec.EllipticCurvePrivateKey) -> dict[str, str]:
    """The public JWK (``kty``, ``crv``, ``x``, ``y``) of a P-256 key."""
    numbers = key.public_key().public_numbers()
    return {
        "kty": "EC",
        "crv": "P-256",
        "x": b64url(numbers.x.to_bytes(_P256_BYTES, "big")),
        "y": b64url(numbers.y.to_bytes(_P256_BYTES, "big")),
    }


def jwk_thumbprint(jwk: Mapping[str, object]) -> str:
    """The RFC 7638 SHA-256 thumbprint of an EC public JWK."""
    members = {name: jwk[name] for name in ("crv", "kty", "x", "y")}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return b64url(hashlib.sha256(canonical).digest())
