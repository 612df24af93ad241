"""Access-token checks at a protected resource: one request in, a verified token or a refusal out.

Spec: RFC 6750 §2.1 (Authorization header only), §3 and §3.1 (challenges, ``invalid_request``,
``invalid_token``, ``insufficient_scope``; no error code without credentials); RFC 9449 §7.1
(``DPoP`` scheme, ``algs``), §7.2 (a DPoP-bound token is never accepted as Bearer), §9 (server
nonces at a resource); RFC 9068 §4 (local validation); OIDC Core §5.3.1 (UserInfo uses it too).

A :class:`ResourceVerifier` is built from the issuer, the audience the resource answers to, a
key source (a :class:`KeySet` on the authorization server itself, or a callable returning the
issuer's public keys), a revocation check and, when DPoP is accepted, a ``DPoPVerifier``.
``authorize(request, required_scopes=...)`` runs, in order:

1. credentials: exactly one ``Authorization`` header with the ``Bearer`` or ``DPoP`` scheme
   (RFC 6750 §2.1). A token in the query or in a form body (``access_token``) is refused with
   ``invalid_request``: RFC 6750 §2.2/§2.3 methods are not supported (they leak into logs and
   caches). No credentials at all, or an unknown scheme: 401 with bare challenges;
2. the DPoP proof (``DPoP`` scheme only; ``htm``/``htu``/``ath``, nonce, replay last), with
   resource-style errors (401 + ``WWW-Authenticate: DPoP``, ``DPoP-Nonce`` for nonces);
3. the token (``core.tokens.verify_access_token``: signature, ``typ``, ``iss``, ``aud``, time,
   sender constraint, revoked ``jti``);
4. the required scopes (``insufficient_scope``, 403, naming what is needed).

The challenge carrying the error is the scheme the client used; the other accepted scheme
follows bare (RFC 9449 §7.1). Transport adapters (``authward.asgi.resource_server``, UserInfo)
turn a :class:`Refused` into bytes; nothing here knows a framework.
"""

from __future__ import annotations

import base64
import inspect
import json
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from authward.core.dpop import DPoPVerifier, ProtectedResource, VerifiedProof
from authward.core.errors import (
    BearerChallenge,
    Challenge,
    DPoPChallenge,
    InsufficientScopeError,
    InvalidRequestError,
    InvalidTokenError,
    OAuthError,
)
from authward.core.http import Request, Response, challenge_response, error_response
from authward.core.jose import (
    SIGNING_ALGORITHMS,
    JoseError,
    JsonWebKey,
    JwsAlgorithm,
    import_public_jwk,
)
from authward.core.keys import KeySet
from authward.core.scopes import format_scopes, missing
from authward.core.tokens import (
    RevocationCheck,
    Scheme,
    VerifiedAccessToken,
    never_revoked,
    verify_access_token,
)
from authward.stores.clock import Clock

if TYPE_CHECKING:
    from authward.core.server import AuthorizationServer

__all__ = [
    "AuthorizeOutcome",
    "Authorized",
    "KeyProvider",
    "KeySource",
    "Refused",
    "ResourceVerifier",
    "for_server",
    "keys_from_jwks",
]

#: How long retired keys of a ``KeySet`` stay trusted when none is given (seconds).
_DEFAULT_MAX_TOKEN_LIFETIME: Final = 3600
_NO_AUDIENCE: Final = "urn:authward:no-audience"
_QUERY_OR_FORM_TOKEN: Final = "access_token"  # noqa: S105 - a parameter name

#: A callable returning the issuer's public verification keys (sync or async), e.g. a cached
#: JWKS fetch turned into keys with :func:`keys_from_jwks`.
KeyProvider = Callable[[], Sequence[JsonWebKey] | Awaitable[Sequence[JsonWebKey]]]
KeySource = KeySet | KeyProvider


@dataclass(frozen=True, slots=True)
class Authorized:
    """The request carries a valid access token with the required scopes.

    ``scheme`` is how it was presented; ``proof`` is the verified DPoP proof (``DPoP`` only).
    """

    token: VerifiedAccessToken
    scheme: Scheme
    proof: VerifiedProof | None = None


@dataclass(frozen=True, slots=True)
class Refused:
    """The request is refused: ``response`` is the complete 400/401/403 answer (challenges,
    ``Cache-Control: no-store``, ``DPoP-Nonce`` when a nonce is needed); ``error`` is None when
    the request simply carried no credentials (bare challenges, RFC 6750 §3.1)."""

    response: Response
    error: OAuthError | None


AuthorizeOutcome = Authorized | Refused


