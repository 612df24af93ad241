"""The SQL pushed-authorization-request store: single-statement put, fetch and take.

Spec: authward spec/stores.md §2.9, §3.0, §3.7 (RFC 9126), §7 item 9 and project decision 5.

The primary-key column ``request_uri`` holds ``digest(request_uri)``; the raw URN is never
written. ``expires_at`` and ``inserted_at`` have second resolution.
"""

from __future__ import annotations

from typing import cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from authward.stores.clock import Clock
from authward.stores.digest import digest
from authward.stores.json import JsonObject
from authward.stores.par import (
    Duplicate,
    FetchOutcome,
    Found,
    Missing,
    PutOutcome,
    Stored,
    Taken,
    TakeOutcome,
)
from authward.stores.sql.context import store_context
from authward.stores.sql.convert import (
    json_object,
    positive_ttl,
    require,
    to_micros_column,
    to_seconds_column,
)


class SqlPushedAuthorizationRequestStore:
    """``PushedAuthorizationRequestStore`` on PostgreSQL or SQLite (see the Protocol)."""

    def __init__(
        self,
        engine: AsyncEngine | None,
        *,
        table_prefix: str = "",
        clock: Clock | None = None,
    ) -> None:
        self._ctx = store_context(engine, table_prefix, clock)
        self._table = self._ctx.tables.pushed_authorization_requests

    async def put(
        self, request_uri: str, params: JsonObject, ttl: int, *, now: float | None = None
    ) -> PutOutcome:
        """Insert the request unless its ``request_uri`` exists; ``Duplicate`` leaves it intact."""
        require("request_uri", request_uri)
        lifetime = positive_ttl(ttl)
        body = json_object("params", params)
        at = self._ctx.now(now)
        t = self._table
        values = {
            "request_uri": digest(request_uri),
            "params": body,
            "expires_at": to_seconds_column(at + lifetime),
            "inserted_at": to_seconds_column(at),
        }
        insert = postgresql.insert if self._ctx.dialect == "postgresql" else sqlite.insert
        stmt = insert(t).values(values).on_conflict_do_nothing(index_elements=[t.c.request_uri])
        async with self._ctx.one_statement() as conn:
            inserted = (await conn.execute(stmt.returning(t.c.request_uri))).first()
        return Stored() if inserted is not None else Duplicate()

    async def fetch(self, request_uri: str, *, now: float | None = None) -> FetchOutcome:
        """The live request's params, without consuming it; else ``Missing``."""
        if not request_uri:
            return Missing()
        t = self._table
        stmt = sa.select(t.c.params).where(
            t.c.request_uri == digest(request_uri),
            t.c.expires_at > to_micros_column(self._ctx.now(now)),
        )
        async with self._ctx.one_statement() as conn:
            row = (await conn.execute(stmt)).first()
        return Missing() if row is None else Found(_as_object(row.params))

    async def take(self, request_uri: str, *, now: float | None = None) -> TakeOutcome:
        """Delete the live request and return its params in one statement; else ``Missing``."""
        if not request_uri:
            return Missing()
        t = self._table
        stmt = (
            sa.delete(t)
            .where(
                t.c.request_uri == digest(request_uri),
                t.c.expires_at > to_micros_column(self._ctx.now(now)),
            )
            .returning(t.c.params)
        )
        async with self._ctx.one_statement() as conn:
            row = (await conn.execute(stmt)).first()
        return Missing() if row is None else Taken(_as_object(row.params))


def _as_object(value: object) -> JsonObject:
    """The stored params as read back (always a JSON object; anything else is corruption)."""
    if not isinstance(value, dict):
        raise TypeError(f"stored params are not a JSON object: {type(value).__name__}")
    return cast(JsonObject, value)
