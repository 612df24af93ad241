"""Sweeper test kit: minimal rows for the nine tables, and a manually fired timer.

The sweeper tests must not depend on the stores, so each row is a plain SQLAlchemy insert of the
required columns plus what a test overrides. Every row gets a fresh unique key. The timer stands
in for ``asyncio.sleep`` so runner tests never depend on how fast the machine is.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from authward.stores.sql.convert import to_micros_column, to_seconds_column
from authward.stores.sql.schema import Tables

#: The microsecond-resolution tables (spec §0.4); all others hold whole seconds.
MICROS_TABLES = ("dpop_replays", "attesto_consent_grants")


def key_of(tables: Tables, table: sa.Table) -> str:
    """The column that names one row of ``table`` (the codes table has no primary key)."""
    if table is tables.authorization_codes:
        return "code_hash"
    (column,) = table.primary_key.columns
    return column.name


def at(table: sa.Table, tables: Tables, unix: float) -> Any:
    """``unix`` as a column value for ``table``'s resolution."""
    base = table.name.removeprefix(tables.prefix)
    return to_micros_column(unix) if base in MICROS_TABLES else to_seconds_column(unix)


def row_for(tables: Tables, table: sa.Table, expires_at: float, **overrides: Any) -> dict[str, Any]:
    """Values for one minimal row of ``table`` expiring at ``expires_at`` (Unix seconds)."""
    tag = secrets.token_hex(8)
    issued = at(table, tables, expires_at - 60)
    t = tables
    values: dict[str, Any]
    if table is t.authorization_codes:
        values = {
            "code_hash": f"code-{tag}",
            "client_id": "client",
            "subject": "alice",
            "redirect_uri": "https://client.example/cb",
            "inserted_at": issued,
        }
    elif table is t.refresh_tokens:
        values = {
            "id": uuid.uuid4(),
            "token_hash": f"rt-{tag}",
            "family_id": f"fam-{tag}",
            "subject": "alice",
            "inserted_at": issued,
        }
    elif table is t.device_codes:
        values = {
            "id": uuid.uuid4(),
            "device_code_hash": f"dc-{tag}",
            "user_code": tag.upper(),
            "client_id": "client",
            "inserted_at": issued,
        }
    elif table is t.logout_sessions:
        values = {
            "id": uuid.uuid4(),
            "sid": f"sid-{tag}",
            "subject": "alice",
            "client_id": "client",
            "backchannel_logout_uri": "https://client.example/logout",
            "inserted_at": issued,
        }
    elif table is t.dpop_nonces:
        values = {"id": uuid.uuid4(), "nonce": f"nonce-{tag}", "issued_at": issued}
    elif table is t.dpop_replays:
        values = {"jti": f"jti-{tag}", "inserted_at": issued}
    elif table is t.pushed_authorization_requests:
        values = {
            "request_uri": f"urn:ietf:params:oauth:request_uri:{tag}",
            "params": {"client_id": "client"},
            "inserted_at": issued,
        }
    elif table is t.client_id_metadata:
        values = {
            "url": f"https://client.example/{tag}.json",
            "metadata": {"client_name": "x"},
            "inserted_at": issued,
        }
    elif table is t.consent_grants:
        values = {
            "token": f"grant-{tag}",
            "binding_hash": f"bind-{tag}",
            "subject": "alice",
            "inserted_at": issued,
            "updated_at": issued,
        }
    else:  # pragma: no cover - a tenth table would be a schema change
        raise AssertionError(f"unknown table {table.name}")
    values["expires_at"] = at(table, tables, expires_at)
    values.update(overrides)
    return values


async def insert(
    engine: AsyncEngine, tables: Tables, table: sa.Table, expires_at: float, **overrides: Any
) -> str:
    """Insert one minimal row and return its key (``key_of``) as a string."""
    values = row_for(tables, table, expires_at, **overrides)
    async with engine.begin() as conn:
        await conn.execute(sa.insert(table).values(values))
    return str(values[key_of(tables, table)])


async def keys(engine: AsyncEngine, tables: Tables, table: sa.Table) -> set[str]:
    """The keys of every row left in ``table``."""
    column = table.c[key_of(tables, table)]
    async with engine.connect() as conn:
        return {str(v) for v in (await conn.execute(sa.select(column))).scalars()}


#: A safety net against a hung test, not an assertion about speed.
PATIENCE = 30


class ManualTimer:
    """A ``sleep`` that returns only when the test calls ``fire()``."""

    def __init__(self) -> None:
        self.requested: list[float] = []
        self._changed = asyncio.Condition()
        self._pending: asyncio.Future[None] | None = None

    async def sleep(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        async with self._changed:
            self.requested.append(seconds)
            self._pending = loop.create_future()
            self._changed.notify_all()
        await self._pending

    async def sleeping(self, times: int) -> None:
        """Wait until the runner has gone to sleep ``times`` times in all."""

        async def wait() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: len(self.requested) >= times)

        await asyncio.wait_for(wait(), PATIENCE)

    def fire(self) -> None:
        """End the current sleep: one timer tick."""
        assert self._pending is not None
        assert not self._pending.done()
        self._pending.set_result(None)
