"""The PostgreSQL engine (stores/sql/engine.py): the idle-connection check and the AUTOCOMMIT
companion pool of the stores' single statements."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from authward.stores.sql.context import store_context
from authward.stores.sql.engine import autocommit_engine_of, create_engine, normalise_url
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


def _checked_in(engine: AsyncEngine) -> int:
    pool = engine.sync_engine.pool
    assert isinstance(pool, sa.pool.QueuePool)
    return pool.checkedin()


async def _visible_elsewhere(table: str) -> int:
    """Rows of ``table`` as another connection sees them (committed rows only)."""
    probe = create_engine(PG_URL, poolclass=sa.pool.NullPool)
    try:
        async with probe.connect() as conn:
            return int((await conn.execute(sa.text(f"select count(*) from {table}"))).scalar_one())
    finally:
        await probe.dispose()


async def test_single_statements_run_on_a_pool_that_is_autocommit_from_the_start() -> None:
    await require_postgres()
    engine = create_engine(PG_URL)
    companion = autocommit_engine_of(engine)
    table = f"authward_engine_ac_{id(engine)}"
    try:
        assert companion is not engine
        assert companion.sync_engine.pool is not engine.sync_engine.pool
        async with store_context(engine).one_statement() as conn:
            await conn.execute(sa.text(f"create table {table} (v int)"))
            await conn.execute(sa.text(f"insert into {table} values (1)"))
            # committed as each statement completed, before the block ends
            assert await _visible_elsewhere(table) == 1
        assert _checked_in(companion) == 1
        assert _checked_in(engine) == 0  # the engine's own pool was not used
    finally:
        async with engine.begin() as conn:
            await conn.execute(sa.text(f"drop table if exists {table}"))
        await engine.dispose()


async def test_the_engine_itself_keeps_real_transactions() -> None:
    await require_postgres()
    engine = create_engine(PG_URL)
    table = f"authward_engine_test_{id(engine)}"
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text(f"create table {table} (v int)"))

        async def insert_then_fail() -> None:
            async with engine.begin() as conn:
                await conn.execute(sa.text(f"insert into {table} values (1)"))
                raise RuntimeError("abort")

        with pytest.raises(RuntimeError):
            await insert_then_fail()
        async with store_context(engine).one_statement() as single:
            count = (await single.execute(sa.text(f"select count(*) from {table}"))).scalar_one()
        assert count == 0
    finally:
        async with engine.begin() as conn:
            await conn.execute(sa.text(f"drop table if exists {table}"))
        await engine.dispose()


async def test_disposing_the_engine_closes_the_companion_pool() -> None:
    await require_postgres()
    engine = create_engine(PG_URL)
    companion = autocommit_engine_of(engine)
    async with store_context(engine).one_statement() as conn:
        pid = int((await conn.execute(sa.text("select pg_backend_pid()"))).scalar_one())
    await engine.dispose()
    assert _checked_in(companion) == 0
    probe = create_engine(PG_URL, poolclass=sa.pool.NullPool)
    try:
        async with probe.connect() as conn:
            alive = await conn.execute(
                sa.text("select count(*) from pg_stat_activity where pid = :pid"), {"pid": pid}
            )
            for _ in range(50):  # the backend exits just after its client closed
                if alive.scalar_one() == 0:
                    break
                await asyncio.sleep(0.02)
                alive = await conn.execute(
                    sa.text("select count(*) from pg_stat_activity where pid = :pid"),
                    {"pid": pid},
                )
            else:
                pytest.fail("the companion's connection is still open")
    finally:
        await probe.dispose()


async def test_a_hosts_own_engine_switches_its_connections_instead() -> None:
    await require_postgres()
    engine = create_async_engine(normalise_url(PG_URL))
    table = f"authward_engine_host_{id(engine)}"
    try:
        assert autocommit_engine_of(engine).sync_engine.pool is engine.sync_engine.pool
        async with store_context(engine).one_statement() as conn:
            await conn.execute(sa.text(f"create table {table} (v int)"))
            await conn.execute(sa.text(f"insert into {table} values (1)"))
            assert await _visible_elsewhere(table) == 1
    finally:
        async with engine.begin() as conn:
            await conn.execute(sa.text(f"drop table if exists {table}"))
        await engine.dispose()


async def test_listeners_on_the_engine_see_the_single_statements() -> None:
    """Statement logging or tracing a host sets up on its engine sees the statements the
    stores run on the companion pool."""
    await require_postgres()
    engine = create_engine(PG_URL)
    seen: list[str] = []
    finished: list[str] = []
    sa.event.listen(
        engine.sync_engine, "before_cursor_execute", lambda *a: seen.append(a[2])
    )
    sa.event.listen(
        engine.sync_engine, "after_cursor_execute", lambda *a: finished.append(a[2])
    )
    try:
        async with store_context(engine).one_statement() as conn:
            await conn.execute(sa.text("select 41 + 1"))
        assert seen == finished == ["select 41 + 1"]
    finally:
        await engine.dispose()


async def test_each_single_statement_returns_its_connection_with_its_rows_fetched() -> None:
    await require_postgres()
    engine = create_engine(PG_URL)
    companion = autocommit_engine_of(engine)
    try:
        async with store_context(engine).one_statement() as conn:
            rows = await conn.execute(sa.text("select generate_series(1, 3) as n"))
            assert _checked_in(companion) == 1  # back in the pool before the rows are read
            assert [r.n for r in rows] == [1, 2, 3]
            with pytest.raises(sa.exc.ProgrammingError):
                await conn.execute(sa.text("select * from no_such_table_here"))
            assert _checked_in(companion) == 1  # a failed statement returns it too
            assert (await conn.execute(sa.text("select 7"))).scalar_one() == 7
    finally:
        await engine.dispose()
