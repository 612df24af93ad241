"""The default scope, consent and audit policies a host gets out of the box.

Spec: RFC 6749 §3.3 (the server may grant fewer scopes than requested); OIDC Core 1.0 §3.1.2.4
(consent), §11 (offline_access).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterable, Mapping
from typing import Final

from authward.core.clients import Client
from authward.core.policy import Event

__all__ = ["ROUTINE_EVENTS", "AllowRequestedScopes", "AlwaysAskConsent", "LoggingEventSink"]

_ALWAYS_GRANTABLE: Final = frozenset({"openid", "offline_access"})
#: Substrings of event data keys that are dropped rather than logged, in case a caller slips.
#: Event data keys dropped before logging: exact names of secret-bearing parameters, and any
#: key ending in one of the suffixes (``client_secret``, ``logout_token``, ``user_code`` ...).
#: Flags and types such as ``token_type`` or ``refresh_token_issued`` stay.
_SECRET_KEYS: Final = frozenset(
    {"secret", "password", "token", "code", "assertion", "cookie", "request_uri", "jwt"}
)
_SECRET_SUFFIXES: Final = (
    "_secret", "password", "_token", "_code", "_assertion", "cookie", "_verifier", "_jwt"
)


class AllowRequestedScopes:
    """``ScopePolicy``: grant what was requested, narrowed to the client's declared ``scope``.

    A client that declares no scope gets what it asks for; ``openid`` and ``offline_access``
    are granted whenever requested (whether a refresh token follows is the grant's decision).
    Order follows the request.
    """

    async def grantable_scopes(
        self, client: Client, requested: tuple[str, ...], subject: str | None
    ) -> tuple[str, ...]:
        """``requested`` ∩ ``client.scope`` (plus openid/offline_access), or ``requested``."""
        if not client.scope:
            return tuple(requested)
        declared = set(client.scope)
        return tuple(s for s in requested if s in declared or s in _ALWAYS_GRANTABLE)


class AlwaysAskConsent:
    """``ConsentPolicy`` that remembers nothing: every request from a third-party client shows
    the consent page (the decision is a single-use grant bound to that one request).

    ``first_party_clients`` lists client ids the host operates itself; they never ask.
    """

    def __init__(self, first_party_clients: Iterable[str] = ()) -> None:
        self._first_party = frozenset(first_party_clients)

    async def consent_required(
        self, subject: str, client: Client, scopes: tuple[str, ...]
    ) -> bool:
        """True unless ``client`` is first party."""
        return client.client_id not in self._first_party


#: Events of every token request, written at DEBUG by default (see ``LoggingEventSink``).
ROUTINE_EVENTS: Final = frozenset({"token.issued", "token.refused"})


class LoggingEventSink:
    """``EventSink`` writing each event as one record on ``logger`` (``authward.events``).

    The message is one JSON object: ``{"event": name, "at": time, ...data}``. It is built only
    when the logger will write the record (a disabled level costs one level check).
    ``routine_events`` (default :data:`ROUTINE_EVENTS`: ``token.issued`` and ``token.refused``,
    one per token request, the volume of an access log) are written at ``routine_level``
    (default DEBUG); every other event (reuse detection, lockouts, logout, device decisions,
    CIMD) at INFO. Set the ``authward.events`` logger to DEBUG, or pass
    ``routine_level=logging.INFO``, for a line per issued token.
    Keys that name a secret (``refresh_token``, ``client_secret``, ``user_code``, anything
    ending in ``_token``/``_code``/``_secret``/``_assertion``/``_verifier``) are dropped, flags
    about them (``refresh_token_issued``) kept; logging failures are swallowed.
    """

    def __init__(
        self,
        logger: logging.Logger | None = None,
        *,
        routine_level: int = logging.DEBUG,
        routine_events: Iterable[str] = ROUTINE_EVENTS,
    ) -> None:
        self._logger = logger or logging.getLogger("authward.events")
        self._routine_level = routine_level
        self._routine = frozenset(routine_events)

    async def emit(self, event: Event) -> None:
        """Log ``event`` (name, time, non-secret data)."""
        with contextlib.suppress(Exception):  # the sink must never fail the request
            level = self._routine_level if event.name in self._routine else logging.INFO
            if self._logger.isEnabledFor(level):
                self._logger.log(level, "%s", _EventLine(event))


class _EventLine:
    """An event rendered as a JSON line when (and only when) a handler formats it."""

    __slots__ = ("_event",)

    def __init__(self, event: Event) -> None:
        self._event = event

    def __str__(self) -> str:
        event = self._event
        line: dict[str, object] = {"event": event.name, "at": round(event.at, 3)}
        line.update(_printable(event.data))
        return json.dumps(line, default=str, separators=(", ", ": "))


def _printable(data: Mapping[str, object]) -> dict[str, object]:
    return {key: value for key, value in data.items() if not _names_a_secret(key)}


def _names_a_secret(key: str) -> bool:
    lowered = key.lower()
    return lowered in _SECRET_KEYS or lowered.endswith(_SECRET_SUFFIXES)
