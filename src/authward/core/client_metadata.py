"""Client ID Metadata Documents: an https URL used as ``client_id`` names its own registration.

Spec: draft-ietf-oauth-client-id-metadata-document-01 §3 (the client identifier URL), §4
(fetching: 200 only, JSON content type, no redirects; the document's ``client_id`` equals the
URL; no shared secrets), §4.3 (discovery errors abort the request), §4.4 (caching), §6.1
(redirect URIs), §6.5 (SSRF), §6.6 (response size); authward spec/stores.md §3.8 (resolver order,
freshness), §5.1 (URL grammar and host policy), §5.2 (fetch, document validation and use) and
project decision 4 (at most 255 characters); RFC 6749 §2.3, §4.1.2.1 (an untrusted client is
answered directly, never by redirect), §5.2 (``invalid_client``); RFC 7591 §2 (metadata names;
``jwks`` and ``jwks_uri`` are exclusive); RFC 7517 §4, §6.3.2 (private key members).

Resolution, in this order (the first failure wins and is a typed :class:`Refused`):

1. the URL grammar (:func:`check_client_id_url`);
2. the host allow and block lists (:func:`host_allowed`);
3. the cache (only validated documents are ever cached, so a hit is trusted), then this
   process's memory of recent failures (``failure_cache_seconds``: a broken client id is
   fetched at most once per that many seconds);
4. on a miss, the SSRF-guarded fetch (``GuardedFetcher.get_json``: size and time limits, no
   redirects, JSON content type, special-use addresses refused before any connection), one
   per URL at a time in each process (concurrent requests for the same uncached client id
   share one fetch);
5. the JSON object decode and :func:`validate_document`;
6. the cache put, fresh for the response's ``Cache-Control``/``Expires`` lifetime clamped to
   ``cache_ttl_bounds`` (``no-store`` and ``no-cache`` cache for the minimum bound, to cap the
   outbound fan-out: a stated deviation from RFC 9111);
7. the conversion to a :class:`~authward.core.clients.Client` (:func:`to_client`).

Development and tests only: with ``allow_loopback`` an ``http`` URL whose host is a loopback
literal (127.0.0.0/8, ``[::1]``) or ``localhost`` passes the grammar, and the fetcher admits
loopback addresses (never private, link-local, CGNAT or any other special-use class).

:class:`ClientMetadataRegistry` puts this in front of the host's ``ClientRegistry``: ids that
pass the grammar (feature enabled) are CIMD clients, everything else goes to the host unchanged.
A refusal is an ``invalid_client`` error whose description names the reason code; the detail
(and the ``client_metadata.refused`` event) adds what only an operator should see, never a
secret.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from ipaddress import ip_address
from typing import Final, Literal, TypeAlias, cast
from urllib.parse import unquote, urlsplit

from authward.core import redirects
from authward.core.cache_freshness import cache_expires_at
from authward.core.clients import Client, TokenEndpointAuthMethod
from authward.core.clock import Clock
from authward.core.config import ClientIdMetadataSettings
from authward.core.errors import InvalidClientError, OAuthError
from authward.core.jose import SigningAlgorithm
from authward.core.policy import ClientRegistry, Event, EventSink
from authward.core.scopes import is_scope_token
from authward.core.ssrf import Fetched, FetchFailure, GuardedFetcher, UnexpectedStatus
from authward.stores.client_metadata import (
    MAX_URL_LENGTH,
    ClientMetadata,
    ClientMetadataCache,
    Hit,
)
from authward.stores.json import JsonValue

__all__ = [
    "BASIC_REALM",
    "CIMD_GRANT_TYPES",
    "ClientMetadataRegistry",
    "ClientMetadataResolver",
    "DocumentReason",
    "RefusalKind",
    "Refused",
    "Resolved",
    "UrlReason",
    "check_client_id_url",
    "declared_scopes",
    "host_allowed",
    "normalize_host",
    "same_origin",
    "to_client",
    "validate_document",
]

UrlReason = Literal[
    "too_long", "not_a_url", "not_https", "no_path", "has_fragment", "has_userinfo",
    "dot_segments",
]
DocumentReason = Literal[
    "client_id_mismatch",
    "symmetric_secret",
    "symmetric_auth_method",
    "invalid_redirect_uris",
    "invalid_metadata",
    "jwks_private_key",
    "jwks_symmetric_key",
    "unsupported_auth_method",
    "missing_keys",
]
RefusalKind = Literal[
    "invalid_client_id", "blocked_host", "fetch", "invalid_json", "invalid_document"
]

#: The grant types a CIMD client may use; others in its document are ignored.
CIMD_GRANT_TYPES: Final = ("authorization_code", "refresh_token")
#: Auth methods that need a shared secret, which a public document cannot carry (draft §4.1).
_SYMMETRIC_METHODS: Final = frozenset(
    {"client_secret_basic", "client_secret_post", "client_secret_jwt"}
)
_CIMD_METHODS: Final[tuple[TokenEndpointAuthMethod, ...]] = ("none", "private_key_jwt")
_LIST_MEMBERS: Final = ("grant_types", "response_types", "contacts")
_STRING_MEMBERS: Final = (
    "scope", "client_name", "client_uri", "logo_uri", "jwks_uri", "token_endpoint_auth_method",
    "id_token_signed_response_alg",
)
#: JWK members that only a private key has (RFC 7518 §6.2.2, §6.3.2, RFC 8037 §2).
_PRIVATE_JWK_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth"})
_LOOPBACK_NAMES: Final = frozenset({"localhost"})
_DEFAULT_PORTS: Final = {"https": 443, "http": 80}
#: The realm of the ``Basic`` challenge on a 401 at the token and PAR endpoints (the same realm
#: ``ClientAuthenticator`` uses by default).
BASIC_REALM: Final = "authward"
_MAX_DETAIL_CHARS: Final = 200


# --- outcomes --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Refused:
    """A CIMD ``client_id`` that cannot be used.

    ``kind`` is the spec's error kind; ``reason`` the reason code within it (a grammar or
    document reason, the fetch failure kind or ``status_<n>``; equal to ``kind`` for
    ``blocked_host`` and ``invalid_json``). ``detail`` adds what only the operator should see (the
    blocked host or address, the status, the transport error); it never holds a secret.
    """

    kind: RefusalKind
    reason: str
    detail: str = ""

    @property
    def code(self) -> str:
        """``kind:reason`` (or just ``kind`` when they coincide): the client-facing code."""
        return self.kind if self.reason == self.kind else f"{self.kind}:{self.reason}"


@dataclass(frozen=True, slots=True)
class Resolved:
    """A usable CIMD client; ``fetched`` is False when it came from the cache or from a fetch
    another request started (only the request that fetched reports the fetch)."""

    client: Client
    metadata: ClientMetadata
    fetched: bool


ResolveOutcome: TypeAlias = Resolved | Refused


# --- §5.1 the client_id URL grammar and the host policy ---------------------------------------


def _is_loopback_host(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def check_client_id_url(url: str, *, allow_loopback: bool = False) -> UrlReason | None:
    """``None`` when ``url`` is a CIMD ``client_id``, else the first failing reason.

    In order: at most 255 characters (``too_long``); a URL with a host (``not_a_url``);
    ``https`` (``not_https``; with ``allow_loopback``, ``http`` to a loopback literal or
    ``localhost`` also passes); a path other than "" and "/" (``no_path``); no fragment
    (``has_fragment``); no userinfo (``has_userinfo``); no "." or ".." path segment, also when
    percent-encoded (``dot_segments``). A query is allowed.
    """
    if len(url) > MAX_URL_LENGTH:
        return "too_long"
    if "//" not in url:  # no authority, so no host: the common case of a plain client_id
        return "not_a_url"
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return "not_a_url"
    if not parts.scheme or not host or any(ch.isspace() or ord(ch) < 0x21 for ch in url):
        return "not_a_url"
    scheme = parts.scheme.lower()
    if scheme != "https" and not (
        allow_loopback and scheme == "http" and _is_loopback_host(host)
    ):
        return "not_https"
    if parts.path in ("", "/"):
        return "no_path"
    if "#" in url:
        return "has_fragment"
    if "@" in parts.netloc:
        return "has_userinfo"
    if any(unquote(segment) in (".", "..") for segment in parts.path.split("/")):
        return "dot_segments"
    return None


def looks_like_url(client_id: str) -> bool:
    """True for an id written as an http(s) URL (a would-be CIMD client)."""
    lowered = client_id[:8].lower()
    return lowered.startswith(("https://", "http://"))


def normalize_host(host: str) -> str:
    """A host as the lists compare it: no brackets, lower-case, IDNA (ASCII), no trailing dot.

    A leading ``*.`` (a list wildcard) is kept. A name IDNA cannot encode is returned
    lower-cased as it is (it then matches only an identical list entry).
    """
    name = host.strip().strip("[]").lower().rstrip(".")
    wildcard = name.startswith("*.")
    if wildcard:
        name = name[2:]
    try:
        ascii_name = name.encode("idna").decode("ascii") if name else name
    except UnicodeError:
        ascii_name = name
    return ("*." if wildcard else "") + ascii_name


def _matches(host: str, entry: str) -> bool:
    pattern = normalize_host(entry)
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return host == pattern


def host_allowed(host: str, settings: ClientIdMetadataSettings) -> bool:
    """Whether the host lists admit ``host`` (compared after :func:`normalize_host`).

    A host in ``blocked_hosts`` is refused; with ``allowed_hosts`` a list, a host not in it is
    refused (so an empty list refuses every host); ``None`` admits any host the SSRF guard
    admits. An entry ``*.example.com`` matches every subdomain of ``example.com``, not the name
    itself.
    """
    name = normalize_host(host)
    if any(_matches(name, entry) for entry in settings.blocked_hosts):
        return False
    allowed = settings.allowed_hosts
    return allowed is None or any(_matches(name, entry) for entry in allowed)


# --- §5.2 document validation ----------------------------------------------------------------


def _string_list(value: JsonValue) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _redirect_uri_ok(uri: str) -> bool:
    if not uri or "\\" in uri:
        return False
    try:
        redirects.check_syntax(uri)
    except OAuthError:
        return False
    return True


def _jwks_reason(jwks: Mapping[str, JsonValue]) -> DocumentReason | None:
    keys = jwks.get("keys")
    if not isinstance(keys, list) or not all(isinstance(key, Mapping) for key in keys):
        return "invalid_metadata"
    for key in keys:
        assert isinstance(key, Mapping)
        if key.get("kty") == "oct" or "k" in key:
            return "jwks_symmetric_key"
        if _PRIVATE_JWK_MEMBERS & set(key):
            return "jwks_private_key"
    return None


def validate_document(
    url: str, document: Mapping[str, JsonValue]
) -> ClientMetadata | DocumentReason:
    """The validated, normalised metadata of ``document`` fetched from ``url``, or a reason.

    Checks in order, first failure wins: ``client_id`` equals ``url`` exactly
    (``client_id_mismatch``); no ``client_secret``/``client_secret_expires_at``
    (``symmetric_secret``); no secret-based ``token_endpoint_auth_method``
    (``symmetric_auth_method``); ``redirect_uris`` a non-empty list of absolute URIs without
    fragment, whitespace or backslash (``invalid_redirect_uris``); the known optional members
    of the right shape, ``jwks`` and ``jwks_uri`` not both (``invalid_metadata``); no symmetric
    or private key in ``jwks`` (``jwks_symmetric_key``, ``jwks_private_key``); the auth method
    ``none`` or ``private_key_jwt`` (``unsupported_auth_method``); ``private_key_jwt`` with
    ``jwks`` or ``jwks_uri`` (``missing_keys``). ``null`` counts as absent; unknown members are
    dropped. The result holds ``client_id``, ``redirect_uris`` and the optional members present.
    """
    if document.get("client_id") != url:
        return "client_id_mismatch"
    if document.get("client_secret") is not None or (
        document.get("client_secret_expires_at") is not None
    ):
        return "symmetric_secret"
    method = document.get("token_endpoint_auth_method")
    if isinstance(method, str) and method in _SYMMETRIC_METHODS:
        return "symmetric_auth_method"
    uris = document.get("redirect_uris")
    if (
        not isinstance(uris, list)
        or not uris
        or not all(isinstance(uri, str) and _redirect_uri_ok(uri) for uri in uris)
    ):
        return "invalid_redirect_uris"
    normalised: dict[str, JsonValue] = {"client_id": url, "redirect_uris": list(uris)}
    for name in _LIST_MEMBERS:
        value = document.get(name)
        if value is None:
            continue
        if not _string_list(value):
            return "invalid_metadata"
        normalised[name] = value
    for name in _STRING_MEMBERS:
        value = document.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            return "invalid_metadata"
        normalised[name] = value
    jwks = document.get("jwks")
    if jwks is not None:
        if not isinstance(jwks, Mapping):
            return "invalid_metadata"
        normalised["jwks"] = jwks
    if "jwks" in normalised and "jwks_uri" in normalised:
        return "invalid_metadata"
    if isinstance(jwks, Mapping):
        key_reason = _jwks_reason(jwks)
        if key_reason is not None:
            return key_reason
    chosen = normalised.get("token_endpoint_auth_method", "none")
    if chosen not in _CIMD_METHODS:
        return "unsupported_auth_method"
    if chosen == "private_key_jwt" and "jwks" not in normalised and "jwks_uri" not in normalised:
        return "missing_keys"
    return normalised


def declared_scopes(metadata: Mapping[str, JsonValue]) -> tuple[str, ...]:
    """The document's ``scope`` split on whitespace; ``()`` if absent, blank or not a string."""
    scope = metadata.get("scope")
    if not isinstance(scope, str):
        return ()
    return tuple(dict.fromkeys(scope.split()))


