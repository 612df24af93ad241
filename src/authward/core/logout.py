"""Back-channel logout: recording who holds a session, minting logout tokens, delivering them.

Spec: OpenID Connect Back-Channel Logout 1.0 §2.4 (logout token), §2.5 (delivery: POST of
``logout_token``), §2.6-§2.8 (what the relying party checks and answers); authward
spec/stores.md §3.4 (when sessions are recorded and consumed), §5.3 (URI screening), §5.4
(delivery steps and token format).

* :func:`record_logout_session` runs right after an ID token with a ``sid`` is minted for a
  client that registered a usable ``backchannel_logout_uri``. Best effort: every failure is
  logged and swallowed, issuance never fails because of it.
* :func:`start_backchannel_logout` runs after the host confirmed the end of a login session. It
  takes (deletes and returns, one statement) the matching sessions inside the request, so each
  relying party is told at most once even when two logouts race, then hands delivery to a
  :class:`LogoutDispatcher`, which POSTs the tokens in the background: the user's response never
  waits for a slow receiver.
* :func:`deliver_logout_tokens` POSTs to every target concurrently (at most
  :data:`DELIVERY_CONCURRENCY` at once) through the SSRF guard, under one overall deadline of
  ``settings.logout.delivery_timeout_seconds``; no retries, no redirects. Each outcome becomes an
  event, ``logout.delivered`` or ``logout.delivery_failed`` (``client_id`` and ``reason``; never
  the token).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import ip_address
from typing import TYPE_CHECKING, Final, Literal, NotRequired, TypedDict
from urllib.parse import urlsplit

from authward.core.clients import Client
from authward.core.jose import JsonWebKey, sign_jwt
from authward.core.policy import Event
from authward.core.secrets import new_secret
from authward.core.ssrf import (
    BadContentType,
    BlockedIp,
    Fetched,
    FetchOutcome,
    InvalidUrl,
    TooLarge,
    TransportFailure,
    UnexpectedStatus,
    Unresolvable,
    is_blocked,
)
from authward.stores.logout_sessions import LogoutCriteria, LogoutSession, LogoutTarget

if TYPE_CHECKING:
    from authward.core.server import AuthorizationServer

__all__ = [
    "BACKCHANNEL_LOGOUT_EVENT",
    "DELIVERY_CONCURRENCY",
    "LOGOUT_TOKEN_LIFETIME",
    "LOGOUT_TOKEN_TYPE",
    "DeliveryOutcome",
    "LogoutDispatcher",
    "LogoutTokenClaims",
    "MintedLogoutToken",
    "UriRefusal",
    "deliver_logout_tokens",
    "mint_logout_token",
    "record_logout_session",
    "screen_logout_uri",
    "start_backchannel_logout",
]

#: The ``events`` member that makes a JWT a logout token (Back-Channel Logout 1.0 §2.4).
BACKCHANNEL_LOGOUT_EVENT: Final = "http://schemas.openid.net/event/backchannel-logout"
#: The ``typ`` header of a logout token (Back-Channel Logout 1.0 §2.4).
LOGOUT_TOKEN_TYPE: Final = "logout+jwt"  # noqa: S105 - a media type, not a secret
#: Seconds a logout token stays valid (spec/stores.md §5.4: may only be shortened).
LOGOUT_TOKEN_LIFETIME: Final = 120
#: How many deliveries run at once.
DELIVERY_CONCURRENCY: Final = 8
#: The most of a receiver's answer that is read (its body is never used).
_MAX_ANSWER_BYTES: Final = 16_384
_JTI_BYTES: Final = 16

_LOG = logging.getLogger("authward.logout")

UriRefusal = Literal[
    "not_a_url", "not_https", "no_host", "has_userinfo", "has_fragment", "localhost", "blocked_ip"
]


# --- the logout token ------------------------------------------------------------------------


LogoutEvents = TypedDict(
    "LogoutEvents", {"http://schemas.openid.net/event/backchannel-logout": dict[str, object]}
)


class LogoutTokenClaims(TypedDict):
    """The claims of a logout token (Back-Channel Logout 1.0 §2.4); never a ``nonce``."""

    iss: str
    aud: str
    iat: int
    exp: int
    jti: str
    events: LogoutEvents
    sid: NotRequired[str]
    sub: NotRequired[str]


@dataclass(frozen=True, slots=True)
class MintedLogoutToken:
    """A signed logout token and its claims."""

    token: str
    claims: LogoutTokenClaims


def mint_logout_token(
    key: JsonWebKey,
    *,
    issuer: str,
    client_id: str,
    now: float,
    sid: str | None = None,
    subject: str | None = None,
    lifetime: int = LOGOUT_TOKEN_LIFETIME,
) -> MintedLogoutToken:
    """Sign a logout token for relying party ``client_id`` with ``key`` (the ID-token key).

    Header ``typ: logout+jwt`` plus the key's ``alg`` and ``kid``. ``aud`` is ``client_id``,
    ``exp`` is ``iat + lifetime`` (at most 120 s), ``jti`` 16 random bytes in base64url, and
    ``sid`` and ``sub`` are included when non-empty; at least one is required (ValueError).
    """
    if not 0 < lifetime <= LOGOUT_TOKEN_LIFETIME:
        raise ValueError(f"lifetime must be between 1 and {LOGOUT_TOKEN_LIFETIME} seconds")
    if not issuer or not client_id:
        raise ValueError("issuer and client_id are required")
    if not sid and not subject:
        raise ValueError("a logout token needs a sid or a sub")
    iat = int(now)
    claims: LogoutTokenClaims = {
        "iss": issuer,
        "aud": client_id,
        "iat": iat,
        "exp": iat + lifetime,
        "jti": new_secret(_JTI_BYTES),
        "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
    }
    if sid:
        claims["sid"] = sid
    if subject:
        claims["sub"] = subject
    token = sign_jwt(key, claims, header={"typ": LOGOUT_TOKEN_TYPE})
    return MintedLogoutToken(token=token, claims=claims)


# --- the receiver's URI ------------------------------------------------------------------------


def screen_logout_uri(uri: str, *, allow_loopback: bool = False) -> UriRefusal | None:
    """Why ``uri`` is not usable as a ``backchannel_logout_uri``, or ``None`` when it is.

    The literal check of spec/stores.md §5.3, done without DNS when a session is recorded (and
    again before delivery): ``https``, a host, no userinfo, no fragment, not ``localhost`` or
    ``*.localhost``, and an IP-literal host that is not special-use (the SSRF guard's full
    table, IPv4-mapped and other embedded forms included). ``allow_loopback`` (development and
    tests) admits ``localhost`` and loopback literals, over ``http`` as well. Names that
    *resolve* to special-use addresses are caught by the SSRF guard at delivery time.
    """
    try:
        parts = urlsplit(uri)
        host = parts.hostname or ""
        _ = parts.port
    except (ValueError, TypeError, AttributeError):
        return "not_a_url"
    if parts.scheme not in ("https", "http"):
        return "not_https"
    if not host:
        return "no_host"
    if parts.username is not None or parts.password is not None:
        return "has_userinfo"
    if parts.fragment or uri.endswith("#"):
        return "has_fragment"
    host = host.rstrip(".").lower()
    loopback = False
    if host == "localhost" or host.endswith(".localhost"):
        if not allow_loopback:
            return "localhost"
        loopback = True
    else:
        try:
            literal = ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            if is_blocked(literal, allow_loopback=allow_loopback):
                return "blocked_ip"
            loopback = is_blocked(literal)  # blocked only because it is loopback
    if parts.scheme == "http" and not loopback:
        return "not_https"
    return None


def usable_logout_uri(server: AuthorizationServer, client: Client) -> str | None:
    """``client``'s ``backchannel_logout_uri`` when back-channel logout applies to it."""
    uri = client.backchannel_logout_uri
    if not server.settings.logout.enabled or not uri:
        return None
    if screen_logout_uri(uri, allow_loopback=server.settings.logout.allow_loopback) is not None:
        return None
    return uri