def keys_from_jwks(jwks: Mapping[str, object]) -> tuple[JsonWebKey, ...]:
    """The public keys of a JWK Set document (``{"keys": [...]}``); unusable entries are skipped
    (RFC 7517 §5: a reader ignores keys it does not understand). ValueError when ``keys`` is not
    a list."""
    entries = jwks.get("keys")
    if not isinstance(entries, list):
        raise ValueError("a JWK Set needs a 'keys' list")
    keys: list[JsonWebKey] = []
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        try:
            keys.append(import_public_jwk(entry))
        except JoseError:
            continue
    return tuple(keys)


class ResourceVerifier:
    """Verifies the access token of a request to a protected resource (see module docstring).

    ``audience`` is the value the token's ``aud`` must contain (the resource's identifier);
    None accepts any audience and is only for resources of the authorization server itself
    (UserInfo), where the issuer's signature and the required scopes are the gate.
    ``keys`` is a ``KeySet`` (its next, active and still-live retired keys, retired keys being
    trusted for ``max_token_lifetime`` seconds) or a :data:`KeyProvider`. ``is_revoked`` is
    asked for every token that passes every other check (default: nothing is revoked, for a
    resource without access to the revocation store). ``dpop`` None means the ``DPoP`` scheme
    is not offered (no ``DPoP`` challenge; a ``DPoP``-scheme request is ``invalid_token``).
    ``realm`` goes into every challenge.
    """

    def __init__(
        self,
        *,
        issuer: str,
        audience: str | None,
        keys: KeySource,
        clock: Clock,
        is_revoked: RevocationCheck = never_revoked,
        dpop: DPoPVerifier | None = None,
        realm: str | None = None,
        algorithms: Collection[JwsAlgorithm] = SIGNING_ALGORITHMS,
        max_token_lifetime: int = _DEFAULT_MAX_TOKEN_LIFETIME,
        leeway: int = 0,
    ) -> None:
        if not issuer or audience == "":
            raise ValueError("issuer is required and audience must not be empty")
        if max_token_lifetime <= 0:
            raise ValueError("max_token_lifetime must be positive")
        self._issuer = issuer
        self._audience = audience
        self._keys = keys
        self._clock = clock
        self._is_revoked = is_revoked
        self._dpop = dpop
        self._algorithms = tuple(algorithms)
        self._max_lifetime = max_token_lifetime
        self._leeway = leeway
        self._bearer = BearerChallenge(realm=realm)
        self._site = ProtectedResource(realm=realm, other_challenges=(self._bearer,))
        self._dpop_challenge: DPoPChallenge | None = (
            None if dpop is None else DPoPChallenge(algs=dpop.algorithms, realm=realm)
        )

    @property
    def audience(self) -> str | None:
        """The audience this resource answers to (None: any)."""
        return self._audience

    def challenges(self, scheme: Scheme = "Bearer") -> tuple[Challenge, ...]:
        """Every accepted scheme's challenge, ``scheme``'s first (it carries any error code)."""
        if self._dpop_challenge is None:
            return (self._bearer,)
        if scheme == "DPoP":
            return (self._dpop_challenge, self._bearer)
        return (self._bearer, self._dpop_challenge)

    async def authorize(
        self, request: Request, *, required_scopes: Iterable[str] = ()
    ) -> AuthorizeOutcome:
        """Check ``request``'s access token (and DPoP proof) and the ``required_scopes``.

        Returns ``Authorized`` or ``Refused`` with the response to send; never raises an
        ``OAuthError``. Store or network failures (revocation check, key provider) propagate.
        """
        try:
            return await self._authorize(request, tuple(required_scopes))
        except OAuthError as error:
            return Refused(error_response(error), error)
        except _NoCredentialsError:
            return Refused(challenge_response(self.challenges()), None)

    async def _authorize(self, request: Request, required: tuple[str, ...]) -> AuthorizeOutcome:
        if _QUERY_OR_FORM_TOKEN in request.query or _QUERY_OR_FORM_TOKEN in request.form:
            raise InvalidRequestError(
                "access tokens are accepted in the Authorization header only",
                detail="access_token in the query or form",
                challenges=self.challenges(),
            )
        scheme, token = self._credentials(request)
        challenges = self.challenges(scheme)
        proof: VerifiedProof | None = None
        if scheme == "DPoP":
            if self._dpop is None:
                raise InvalidTokenError(
                    "The DPoP scheme is not supported here",
                    detail="DPoP scheme without a DPoP verifier",
                    challenges=challenges,
                )
            proof = await self._dpop.verify(request, site=self._site, access_token=token)
        verified = await verify_access_token(
            token,
            keys=await self._verification_keys(),
            issuer=self._issuer,
            audience=self._audience or _claimed_audience(token),
            now=self._clock.now(),
            scheme=scheme,
            is_revoked=self._is_revoked,
            dpop_jkt=None if proof is None else proof.jkt,
            algorithms=self._algorithms,
            leeway=self._leeway,
            challenges=challenges,
        )
        lacking = missing(required, verified.scopes)
        if lacking:
            raise InsufficientScopeError(
                "The access token lacks a required scope",
                detail=f"missing {format_scopes(lacking)}",
                challenges=challenges,
                scope=format_scopes(required),
            )
        return Authorized(token=verified, scheme=scheme, proof=proof)

    def _credentials(self, request: Request) -> tuple[Scheme, str]:
        values = request.headers.get_all("authorization")
        if not values:
            raise _NoCredentialsError
        if len(values) > 1:
            raise InvalidRequestError(
                "only one Authorization header is allowed",
                detail=f"{len(values)} Authorization headers",
                challenges=self.challenges(),
            )
        name, _, rest = values[0].strip().partition(" ")
        lowered = name.lower()
        scheme: Scheme
        if lowered == "bearer":
            scheme = "Bearer"
        elif lowered == "dpop" and self._dpop is not None:
            scheme = "DPoP"
        elif lowered == "dpop":
            raise InvalidTokenError(
                "The DPoP scheme is not supported here",
                detail="DPoP scheme without a DPoP verifier",
                challenges=self.challenges(),
            )
        else:
            raise _NoCredentialsError  # another scheme (Basic, ...) is no access token at all
        token = rest.strip()
        if not token or " " in token or not _is_token68(token):
            raise InvalidRequestError(
                f"the {scheme} credentials are malformed",
                detail="empty or not token68",
                challenges=self.challenges(scheme),
            )
        return scheme, token

    async def _verification_keys(self) -> Sequence[JsonWebKey]:
        if isinstance(self._keys, KeySet):
            return self._keys.verification_keys(
                now=self._clock.now(), max_token_lifetime=self._max_lifetime
            )
        result = self._keys()
        if inspect.isawaitable(result):
            return await result
        return result


