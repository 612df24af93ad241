"""The one wrapper around the JOSE library: asymmetric keys, compact JWT signing and verification.

Spec: RFC 7515 §3.1, §4.1 (JWS compact serialization, header); RFC 7517 §4 (JWK members);
RFC 7518 §3.3-§3.5 (RS256, ES256, PS256); RFC 8037 §3.1 (EdDSA); RFC 7638 §3 (JWK thumbprint);
RFC 7519 §4.1, §7.2 (registered claims, validation); RFC 8725 §3.1-§3.2 (algorithm verification).

Every other authward module reaches joserfc through this one. Only asymmetric algorithms exist
here: ``none`` and every symmetric (HMAC) algorithm are refused whatever a caller allows. Failures
of a presented JOSE object raise :class:`JoseError` with a ``reason``; the caller maps it to the
OAuth error of its context (``invalid_token``, ``invalid_dpop_proof``, ``invalid_client`` ...).
Caller bugs (an empty or symmetric algorithm list, signing with a public key) raise ``ValueError``.
"""

from __future__ import annotations

import functools
import json
import math
import warnings
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Final, Literal, TypedDict, cast, get_args

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc import jwk, jws, jwt
from joserfc import util as joserfc_util
from joserfc.errors import (
    BadSignatureError,
    ClaimError,
    ExpiredTokenError,
    MissingClaimError,
    SecurityWarning,
)
from joserfc.errors import JoseError as _LibraryError
from joserfc.jwt import ClaimsOption, JWTClaimsRegistry

__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "MIN_RSA_BITS",
    "SIGNING_ALGORITHMS",
    "JoseError",
    "JoseFailure",
    "JsonWebKey",
    "JwsAlgorithm",
    "PrivateJwk",
    "PublicJwk",
    "SigningAlgorithm",
    "VerifiedJwt",
    "generate_signing_key",
    "import_public_jwk",
    "import_signing_key",
    "jwk_thumbprint",
    "read_unverified_header",
    "sign_jwt",
    "validate_claims",
    "verify_jwt",
    "verify_jwt_with_key",
]

SigningAlgorithm = Literal["ES256", "EdDSA", "PS256", "RS256"]
"""Algorithms authward signs with (its own keys)."""

JwsAlgorithm = Literal[
    "ES256", "ES384", "ES512", "EdDSA", "PS256", "PS384", "PS512", "RS256", "RS384", "RS512"
]
"""Asymmetric algorithms authward can verify (e.g. client DPoP proofs or assertions)."""

SIGNING_ALGORITHMS: Final[tuple[SigningAlgorithm, ...]] = get_args(SigningAlgorithm)
ASYMMETRIC_ALGORITHMS: Final[frozenset[str]] = frozenset(get_args(JwsAlgorithm))
MIN_RSA_BITS: Final = 2048

JoseFailure = Literal[
    "malformed",
    "algorithm_not_allowed",
    "unknown_key",
    "bad_signature",
    "invalid_key",
    "expired",
    "not_yet_valid",
    "invalid_claim",
    "missing_claim",
]

KeyType = Literal["EC", "OKP", "RSA"]