# --- recording (token endpoint) ----------------------------------------------------------------


async def record_logout_session(
    server: AuthorizationServer,
    client: Client,
    sid: str | None,
    subject: str,
    now: float,
) -> bool:
    """Remember that ``client`` holds login session ``sid`` of ``subject`` (spec §3.4).

    Call it right after an ID token carrying ``sid`` was minted for ``client`` (any grant). It
    records only when logout is enabled, ``sid`` and ``subject`` are non-empty strings and the
    client's ``backchannel_logout_uri`` passes :func:`screen_logout_uri`; the row expires after
    ``settings.logout.session_ttl_seconds``. Best effort: True when a row was written; every
    failure is logged and swallowed (issuance must not fail because of it).
    """
    try:
        uri = usable_logout_uri(server, client)
        if uri is None and client.backchannel_logout_uri and server.settings.logout.enabled:
            await _report_refused_uri(server, client, client.backchannel_logout_uri, now)
        if uri is None or not isinstance(sid, str) or not sid:
            return False
        if not isinstance(subject, str) or not subject:
            return False
        entry = LogoutSession(
            sid=sid,
            subject=subject,
            client_id=client.client_id,
            backchannel_logout_uri=uri,
            expires_at=int(now) + server.settings.logout.session_ttl_seconds,
            session_required=client.backchannel_logout_session_required,
        )
        await server.stores.logout_sessions.record(entry, now=now)
    except Exception as error:  # best effort (spec §3.4): never block issuance
        _LOG.warning("recording the logout session of %s failed: %s",
                     client.client_id, type(error).__name__)
        return False
    return True


