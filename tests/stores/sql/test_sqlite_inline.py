"""The stores' inline SQLite transactions (one synchronous connection on the event loop thread).

Spec: authward spec/stores.md §2.12 (SQLite: WAL, busy timeout, ``BEGIN IMMEDIATE``). Real
SQLite files; a lock is held by a second, plain ``sqlite3`` connection, as another process or
node would hold it.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from authward.stores.sql.context import store_context
from authward.stores.sql.engine import create_engine
from authward.stores.sql.sqlite_inline import InlineSqlite, inline_sqlite_of

INSERT = sa.text("INSERT INTO t (v) VALUES (:v)")
COUNT = sa.text("SELECT count(*) FROM t")


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    built = create_engine(f"sqlite:///{tmp_path / 'inline.db'}")
    async with built.begin() as conn:
        await conn.execute(sa.text("CREATE TABLE t (v INTEGER UNIQUE)"))
    yield built
    await built.dispose()


def runner_of(engine: AsyncEngine) -> InlineSqlite:
    runner = inline_sqlite_of(engine.sync_engine)
    assert runner is not None
    return runner


async def count(engine: AsyncEngine) -> int:
    """Rows of ``t`` as the asyncio engine (another connection) sees them."""
    async with engine.connect() as conn:
        return int((await conn.execute(COUNT)).scalar_one())


async def test_a_transaction_commits_on_the_event_loop_thread(engine: AsyncEngine) -> None:
    threads: list[int] = []

    def record(*_args: Any) -> None:
        threads.append(threading.get_ident())

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    async with store_context(engine).transaction() as conn:
        await conn.execute(INSERT, {"v": 1})
        await conn.execute(INSERT, {"v": 2})
    assert await count(engine) == 2
    # the listener on the asyncio engine saw both inserts, run on this (the loop's) thread
    assert threads[:2] == [threading.get_ident()] * 2


async def test_an_error_rolls_the_whole_transaction_back(engine: AsyncEngine) -> None:
    async def insert_twice() -> None:
        async with store_context(engine).transaction() as conn:
            await conn.execute(INSERT, {"v": 1})
            await conn.execute(INSERT, {"v": 1})  # UNIQUE

    with pytest.raises(sa.exc.IntegrityError):
        await insert_twice()
    assert await count(engine) == 0
    async with store_context(engine).transaction() as conn:  # the connection is clean
        await conn.execute(INSERT, {"v": 1})
    assert await count(engine) == 1


async def test_rows_are_fetched_when_the_statement_runs(engine: AsyncEngine) -> None:
    async with store_context(engine).transaction() as conn:
        for v in range(5):
            await conn.execute(INSERT, {"v": v})
        result = await conn.execute(sa.text("SELECT v FROM t ORDER BY v"))
    # read after the transaction ended: the rows came with the statement
    assert [row.v for row in result] == [0, 1, 2, 3, 4]


async def test_a_locked_database_waits_off_the_loop_and_others_queue_behind(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """Another connection holds the write lock for 0.3 s: the first transaction waits for it
    on a worker thread (a ticker keeps running), the second queues behind the first; both
    commit in order once the lock is free."""
    holder = sqlite3.connect(tmp_path / "inline.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    ticks = 0
    done = asyncio.Event()
    order: list[int] = []

    async def tick() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.01)

    async def write(v: int) -> None:
        async with store_context(engine).transaction() as conn:
            await conn.execute(INSERT, {"v": v})
            order.append(v)

    async def release() -> None:
        await asyncio.sleep(0.3)
        holder.execute("COMMIT")

    ticker = asyncio.create_task(tick())
    first = asyncio.create_task(write(1))
    await asyncio.sleep(0.05)
    second = asyncio.create_task(write(2))
    await asyncio.gather(first, second, release())
    done.set()
    await ticker
    holder.close()
    assert order == [1, 2]
    assert ticks >= 15  # the loop ran while the transactions waited
    assert await count(engine) == 2


async def test_a_cancelled_wait_leaves_no_transaction_open(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """Cancelled while its BEGIN waits on the thread: once the lock is free the runner's
    connection is not left holding a transaction (or the write lock), and nothing was written."""
    holder = sqlite3.connect(tmp_path / "inline.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")

    async def write() -> None:
        async with store_context(engine).transaction() as conn:
            await conn.execute(INSERT, {"v": 1})

    task = asyncio.create_task(write())
    await asyncio.sleep(0.1)
    task.cancel()
    await asyncio.sleep(0.05)
    holder.execute("COMMIT")
    with pytest.raises(asyncio.CancelledError):
        await task
    # the write lock is free again: another connection can take it at once
    other = sqlite3.connect(tmp_path / "inline.db", isolation_level=None, timeout=0)
    other.execute("BEGIN IMMEDIATE")
    other.execute("ROLLBACK")
    other.close()
    holder.close()
    assert await count(engine) == 0
    async with store_context(engine).transaction() as conn:
        await conn.execute(INSERT, {"v": 2})
    assert await count(engine) == 1


async def test_dispose_closes_the_connection_and_a_later_transaction_reopens(
    engine: AsyncEngine,
) -> None:
    async with store_context(engine).transaction() as conn:
        await conn.execute(INSERT, {"v": 1})
    runner = runner_of(engine)
    assert runner._connection is not None
    await engine.dispose()
    assert runner._connection is None
    async with store_context(engine).transaction() as conn:
        await conn.execute(INSERT, {"v": 2})
    assert await count(engine) == 2


async def test_in_memory_and_plain_aiosqlite_engines_have_no_inline_runner(
    tmp_path: Path,
) -> None:
    for engine in (
        create_engine("sqlite://"),
        create_engine(f"sqlite:///{tmp_path / 'plain.db'}", sqlite_inline=False),
    ):
        try:
            assert inline_sqlite_of(engine.sync_engine) is None
            async with engine.begin() as conn:
                await conn.execute(sa.text("CREATE TABLE t (v INTEGER)"))
            async with store_context(engine).transaction() as conn:  # engine.begin()
                await conn.execute(INSERT, {"v": 1})
            assert await count(engine) == 1
        finally:
            await engine.dispose()
