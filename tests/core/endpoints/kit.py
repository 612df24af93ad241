"""The shared builder for core endpoint tests: a real server on the ``db`` fixture's SQL stores.

``build(db)`` gives a ``Kit``: an ``AuthorizationServer`` whose nine stores are the real SQL
stores on ``db.engine`` (or another engine on the same database, for multi-node and concurrency
tests), with in-test host policy objects the test can steer (clients, signed-in sessions,
standing consent, claims, grantable scopes, recorded events). The clock is ``db.clock``
(frozen at ``T0``) for both the server and the stores.

Extend this module rather than forking it: every core endpoint test builds its server here.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from sqlalchemy.ext.asyncio import AsyncEngine

from authward.core.clients import Client
from authward.core.config import Settings, SuccessorKey
from authward.core.http import Request
from authward.core.keys import KeySet
from authward.core.pkce import s256_challenge
from authward.core.policy import Authentication, Event
from authward.core.server import AuthorizationServer, EndpointPaths, HostPolicy, Stores
from authward.core.ssrf import GuardedFetcher
from authward.stores.clock import FrozenClock
from authward.stores.sql.client_metadata import SqlClientMetadataCache
from authward.stores.sql.codes import SqlAuthorizationCodeStore
from authward.stores.sql.consent import SqlConsentGrantStore
from authward.stores.sql.device_codes import SqlDeviceCodeStore
from authward.stores.sql.dpop_nonces import SqlDpopNonceStore
from authward.stores.sql.logout_sessions import SqlLogoutSessionStore
from authward.stores.sql.par import SqlPushedAuthorizationRequestStore
from authward.stores.sql.refresh import SqlRefreshTokenStore
from authward.stores.sql.replay import SqlReplayStore
from tests.dbkit import T0, Db

ISSUER = "https://as.example"
AUTHORIZE_URL = ISSUER + "/authorize"
PAR_URL = ISSUER + "/par"
TOKEN_URL = ISSUER + "/token"
LOGIN_URL = "https://as.example/login"

REDIRECT_URI = "https://client.example/cb"
OTHER_REDIRECT_URI = "https://client.example/other"
NATIVE_REDIRECT_URI = "http://127.0.0.1/callback"

PUBLIC_CLIENT_ID = "public-app"
CONFIDENTIAL_CLIENT_ID = "web-app"
CONFIDENTIAL_SECRET = "web-app-secret"
NATIVE_CLIENT_ID = "native-app"
PAR_CLIENT_ID = "par-only-app"
PAR_CLIENT_SECRET = "par-only-secret"

#: A fixed PKCE pair (RFC 7636 Appendix B verifier).
CODE_VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gZWFOEjXk"
CODE_CHALLENGE = s256_challenge(CODE_VERIFIER)

SUCCESSOR_KEY = SuccessorKey("k1", b"0123456789abcdef0123456789abcdef")


@cache
def signing_keys() -> KeySet:
    """One key set per test session (RSA key generation is slow)."""
    return KeySet.generate(("RS256", "ES256"), now=T0 - 3600)


def _secret_digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8")).digest()


class Registry:
    """The host's client registry: clients by id, secrets only as SHA-256 digests."""

    def __init__(self) -> None:
        self.clients: dict[str, Client] = {}
        self._digests: dict[str, bytes] = {}

    def add(self, client: Client, secret: str | None = None) -> Client:
        """Register ``client`` (with its ``secret`` if confidential) and return it."""
        self.clients[client.client_id] = client
        if secret is not None:
            self._digests[client.client_id] = _secret_digest(secret)
        return client

    async def get_client(self, client_id: str) -> Client | None:
        return self.clients.get(client_id)

    async def verify_client_secret(self, client: Client, presented_secret: str) -> bool:
        stored = self._digests.get(client.client_id)
        if stored is None:
            return False
        return hmac.compare_digest(stored, _secret_digest(presented_secret))


