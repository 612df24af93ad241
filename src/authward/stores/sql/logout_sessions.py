"""The SQL logout session store: the back-channel logout map in ``<prefix>attesto_logout_sessions``.

Spec: authward spec/stores.md §2.6, §3.0 (atomicity toolbox), §3.4.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from authward.stores.clock import Clock
from authward.stores.errors import StoreContractError
from authward.stores.logout_sessions import (
    Deleted,
    LogoutCriteria,
    LogoutSession,
    LogoutTarget,
    Recorded,
)
from authward.stores.sql.context import store_context
from authward.stores.sql.convert import check_length, require, to_seconds_column
from authward.stores.sql.schema import IDENT_SIZE


class SqlLogoutSessionStore:
    """``LogoutSessionStore`` on SQLAlchemy Core (PostgreSQL or SQLite)."""

    def __init__(
        self,
        engine: AsyncEngine | None,
        *,
        table_prefix: str = "",
        clock: Clock | None = None,
    ) -> None:
        self._ctx = store_context(engine, table_prefix, clock)
        self._t = self._ctx.tables.logout_sessions

    async def record(self, entry: LogoutSession, *, now: float | None = None) -> Recorded:
        """Upsert on (sid, client_id), keeping an existing row's ``id`` and ``inserted_at``."""
        for name in ("sid", "subject", "client_id", "backchannel_logout_uri", "expires_at"):
            require(name, getattr(entry, name))
        for name in ("sid", "subject", "client_id"):
            check_length(name, getattr(entry, name), IDENT_SIZE)
        if not isinstance(entry.session_required, bool):
            raise StoreContractError("session_required must be a bool")
        at = self._ctx.now(now)
        insert = postgresql.insert if self._ctx.dialect == "postgresql" else sqlite.insert
        stmt = insert(self._t).values(
            id=uuid.uuid4(),
            sid=entry.sid,
            subject=entry.subject,
            client_id=entry.client_id,
            backchannel_logout_uri=entry.backchannel_logout_uri,
            session_required=entry.session_required,
            expires_at=to_seconds_column(entry.expires_at),
            inserted_at=to_seconds_column(at),
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["sid", "client_id"],
            set_={
                "subject": stmt.excluded.subject,
                "backchannel_logout_uri": stmt.excluded.backchannel_logout_uri,
                "session_required": stmt.excluded.session_required,
                "expires_at": stmt.excluded.expires_at,
            },
        )
        async with self._ctx.one_statement() as conn:
            await conn.execute(stmt)
        return Recorded()

    async def targets(
        self, criteria: LogoutCriteria, *, now: float | None = None
    ) -> tuple[LogoutTarget, ...]:
        """Unexpired targets matching ``criteria`` (sid wins over subject); none if empty."""
        match = self._filter(criteria)
        if match is None:
            return ()
        t = self._t
        stmt = (
            sa.select(t.c.client_id, t.c.backchannel_logout_uri, t.c.sid, t.c.session_required)
            .where(match, t.c.expires_at > to_seconds_column(self._ctx.now(now)))
            .order_by(t.c.sid, t.c.client_id)
        )
        async with self._ctx.one_statement() as conn:
            rows = (await conn.execute(stmt)).all()
        return tuple(_target(r) for r in rows)

    async def delete(self, criteria: LogoutCriteria, *, now: float | None = None) -> Deleted:
        """Delete every matching row, expired or not; empty criteria delete nothing."""
        match = self._filter(criteria)
        if match is None:
            return Deleted(0)
        async with self._ctx.one_statement() as conn:
            count = (await conn.execute(sa.delete(self._t).where(match))).rowcount
        return Deleted(count)

    async def take_targets(
        self, criteria: LogoutCriteria, *, now: float | None = None
    ) -> tuple[LogoutTarget, ...]:
        """Delete and return the unexpired matching rows in one ``DELETE ... RETURNING``."""
        match = self._filter(criteria)
        if match is None:
            return ()
        t = self._t
        stmt = (
            sa.delete(t)
            .where(match, t.c.expires_at > to_seconds_column(self._ctx.now(now)))
            .returning(t.c.client_id, t.c.backchannel_logout_uri, t.c.sid, t.c.session_required)
        )
        async with self._ctx.one_statement() as conn:
            rows = (await conn.execute(stmt)).all()
        return tuple(sorted((_target(r) for r in rows), key=lambda x: (x.sid, x.client_id)))

    def _filter(self, criteria: LogoutCriteria) -> sa.ColumnElement[bool] | None:
        """The WHERE clause of ``criteria``, or None when it selects nothing."""
        if _given(criteria.sid):
            return self._t.c.sid == criteria.sid
        if _given(criteria.subject):
            return self._t.c.subject == criteria.subject
        return None


def _given(value: object) -> bool:
    return isinstance(value, str) and value != ""


def _target(row: sa.Row[Any]) -> LogoutTarget:
    return LogoutTarget(
        client_id=row.client_id,
        backchannel_logout_uri=row.backchannel_logout_uri,
        sid=row.sid,
        session_required=bool(row.session_required),
    )