_KEY_TYPE_OF_ALG: Final[Mapping[str, KeyType]] = MappingProxyType(
    {
        "ES256": "EC",
        "ES384": "EC",
        "ES512": "EC",
        "EdDSA": "OKP",
        "PS256": "RSA",
        "PS384": "RSA",
        "PS512": "RSA",
        "RS256": "RSA",
        "RS384": "RSA",
        "RS512": "RSA",
    }
)
_CURVE_OF_ALG: Final[Mapping[str, str]] = MappingProxyType(
    {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
)
_ALLOWED_CURVES: Final[Mapping[KeyType, frozenset[str]]] = MappingProxyType(
    {
        "EC": frozenset({"P-256", "P-384", "P-521"}),
        "OKP": frozenset({"Ed25519", "Ed448"}),
        "RSA": frozenset(),
    }
)
_PUBLIC_MEMBERS: Final[Mapping[KeyType, tuple[str, ...]]] = MappingProxyType(
    {"EC": ("crv", "x", "y"), "OKP": ("crv", "x"), "RSA": ("n", "e")}
)
_PRIVATE_MEMBERS: Final[frozenset[str]] = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_MAX_HEADER_BYTES: Final = 4096  # room for an embedded RSA 8192 `jwk` (DPoP proofs)
_MAX_SIGNATURE_BYTES: Final = 2048


class JoseError(ValueError):
    """A presented JOSE object or key was refused; ``reason`` says why, ``detail`` is for logs."""

    def __init__(self, reason: JoseFailure, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: JoseFailure = reason
        self.detail = detail


class PublicJwk(TypedDict, total=False):
    """The public members of an EC, OKP or RSA JWK (RFC 7517 §4, RFC 7518 §6, RFC 8037 §2)."""

    kty: str
    kid: str
    alg: str
    use: str
    crv: str
    x: str
    y: str
    n: str
    e: str


class PrivateJwk(PublicJwk, total=False):
    """A JWK with its private members (RFC 7518 §6.2.2, §6.3.2; RFC 8037 §2)."""

    d: str
    p: str
    q: str
    dp: str
    dq: str
    qi: str


@dataclass(frozen=True, slots=True, eq=False)
class JsonWebKey:
    """An asymmetric signature key. Build it with this module's functions only.

    ``kid`` is always the RFC 7638 SHA-256 thumbprint of the public part; ``alg`` is the one
    algorithm the key may be used with, or None for a foreign key that did not name one.
    ``declared_kid`` is the ``kid`` a foreign JWK carried (a client names its keys as it likes);
    key-set verification matches a JWS ``kid`` header against either identifier.
    """

    _key: jwk.ECKey | jwk.OKPKey | jwk.RSAKey
    kty: KeyType
    kid: str
    alg: JwsAlgorithm | None
    declared_kid: str | None = None

    def answers_to(self, kid: str) -> bool:
        """True when a JWS ``kid`` header names this key (thumbprint or declared kid)."""
        return kid in (self.kid, self.declared_kid)

    @property
    def is_private(self) -> bool:
        """True when the key holds private material (can sign)."""
        return bool(self._key.is_private)

    def thumbprint(self) -> str:
        """Return the RFC 7638 thumbprint (SHA-256, base64url without padding)."""
        return self.kid

    def public_jwk(self) -> PublicJwk:
        """Return the public members plus ``kid``, ``alg`` (when known) and ``use: sig``."""
        data = self._key.as_dict(private=False)
        out: dict[str, str] = {"kty": self.kty}
        for name in _PUBLIC_MEMBERS[self.kty]:
            out[name] = cast(str, data[name])
        out["kid"] = self.kid
        if self.alg is not None:
            out["alg"] = self.alg
        out["use"] = "sig"
        return cast(PublicJwk, out)

    def private_jwk(self) -> PrivateJwk:
        """Return the full JWK including private members; ValueError for a public key."""
        if not self.is_private:
            raise ValueError("this JsonWebKey has no private part")
        data = self._key.as_dict(private=True)
        out = dict(self.public_jwk())
        for name in sorted(_PRIVATE_MEMBERS):
            value = data.get(name)
            if isinstance(value, str):
                out[name] = value
        return cast(PrivateJwk, out)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JsonWebKey) and (self.kid, self.alg, self.is_private) == (
            other.kid,
            other.alg,
            other.is_private,
        )

    def __hash__(self) -> int:
        return hash((self.kid, self.alg))

    def __repr__(self) -> str:
        kind = "private" if self.is_private else "public"
        return f"JsonWebKey(kty={self.kty!r}, alg={self.alg!r}, kid={self.kid!r}, {kind})"


@dataclass(frozen=True, slots=True)
class VerifiedJwt:
    """A JWT whose signature checked out: its protected header, its claims and the key used."""

    header: Mapping[str, object]
    claims: Mapping[str, object]
    key: JsonWebKey


def generate_signing_key(alg: SigningAlgorithm, *, rsa_bits: int = MIN_RSA_BITS) -> JsonWebKey:
    """Generate a fresh private key for ``alg``: EC P-256, OKP Ed25519 or RSA (``rsa_bits``)."""
    key: jwk.ECKey | jwk.OKPKey | jwk.RSAKey
    if alg == "ES256":
        key = jwk.ECKey.generate_key("P-256")
    elif alg == "EdDSA":
        key = jwk.OKPKey.generate_key("Ed25519")
    elif alg in ("PS256", "RS256"):
        if rsa_bits < MIN_RSA_BITS:
            raise ValueError(f"RSA keys must have at least {MIN_RSA_BITS} bits")
        key = jwk.RSAKey.generate_key(rsa_bits)
    else:
        raise ValueError(f"unsupported signing algorithm {alg!r}")
    return _wrap(key, alg)


def import_signing_key(data: Mapping[str, object]) -> JsonWebKey:
    """Import one of authward's own private signing keys from its JWK form.

    The JWK must carry an ``alg`` in :data:`SIGNING_ALGORITHMS` that fits its key type and curve
    (ES256: P-256, EdDSA: Ed25519, PS256/RS256: RSA of at least 2048 bits), its private members,
    and, when it has a ``kid``, that ``kid`` must be its RFC 7638 thumbprint. Members that are not
    JWK members (for example authward's key-file bookkeeping) are ignored. JoseError otherwise.
    """
    alg = data.get("alg")
    if alg not in SIGNING_ALGORITHMS:
        raise JoseError("invalid_key", f"signing key alg must be one of {SIGNING_ALGORITHMS}")
    signing_alg: SigningAlgorithm = alg
    key = _import(data, private=True)
    if not key.is_private:
        raise JoseError("invalid_key", "signing key has no private members")
    if signing_alg == "EdDSA" and getattr(key, "curve_name", None) != "Ed25519":
        raise JoseError("invalid_key", "EdDSA signing keys must be Ed25519")
    wrapped = _wrap(key, signing_alg)
    kid = data.get("kid")
    if kid is not None and kid != wrapped.kid:
        raise JoseError("invalid_key", "kid is not the RFC 7638 thumbprint of the key")
    return wrapped


def import_public_jwk(data: Mapping[str, object]) -> JsonWebKey:
    """Import a foreign public JWK (e.g. a DPoP proof's ``jwk`` header or a client's JWKS entry).

    Refuses symmetric keys, any private member, unknown curves and RSA below 2048 bits. An ``alg``
    member, when present, must be an asymmetric algorithm fitting the key. JoseError otherwise.
    """
    present = sorted(_PRIVATE_MEMBERS.intersection(data))
    if present:
        raise JoseError("invalid_key", f"public JWK carries private members {present}")
    alg = data.get("alg")
    if alg is not None and alg not in ASYMMETRIC_ALGORITHMS:
        raise JoseError("invalid_key", "JWK alg is not an allowed asymmetric algorithm")
    key = _import(data, private=False)
    wrapped = _wrap(key, cast(JwsAlgorithm | None, alg))
    declared = data.get("kid")
    if isinstance(declared, str) and declared and declared != wrapped.kid:
        return replace(wrapped, declared_kid=declared)
    return wrapped


def jwk_thumbprint(data: Mapping[str, object]) -> str:
    """Return the RFC 7638 SHA-256 thumbprint of a public JWK (refused as import_public_jwk)."""
    return import_public_jwk(data).kid


def sign_jwt(
    key: JsonWebKey,
    claims: Mapping[str, object],
    *,
    header: Mapping[str, object] | None = None,
) -> str:
    """Sign ``claims`` as a compact JWS with ``key``; return the JWT.

    The protected header is ``header`` (e.g. ``typ``) plus ``alg`` and ``kid`` taken from the key;
    ``header`` must not set a different ``alg`` or ``kid``. The key must be private and have an alg.
    """
    if not key.is_private or key.alg is None:
        raise ValueError("signing needs a private key with an alg")
    protected: dict[str, object] = dict(header or {})
    for name, value in (("alg", key.alg), ("kid", key.kid)):
        if protected.get(name, value) != value:
            raise ValueError(f"header {name} conflicts with the signing key")
        protected[name] = value
    payload = _COMPACT_JSON.encode(dict(claims))
    signing_input = (
        _header_segment(protected) + b"." + joserfc_util.urlsafe_b64encode(payload.encode("utf-8"))
    )
    if key.alg == "ES256":
        signature = _es256_signer(key).sign(signing_input)
    else:
        with _quiet(key.alg):
            signature = _registry([key.alg]).get_alg(key.alg).sign(signing_input, key._key)
    return (signing_input + b"." + joserfc_util.urlsafe_b64encode(signature)).decode("ascii")


#: One encoder for every JWT payload: ``json.dumps`` with arguments builds a new one per call.
_COMPACT_JSON: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class _Es256Signer:
    """The ``cryptography`` private key of one ES256 signing key, taken out of joserfc once:
    the per-call lookups and checks of joserfc's ``ESAlgorithm.sign`` cost about a tenth of
    the signature itself. The signature is the same: RFC 7518 §3.4, the DER signature's R and
    S as 32-octet big-endian integers, concatenated."""

    private_key: ec.EllipticCurvePrivateKey
    algorithm: ec.ECDSA

    def sign(self, data: bytes) -> bytes:
        r, s = decode_dss_signature(self.private_key.sign(data, self.algorithm))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


@functools.lru_cache(maxsize=64)
def _es256_signer(key: JsonWebKey) -> _Es256Signer:
    """The signer of a private ES256 ``key`` (a P-256 key: the import checks the curve)."""
    private_key = key._key.get_op_key("sign")
    assert isinstance(private_key, ec.EllipticCurvePrivateKey)
    assert isinstance(private_key.curve, ec.SECP256R1)
    return _Es256Signer(private_key, ec.ECDSA(hashes.SHA256()))


def _header_segment(protected: Mapping[str, object]) -> bytes:
    """The base64url JSON of a protected header, encoded once per distinct header (a server
    signs with a handful: one per key and ``typ``)."""
    items = tuple(protected.items())
    try:
        return _cached_header_segment(items)
    except TypeError:  # a value that cannot be a cache key (an embedded JWK)
        return joserfc_util.json_b64encode(dict(items))


@functools.lru_cache(maxsize=256)
def _cached_header_segment(items: tuple[tuple[str, object], ...]) -> bytes:
    return joserfc_util.json_b64encode(dict(items))


def read_unverified_header(token: str) -> Mapping[str, object]:
    """Return the protected header of a compact JWS WITHOUT verifying anything.

    For routing only (which key, which ``typ``); never trust its content. JoseError("malformed").
    """
    try:
        raw = token.encode("ascii")
        obj = jws.extract_compact(raw, registry=_registry(["ES256"]))
    except (UnicodeEncodeError, _LibraryError, ValueError, TypeError) as error:
        raise JoseError("malformed", "not a compact JWS") from error
    return MappingProxyType(dict(obj.headers()))


def verify_jwt(
    token: str,
    keys: Sequence[JsonWebKey],
    *,
    algorithms: Collection[JwsAlgorithm],
) -> VerifiedJwt:
    """Verify a compact JWT's signature against a key set ``keys``; return its header and claims.

    ``algorithms`` is the explicit allow-list; it must be non-empty and asymmetric (ValueError).
    The header ``alg`` must be in it, so ``none`` and HMAC tokens are always refused. With a
    ``kid`` header only the key with that ``kid`` (its RFC 7638 thumbprint, or the ``kid`` a
    foreign JWK declared) is tried; without
    one, every key that fits the algorithm. The payload must be a JSON object. Claims are NOT
    validated: see :func:`validate_claims`. Failures raise JoseError.
    """
    return _verify(token, keys, algorithms=algorithms, match_kid=True)


def verify_jwt_with_key(
    token: str,
    key: JsonWebKey,
    *,
    algorithms: Collection[JwsAlgorithm],
) -> VerifiedJwt:
    """Verify a compact JWT's signature against the one ``key`` the caller already holds.

    For a key that comes with the token itself (a DPoP proof's ``jwk`` header, RFC 9449 §4.2),
    where a ``kid`` header is only a hint the sender chose: it must be a string when present but
    need not equal the key's thumbprint. Otherwise exactly as :func:`verify_jwt` (``unknown_key``
    when ``key`` does not fit the header ``alg``).
    """
    return _verify(token, [key], algorithms=algorithms, match_kid=False)


def _verify(
    token: str,
    keys: Sequence[JsonWebKey],
    *,
    algorithms: Collection[JwsAlgorithm],
    match_kid: bool,
) -> VerifiedJwt:
    allowed = _check_algorithms(algorithms)
    header = read_unverified_header(token)
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in allowed:
        raise JoseError("algorithm_not_allowed", f"alg {alg!r} is not allowed here")
    if "b64" in header:
        raise JoseError("malformed", "a JWT payload is always base64url-encoded")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise JoseError("malformed", "kid must be a string")
    candidates = [
        key
        for key in keys
        if (not match_kid or kid is None or key.answers_to(kid)) and _fits(key, alg)
    ]
    if not candidates:
        wanted = f"kid {kid!r} and " if match_kid else ""
        raise JoseError("unknown_key", f"no key for {wanted}alg {alg}")
    registry = _registry([alg])
    for key in candidates:
        try:
            with _quiet(alg):
                decoded = jwt.decode(token, key._key, algorithms=[alg], registry=registry)
        except BadSignatureError:
            continue
        except _LibraryError as error:
            raise JoseError("malformed", f"{error.error}: {error.description}") from error
        return VerifiedJwt(
            header=MappingProxyType(dict(decoded.header)),
            claims=MappingProxyType(dict(decoded.claims)),
            key=key,
        )
    raise JoseError("bad_signature", "signature does not verify")


def validate_claims(
    claims: Mapping[str, object],
    *,
    now: float,
    leeway: int = 0,
    issuer: str | None = None,
    audience: str | None = None,
    required: Collection[str] = ("exp",),
) -> None:
    """Validate registered claims (RFC 7519 §4.1) at time ``now`` (Unix seconds).

    ``exp`` must be after ``now - leeway``; ``nbf`` and ``iat``, when present, not after
    ``now + leeway``; ``iss`` equals ``issuer`` and ``aud`` (string or list) contains ``audience``
    when those are given (they are then required). Every name in ``required`` must be present.
    Raises JoseError with reason expired, not_yet_valid, invalid_claim or missing_claim.
    """
    if not 0 <= leeway <= 300:
        raise ValueError("leeway must be between 0 and 300 seconds")
    options: dict[str, ClaimsOption] = {name: {"essential": True} for name in required}
    if issuer is not None:
        options["iss"] = {"essential": True, "value": issuer}
    if audience is not None:
        options["aud"] = {"essential": True, "value": audience}
    registry = JWTClaimsRegistry(now=math.floor(now), leeway=leeway, **options)
    try:
        registry.validate(dict(claims))
    except ExpiredTokenError as error:
        raise JoseError("expired", "the token has expired") from error
    except MissingClaimError as error:
        raise JoseError("missing_claim", f"missing claim(s) {error.claim}") from error
    except ClaimError as error:
        reason: JoseFailure = "invalid_claim"
        value = claims.get(error.claim)
        if error.claim in ("nbf", "iat") and _is_number(value):
            reason = "not_yet_valid"
        raise JoseError(reason, f"claim {error.claim!r}: {error.description}") from error


def _quiet(alg: str | None = None) -> AbstractContextManager[None]:
    """Silence joserfc warnings about choices this module makes or enforces itself.

    ``EdDSA`` is the algorithm name OIDC deployments use (RFC 9864's ``Ed25519`` is not yet
    widely understood), and short RSA keys are refused here with a JoseError anyway. The
    ECDSA algorithms raise neither warning, so signing and verifying with them skips the
    (comparatively costly) warnings context.
    """
    if alg is not None and alg.startswith("ES"):
        return nullcontext()
    return _silenced()


@contextmanager
def _silenced() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "EdDSA is deprecated", SecurityWarning)
        warnings.filterwarnings("ignore", "Key size should be", SecurityWarning)
        yield


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_algorithms(algorithms: Collection[JwsAlgorithm]) -> frozenset[str]:
    allowed = frozenset(algorithms)
    if not allowed:
        raise ValueError("an explicit, non-empty algorithm allow-list is required")
    refused = sorted(allowed - ASYMMETRIC_ALGORITHMS)
    if refused:
        raise ValueError(f"algorithms {refused} are not allowed (none/symmetric/unknown)")
    return allowed


