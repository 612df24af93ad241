"""The SQL CIMD metadata cache: fresh-only lookup and a single-statement upsert.

Spec: authward spec/stores.md §2.10, §3.0, §3.8 and project decision 4.
"""

from __future__ import annotations

from typing import cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from authward.stores.client_metadata import MAX_URL_LENGTH, ClientMetadata, GetOutcome, Hit, Miss
from authward.stores.clock import Clock
from authward.stores.sql.context import store_context
from authward.stores.sql.convert import (
    check_length,
    json_object,
    require,
    to_micros_column,
    to_seconds_column,
)


class SqlClientMetadataCache:
    """``ClientMetadataCache`` on PostgreSQL or SQLite (see the Protocol)."""

    def __init__(
        self,
        engine: AsyncEngine | None,
        *,
        table_prefix: str = "",
        clock: Clock | None = None,
    ) -> None:
        self._ctx = store_context(engine, table_prefix, clock)
        self._table = self._ctx.tables.client_id_metadata

    async def get(self, url: str, *, now: float | None = None) -> GetOutcome:
        """The cached document if ``expires_at > now``, else ``Miss``.

        An empty or over-long URL can never have been cached: ``Miss`` without a query.
        """
        if not url or len(url) > MAX_URL_LENGTH:
            return Miss()
        t = self._table
        stmt = sa.select(t.c.metadata).where(
            t.c.url == url, t.c.expires_at > to_micros_column(self._ctx.now(now))
        )
        async with self._ctx.one_statement() as conn:
            row = (await conn.execute(stmt)).first()
        if row is None:
            return Miss()
        if not isinstance(row.metadata, dict):
            raise TypeError(f"cached metadata is not a JSON object: {type(row.metadata).__name__}")
        return Hit(cast(ClientMetadata, row.metadata))

    async def put(
        self, url: str, metadata: ClientMetadata, expires_at: float, *, now: float | None = None
    ) -> None:
        """Upsert the document for ``url``; ``inserted_at`` is kept, the rest is replaced."""
        require("url", url)
        check_length("url", url, MAX_URL_LENGTH)
        body = json_object("metadata", metadata)
        t = self._table
        values = {
            "url": url,
            "metadata": body,
            "expires_at": to_seconds_column(expires_at),
            "inserted_at": to_seconds_column(self._ctx.now(now)),
        }
        insert = postgresql.insert if self._ctx.dialect == "postgresql" else sqlite.insert
        upsert = insert(t).values(values)
        stmt = upsert.on_conflict_do_update(
            index_elements=[t.c.url],
            set_={"metadata": upsert.excluded.metadata, "expires_at": upsert.excluded.expires_at},
        )
        async with self._ctx.one_statement() as conn:
            await conn.execute(stmt)
