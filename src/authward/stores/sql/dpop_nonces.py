"""The SQL DPoP nonce store: server-issued nonces in ``<prefix>dpop_nonces``.

Spec: authward spec/stores.md §2.7, §3.0 (atomicity toolbox), §3.5; RFC 9449 §8.
"""

from __future__ import annotations

import secrets
import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from authward.stores.clock import Clock
from authward.stores.digest import b64url
from authward.stores.dpop_nonces import (
    DEFAULT_NONCE_TTL_SECONDS,
    Accepted,
    AcceptOutcome,
    Expired,
    Unknown,
    Used,
)
from authward.stores.sql.context import store_context
from authward.stores.sql.convert import (
    from_seconds_column,
    positive_ttl,
    to_seconds_column,
)
from authward.stores.sql.schema import NONCE_SIZE

NONCE_BYTES = 32


class SqlDpopNonceStore:
    """``DpopNonceStore`` on SQLAlchemy Core (PostgreSQL or SQLite).

    ``default_ttl`` (300 s unless configured) is the lifetime ``issue`` uses when called without
    one; it replaces the Elixir settings dispatcher (spec §3.5 "Config threading").
    """

    def __init__(
        self,
        engine: AsyncEngine | None,
        *,
        table_prefix: str = "",
        clock: Clock | None = None,
        default_ttl: int = DEFAULT_NONCE_TTL_SECONDS,
    ) -> None:
        self._ctx = store_context(engine, table_prefix, clock)
        self._t = self._ctx.tables.dpop_nonces
        self._default_ttl = positive_ttl(default_ttl)

    @property
    def default_ttl(self) -> int:
        """Seconds a nonce issued without an explicit ``ttl`` lives."""
        return self._default_ttl

    async def issue(self, ttl: int | None = None, *, now: float | None = None) -> str:
        """Insert ``{nonce, issued_at=now, expires_at=now+ttl}`` (whole seconds); return it."""
        lifetime = self._default_ttl if ttl is None else positive_ttl(ttl)
        issued_at = to_seconds_column(self._ctx.now(now))
        nonce = b64url(secrets.token_bytes(NONCE_BYTES))
        stmt = sa.insert(self._t).values(
            id=uuid.uuid4(),
            nonce=nonce,
            issued_at=issued_at,
            expires_at=to_seconds_column(from_seconds_column(issued_at) + lifetime),
            used_at=None,
        )
        async with self._ctx.one_statement() as conn:
            await conn.execute(stmt)
        return nonce

    async def valid(self, nonce: object, *, now: float | None = None) -> bool:
        """Read-only: a stored, unused nonce whose ``expires_at`` is after ``now``."""
        if not _plausible(nonce):
            return False
        t = self._t
        at = to_seconds_column(self._ctx.now(now))
        stmt = sa.select(t.c.id).where(
            t.c.nonce == nonce, t.c.used_at.is_(None), t.c.expires_at > at
        )
        async with self._ctx.one_statement() as conn:
            return (await conn.execute(stmt)).first() is not None

    async def accept(
        self, nonce: object, ttl: int, *, now: float | None = None
    ) -> AcceptOutcome:
        """Single-use consume with the inclusive cut-off ``issued_at >= now - ttl``."""
        positive_ttl(ttl)
        if not _plausible(nonce):
            return Unknown()
        t = self._t
        at = to_seconds_column(self._ctx.now(now))
        cutoff = to_seconds_column(from_seconds_column(at) - ttl)
        stmt = (
            sa.update(t)
            .where(t.c.nonce == nonce, t.c.used_at.is_(None), t.c.issued_at >= cutoff)
            .values(used_at=at)
        )
        async with self._ctx.one_statement() as conn:
            won = (await conn.execute(stmt)).rowcount == 1
        if won:
            return Accepted()
        async with self._ctx.one_statement() as conn:
            row = (
                await conn.execute(
                    sa.select(t.c.used_at, t.c.issued_at).where(t.c.nonce == nonce)
                )
            ).first()
        if row is None:
            return Unknown()
        if row.used_at is not None:
            return Used()
        if row.issued_at < cutoff:
            return Expired()
        return Unknown()


def _plausible(nonce: object) -> bool:
    """Could ``nonce`` be stored at all? Non-strings and over-long values cannot."""
    return isinstance(nonce, str) and 0 < len(nonce) <= NONCE_SIZE
