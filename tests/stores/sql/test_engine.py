"""The PostgreSQL engine's idle-connection check (stores/sql/engine.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from authward.stores.sql.engine import create_engine
from tests.dbkit import PG_URL, require_postgres


async def _backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(sa.text("select pg_backend_pid()"))).scalar_one())


async def _terminate(pid: int) -> None:
    admin = create_engine(PG_URL, poolclass=sa.pool.NullPool)
    try:
        async with admin.begin() as conn:
            await conn.execute(sa.text("select pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        await admin.dispose()


async def test_a_connection_killed_while_idle_is_replaced_at_checkout(tmp_path: Path) -> None:
    await require_postgres()
    engine = create_engine(PG_URL, pool_size=1, max_overflow=0)
    engine.sync_engine.pool._recycle = -1  # keep the one connection: only the ping may save it
    try:
        pid = await _backend_pid(engine)
        await _terminate(pid)
        await asyncio.sleep(1.2)  # past PING_AFTER_IDLE_SECONDS: the checkout pings
        assert await _backend_pid(engine) != pid
    finally:
        await engine.dispose()


async def test_a_connection_used_moments_ago_is_reused_without_a_ping(tmp_path: Path) -> None:
    """Inside the idle window there is no ping: a connection killed moments ago fails the one
    operation that gets it, SQLAlchemy sees the disconnect, and the next operation works."""
    await require_postgres()
    engine = create_engine(PG_URL, pool_size=1, max_overflow=0)
    try:
        pid = await _backend_pid(engine)
        await _terminate(pid)
        await asyncio.sleep(0.1)
        with pytest.raises(sa.exc.DBAPIError) as caught:
            await _backend_pid(engine)
        assert caught.value.connection_invalidated
        assert await _backend_pid(engine) != pid
    finally:
        await engine.dispose()
