"""The inline-first aiosqlite connection behind authward's SQLite engine.

Spec: authward spec/stores.md §2.12 (SQLite: WAL, busy timeout, ``BEGIN IMMEDIATE``). Real
SQLite files; the lock is held by a second, plain ``sqlite3`` connection, as another process or
node would hold it.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from authward.stores.sql.engine import create_engine
from authward.stores.sql.sqlite_driver import InlineFirstConnection, is_locked_error


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    built = create_engine(f"sqlite:///{tmp_path / 'driver.db'}")
    async with built.begin() as conn:
        await conn.execute(sa.text("CREATE TABLE t (v INTEGER)"))
    yield built
    await built.dispose()


async def _thread_of_a_statement(engine: AsyncEngine) -> int:
    """The id of the thread that ran a statement (a SQL function reports it)."""
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert isinstance(driver, InlineFirstConnection)
        await driver.create_function("thread_id", 0, threading.get_ident)
        return int((await conn.execute(sa.text("SELECT thread_id()"))).scalar_one())


async def test_statements_run_on_the_event_loop_thread(engine: AsyncEngine) -> None:
    assert await _thread_of_a_statement(engine) == threading.get_ident()
    async with engine.connect() as conn:
        assert (await conn.execute(sa.text("PRAGMA busy_timeout"))).scalar_one() == 0


async def test_plain_aiosqlite_stays_available(tmp_path: Path) -> None:
    plain = create_engine(f"sqlite:///{tmp_path / 'plain.db'}", sqlite_inline=False)
    try:
        async with plain.connect() as conn:
            raw = await conn.get_raw_connection()
            assert not isinstance(raw.driver_connection, InlineFirstConnection)
            assert (await conn.execute(sa.text("PRAGMA busy_timeout"))).scalar_one() == 30_000
            assert (await conn.execute(sa.text("SELECT 1"))).scalar_one() == 1
    finally:
        await plain.dispose()


async def test_a_locked_database_waits_on_the_thread_not_on_the_loop(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """Another connection holds the write lock for 0.3 s: the write waits for it off the event
    loop (a ticker keeps running meanwhile), then commits; the busy timeout is zero again."""
    holder = sqlite3.connect(tmp_path / "driver.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    ticks = 0
    done = asyncio.Event()

    async def tick() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.01)

    async def release() -> None:
        await asyncio.sleep(0.3)
        holder.execute("COMMIT")

    async def write() -> None:
        async with engine.begin() as conn:
            await conn.execute(sa.text("INSERT INTO t (v) VALUES (1)"))
        done.set()

    try:
        await asyncio.wait_for(asyncio.gather(tick(), release(), write()), timeout=10)
    finally:
        holder.close()
    assert ticks >= 10  # the loop kept running for most of the 0.3 s
    async with engine.connect() as conn:
        assert (await conn.execute(sa.text("SELECT count(*) FROM t"))).scalar_one() == 1
        assert (await conn.execute(sa.text("PRAGMA busy_timeout"))).scalar_one() == 0
    assert await _thread_of_a_statement(engine) == threading.get_ident()


async def test_other_errors_are_raised_at_once_not_retried(engine: AsyncEngine) -> None:
    with pytest.raises(sa.exc.OperationalError, match="no such table"):
        async with engine.connect() as conn:
            await conn.execute(sa.text("SELECT * FROM missing"))
    async with engine.begin() as conn:
        await conn.execute(sa.text("CREATE TABLE u (v INTEGER PRIMARY KEY)"))
    async with engine.connect() as conn:
        with pytest.raises(sa.exc.IntegrityError):
            await conn.execute(sa.text("INSERT INTO u VALUES (1), (1)"))
    async with engine.connect() as conn:
        assert (await conn.execute(sa.text("SELECT count(*) FROM t"))).scalar_one() == 0


def test_locked_errors_are_told_apart() -> None:
    locked = sqlite3.OperationalError("database is locked")
    locked.sqlite_errorcode = 5
    table_locked = sqlite3.OperationalError("database table is locked")
    table_locked.sqlite_errorcode = 6 | (1 << 8)
    assert is_locked_error(locked)
    assert is_locked_error(table_locked)
    assert is_locked_error(sqlite3.OperationalError("database is locked"))
    assert not is_locked_error(sqlite3.OperationalError("no such table: x"))
    assert not is_locked_error(ValueError("database is locked"))