def for_server(
    server: AuthorizationServer, *, audience: str | None = None, realm: str | None = None
) -> ResourceVerifier:
    """A verifier for a resource hosted by the authorization server itself (UserInfo, or an API
    mounted next to it): the server's own keys, issuer and clock, revocation through the code
    store (``access_token_revoked``), and DPoP when ``features.dpop`` is on.

    ``audience`` None (the default, right for UserInfo) accepts a token of this issuer
    whatever its ``aud``: tokens without a ``resource`` indicator name their client as audience,
    so no fixed value would fit them all. An API next to the server passes its identifier.
    """
    codes = server.stores.authorization_codes

    async def is_revoked(jti: str, /) -> bool:
        return await codes.access_token_revoked(jti)

    return ResourceVerifier(
        issuer=server.issuer,
        audience=audience,
        keys=server.keys,
        clock=server.clock,
        is_revoked=is_revoked,
        dpop=server.dpop_verifier() if server.settings.features.dpop else None,
        realm=realm,
        max_token_lifetime=server.max_token_lifetime,
    )


def _claimed_audience(token: str) -> str:
    """The first ``aud`` value the token claims, read WITHOUT verification.

    Only used to accept any audience: ``verify_access_token`` then checks the signed ``aud``
    contains it, which a genuine token always does and a forged one never reaches (signature).
    An unreadable token gives a value no token carries, so verification fails as it should.
    """
    parts = token.split(".")
    if len(parts) != 3:
        return _NO_AUDIENCE
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, UnicodeDecodeError):
        return _NO_AUDIENCE
    aud = payload.get("aud") if isinstance(payload, dict) else None
    if isinstance(aud, list) and aud:
        aud = aud[0]
    return aud if isinstance(aud, str) and aud else _NO_AUDIENCE


class _NoCredentialsError(Exception):
    """Internal signal: the request carries no access token (bare challenges follow)."""


_TOKEN68_EXTRA: Final = frozenset("-._~+/=")


def _is_token68(value: str) -> bool:
    """RFC 9110 §11.2 token68: ALPHA / DIGIT / ``-._~+/`` followed by ``=`` padding only."""
    body = value.rstrip("=")
    return bool(body) and all(
        (c.isascii() and c.isalnum()) or (c in _TOKEN68_EXTRA and c != "=") for c in body
    )

