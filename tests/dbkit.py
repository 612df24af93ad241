"""Real test databases: a fresh SQLite file or a private PostgreSQL schema per use.

PostgreSQL isolation uses a throwaway schema put first on ``search_path`` of every pooled
connection, so concurrent test runs never see each other's rows. Under ``CI=true`` an
unreachable PostgreSQL fails the test instead of skipping it.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from authward.stores.clock import FrozenClock
from authward.stores.sql.engine import PoolSize, autocommit_engine_of, create_engine
from authward.stores.sql.schema import Tables, build_metadata

PG_URL = os.environ.get("AUTHWARD_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() == "true"
KINDS = ("sqlite", "postgresql")

#: A fixed start instant for frozen clocks: 2026-01-01T00:00:00Z.
T0 = 1_767_225_600.0


@dataclass
class Db:
    """A real, empty database with the nine tables created for ``prefix``."""

    engine: AsyncEngine
    tables: Tables
    prefix: str
    kind: str
    clock: FrozenClock
    url: str
    #: Extra keyword arguments that make another engine see the same schema.
    engine_options: dict[str, Any]

    async def rows(self, table: sa.Table) -> list[sa.Row[Any]]:
        """All rows of ``table``."""
        async with self.engine.connect() as conn:
            return list((await conn.execute(sa.select(table))).all())

    def new_engine(self, **options: Any) -> AsyncEngine:
        """A second, independent engine (its own pool) on the same database and schema."""
        merged = dict(self.engine_options)
        merged.update(options)
        return create_engine(self.url, **merged)

    async def racing_engine(self, n: int = 50) -> AsyncEngine:
        """A new engine whose pool already holds ``n`` open connections, so that ``n``
        concurrent store operations each really run on a connection of their own (on
        PostgreSQL: the AUTOCOMMIT pool the stores' single statements use). Dispose it."""
        if self.kind == "postgresql":
            # at most n + 12 connections: PostgreSQL's default limit is 100
            racing = self.new_engine(
                pool_size=2, max_overflow=8, statement_pool=PoolSize(n + 2, 0)
            )
            pool = autocommit_engine_of(racing)
        else:
            racing = pool = self.new_engine(pool_size=n + 2, max_overflow=0)
        opened = await asyncio.gather(*(pool.connect() for _ in range(n)), return_exceptions=True)
        await asyncio.gather(*(c.close() for c in opened if not isinstance(c, BaseException)))
        failed = [c for c in opened if isinstance(c, BaseException)]
        if failed:
            await racing.dispose()
            raise failed[0]
        return racing


_pg_state: dict[str, bool] = {}


async def require_postgres() -> None:
    """Skip (or, under CI, fail) when PostgreSQL is unreachable."""
    if "ok" not in _pg_state:
        engine = create_engine(PG_URL, poolclass=sa.pool.NullPool)
        try:
            async with engine.connect() as conn:
                await conn.execute(sa.text("select 1"))
            _pg_state["ok"] = True
        except Exception:
            _pg_state["ok"] = False
        finally:
            await engine.dispose()
    if not _pg_state["ok"]:
        if IN_CI:
            pytest.fail(f"PostgreSQL at {PG_URL} is required under CI=true and is unreachable")
        pytest.skip(f"PostgreSQL at {PG_URL} is unreachable")


@asynccontextmanager
async def empty_database(kind: str, tmp_path: Path) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """Yield ``(url, engine_options)`` for a brand-new empty database of ``kind``."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'authward.db'}", {}
        return
    await require_postgres()
    schema = "t_" + secrets.token_hex(6)
    admin = create_engine(PG_URL, poolclass=sa.pool.NullPool)
    async with admin.begin() as conn:
        await conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    options = {"connect_args": {"server_settings": {"search_path": schema}}}
    try:
        yield PG_URL, options
    finally:
        async with admin.begin() as conn:
            await conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


@asynccontextmanager
async def database(kind: str, tmp_path: Path, prefix: str = "") -> AsyncIterator[Db]:
    """Yield a ``Db`` of ``kind`` with the nine tables created from ``build_metadata``."""
    async with empty_database(kind, tmp_path) as (url, options):
        engine = create_engine(url, **options)
        tables = build_metadata(prefix, "postgresql" if kind == "postgresql" else "sqlite")
        try:
            async with engine.begin() as conn:
                await conn.run_sync(tables.metadata.create_all)
            yield Db(engine, tables, prefix, kind, FrozenClock(T0), url, options)
        finally:
            await engine.dispose()