def same_origin(uri: str, client_id: str) -> bool:
    """True when ``uri`` has the scheme, host and effective port of ``client_id`` (an explicit
    default port equals an omitted one)."""
    try:
        a, b = urlsplit(uri), urlsplit(client_id)
        ports = (
            a.port or _DEFAULT_PORTS.get(a.scheme.lower()),
            b.port or _DEFAULT_PORTS.get(b.scheme.lower()),
        )
    except ValueError:
        return False
    return (
        a.scheme.lower() == b.scheme.lower()
        and a.hostname is not None
        and a.hostname == b.hostname
        and ports[0] == ports[1]
    )


def to_client(metadata: Mapping[str, JsonValue], *, require_same_origin: bool) -> Client | None:
    """The ``Client`` a validated document describes, or ``None`` if it cannot be one.

    ``none`` makes a public client (PKCE is its only proof; the server forces S256 for every
    client); ``private_key_jwt`` a confidential one with the document's ``jwks`` or
    ``jwks_uri``. Grant types are limited to :data:`CIMD_GRANT_TYPES` (default
    ``authorization_code``), response types to ``code``. Declared scopes bound what the client
    may ask for. With ``require_same_origin`` only the redirect URIs sharing the ``client_id``
    URL's origin are kept, so any other is refused like an unregistered one.
    """
    client_id = metadata.get("client_id")
    uris = metadata.get("redirect_uris")
    if not isinstance(client_id, str) or not _string_list(uris):
        return None
    assert isinstance(uris, list)
    redirect_uris = tuple(
        uri for uri in uris
        if isinstance(uri, str) and (not require_same_origin or same_origin(uri, client_id))
    )
    method = metadata.get("token_endpoint_auth_method", "none")
    grants_value = metadata.get("grant_types")
    grants = (
        tuple(g for g in grants_value if isinstance(g, str) and g in CIMD_GRANT_TYPES)
        if isinstance(grants_value, list)
        else ("authorization_code",)
    )
    responses_value = metadata.get("response_types")
    responses = (
        tuple(r for r in responses_value if r == "code")
        if isinstance(responses_value, list)
        else ("code",)
    )
    scopes = tuple(s for s in declared_scopes(metadata) if is_scope_token(s))
    jwks = metadata.get("jwks")
    jwks_uri = metadata.get("jwks_uri")
    name = metadata.get("client_name")
    id_token_alg = cast(SigningAlgorithm | None, _str(metadata.get("id_token_signed_response_alg")))
    keys: tuple[Mapping[str, object], ...] | None = None
    if isinstance(jwks, Mapping):
        raw_keys = jwks.get("keys")
        if isinstance(raw_keys, list):
            keys = tuple(dict(k) for k in raw_keys if isinstance(k, Mapping))
    try:
        if method == "private_key_jwt":
            return Client(
                client_id, "confidential", "private_key_jwt",
                redirect_uris=redirect_uris, grant_types=grants, response_types=responses,
                scope=scopes, jwks=keys, jwks_uri=None if keys else _str(jwks_uri),
                client_name=_str(name), id_token_signed_response_alg=id_token_alg,
            )
        if method == "none":
            return Client(
                client_id, "public", "none",
                redirect_uris=redirect_uris, grant_types=grants, response_types=responses,
                scope=scopes, client_name=_str(name), id_token_signed_response_alg=id_token_alg,
            )
    except ValueError:
        return None
    return None


