"""The host Protocols: what the application embedding authward supplies.

Spec: RFC 6749 §2 (client registration is out of band), §2.3.1 (client passwords), §10.10
(credential guessing); RFC 6819 §5.1.4.2.2 (secrets hashed at rest).

The host owns its client registry and secret hashing, its users and their login, its consent
rules, the claims it releases, the scopes it grants and its audit log; authward only asks.
Every I/O method is async so a host can reach a database or a remote service. authward ships
simple defaults for all of them (a TOML file of clients and users, plain HTML pages), so it runs
out of the box.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from authward.core.clients import Client
from authward.core.http import Pair, Request

__all__ = [
    "Authentication",
    "ClaimsProvider",
    "ClientRegistry",
    "ConsentPolicy",
    "EndedSession",
    "Event",
    "EventSink",
    "ResourceOwnerLogin",
    "ScopePolicy",
    "SessionTerminator",
]


class ClientRegistry(Protocol):
    """The host's registry of clients (opaque ``client_id`` values; CIMD URLs never reach it)."""

    async def get_client(self, client_id: str) -> Client | None:
        """Return the client registered as ``client_id`` (exact string match), else ``None``.

        ``client_id`` is whatever the request presented: possibly long, odd or hostile. The
        registry must treat it as data (no logging of surrounding secrets, no injection) and
        answer ``None`` for anything it does not know.
        """
        ...

    async def verify_client_secret(self, client: Client, presented_secret: str) -> bool:
        """True when ``presented_secret`` is ``client``'s current secret.

        The host stores only a hash of each secret and compares in constant time (for example
        ``hmac.compare_digest`` over digests, or a password-hash verify). It must not log or
        keep the presented value, must answer ``False`` (never raise) for a wrong or empty
        secret or a client without one, and may accept several secrets during a rotation.

        The client authenticator also calls it, and ignores the answer, when a secret arrives
        for a client it cannot use (an unknown ``client_id``, or a client registered for another
        method): ``client`` is then a placeholder record the registry did not issue. Answer
        ``False`` after the work a wrong secret costs, so timing does not tell whether the
        client exists. Generated secrets (256 random bits) are best stored as SHA-256 digests;
        keep password hashes (argon2) for human-chosen secrets, and bound their concurrency.
        """
        ...


@dataclass(frozen=True, slots=True)
class Authentication:
    """An end-user signed in on one user agent, as the host's login session knows them.

    ``sid`` identifies that login session (OIDC Front/Back-Channel Logout ``sid``); ``auth_time``
    is when the user last actively authenticated (Unix seconds).
    """

    subject: str
    auth_time: int
    sid: str
    acr: str | None = None
    amr: tuple[str, ...] = ()


class ResourceOwnerLogin(Protocol):
    """The host's end-user login: who is signed in on this user agent, and where to sign in."""

    async def authenticated(self, request: Request) -> Authentication | None:
        """The user signed in on the user agent that sent ``request`` (e.g. from a session
        cookie the host verifies), or ``None``. Must not raise for a missing or bad session."""
        ...

    def login_url(self, return_to: str) -> str:
        """The URL of the host's login page; after signing in it sends the browser to
        ``return_to`` (an authward URL). The host must only follow same-origin ``return_to``
        values to avoid an open redirect."""
        ...


@dataclass(frozen=True, slots=True)
class EndedSession:
    """A login session the host just ended (OIDC RP-Initiated Logout 1.0 §2).

    ``authentication`` is who was signed in (its ``sid`` and ``subject`` scope the back-channel
    logout fan-out); ``headers`` are response header fields that finish the sign-out on the
    user agent, e.g. a ``Set-Cookie`` that deletes the session cookie. They are added to the
    end-session endpoint's response as they are.
    """

    authentication: Authentication
    headers: tuple[Pair, ...] = ()


@runtime_checkable
class SessionTerminator(Protocol):
    """Optional companion of :class:`ResourceOwnerLogin`: end the user agent's login session.

    The end-session endpoint ends a session only through this method; a login object without
    it leaves the host's session alone (and nothing is delivered over the back channel).
    """

    async def terminate_session(self, request: Request) -> EndedSession | None:
        """End the login session of the user agent that sent ``request`` and return it, or
        ``None`` when nobody was signed in. Must not raise for a missing or bad session."""
        ...


class ConsentPolicy(Protocol):
    """Whether the end-user must be asked before ``client`` receives ``scopes``."""

    async def consent_required(
        self, subject: str, client: Client, scopes: tuple[str, ...]
    ) -> bool:
        """True when the consent screen must be shown (no standing consent covers the request).
        The decision itself is recorded only as a single-use grant bound to the request."""
        ...


class ClaimsProvider(Protocol):
    """The claims the host releases about an end-user (ID token and UserInfo)."""

    async def claims(self, subject: str, scopes: tuple[str, ...]) -> Mapping[str, object]:
        """The OIDC claims for ``subject`` that ``scopes`` allow (OIDC Core §5.4), without
        ``sub``; an unknown subject gives an empty mapping."""
        ...


class ScopePolicy(Protocol):
    """Which of the requested scopes a client may have."""

    async def grantable_scopes(
        self, client: Client, requested: tuple[str, ...], subject: str | None
    ) -> tuple[str, ...]:
        """The subset of ``requested`` to grant (``subject`` is ``None`` for client
        credentials). Returning fewer scopes narrows the grant (RFC 6749 §3.3); the server
        refuses with ``invalid_scope`` when nothing requested can be granted."""
        ...


@dataclass(frozen=True, slots=True)
class Event:
    """Something an audit log wants: ``name`` is dotted (``token.issued``, ``code.reused``),
    ``data`` never holds a secret (no tokens, codes or client secrets; ids and digests only)."""

    name: str
    at: float
    data: Mapping[str, object] = field(default_factory=dict)


class EventSink(Protocol):
    """The host's audit log. Emitting must not fail the request: a sink swallows its errors."""

    async def emit(self, event: Event) -> None:
        """Record ``event``."""
        ...