def _fits(key: JsonWebKey, alg: str) -> bool:
    if _KEY_TYPE_OF_ALG.get(alg) != key.kty:
        return False
    if key.alg is not None and key.alg != alg:
        return False
    curve = _CURVE_OF_ALG.get(alg)
    return curve is None or getattr(key._key, "curve_name", None) == curve


def _registry(algorithms: Sequence[str]) -> jws.JWSRegistry:
    return _registry_of(tuple(algorithms))


@functools.lru_cache(maxsize=64)
def _registry_of(algorithms: tuple[str, ...]) -> jws.JWSRegistry:
    """One registry per allow-list, built once (never mutated after this function)."""
    registry = jws.JWSRegistry(algorithms=list(algorithms), strict_check_header=False)
    registry.max_header_length = _MAX_HEADER_BYTES
    registry.max_signature_length = _MAX_SIGNATURE_BYTES
    return registry


def _import(data: Mapping[str, object], *, private: bool) -> jwk.ECKey | jwk.OKPKey | jwk.RSAKey:
    kty = data.get("kty")
    if kty not in ("EC", "OKP", "RSA"):
        raise JoseError("invalid_key", f"unsupported key type {kty!r}")
    key_type: KeyType = kty
    members = _PUBLIC_MEMBERS[key_type] + (tuple(sorted(_PRIVATE_MEMBERS)) if private else ())
    jwk_dict: dict[str, str | list[str]] = {"kty": key_type}
    for name in members:
        value = data.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise JoseError("invalid_key", f"JWK member {name!r} must be a string")
        jwk_dict[name] = value
    use = data.get("use")
    if use is not None and use != "sig":
        raise JoseError("invalid_key", "key is not for signatures")
    try:
        with _quiet():
            key = jwk.JWKRegistry.import_key(jwk_dict, key_type)
    except (_LibraryError, ValueError, TypeError) as error:
        raise JoseError("invalid_key", f"cannot import {key_type} key") from error
    if not isinstance(key, jwk.ECKey | jwk.OKPKey | jwk.RSAKey):
        raise JoseError("invalid_key", "not an asymmetric key")
    if isinstance(key, jwk.RSAKey):
        if key.public_key.key_size < MIN_RSA_BITS:
            raise JoseError("invalid_key", f"RSA keys need at least {MIN_RSA_BITS} bits")
    elif key.curve_name not in _ALLOWED_CURVES[key_type]:
        raise JoseError("invalid_key", f"unsupported curve {key.curve_name!r}")
    return key


def _wrap(key: jwk.ECKey | jwk.OKPKey | jwk.RSAKey, alg: JwsAlgorithm | None) -> JsonWebKey:
    kty = cast(KeyType, key.key_type)
    wrapped = JsonWebKey(_key=key, kty=kty, kid=key.thumbprint(), alg=alg)
    if alg is not None and not _fits(wrapped, alg):
        raise JoseError("invalid_key", f"a {kty} key cannot be used with {alg}")
    return wrapped
