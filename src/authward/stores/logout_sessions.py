"""The logout session store contract: where to deliver back-channel logout tokens.

Spec: authward spec/stores.md §2.6 (table), §3.4 (store); OpenID Connect Back-Channel Logout 1.0
§2.5-§2.7.

One row per (OP session ``sid``, relying party ``client_id``). This is not the browser login
session; it is the delivery map the end-session endpoint reads. Criteria select rows by ``sid``
(which wins) or else by ``subject``; empty criteria select nothing, never everyone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class LogoutSession:
    """One relying party holding one OP session (``expires_at`` in Unix seconds)."""

    sid: str
    subject: str
    client_id: str
    backchannel_logout_uri: str
    expires_at: int
    session_required: bool = False


@dataclass(frozen=True, slots=True)
class LogoutTarget:
    """Where and how to deliver one logout token."""

    client_id: str
    backchannel_logout_uri: str
    sid: str
    session_required: bool


@dataclass(frozen=True, slots=True)
class LogoutCriteria:
    """Which sessions to log out: a non-empty ``sid`` wins, else a non-empty ``subject``.

    With neither, nothing matches.
    """

    sid: str | None = None
    subject: str | None = None


# --- outcomes ---


@dataclass(frozen=True, slots=True)
class Recorded:
    """``record`` inserted or refreshed the (sid, client_id) row."""


@dataclass(frozen=True, slots=True)
class Deleted:
    """``delete`` removed ``count`` rows (0 for empty criteria)."""

    count: int


class LogoutSessionStore(Protocol):
    """Persistence of the back-channel logout delivery map. ``now`` is Unix seconds."""

    async def record(self, entry: LogoutSession, *, now: float | None = None) -> Recorded:
        """Upsert on (sid, client_id); one ``INSERT ... ON CONFLICT DO UPDATE``.

        An existing row keeps its ``id`` and ``inserted_at`` and takes the new subject, URI,
        ``session_required`` and ``expires_at``. Over-long values raise before any write.
        """
        ...

    async def targets(
        self, criteria: LogoutCriteria, *, now: float | None = None
    ) -> tuple[LogoutTarget, ...]:
        """The unexpired (``expires_at > now``) targets matching ``criteria``; ``()`` if empty."""
        ...

    async def delete(self, criteria: LogoutCriteria, *, now: float | None = None) -> Deleted:
        """Delete every row matching ``criteria``, expired or not; empty criteria delete nothing."""
        ...

    async def take_targets(
        self, criteria: LogoutCriteria, *, now: float | None = None
    ) -> tuple[LogoutTarget, ...]:
        """Delete and return the unexpired matching rows in one ``DELETE ... RETURNING``.

        Two concurrent takers never both receive the same row. Expired rows stay for the
        sweeper; empty criteria take nothing.
        """
        ...