def _str(value: JsonValue) -> str | None:
    return value if isinstance(value, str) and value else None


# --- the resolver ----------------------------------------------------------------------------


class ClientMetadataResolver:
    """Resolve a CIMD ``client_id`` URL to a ``Client`` (grammar, hosts, cache, fetch, validate).

    ``fetcher`` is the server's guarded fetcher; the ``allow_loopback`` setting derives the one
    used here. ``cache`` holds only validated documents.
    """

    def __init__(
        self,
        settings: ClientIdMetadataSettings,
        *,
        cache: ClientMetadataCache,
        fetcher: GuardedFetcher,
        clock: Clock,
    ) -> None:
        self._settings = settings
        self._cache = cache
        self._fetcher = fetcher.with_loopback(settings.allow_loopback)
        self._clock = clock
        #: URL -> the fetch in flight for it (single flight within this process).
        self._in_flight: dict[str, asyncio.Future[ResolveOutcome]] = {}
        #: URL -> (until, refusal): recent failures, oldest first, at most _MAX_FAILURES.
        self._failures: dict[str, tuple[float, Refused]] = {}

    @property
    def is_enabled(self) -> bool:
        """Whether the feature is switched on."""
        return self._settings.enabled

    def is_cimd(self, client_id: str) -> bool:
        """True when the feature is on and ``client_id`` passes the URL grammar."""
        return self._settings.enabled and self.grammar(client_id) is None

    def grammar(self, client_id: str) -> UrlReason | None:
        """The grammar reason for ``client_id`` under this resolver's loopback setting."""
        return check_client_id_url(client_id, allow_loopback=self._settings.allow_loopback)

    async def resolve(self, url: str) -> ResolveOutcome:
        """Resolve ``url`` in the module's order; every failure is a :class:`Refused`."""
        settings = self._settings
        reason = self.grammar(url)
        if reason is not None:
            return Refused("invalid_client_id", reason)
        host = urlsplit(url).hostname or ""
        if not host_allowed(host, settings):
            return Refused("blocked_host", "blocked_host", detail=normalize_host(host))
        now = self._clock.now()
        cached = await self._cache.get(url, now=now)
        if isinstance(cached, Hit):
            client = self._client(cached.metadata)
            if client is not None:
                return Resolved(client, cached.metadata, fetched=False)
        failed = self._failures.get(url)
        if failed is not None:
            if failed[0] > now:
                return failed[1]
            del self._failures[url]
        flight = self._in_flight.get(url)
        joined = flight is not None
        if flight is None:
            flight = asyncio.ensure_future(self._fetch_and_remember(url))
            self._in_flight[url] = flight
            flight.add_done_callback(lambda _done: self._in_flight.pop(url, None))
        # Shielded: a waiter that is cancelled (its client went away) must not cancel the
        # fetch the other waiters share.
        outcome = await asyncio.shield(flight)
        if joined and isinstance(outcome, Resolved):
            return replace(outcome, fetched=False)
        return outcome

    async def _fetch_and_remember(self, url: str) -> ResolveOutcome:
        outcome = await self._fetch(url)
        seconds = self._settings.failure_cache_seconds
        if isinstance(outcome, Refused) and seconds > 0:
            if len(self._failures) >= _MAX_FAILURES:
                del self._failures[next(iter(self._failures))]
            self._failures[url] = (self._clock.now() + seconds, outcome)
        return outcome

    async def _fetch(self, url: str) -> ResolveOutcome:
        settings = self._settings
        fetched = await self._fetcher.get_json(
            url,
            max_bytes=settings.max_document_bytes,
            timeout_seconds=settings.request_timeout_ms / 1000,
        )
        if not isinstance(fetched, Fetched):
            return _fetch_refusal(fetched)
        try:
            document = json.loads(fetched.body, parse_constant=_no_constant)
        except (ValueError, RecursionError):
            return Refused("invalid_json", "invalid_json")
        if not isinstance(document, dict):
            return Refused("invalid_json", "invalid_json", detail="not a JSON object")
        validated = validate_document(url, document)
        if isinstance(validated, str):
            return Refused("invalid_document", validated)
        client = self._client(validated)
        if client is None:
            return Refused("invalid_document", "invalid_metadata", detail="not a usable client")
        now = self._clock.now()
        expires_at = cache_expires_at(
            fetched.cache_directives(), now, settings.cache_ttl_bounds
        )
        await self._cache.put(url, validated, expires_at, now=now)
        return Resolved(client, validated, fetched=True)

    def _client(self, metadata: Mapping[str, JsonValue]) -> Client | None:
        return to_client(
            metadata, require_same_origin=self._settings.require_same_origin_redirect_uri
        )


