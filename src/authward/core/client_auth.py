"""Client authentication at the token, PAR, revocation and introspection endpoints.

Spec: RFC 6749 §2.3 (one method per request), §2.3.1 (client_secret_basic / client_secret_post,
form-urlencoding inside Basic), §5.2 (invalid_client, 401 + WWW-Authenticate after Basic);
RFC 7617 §2 (Basic); RFC 7521 §4.2, §5.2 and RFC 7523 §2.2, §3 (private_key_jwt);
draft-ietf-oauth-rfc7523bis (audience: the issuer identifier as the sole value);
OIDC Core 1.0 §9 (``private_key_jwt``, ``none``); RFC 8725 §3.1 (explicit algorithms),
§3.11 (explicit typing); authward spec/stores.md §3.6 (assertion replay).

**Assertion audience (decision).** draft-ietf-oauth-rfc7523bis (in the RFC Editor queue) makes
the authorization server's issuer identifier the one audience value of a client assertion and
requires the server to reject a JWT without it as its *sole* audience value; the older RFC 7523
§3 / OIDC Core §9 text suggested the token endpoint URL. authward therefore accepts an ``aud``
that is the issuer identifier, as a string or a one-element array, and, for compatibility with
clients written to the older text, the token endpoint URL in the same single-value form
(``accept_token_endpoint_audience``, on by default, can switch that off). An ``aud`` with
several values is refused even when one of them matches, because the audience-injection attack
the draft closes relies on exactly that; the PAR, revocation or introspection endpoint URLs
are not accepted. ``typ`` is optional; when present it must be ``JWT`` or
``client-authentication+jwt`` so that a JWT minted for another purpose is not accepted.

Secrets are only ever handed to :meth:`ClientRegistry.verify_client_secret`; nothing in this
module logs or stores them, and no error detail contains one.

**Same work whether or not the client exists.** When a secret is presented for a client that
cannot use it (an unknown ``client_id``, or a known one registered for another method), the
registry is still asked to verify it, against a placeholder ``Client`` it did not issue, and
the answer is thrown away: the registry spends what a wrong secret costs (the default registry:
one digest compare, or one argon2 verification while it holds argon2 hashes), the failure is
counted as below, and the error is the same ``invalid_client``.

**Failure limits (decision).** With :class:`ClientAuthLimits`, failed secret authentications
(``client_secret_basic``/``client_secret_post``: wrong secret, unknown client, wrong method) are
counted per presented ``client_id`` and per source address (``Request.client_address``) in
process memory (:mod:`authward.core.failure_limits`: no database write per failure, bounded
memory). Once either budget is spent for the current window, further secret attempts of that
client id or from that address are refused before the registry is asked anything, so a flood
of wrong secrets cannot buy argon2 work. The refusal is ``invalid_client`` (RFC 6749 §5.2; 401
with the ``Basic`` challenge after a Basic attempt), not 429 with ``Retry-After``: §5.2 is the
error vocabulary every OAuth client implements for these endpoints, and ``invalid_client`` is
its answer when client authentication fails, which it does here, since the server refuses to
perform it; and the response is byte for byte the one a wrong secret gets, so the limit is no
oracle: a guesser cannot tell a spent budget from a wrong guess, or learn when the window
ends. A per-client_id budget (off by default, ``per_client``) has a cost: anyone who knows a
client_id can keep it locked by spending the budget every window (a lockout, RFC 6819
§5.1.4.2.3). The default registry therefore limits per client_id only its argon2 work, and
leaves fast digests (256-bit secrets that cannot be guessed, checked in microseconds) alone.
``private_key_jwt`` and ``none`` are not counted.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, get_args
from urllib.parse import unquote_plus

from authward.core.clients import Client, TokenEndpointAuthMethod
from authward.core.clock import Clock, SystemClock
from authward.core.errors import InvalidClientError, InvalidRequestError
from authward.core.failure_limits import FailureBudget, FailureLimiter
from authward.core.http import Request
from authward.core.jose import (
    JoseError,
    JsonWebKey,
    JwsAlgorithm,
    import_public_jwk,
    read_unverified_header,
    verify_jwt,
)
from authward.core.policy import ClientRegistry
from authward.core.ssrf import Fetched, GuardedFetcher
from authward.stores.replay import (
    CLIENT_ASSERTION_NAMESPACE,
    MAX_RAW_JTI_LENGTH,
    Replay,
    ReplayStore,
    client_assertion_jti,
)

__all__ = [
    "DEFAULT_ADDRESS_FAILURE_BUDGET",
    "DEFAULT_CLIENT_FAILURE_BUDGET",
    "DEFAULT_LOCKED_DELAY_SECONDS",
    "JWT_BEARER_ASSERTION_TYPE",
    "AssertionPolicy",
    "AuthenticatedClient",
    "ClientAuthLimits",
    "ClientAuthenticator",
]

JWT_BEARER_ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_ASSERTION_TYPS: Final = frozenset({"jwt", "client-authentication+jwt"})
_BASIC: Final = re.compile(r"basic[ \t]+([A-Za-z0-9+/]+=*)[ \t]*", re.IGNORECASE)
_MAX_ASSERTION_CHARS: Final = 16_384
_MAX_CLIENT_ID_CHARS: Final = 1_024
_SECRET_METHODS: Final = frozenset({"client_secret_basic", "client_secret_post"})

#: Failed secret authentications allowed per client_id and minute (module docstring).
DEFAULT_CLIENT_FAILURE_BUDGET: Final = FailureBudget(max_failures=20, window_seconds=60)
#: How long an attempt refused by a spent failure budget waits before it is answered.
DEFAULT_LOCKED_DELAY_SECONDS: Final = 1.0
#: Failed secret authentications allowed per source address and minute.
DEFAULT_ADDRESS_FAILURE_BUDGET: Final = FailureBudget(max_failures=20, window_seconds=60)


def _address_limiter() -> FailureLimiter:
    return FailureLimiter(DEFAULT_ADDRESS_FAILURE_BUDGET)


@dataclass(frozen=True, slots=True)
class ClientAuthLimits:
    """The failure limits of secret-based client authentication (module docstring).

    ``per_client`` counts failures per presented ``client_id``, ``per_address`` per
    ``Request.client_address`` (requests without one are counted per client_id only); ``None``
    switches that limit off. Build one per process and hand the same one to every
    authenticator: the counts live in these limiters. An attempt refused because a budget is
    spent is answered after ``locked_delay_seconds`` (default one second, at most the time the
    budget has left): a source that floods wrong secrets then gets one answer per second per
    connection, and its refusals stop costing the event loop what the other clients need.
    Defaults: 20 failures per minute per
    address, and no per-client_id limit here: a per-client_id lock lets anyone who knows a
    client_id lock it out, so the default registry limits per client only its argon2 work
    (``FileClientRegistry``), where a recently verified secret still passes.
    """

    per_client: FailureLimiter | None = None
    per_address: FailureLimiter | None = field(default_factory=_address_limiter)
    locked_delay_seconds: float = DEFAULT_LOCKED_DELAY_SECONDS

    def __post_init__(self) -> None:
        if not 0 <= self.locked_delay_seconds <= 60:
            raise ValueError("locked_delay_seconds must be between 0 and 60")

    def retry_after(self, client_id: str, address: str | None, now: float) -> int | None:
        """Seconds until the attempt may be tried again when a budget is spent, else None."""
        longest: int | None = None
        for limiter, key in ((self.per_client, client_id), (self.per_address, address)):
            if limiter is None or key is None:
                continue
            wait = limiter.retry_after(key, now)
            if wait is not None and (longest is None or wait > longest):
                longest = wait
        return longest

    def fail(self, client_id: str, address: str | None, now: float) -> None:
        """Count one failed secret authentication of ``client_id`` from ``address``."""
        if self.per_client is not None:
            self.per_client.fail(client_id, now)
        if self.per_address is not None and address is not None:
            self.per_address.fail(address, now)


@dataclass(frozen=True, slots=True)
class AuthenticatedClient:
    """The outcome of a successful client authentication: who, and by which method."""

    client: Client
    method: TokenEndpointAuthMethod


@dataclass(frozen=True, slots=True)
class AssertionPolicy:
    """How ``private_key_jwt`` assertions are judged.

    ``issuer`` is this server's issuer identifier (always an accepted audience);
    ``token_endpoint`` is accepted too while ``accept_token_endpoint_audience`` is on.
    ``max_lifetime_seconds`` bounds ``exp - iat`` (``exp - now`` without ``iat``);
    ``leeway_seconds`` is the clock skew allowed on ``exp``, ``iat`` and ``nbf``. The client's
    ``jwks_uri`` is fetched with ``jwks_max_bytes`` and ``jwks_timeout_seconds``.
    """

    issuer: str
    token_endpoint: str | None = None
    accept_token_endpoint_audience: bool = True
    max_lifetime_seconds: int = 300
    leeway_seconds: int = 30
    algorithms: tuple[JwsAlgorithm, ...] = get_args(JwsAlgorithm)
    jwks_max_bytes: int = 65_536
    jwks_timeout_seconds: float = 5.0

    def __post_init__(self) -> None:
        if not self.issuer:
            raise ValueError("issuer is required")
        if self.max_lifetime_seconds <= 0:
            raise ValueError("max_lifetime_seconds must be positive")
        if not 0 <= self.leeway_seconds <= 300:
            raise ValueError("leeway_seconds must be between 0 and 300")
        if not self.algorithms:
            raise ValueError("algorithms must not be empty")

    def audiences(self) -> frozenset[str]:
        """The audience values a client assertion may carry (as its sole value)."""
        accepted = {self.issuer}
        if self.token_endpoint is not None and self.accept_token_endpoint_audience:
            accepted.add(self.token_endpoint)
        return frozenset(accepted)


@dataclass(frozen=True, slots=True)
class _Presented:
    """The credentials found in one request, before any lookup."""

    method: TokenEndpointAuthMethod
    client_id: str
    secret: str | None = None
    assertion: str | None = None


class ClientAuthenticator:
    """Authenticates the client of one request with exactly one method.

    Methods: ``client_secret_basic``, ``client_secret_post``, ``private_key_jwt`` and ``none``
    (public clients: ``client_id`` only). The method used must be the client's registered
    ``token_endpoint_auth_method``. ``fetcher`` is needed only for clients with a ``jwks_uri``;
    ``basic_realm`` names the realm of the Basic challenge sent after a failed Basic attempt.
    """

    def __init__(
        self,
        *,
        registry: ClientRegistry,
        replay: ReplayStore,
        policy: AssertionPolicy,
        fetcher: GuardedFetcher | None = None,
        clock: Clock | None = None,
        basic_realm: str = "authward",
        limits: ClientAuthLimits | None = None,
    ) -> None:
        self._registry = registry
        self._limits = limits
        self._replay = replay
        self._policy = policy
        self._fetcher = fetcher
        self._clock: Clock = clock or SystemClock()
        self._realm = basic_realm
        InvalidClientError(basic_realm=basic_realm)  # validates the realm once, at build time

    async def authenticate(self, request: Request) -> AuthenticatedClient:
        """Authenticate the client of ``request`` or raise.

        Raises ``InvalidRequestError`` when two methods are presented at once (RFC 6749
        §2.3), a parameter repeats, or an assertion comes without its type (or the reverse);
        ``InvalidClientError`` for everything else: no credentials, unknown client, a method
        other than the registered one, a wrong secret, or an assertion that fails any check
        (signature, ``iss``/``sub``/``aud``, ``exp``/``iat``/``nbf``, lifetime, ``jti``, replay),
        and a secret attempt while a failure budget is spent (no verification then).
        After a Basic attempt the error is 401 with ``WWW-Authenticate: Basic``.
        """
        presented = self._presented(request)
        basic = presented.method == "client_secret_basic"
        address = request.client_address
        if presented.method in _SECRET_METHODS and self._limits is not None:
            wait = self._limits.retry_after(presented.client_id, address, self._clock.now())
            if wait is not None:
                delay = min(float(wait), self._limits.locked_delay_seconds)
                if delay > 0:
                    await asyncio.sleep(delay)
                raise self._fail(
                    "client authentication failed", f"failure limit, {wait}s left", basic=basic
                )
        client = await self._registry.get_client(presented.client_id)
        if client is None:
            await self._spend_like_a_wrong_secret(presented, address)
            raise self._fail("client authentication failed", "unknown client", basic=basic)
        if client.token_endpoint_auth_method != presented.method:
            await self._spend_like_a_wrong_secret(presented, address)
            raise self._fail(
                "client authentication failed",
                f"used {presented.method}, registered {client.token_endpoint_auth_method}",
                basic=basic,
            )
        if presented.method in _SECRET_METHODS:
            secret = presented.secret or ""
            if not await self._registry.verify_client_secret(client, secret):
                self._count_failure(presented, address)
                raise self._fail("client authentication failed", "wrong secret", basic=basic)
        elif presented.method == "private_key_jwt":
            assert presented.assertion is not None
            await self._verify_assertion(client, presented.assertion)
        return AuthenticatedClient(client=client, method=presented.method)

    async def _spend_like_a_wrong_secret(self, presented: _Presented, address: str | None) -> None:
        """For a secret that no client can match: the registry's placeholder check (answer
        ignored) and one counted failure, as a wrong secret would cost (module docstring)."""
        if presented.method not in _SECRET_METHODS:
            return
        placeholder = _placeholder_client(presented.client_id, presented.method)
        await self._registry.verify_client_secret(placeholder, presented.secret or "")
        self._count_failure(presented, address)

    def _count_failure(self, presented: _Presented, address: str | None) -> None:
        if self._limits is not None:
            self._limits.fail(presented.client_id, address, self._clock.now())

    # --- reading the request ---------------------------------------------------------------

    def _presented(self, request: Request) -> _Presented:
        form = request.form
        header = request.headers.get_one("authorization")
        basic = header is not None and header.lstrip().lower().startswith("basic")
        form_client_id = form.get_one("client_id")
        secret = form.get_one("client_secret")
        assertion = form.get_one("client_assertion")
        assertion_type = form.get_one("client_assertion_type")
        used = [
            name
            for name, present in (
                ("Authorization: Basic", basic),
                ("client_secret", secret is not None),
                ("client_assertion", assertion is not None or assertion_type is not None),
            )
            if present
        ]
        if len(used) > 1:
            raise InvalidRequestError(
                "only one client authentication method may be used",
                detail=f"presented {', '.join(used)}",
            )
        if basic:
            assert header is not None
            client_id, basic_secret = self._parse_basic(header)
            if form_client_id is not None and form_client_id != client_id:
                raise InvalidRequestError("client_id differs from the Authorization header")
            return _Presented("client_secret_basic", client_id, secret=basic_secret)
        if assertion is not None or assertion_type is not None:
            if assertion is None or assertion_type is None:
                raise InvalidRequestError(
                    "client_assertion and client_assertion_type go together"
                )
            if assertion_type != JWT_BEARER_ASSERTION_TYPE:
                raise InvalidClientError(
                    "unsupported client_assertion_type", detail="not jwt-bearer"
                )
            if len(assertion) > _MAX_ASSERTION_CHARS:
                raise InvalidClientError("client assertion too large")
            subject = _unverified_subject(assertion)
            if form_client_id is not None and form_client_id != subject:
                raise InvalidClientError(
                    "client_id does not match the client assertion", detail="client_id != sub"
                )
            return _Presented("private_key_jwt", subject, assertion=assertion)
        if form_client_id is None:
            raise InvalidClientError("client authentication required", detail="no credentials")
        _check_client_id(form_client_id, basic=None)
        if secret is not None:
            return _Presented("client_secret_post", form_client_id, secret=secret)
        return _Presented("none", form_client_id)

    def _parse_basic(self, header: str) -> tuple[str, str]:
        """RFC 6749 §2.3.1: base64(urlencode(id) ":" urlencode(secret)), decoded strictly."""
        match = _BASIC.fullmatch(header.strip())
        if match is None:
            raise self._malformed("no token68")
        try:
            decoded = base64.b64decode(match.group(1), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise self._malformed("not base64/UTF-8") from None
        encoded_id, colon, encoded_secret = decoded.partition(":")
        if not colon:
            raise self._malformed("no ':' separator")
        try:
            client_id = unquote_plus(encoded_id, errors="strict")
            secret = unquote_plus(encoded_secret, errors="strict")
        except UnicodeDecodeError:
            raise self._malformed("bad percent-encoding") from None
        if not client_id:
            raise self._malformed("empty client_id")
        _check_client_id(client_id, basic=self._realm)
        return client_id, secret

    def _malformed(self, detail: str) -> InvalidClientError:
        return self._fail("malformed Basic credentials", detail, basic=True)

    def _fail(self, description: str, detail: str, *, basic: bool) -> InvalidClientError:
        return InvalidClientError(
            description, detail=detail, basic_realm=self._realm if basic else None
        )

    # --- private_key_jwt -------------------------------------------------------------------

    async def _verify_assertion(self, client: Client, assertion: str) -> None:
        policy = self._policy
        keys = await self._client_keys(client)
        try:
            header = read_unverified_header(assertion)
            verified = verify_jwt(assertion, keys, algorithms=policy.algorithms)
        except JoseError as error:
            raise InvalidClientError(
                "client assertion is invalid", detail=f"assertion {error.reason}"
            ) from None
        typ = header.get("typ")
        if typ is not None and (
            not isinstance(typ, str) or _media_subtype(typ) not in _ASSERTION_TYPS
        ):
            raise InvalidClientError("client assertion is invalid", detail=f"typ {typ!r}")
        claims = verified.claims
        now = self._clock.now()
        jti = self._check_claims(client.client_id, claims, now=now)
        exp = claims["exp"]
        assert isinstance(exp, int | float)
        ttl = max(1, math.ceil(exp + policy.leeway_seconds - now))
        outcome = await self._replay.check_and_record(
            CLIENT_ASSERTION_NAMESPACE, client_assertion_jti(client.client_id, jti), ttl, now=now
        )
        if isinstance(outcome, Replay):
            raise InvalidClientError(
                "client assertion was already used", detail="assertion jti replayed"
            )

    def _check_claims(self, client_id: str, claims: Mapping[str, object], *, now: float) -> str:
        """Check iss, sub, aud, exp, iat, nbf, lifetime and jti; return the jti."""
        policy = self._policy
        leeway = policy.leeway_seconds

        def refuse(detail: str) -> InvalidClientError:
            return InvalidClientError("client assertion is invalid", detail=detail)

        if claims.get("iss") != client_id:
            raise refuse("iss is not the client_id")
        if claims.get("sub") != client_id:
            raise refuse("sub is not the client_id")
        aud = claims.get("aud")
        sole = aud[0] if isinstance(aud, list) and len(aud) == 1 else aud
        if not isinstance(sole, str) or sole not in policy.audiences():
            raise refuse("aud is not this server as the sole audience")
        exp = claims.get("exp")
        if not _is_number(exp):
            raise refuse("exp missing or not a number")
        assert isinstance(exp, int | float)
        if now >= exp + leeway:
            raise refuse("expired")
        times: dict[str, float] = {}
        for name in ("iat", "nbf"):
            value = claims.get(name)
            if value is None:
                continue
            if not _is_number(value):
                raise refuse(f"{name} is not a number")
            assert isinstance(value, int | float)
            if value > now + leeway:
                raise refuse(f"{name} is in the future")
            times[name] = float(value)
        start = times.get("iat", now)
        if exp - start > policy.max_lifetime_seconds:
            raise refuse("lifetime exceeds the maximum")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise refuse("jti missing")
        if len(client_assertion_jti(client_id, jti)) > MAX_RAW_JTI_LENGTH:
            raise refuse("jti too long")
        return jti

    async def _client_keys(self, client: Client) -> Sequence[JsonWebKey]:
        if client.jwks is not None:
            return _import_keys(client.jwks)
        if client.jwks_uri is None:
            raise InvalidClientError("client has no keys", detail="no jwks or jwks_uri")
        if self._fetcher is None:
            raise InvalidClientError(
                "client keys unavailable", detail="jwks_uri set but no fetcher configured"
            )
        outcome = await self._fetcher.get_json(
            client.jwks_uri,
            max_bytes=self._policy.jwks_max_bytes,
            timeout_seconds=self._policy.jwks_timeout_seconds,
        )
        if not isinstance(outcome, Fetched):
            raise InvalidClientError(
                "client keys unavailable",
                detail=f"jwks_uri fetch failed: {outcome.kind} {outcome!r}",
            )
        try:
            document = json.loads(outcome.body)
        except (ValueError, UnicodeDecodeError):
            raise InvalidClientError(
                "client keys unavailable", detail="jwks_uri is not JSON"
            ) from None
        entries = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(entries, list):
            raise InvalidClientError("client keys unavailable", detail="jwks_uri has no keys")
        return _import_keys(entry for entry in entries if isinstance(entry, dict))


def _import_keys(entries: Iterable[Mapping[str, object]]) -> list[JsonWebKey]:
    """Import the usable public signature keys; others (enc, symmetric, private) are skipped."""
    keys: list[JsonWebKey] = []
    for entry in entries:
        try:
            keys.append(import_public_jwk(entry))
        except JoseError:
            continue
    return keys


def _unverified_subject(assertion: str) -> str:
    """The ``sub`` of an assertion's payload, read WITHOUT verification, to find the client."""
    parts = assertion.split(".")
    if len(parts) != 3:
        raise InvalidClientError("client assertion is invalid", detail="not a compact JWS")
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error):
        raise InvalidClientError(
            "client assertion is invalid", detail="payload is not base64url JSON"
        ) from None
    subject = payload.get("sub") if isinstance(payload, dict) else None
    if not isinstance(subject, str) or not subject:
        raise InvalidClientError("client assertion is invalid", detail="sub missing")
    _check_client_id(subject, basic=None)
    return subject


def _check_client_id(client_id: str, *, basic: str | None) -> None:
    if len(client_id) > _MAX_CLIENT_ID_CHARS:
        raise InvalidClientError(
            "client authentication failed", detail="client_id too long", basic_realm=basic
        )


def _media_subtype(typ: str) -> str:
    lowered = typ.strip().lower()
    return lowered.removeprefix("application/")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@functools.lru_cache(maxsize=1024)
def _placeholder_client(client_id: str, method: TokenEndpointAuthMethod) -> Client:
    """The record an unknown client_id is checked against (never issued by any registry).
    Cached: building a ``Client`` costs microseconds that a known client's path does not
    spend, and a prober asking about one id again and again must see the same time."""
    return Client(client_id, "confidential", method)
