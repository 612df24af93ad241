"""The SQL replay check: namespaced, digested ``jti`` keys in ``<prefix>dpop_replays``.

Spec: authward spec/stores.md §2.8, §3.0 (atomicity toolbox), §3.6, §7 item 6 and item 11
(``ON CONFLICT DO NOTHING`` keeps an enclosing transaction alive).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from authward.stores.clock import Clock
from authward.stores.errors import StoreError
from authward.stores.replay import (
    DEFAULT_REPLAY_TTL_SECONDS,
    Recorded,
    RecordOutcome,
    Replay,
    replay_key,
)
from authward.stores.sql.context import Statements, store_context
from authward.stores.sql.convert import positive_ttl, to_micros_column


class SqlReplayStore:
    """``ReplayStore`` on SQLAlchemy Core (PostgreSQL or SQLite)."""

    def __init__(
        self,
        engine: AsyncEngine | None,
        *,
        table_prefix: str = "",
        clock: Clock | None = None,
    ) -> None:
        self._ctx = store_context(engine, table_prefix, clock)
        self._t = self._ctx.tables.dpop_replays
        insert = postgresql.insert if self._ctx.dialect == "postgresql" else sqlite.insert
        #: Built once (hot path: every DPoP proof and client assertion is recorded here).
        self._record = (
            insert(self._t)
            .values(
                jti=sa.bindparam("key"),
                expires_at=sa.bindparam("until", type_=self._t.c.expires_at.type),
                inserted_at=sa.bindparam("at", type_=self._t.c.inserted_at.type),
            )
            .on_conflict_do_nothing(index_elements=["jti"])
        )

    async def check_and_record(
        self,
        namespace: str,
        raw_jti: str,
        ttl_seconds: int = DEFAULT_REPLAY_TTL_SECONDS,
        *,
        now: float | None = None,
        connection: Statements | None = None,
    ) -> RecordOutcome:
        """Record the key unless present: ``Recorded`` on first sighting, else ``Replay``.

        ``connection`` (SQL-only extension): run the insert inside the caller's open
        transaction instead of a transaction of its own. ``ON CONFLICT DO NOTHING`` means a
        replay never aborts that transaction, and the record commits or rolls back with it.
        """
        key = replay_key(namespace, raw_jti)
        ttl = positive_ttl(ttl_seconds)
        at = self._ctx.now(now)
        stmt = self._record
        params = {
            "key": key,
            "until": to_micros_column(at + ttl),
            "at": to_micros_column(at),
        }
        if connection is not None:
            inserted = (await connection.execute(stmt, params)).rowcount
        else:
            async with self._ctx.one_statement() as conn:
                inserted = (await conn.execute(stmt, params)).rowcount
        if inserted == 1:
            return Recorded()
        if inserted == 0:
            return Replay()
        raise StoreError(f"replay insert affected {inserted} rows; expected 0 or 1")

    async def is_recorded(
        self, namespace: str, raw_jti: str, *, now: float | None = None
    ) -> bool:
        """One indexed ``SELECT`` of the key; see the contract."""
        key = replay_key(namespace, raw_jti)
        self._ctx.now(now)
        async with self._ctx.one_statement() as conn:
            found = await conn.execute(
                sa.select(sa.literal(1)).where(self._t.c.jti == key).limit(1)
            )
            return found.first() is not None

    async def sweep(self, *, now: float | None = None) -> int:
        """Delete keys with ``expires_at < now``; return the count."""
        cutoff = to_micros_column(self._ctx.now(now))
        async with self._ctx.one_statement() as conn:
            result = await conn.execute(sa.delete(self._t).where(self._t.c.expires_at < cutoff))
        return result.rowcount