class Sessions:
    """The host's login: a ``Cookie: session=<id>`` header names a signed-in user."""

    def __init__(self) -> None:
        self._sessions: dict[str, Authentication] = {}
        self.asked: list[str] = []

    def sign_in(
        self,
        subject: str,
        *,
        auth_time: float,
        acr: str | None = None,
        amr: tuple[str, ...] = ("pwd",),
    ) -> tuple[str, str]:
        """Sign ``subject`` in at ``auth_time``; return the ``Cookie`` header to send."""
        session_id = f"s{len(self._sessions) + 1}-{subject}"
        self._sessions[session_id] = Authentication(
            subject=subject, auth_time=int(auth_time), sid="sid-" + session_id, acr=acr, amr=amr
        )
        return ("Cookie", f"session={session_id}")

    async def authenticated(self, request: Request) -> Authentication | None:
        cookie = request.headers.get("cookie") or ""
        for part in cookie.split(";"):
            name, _, value = part.strip().partition("=")
            if name == "session":
                return self._sessions.get(value)
        return None

    def login_url(self, return_to: str) -> str:
        self.asked.append(return_to)
        return LOGIN_URL + "?" + urlencode({"return_to": return_to})


class StandingConsent:
    """The host's consent rule: ask unless the user already consented to these scopes."""

    def __init__(self) -> None:
        self.standing: dict[tuple[str, str], set[str]] = {}

    def grant(self, subject: str, client_id: str, scopes: Iterable[str]) -> None:
        """Record standing consent of ``subject`` for ``client_id`` and ``scopes``."""
        self.standing.setdefault((subject, client_id), set()).update(scopes)

    async def consent_required(
        self, subject: str, client: Client, scopes: tuple[str, ...]
    ) -> bool:
        granted = self.standing.get((subject, client.client_id))
        return granted is None or not set(scopes) <= granted


class Claims:
    """The host's claims: a fixed mapping per subject, filtered by nothing."""

    def __init__(self) -> None:
        self.by_subject: dict[str, dict[str, object]] = {}

    async def claims(self, subject: str, scopes: tuple[str, ...]) -> Mapping[str, object]:
        return dict(self.by_subject.get(subject, {}))


class ClientScopes:
    """The host's scope policy: a client with a declared ``scope`` gets only those."""

    def __init__(self) -> None:
        self.refused: set[str] = set()

    async def grantable_scopes(
        self, client: Client, requested: tuple[str, ...], subject: str | None
    ) -> tuple[str, ...]:
        allowed = set(client.scope) if client.scope else None
        return tuple(
            s for s in requested
            if s not in self.refused and (allowed is None or s in allowed)
        )


class Events:
    """The host's audit log: keeps every event."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    async def emit(self, event: Event) -> None:
        self.events.append(event)

    def names(self) -> list[str]:
        return [e.name for e in self.events]


@dataclass
class Kit:
    """A server and the host objects a test steers."""

    server: AuthorizationServer
    db: Db
    clients: Registry
    login: Sessions
    consent: StandingConsent
    claims: Claims
    scopes: ClientScopes
    events: Events
    clock: FrozenClock
    extra: dict[str, Any] = field(default_factory=dict)

    def sibling(self, engine: AsyncEngine) -> Kit:
        """A second server (another node) on ``engine``, sharing this kit's host policy."""
        return _assemble(
            self.db, engine, self.server.settings, self.clients, self.login, self.consent,
            self.claims, self.scopes, self.events, self.clock,
        )


def default_clients(registry: Registry) -> None:
    """The clients every kit starts with."""
    registry.add(
        Client(
            PUBLIC_CLIENT_ID, "public", "none",
            redirect_uris=(REDIRECT_URI,),
            grant_types=("authorization_code", "refresh_token"),
            client_name="Public App",
        )
    )
    registry.add(
        Client(
            CONFIDENTIAL_CLIENT_ID, "confidential", "client_secret_basic",
            redirect_uris=(REDIRECT_URI, OTHER_REDIRECT_URI),
            grant_types=("authorization_code", "refresh_token", "client_credentials"),
            client_name="Web App",
        ),
        CONFIDENTIAL_SECRET,
    )
    registry.add(
        Client(
            NATIVE_CLIENT_ID, "public", "none",
            redirect_uris=(NATIVE_REDIRECT_URI,),
            native=True,
        )
    )
    registry.add(
        Client(
            PAR_CLIENT_ID, "confidential", "client_secret_post",
            redirect_uris=(REDIRECT_URI,),
            require_pushed_authorization_requests=True,
        ),
        PAR_CLIENT_SECRET,
    )


