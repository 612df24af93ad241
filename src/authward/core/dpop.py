"""DPoP proof verification: one ``DPoP`` header checked against the request it arrived with.

Spec: RFC 9449 §4.1-§4.3 (proof syntax and checks), §5 and §8 (token endpoint errors, server
nonces), §6.1 (``jkt``), §7.1 and §9 (resource errors and nonces), §11.1 (replay and freshness);
RFC 3986 §5.2.4, §6.2.2, §6.2.3 (``htu`` normalisation); RFC 7638 (thumbprints).

The checks run in this order, and the first failure decides the error:

1. exactly one ``DPoP`` header (none: ``verify`` returns ``None`` and the caller decides; more
   than one: ``invalid_dpop_proof``);
2. a well-formed compact JWS with ``typ`` ``dpop+jwt`` and an ``alg`` from the configured
   asymmetric allow-list (``none`` and HMAC never are);
3. a ``jwk`` header holding a public key only, of the type ``alg`` needs, and a signature that
   verifies with it (a ``kid`` header, if sent, is only the sender's hint: RFC 9449 §4.2 does
   not constrain it, so it need not be the key's thumbprint);
4. claims ``jti`` (string, at most 1024 characters), ``htm`` (the request method), ``htu``
   (the request URL, both normalised, query and fragment ignored), ``iat`` (not older than the
   proof window, not further ahead than the future skew), ``ath`` when an access token is
   presented (resource requests);
5. the server nonce, when nonces are required (``windowed``: ``valid``; ``single_use``:
   ``accept``); absent or not accepted: a fresh nonce is issued and ``use_dpop_nonce`` carries
   it in ``DPoP-Nonce``;
6. last, the ``jti`` replay check in namespace ``"dpop"`` with TTL = window + skew, so a proof
   refused for any other reason never burns its ``jti``.

``ath`` at the token endpoint: RFC 9449 §4.2 requires ``ath`` only when the proof accompanies
an access token, and §4.3 item 12 checks it only then; the RFC gives ``ath`` no meaning at the
token endpoint and does not forbid it. A token-endpoint proof is already bound to that endpoint
by ``htm``/``htu``, so an ``ath`` there is ignored rather than refused.

Error rendering follows the site: at the authorization server's own endpoints (token, PAR,
device authorization) errors are 400 JSON; at a protected resource or UserInfo they are 401 with
``WWW-Authenticate: DPoP error=..., algs="..."`` (RFC 9449 §7.1, §9).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import string
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, cast

from authward.core.config import NoncePolicy, Settings
from authward.core.errors import (
    Challenge,
    DPoPChallenge,
    InvalidDPoPProofError,
    InvalidGrantError,
    UseDPoPNonceError,
)
from authward.core.http import Request
from authward.core.jose import (
    ASYMMETRIC_ALGORITHMS,
    JoseError,
    JsonWebKey,
    JwsAlgorithm,
    import_public_jwk,
    read_unverified_header,
    verify_jwt_with_key,
)
from authward.stores.clock import Clock
from authward.stores.digest import b64url
from authward.stores.dpop_nonces import Accepted, DpopNonceStore
from authward.stores.replay import DPOP_NAMESPACE, MAX_RAW_JTI_LENGTH, Replay, ReplayStore

__all__ = [
    "DEFAULT_FUTURE_SKEW_SECONDS",
    "DEFAULT_PROOF_WINDOW_SECONDS",
    "DPOP_HEADER",
    "DPOP_TYP",
    "DPoPVerifier",
    "ProofSite",
    "ProtectedResource",
    "TokenEndpoint",
    "VerifiedProof",
    "access_token_hash",
    "check_binding",
    "normalize_htu",
]

DPOP_HEADER: Final = "DPoP"
DPOP_TYP: Final = "dpop+jwt"
#: How old (seconds) a proof's ``iat`` may be (RFC 9449 §11.1; ``dpop_proof_window_seconds``).
DEFAULT_PROOF_WINDOW_SECONDS: Final = 60
#: How far (seconds) a proof's ``iat`` may lie ahead of the server clock (client clock skew).
DEFAULT_FUTURE_SKEW_SECONDS: Final = 5
_MAX_FUTURE_SKEW_SECONDS: Final = 300
_DEFAULT_NONCE_TTL_SECONDS: Final = 300

_URI_HEAD: Final = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://([^/?#]*)([^?#]*)")
_DEFAULT_PORTS: Final[Mapping[str, int]] = MappingProxyType({"http": 80, "https": 443})
_PCT_TRIPLET: Final = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED: Final = frozenset(string.ascii_letters + string.digits + "-._~")
_THUMBPRINT_MEMBERS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {"EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x"), "RSA": ("e", "kty", "n")}
)


# --- where the proof was presented -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenEndpoint:
    """An authorization-server endpoint (token, PAR, device authorization): errors are 400 JSON."""


@dataclass(frozen=True, slots=True)
class ProtectedResource:
    """A protected resource or UserInfo: errors are 401 with a ``DPoP`` challenge first.

    ``realm`` goes into the DPoP challenge; ``other_challenges`` (e.g. a Bearer challenge the
    resource also accepts) follow it bare (RFC 9449 §7.1).
    """

    realm: str | None = None
    other_challenges: tuple[Challenge, ...] = ()


ProofSite = TokenEndpoint | ProtectedResource


# --- results -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VerifiedProof:
    """A DPoP proof that passed every check (and whose ``jti`` is now recorded).

    ``jkt`` is the RFC 7638 SHA-256 thumbprint of ``public_jwk``, the key the proof was signed
    with (only the members the thumbprint covers); ``nonce`` is the proof's ``nonce`` claim, if
    any; ``iat`` is its creation time in Unix seconds.
    """

    jkt: str
    jti: str
    iat: float
    nonce: str | None
    public_jwk: Mapping[str, str] = field(compare=False)


# --- public helpers -----------------------------------------------------------------------------


def access_token_hash(access_token: str) -> str:
    """The ``ath`` value of an access token: base64url(SHA-256(ASCII token)) (RFC 9449 §4.2)."""
    return b64url(hashlib.sha256(access_token.encode("utf-8")).digest())


def normalize_htu(uri: str) -> str | None:
    """Normalise an http(s) URI for the ``htu`` comparison (RFC 9449 §4.3, RFC 3986 §6.2.2-3).

    Drops query and fragment; lower-cases scheme and host; removes the scheme's default port
    (and an empty one); upper-cases percent-encoding hex digits and decodes percent-encoded
    unreserved characters; removes dot segments; an empty path becomes ``/``. Returns ``None``
    for anything that is not an absolute ``http``/``https`` URI with a host and a valid port.
    """
    match = _URI_HEAD.match(uri)
    if match is None:
        return None
    scheme = match.group(1).lower()
    default_port = _DEFAULT_PORTS.get(scheme)
    if default_port is None:
        return None
    userinfo, at, hostport = match.group(2).rpartition("@")
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            return None
        host, rest = hostport[: end + 1], hostport[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port = rest[1:] if rest else ""
    else:
        host, _, port = hostport.partition(":")
    if not host or (port and not port.isdigit()) or (port and not port.isascii()):
        return None
    port_text = "" if not port or int(port) == default_port else f":{int(port)}"
    authority = (_pct_normalize(userinfo) + at) + _lower_host(_pct_normalize(host)) + port_text
    path = _remove_dot_segments(_pct_normalize(match.group(3))) or "/"
    return f"{scheme}://{authority}{path}"


def check_binding(expected_jkt: str | None, proof: VerifiedProof | None) -> None:
    """Check a grant's DPoP binding (a code's, refresh token's or device code's ``dpop_jkt``).

    ``expected_jkt`` None: the grant is unbound and anything goes (a proof, if any, binds the
    new token). Bound grant without a proof: ``InvalidDPoPProofError`` (RFC 9449 §5, spec
    §3.1 "dpop_bound? pre-check"). Bound grant with a proof of another key:
    ``InvalidGrantError`` (spec §3.1, §3.3: a DPoP mismatch is ``invalid_grant``).
    """
    if expected_jkt is None:
        return
    if proof is None:
        raise InvalidDPoPProofError(
            "A DPoP proof is required", detail="grant is DPoP-bound, request has no proof"
        )
    if not hmac.compare_digest(proof.jkt.encode(), expected_jkt.encode()):
        raise InvalidGrantError(
            "The grant is bound to a different DPoP key",
            detail=f"proof jkt {proof.jkt} differs from the bound jkt",
        )


# --- the verifier --------------------------------------------------------------------------------


class DPoPVerifier:
    """Verifies DPoP proofs against a request, the nonce store and the shared replay store.

    Construction checks the configuration (ValueError): a non-empty asymmetric ``algorithms``
    list, a positive ``window_seconds`` and ``nonce_ttl``, a ``future_skew_seconds`` between 0
    and 300, and a ``nonce_store`` whenever ``nonce_required``.
    """

    def __init__(
        self,
        *,
        replay_store: ReplayStore,
        clock: Clock,
        algorithms: Collection[JwsAlgorithm],
        window_seconds: int = DEFAULT_PROOF_WINDOW_SECONDS,
        future_skew_seconds: int = DEFAULT_FUTURE_SKEW_SECONDS,
        nonce_store: DpopNonceStore | None = None,
        nonce_required: bool = False,
        nonce_policy: NoncePolicy = "windowed",
        nonce_ttl: int = _DEFAULT_NONCE_TTL_SECONDS,
    ) -> None:
        algs = tuple(dict.fromkeys(algorithms))
        if not algs or any(alg not in ASYMMETRIC_ALGORITHMS for alg in algs):
            raise ValueError("DPoP algorithms must be a non-empty list of asymmetric algorithms")
        if type(window_seconds) is not int or window_seconds < 1:
            raise ValueError("window_seconds must be a positive integer")
        if type(future_skew_seconds) is not int or not (
            0 <= future_skew_seconds <= _MAX_FUTURE_SKEW_SECONDS
        ):
            raise ValueError(f"future_skew_seconds must be 0..{_MAX_FUTURE_SKEW_SECONDS}")
        if type(nonce_ttl) is not int or nonce_ttl < 1:
            raise ValueError("nonce_ttl must be a positive integer")
        if nonce_policy not in ("windowed", "single_use"):
            raise ValueError("nonce_policy must be 'windowed' or 'single_use'")
        if nonce_required and nonce_store is None:
            raise ValueError("nonce_required needs a nonce_store")
        self._replay = replay_store
        self._nonces = nonce_store
        self._clock = clock
        self._algs: tuple[JwsAlgorithm, ...] = algs
        self._window = window_seconds
        self._skew = future_skew_seconds
        self._nonce_required = nonce_required
        self._nonce_policy: NoncePolicy = nonce_policy
        self._nonce_ttl = nonce_ttl

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        replay_store: ReplayStore,
        clock: Clock,
        nonce_store: DpopNonceStore | None = None,
        future_skew_seconds: int = DEFAULT_FUTURE_SKEW_SECONDS,
    ) -> DPoPVerifier:
        """A verifier configured from ``settings`` (``dpop_*`` keys)."""
        return cls(
            replay_store=replay_store,
            clock=clock,
            algorithms=settings.dpop_algs,
            window_seconds=settings.dpop_proof_window_seconds,
            future_skew_seconds=future_skew_seconds,
            nonce_store=nonce_store,
            nonce_required=settings.dpop_nonce_required,
            nonce_policy=settings.dpop_nonce_policy,
            nonce_ttl=settings.dpop_nonce_ttl,
        )

    @property
    def algorithms(self) -> tuple[JwsAlgorithm, ...]:
        """The accepted proof algorithms (``dpop_signing_alg_values_supported``, ``algs``)."""
        return self._algs

    @property
    def replay_ttl_seconds(self) -> int:
        """How long a recorded ``jti`` is kept: the proof window plus the future skew."""
        return self._window + self._skew

    def challenge(self, site: ProtectedResource) -> tuple[Challenge, ...]:
        """The challenges a resource error carries: ``DPoP`` (with ``algs``) first."""
        return (DPoPChallenge(algs=self._algs, realm=site.realm), *site.other_challenges)

    async def verify(
        self,
        request: Request,
        *,
        site: ProofSite,
        access_token: str | None = None,
    ) -> VerifiedProof | None:
        """Verify the request's ``DPoP`` proof; ``None`` when the request carries none.

        ``access_token`` is the token presented with the proof; it is required at a
        ``ProtectedResource`` (``ath`` is checked against it) and must be ``None`` at the
        ``TokenEndpoint`` (ValueError otherwise: a caller bug). Failures raise
        ``InvalidDPoPProofError`` or ``UseDPoPNonceError`` rendered for ``site``; see the module
        docstring for the order. On success the ``jti`` has been recorded.
        """
        if isinstance(site, ProtectedResource) and access_token is None:
            raise ValueError("a protected resource must pass the presented access token")
        if isinstance(site, TokenEndpoint) and access_token is not None:
            raise ValueError("the token endpoint has no access token to bind a proof to")
        challenges = self.challenge(site) if isinstance(site, ProtectedResource) else ()

        def refuse(description: str, detail: str) -> InvalidDPoPProofError:
            return InvalidDPoPProofError(description, detail=detail, challenges=challenges)

        values = request.headers.get_all(DPOP_HEADER)
        if not values:
            return None
        if len(values) > 1:
            raise refuse("Only one DPoP header is allowed", f"{len(values)} DPoP headers")
        proof = values[0].strip()

        # Header: well-formed JWS, typ, alg, jwk (public, fitting alg), signature.
        try:
            header = read_unverified_header(proof)
        except JoseError as error:
            raise refuse("The DPoP proof is not a well-formed JWS", error.detail) from error
        if header.get("typ") != DPOP_TYP:
            raise refuse("The DPoP proof typ must be dpop+jwt", f"typ {header.get('typ')!r}")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algs:
            raise refuse("The DPoP proof alg is not supported", f"alg {alg!r} not allowed")
        raw_jwk = header.get("jwk")
        if not isinstance(raw_jwk, Mapping):
            raise refuse("The DPoP proof has no jwk header", "jwk missing or not an object")
        try:
            key = import_public_jwk(cast(Mapping[str, object], raw_jwk))
        except JoseError as error:
            raise refuse("The DPoP proof jwk is not a usable public key", error.detail) from error
        try:
            verified = verify_jwt_with_key(proof, key, algorithms=self._algs)
        except JoseError as error:
            if error.reason == "unknown_key":
                raise refuse(
                    "The DPoP proof jwk does not fit its alg", error.detail
                ) from error
            if error.reason == "bad_signature":
                raise refuse("The DPoP proof signature is invalid", error.detail) from error
            raise refuse("The DPoP proof is not a well-formed JWS", error.detail) from error
        claims = verified.claims

        # Claims.
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise refuse("The DPoP proof needs a jti", "jti missing or not a non-empty string")
        if len(jti) > MAX_RAW_JTI_LENGTH:
            raise refuse("The DPoP proof jti is too long", f"jti of {len(jti)} characters")
        htm = claims.get("htm")
        if not isinstance(htm, str) or htm != request.method:
            raise refuse(
                "The DPoP proof htm does not match the request method",
                f"htm {htm!r}, method {request.method}",
            )
        htu = claims.get("htu")
        expected_htu = normalize_htu(request.url)
        if not isinstance(htu, str) or expected_htu is None or normalize_htu(htu) != expected_htu:
            raise refuse(
                "The DPoP proof htu does not match the request URL",
                f"htu {htu!r}, request {expected_htu!r}",
            )
        iat = claims.get("iat")
        if isinstance(iat, bool) or not isinstance(iat, int | float) or not math.isfinite(iat):
            raise refuse("The DPoP proof needs a numeric iat", f"iat {iat!r}")
        now = self._clock.now()
        if iat < now - self._window:
            raise refuse("The DPoP proof is too old", f"iat {iat} is before {now - self._window}")
        if iat > now + self._skew:
            raise refuse("The DPoP proof iat is in the future", f"iat {iat} after {now}")
        if access_token is not None:
            ath = claims.get("ath")
            if not isinstance(ath, str):
                raise refuse("The DPoP proof needs an ath claim", "ath missing")
            if not hmac.compare_digest(ath.encode(), access_token_hash(access_token).encode()):
                raise refuse(
                    "The DPoP proof ath does not match the access token", "ath mismatch"
                )
        nonce = claims.get("nonce")
        if nonce is not None and (not isinstance(nonce, str) or not nonce):
            raise refuse("The DPoP proof nonce must be a string", "nonce is not a string")

        # Server nonce.
        if self._nonce_required:
            await self._check_nonce(nonce, now, challenges)

        # Replay, last: no earlier refusal burns the jti.
        outcome = await self._replay.check_and_record(
            DPOP_NAMESPACE, jti, self.replay_ttl_seconds, now=now
        )
        if isinstance(outcome, Replay):
            raise refuse("The DPoP proof was already used", "jti replayed")
        return VerifiedProof(
            jkt=key.kid,
            jti=jti,
            iat=float(iat),
            nonce=nonce,
            public_jwk=_thumbprint_members(key),
        )

    async def _check_nonce(
        self, nonce: str | None, now: float, challenges: tuple[Challenge, ...]
    ) -> None:
        store = self._nonces
        assert store is not None  # guaranteed by __init__
        if nonce is not None:
            if self._nonce_policy == "windowed":
                if await store.valid(nonce, now=now):
                    return
            elif isinstance(await store.accept(nonce, self._nonce_ttl, now=now), Accepted):
                return
        fresh = await store.issue(self._nonce_ttl, now=now)
        raise UseDPoPNonceError(
            "Authorization server requires nonce in DPoP proof"
            if nonce is None
            else "The DPoP proof nonce is invalid or expired",
            nonce=fresh,
            detail="nonce missing" if nonce is None else "nonce not accepted",
            challenges=challenges,
        )


# --- internals ------------------------------------------------------------------------------------


def _thumbprint_members(key: JsonWebKey) -> Mapping[str, str]:
    public = cast(Mapping[str, str], key.public_jwk())
    return MappingProxyType({name: public[name] for name in _THUMBPRINT_MEMBERS[key.kty]})


def _pct_normalize(text: str) -> str:
    def fix(match: re.Match[str]) -> str:
        char = chr(int(match.group(1), 16))
        return char if char in _UNRESERVED else "%" + match.group(1).upper()

    return _PCT_TRIPLET.sub(fix, text)


def _lower_host(host: str) -> str:
    """Lower-case a host, leaving the (already upper-cased) hex of escapes alone."""
    parts = re.split(r"(%[0-9A-F]{2})", host)
    return "".join(part if part.startswith("%") else part.lower() for part in parts)


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4."""
    source = path
    output: list[str] = []
    while source:
        if source.startswith("../"):
            source = source[3:]
        elif source.startswith(("./", "/./")):
            source = source[2:]
        elif source == "/.":
            source = "/"
        elif source.startswith("/../"):
            source = source[3:]
            if output:
                output.pop()
        elif source == "/..":
            source = "/"
            if output:
                output.pop()
        elif source in (".", ".."):
            source = ""
        else:
            start = 1 if source.startswith("/") else 0
            end = source.find("/", start)
            end = len(source) if end < 0 else end
            output.append(source[:end])
            source = source[end:]
    return "".join(output)