async def _report_refused_uri(
    server: AuthorizationServer, client: Client, uri: str, now: float
) -> None:
    """A registered ``backchannel_logout_uri`` the literal check refuses: the client will get
    no logout tokens. Say so (event ``logout.uri_refused`` with the reason, every time; a
    warning line once per client and URI in this process) instead of dropping it silently."""
    reason = screen_logout_uri(uri, allow_loopback=server.settings.logout.allow_loopback)
    await server.policy.events.emit(
        Event(
            "logout.uri_refused",
            now,
            {"client_id": client.client_id, "reason": str(reason)},
        )
    )
    key = (client.client_id, uri)
    if key in _WARNED_URIS:
        return
    if len(_WARNED_URIS) >= _MAX_WARNED_URIS:
        _WARNED_URIS.clear()
    _WARNED_URIS.add(key)
    _LOG.warning(
        "client %s: backchannel_logout_uri refused (%s); it will receive no logout tokens",
        client.client_id,
        reason,
    )


#: (client_id, uri) pairs already warned about in this process (bounded).
_WARNED_URIS: set[tuple[str, str]] = set()
_MAX_WARNED_URIS: Final = 1024


# --- delivery ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """What happened to one logout token: ``delivered`` (a 2xx answer) or the ``reason`` not."""

    client_id: str
    delivered: bool
    reason: str | None = None
    status: int | None = None


def _failure(target: LogoutTarget, outcome: FetchOutcome) -> DeliveryOutcome:
    reason: str
    status: int | None = None
    if isinstance(outcome, BlockedIp):
        reason = f"blocked_ip {outcome.ip}"
    elif isinstance(outcome, InvalidUrl):
        reason = f"invalid_url {outcome.reason}"
    elif isinstance(outcome, Unresolvable):
        reason = "unresolvable"
    elif isinstance(outcome, UnexpectedStatus):
        reason, status = f"status {outcome.status}", outcome.status
    elif isinstance(outcome, TransportFailure):
        reason = f"transport {outcome.reason}"
    elif isinstance(outcome, TooLarge):
        reason = "answer too large"
    elif isinstance(outcome, BadContentType):
        reason = "bad answer"
    else:  # pragma: no cover - every FetchFailure is listed above
        reason = type(outcome).__name__
    return DeliveryOutcome(target.client_id, False, reason, status)


async def deliver_logout_tokens(
    server: AuthorizationServer,
    targets: Sequence[LogoutTarget],
    *,
    subject: str | None,
) -> tuple[DeliveryOutcome, ...]:
    """POST a fresh logout token to each of ``targets`` and report every outcome.

    Concurrent (at most :data:`DELIVERY_CONCURRENCY` at once), through
    ``server.fetcher.with_loopback(settings.logout.allow_loopback)``, each bounded by
    ``settings.logout.delivery_timeout_seconds`` and all of them together by the same overall
    deadline: whatever has not answered by then is cancelled and reported as ``deadline``. The
    URI is screened again (:func:`screen_logout_uri`) before anything is sent. Each outcome is
    emitted as ``logout.delivered`` / ``logout.delivery_failed`` as soon as it is known (a slow
    receiver does not hold back the others' events). Never raises for a receiver.
    """
    settings = server.settings
    timeout = settings.logout.delivery_timeout_seconds
    fetcher = server.fetcher.with_loopback(settings.logout.allow_loopback)
    key = server.keys.signing_key(settings.id_token_signing_alg)
    gate = asyncio.Semaphore(DELIVERY_CONCURRENCY)

    async def one(target: LogoutTarget) -> DeliveryOutcome:
        outcome = await attempt(target)
        await _report(server, outcome)  # as soon as it is known
        return outcome

    async def attempt(target: LogoutTarget) -> DeliveryOutcome:
        refusal = screen_logout_uri(
            target.backchannel_logout_uri, allow_loopback=settings.logout.allow_loopback
        )
        if refusal is not None:
            return DeliveryOutcome(target.client_id, False, f"invalid_url {refusal}")
        async with gate:
            token = mint_logout_token(
                key,
                issuer=server.issuer,
                client_id=target.client_id,
                now=server.clock.now(),
                sid=target.sid,
                subject=subject,
            ).token
            outcome = await fetcher.post_form(
                target.backchannel_logout_uri,
                [("logout_token", token)],
                max_bytes=_MAX_ANSWER_BYTES,
                timeout_seconds=timeout,
            )
        if isinstance(outcome, Fetched):
            return DeliveryOutcome(target.client_id, True, status=outcome.status)
        return _failure(target, outcome)

    tasks = [asyncio.create_task(one(target)) for target in targets]
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    outcomes: list[DeliveryOutcome] = []
    for target, task in zip(targets, tasks, strict=True):
        if not task.cancelled() and task.exception() is None:
            outcomes.append(task.result())
            continue
        if task.cancelled():
            late = DeliveryOutcome(target.client_id, False, "deadline")
        else:
            late = DeliveryOutcome(target.client_id, False, type(task.exception()).__name__)
        await _report(server, late)
        outcomes.append(late)
    return tuple(outcomes)


