"""The SQL consent-grant store: digest-keyed mint and a single-statement, binding-guarded consume.

Spec: authward spec/stores.md §2.11, §3.0, §3.9 (RFC 6749 §4.1.1), §7 item 9 and project
decision 5.

The primary-key column ``token`` holds ``digest(token)``; the raw token is never written.
Timestamps keep microseconds. ``updated_at`` is set on insert and never touched by consume.
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from authward.stores.clock import Clock
from authward.stores.consent import (
    BindingMismatch,
    ConsentBinding,
    Consumed,
    ConsumeOutcome,
    Expired,
    Granted,
    NotFound,
    binding_hash,
)
from authward.stores.digest import b64url, digest
from authward.stores.errors import DuplicateKeyError
from authward.stores.sql.context import store_context
from authward.stores.sql.convert import check_length, positive_ttl, to_micros_column
from authward.stores.sql.schema import IDENT_SIZE


class SqlConsentGrantStore:
    """``ConsentGrantStore`` on PostgreSQL or SQLite (see the Protocol)."""

    def __init__(
        self,
        engine: AsyncEngine | None,
        *,
        table_prefix: str = "",
        clock: Clock | None = None,
    ) -> None:
        self._ctx = store_context(engine, table_prefix, clock)
        self._table = self._ctx.tables.consent_grants

    async def mint(self, binding: ConsentBinding, ttl: int, *, now: float | None = None) -> str:
        """Insert a grant for ``binding`` valid for ``ttl`` seconds; return the new token."""
        lifetime = positive_ttl(ttl)
        check_length("subject", binding.subject, IDENT_SIZE)
        hashed = binding_hash(binding)
        token = b64url(secrets.token_bytes(32))
        at = self._ctx.now(now)
        stamp = to_micros_column(at)
        t = self._table
        values = {
            "token": digest(token),
            "binding_hash": hashed,
            "subject": binding.subject,
            "consumed_at": None,
            "expires_at": to_micros_column(at + lifetime),
            "inserted_at": stamp,
            "updated_at": stamp,
        }
        insert = postgresql.insert if self._ctx.dialect == "postgresql" else sqlite.insert
        stmt = insert(t).values(values).on_conflict_do_nothing(index_elements=[t.c.token])
        async with self._ctx.one_statement() as conn:
            inserted = (await conn.execute(stmt.returning(t.c.token))).first()
        if inserted is None:
            raise DuplicateKeyError("consent grant token collision")
        return token

    async def consume(
        self, token: str | None, binding: ConsentBinding, *, now: float | None = None
    ) -> ConsumeOutcome:
        """Spend the grant in one guarded UPDATE; on 0 rows, read back and classify why."""
        if token is None or token == "":
            return NotFound()
        key = digest(token)
        hashed = binding_hash(binding)
        at = to_micros_column(self._ctx.now(now))
        t = self._table
        claim = (
            sa.update(t)
            .where(
                t.c.token == key,
                t.c.binding_hash == hashed,
                t.c.consumed_at.is_(None),
                t.c.expires_at > at,
            )
            .values(consumed_at=at)
            .returning(t.c.token)
        )
        why = sa.select(t.c.binding_hash, t.c.consumed_at, t.c.expires_at).where(t.c.token == key)
        async with self._ctx.one_statement() as conn:
            if (await conn.execute(claim)).first() is not None:
                return Granted()
            row = (await conn.execute(why)).first()
        # The decision is taken; the read above only explains the loss.
        if row is None:
            return NotFound()
        if row.binding_hash != hashed:
            return BindingMismatch()
        if row.consumed_at is not None:
            return Consumed()
        if row.expires_at > at:
            return Consumed()
        return Expired()