#: The most failures one resolver remembers (the oldest is forgotten first).
_MAX_FAILURES: Final = 1024


def _no_constant(name: str) -> JsonValue:
    raise ValueError(f"{name} is not JSON")  # NaN and Infinity (RFC 8259 §6)


def _fetch_refusal(failure: FetchFailure) -> Refused:
    detail = ""
    if isinstance(failure, UnexpectedStatus):
        return Refused("fetch", f"status_{failure.status}", detail=f"HTTP {failure.status}")
    for name in ("ip", "reason", "content_type", "limit", "hostname"):
        value = getattr(failure, name, None)
        if value is not None:
            # Remote-controlled text (a content type) is cut short before it reaches a log.
            detail = f"{name} {value}"[:_MAX_DETAIL_CHARS]
            break
    return Refused("fetch", failure.kind, detail=detail)


# --- the registry the endpoints use ----------------------------------------------------------


class ClientMetadataRegistry:
    """A ``ClientRegistry``: CIMD URLs through the resolver, every other id to ``host``.

    With the feature off this is ``host``. With it on, an id passing the grammar is a CIMD
    client (a host client whose id is such a URL is shadowed); an id written as an http(s) URL
    that fails the grammar goes to ``host`` first and, if unknown there, is refused with the
    grammar reason. A refusal raises ``InvalidClientError`` (with ``basic_realm`` set it is a
    401 with a ``Basic`` challenge, as at the token and PAR endpoints; without, a direct 400 as
    at the authorization endpoint) and emits ``client_metadata.refused``; a fetch emits
    ``client_metadata.fetched``. ``verify_client_secret`` is always False for a CIMD client.
    """

    def __init__(
        self,
        resolver: ClientMetadataResolver,
        host: ClientRegistry,
        *,
        events: EventSink,
        clock: Clock,
        basic_realm: str | None = None,
    ) -> None:
        self._resolver = resolver
        self._host = host
        self._events = events
        self._clock = clock
        self._realm = basic_realm

    async def get_client(self, client_id: str) -> Client | None:
        """The client ``client_id`` names, ``None`` if the host does not know it, or raise."""
        resolver = self._resolver
        if resolver.is_cimd(client_id):
            outcome = await resolver.resolve(client_id)
            if isinstance(outcome, Refused):
                raise await self._refuse(client_id, outcome)
            if outcome.fetched:
                await self._emit("client_metadata.fetched", {"client_id": client_id})
            return outcome.client
        client = await self._host.get_client(client_id)
        if client is None and resolver.is_enabled and looks_like_url(client_id):
            reason = resolver.grammar(client_id)
            if reason is not None:
                raise await self._refuse(client_id, Refused("invalid_client_id", reason))
        return client

    async def verify_client_secret(self, client: Client, presented_secret: str) -> bool:
        """False for a CIMD client (it has no secret); the host decides for the others."""
        if self._resolver.is_cimd(client.client_id):
            return False
        return await self._host.verify_client_secret(client, presented_secret)

    async def _refuse(self, client_id: str, refused: Refused) -> InvalidClientError:
        data: dict[str, object] = {
            "client_id": client_id[:MAX_URL_LENGTH],
            "kind": refused.kind,
            "reason": refused.reason,
        }
        if refused.detail:
            data["detail"] = refused.detail
        await self._emit("client_metadata.refused", data)
        detail = f"CIMD {refused.code}" + (f" ({refused.detail})" if refused.detail else "")
        return InvalidClientError(
            f"the client metadata document cannot be used: {refused.code}",
            detail=detail,
            basic_realm=self._realm,
        )

    async def _emit(self, name: str, data: Mapping[str, object]) -> None:
        await self._events.emit(Event(name=name, at=self._clock.now(), data=data))