async def _report(server: AuthorizationServer, outcome: DeliveryOutcome) -> None:
    data: dict[str, object] = {"client_id": outcome.client_id}
    if outcome.status is not None:
        data["status"] = outcome.status
    if outcome.delivered:
        name = "logout.delivered"
    else:
        name = "logout.delivery_failed"
        data["reason"] = outcome.reason
        _LOG.warning("logout token for %s not delivered: %s", outcome.client_id, outcome.reason)
    try:
        await server.policy.events.emit(Event(name, server.clock.now(), data))
    except Exception as error:  # a sink should swallow its errors; make sure of it
        _LOG.error("emitting %s failed: %s", name, type(error).__name__)


class LogoutDispatcher:
    """Runs back-channel deliveries in the background and keeps them alive until they end.

    The tasks are held here (strong references), so none is collected half-way. :meth:`drain`
    waits for every pending delivery (tests, and hosts on shutdown); :meth:`aclose` does the
    same, so the dispatcher can be a lifespan resource of the ASGI app.
    """

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def pending(self) -> int:
        """How many deliveries have not finished yet."""
        return len(self._tasks)

    def dispatch(
        self,
        server: AuthorizationServer,
        targets: Sequence[LogoutTarget],
        *,
        subject: str | None,
    ) -> asyncio.Task[None]:
        """Start delivering to ``targets`` in the background and return the task."""
        task = asyncio.create_task(self._run(server, tuple(targets), subject))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def drain(self) -> None:
        """Wait until every delivery started so far (and any started meanwhile) has ended."""
        while self._tasks:
            await asyncio.gather(*tuple(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        """Finish pending deliveries (each is bounded by its deadline)."""
        await self.drain()

    @staticmethod
    async def _run(
        server: AuthorizationServer, targets: tuple[LogoutTarget, ...], subject: str | None
    ) -> None:
        try:
            await deliver_logout_tokens(server, targets, subject=subject)
        except Exception as error:  # spec §5.4: the whole fan-out is logged and swallowed
            _LOG.error("back-channel logout failed: %s", type(error).__name__)


async def start_backchannel_logout(
    server: AuthorizationServer,
    dispatcher: LogoutDispatcher,
    *,
    sid: str | None,
    subject: str | None,
) -> int:
    """Fan out back-channel logout for a login session the HOST confirmed it ended (§5.4).

    A non-empty ``sid`` wins, else ``subject``; with neither nothing happens. The matching
    sessions are taken (deleted and returned in one statement) now, then delivered in the
    background by ``dispatcher``. Returns how many relying parties will be told; 0 when logout
    is disabled. Every failure is logged and swallowed.
    """
    if not server.settings.logout.enabled:
        return 0
    criteria = LogoutCriteria(sid=sid or None, subject=subject or None)
    if criteria.sid is None and criteria.subject is None:
        return 0
    try:
        targets = await server.stores.logout_sessions.take_targets(
            criteria, now=server.clock.now()
        )
    except Exception as error:  # spec §5.4: never fail the user's logout
        _LOG.error("taking the logout sessions failed: %s", type(error).__name__)
        return 0
    if targets:
        dispatcher.dispatch(server, targets, subject=subject or None)
    return len(targets)