def build(db: Db, *, engine: AsyncEngine | None = None, **settings: Any) -> Kit:
    """A kit on ``db`` (or ``engine`` on the same database); ``settings`` override defaults."""
    options: dict[str, Any] = {
        "issuer": ISSUER,
        "refresh_successor_keys": (SUCCESSOR_KEY,),
    }
    options.update(settings)
    registry = Registry()
    default_clients(registry)
    return _assemble(
        db, engine or db.engine, Settings(**options), registry, Sessions(), StandingConsent(),
        Claims(), ClientScopes(), Events(), db.clock,
    )


def _assemble(
    db: Db,
    engine: AsyncEngine,
    settings: Settings,
    registry: Registry,
    login: Sessions,
    consent: StandingConsent,
    claims: Claims,
    scopes: ClientScopes,
    events: Events,
    clock: FrozenClock,
) -> Kit:
    common: dict[str, Any] = {"table_prefix": settings.table_prefix, "clock": clock}
    successor = {key.kid: key.secret for key in settings.refresh_successor_keys}
    stores = Stores(
        authorization_codes=SqlAuthorizationCodeStore(engine, **common),
        refresh_tokens=SqlRefreshTokenStore(
            engine, **common, successor_keys=successor or None,
            active_kid=settings.refresh_successor_active_kid,
        ),
        device_codes=SqlDeviceCodeStore(engine, **common),
        logout_sessions=SqlLogoutSessionStore(engine, **common),
        dpop_nonces=SqlDpopNonceStore(engine, **common),
        replay=SqlReplayStore(engine, **common),
        pushed_authorization_requests=SqlPushedAuthorizationRequestStore(engine, **common),
        client_metadata=SqlClientMetadataCache(engine, **common),
        consent_grants=SqlConsentGrantStore(engine, **common),
    )
    policy = HostPolicy(
        clients=registry, login=login, consent=consent, claims=claims, scopes=scopes,
        events=events,
    )
    server = AuthorizationServer(
        settings=settings,
        stores=stores,
        keys=signing_keys(),
        policy=policy,
        fetcher=GuardedFetcher(),
        clock=clock,
        paths=EndpointPaths(),
    )
    return Kit(server, db, registry, login, consent, claims, scopes, events, clock)


# --- requests and responses ------------------------------------------------------------------


def get(url: str, params: Iterable[tuple[str, str]] | Mapping[str, str] = (), *,
        headers: Iterable[tuple[str, str]] = ()) -> Request:
    """A GET of ``url`` with ``params`` form-encoded into its query."""
    pairs = list(params.items()) if isinstance(params, Mapping) else list(params)
    full = url + ("?" + urlencode(pairs) if pairs else "")
    return Request.build("GET", full, headers=headers)


def post(url: str, form: Iterable[tuple[str, str]] | Mapping[str, str] = (), *,
         headers: Iterable[tuple[str, str]] = ()) -> Request:
    """A form POST to ``url``."""
    pairs = list(form.items()) if isinstance(form, Mapping) else list(form)
    all_headers = (("Content-Type", "application/x-www-form-urlencoded"), *headers)
    return Request.build("POST", url, headers=all_headers, form=pairs)


def query_of(location: str) -> dict[str, str]:
    """The query parameters of a redirect ``location`` (each name once)."""
    return dict(parse_qsl(urlsplit(location).query, keep_blank_values=True))


def location_base(location: str) -> str:
    """``location`` without its query."""
    parts = urlsplit(location)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"
