"""``authward sweep``: one sweep from the command line, periodic mode, exit codes.

Spec: spec/stores.md §4.2 "Runners", §6.11 (SWP-04, SWP-05, SWP-07 through the CLI), CODE-34.

The one-shot tests run the real click command against a real database by URL: a SQLite file,
and on PostgreSQL the public schema with a random table prefix (a URL cannot carry the per-test
``search_path``), dropped afterwards. The command runs its own event loop, so it is invoked from
a worker thread.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from authward.cli.main import cli
from authward.cli.options import DATABASE_URL_ENVVAR
from authward.cli.sweep import sweep_periodically
from authward.stores.clock import FrozenClock
from authward.stores.sql.convert import to_seconds_column
from authward.stores.sql.engine import create_engine
from authward.stores.sql.schema import TABLE_NAMES, build_metadata
from tests.dbkit import KINDS, PG_URL, T0, Db, database, require_postgres
from tests.stores.sql.sweep_rows import ManualTimer, insert, keys


@asynccontextmanager
async def prefixed_database(kind: str, tmp_path: Path) -> AsyncIterator[tuple[Db | None, str, str]]:
    """Yield ``(db, url, prefix)``: prefixed tables that the bare URL reaches.

    On PostgreSQL ``db`` is a plain handle on the public schema, whose tables are dropped on
    exit.
    """
    if kind == "sqlite":
        async with database("sqlite", tmp_path, prefix="oauth_") as db:
            yield db, db.url, "oauth_"
        return
    await require_postgres()
    prefix = f"t{secrets.token_hex(3)}_"
    engine = create_engine(PG_URL, poolclass=sa.pool.NullPool)
    tables = build_metadata(prefix, "postgresql")
    async with engine.begin() as conn:
        await conn.run_sync(tables.metadata.create_all)
    try:
        yield Db(engine, tables, prefix, kind, FrozenClock(T0), PG_URL, {}), PG_URL, prefix
    finally:
        async with engine.begin() as conn:
            await conn.run_sync(tables.metadata.drop_all)
        await engine.dispose()


async def invoke(*args: str, env: dict[str, str | None] | None = None) -> Result:
    """Run ``authward sweep``; ``AUTHWARD_DATABASE_URL`` is unset unless ``env`` sets it."""
    runner = CliRunner(env={DATABASE_URL_ENVVAR: None, **(env or {})})
    return await asyncio.to_thread(runner.invoke, cli, ["sweep", *args])


@pytest.mark.parametrize("kind", KINDS)
async def test_one_sweep_prints_a_line_per_prefixed_table(kind: str, tmp_path: Path) -> None:
    """SWP-04, SWP-05 through the CLI: all nine prefixed tables, one line each, exit 0."""
    now = time.time()
    async with prefixed_database(kind, tmp_path) as (db, url, prefix):
        assert db is not None
        live: dict[str, str] = {}
        for table in db.tables.in_creation_order():
            await insert(db.engine, db.tables, table, now - 3600)
            live[table.name] = await insert(db.engine, db.tables, table, now + 3600)
        # CODE-34: an expired code whose access token still lives is kept.
        kept_code = await insert(
            db.engine, db.tables, db.tables.authorization_codes, now - 3600,
            access_token_expires_at=to_seconds_column(now + 600),
        )

        result = await invoke(
            "--database-url", url, "--table-prefix", prefix, "--batch-size", "2"
        )

        assert result.exit_code == 0, result.output
        assert result.stdout.splitlines() == [
            *(f"{prefix}{name}: 1 deleted" for name in TABLE_NAMES),
            "successors redacted: 0",
        ]
        for table in db.tables.in_creation_order():
            expected = {live[table.name]}
            if table is db.tables.authorization_codes:
                expected.add(kept_code)
            assert await keys(db.engine, db.tables, table) == expected


async def test_grace_option_redacts_old_successors(tmp_path: Path) -> None:
    """SWP-09 through the CLI: ``--refresh-grace-seconds`` reaches the redaction rule."""
    now = time.time()
    async with database("sqlite", tmp_path) as db:
        refresh = db.tables.refresh_tokens
        for age in (30, 600):
            await insert(
                db.engine, db.tables, refresh, now + 3600,
                consumed=True, consumed_at=to_seconds_column(now - age), successor={"v": 1},
            )
        result = await invoke(
            "--database-url", db.url, "--refresh-grace-seconds", "120"
        )
        assert result.exit_code == 0, result.output
        assert result.stdout.splitlines()[-1] == "successors redacted: 1"


async def test_database_url_can_come_from_the_environment_only(tmp_path: Path) -> None:
    """AUTHWARD_DATABASE_URL stands in for --database-url, which would show in ``ps``."""
    now = time.time()
    async with database("sqlite", tmp_path, prefix="oauth_") as db:
        nonces = db.tables.dpop_nonces
        await insert(db.engine, db.tables, nonces, now - 3600)
        live = await insert(db.engine, db.tables, nonces, now + 3600)
        result = await invoke("--table-prefix", "oauth_", env={DATABASE_URL_ENVVAR: db.url})
        assert result.exit_code == 0, result.output
        assert "oauth_dpop_nonces: 1 deleted" in result.stdout.splitlines()
        assert await keys(db.engine, db.tables, nonces) == {live}


@pytest.mark.parametrize("prefix", ["Bad-Prefix", "x;drop", "abcdefghij"])
async def test_invalid_prefix_exits_2_with_a_clear_message(tmp_path: Path, prefix: str) -> None:
    result = await invoke(
        "--database-url", f"sqlite:///{tmp_path / 'a.db'}", "--table-prefix", prefix
    )
    assert result.exit_code == 2
    assert "invalid --table-prefix" in result.stderr
    assert not (tmp_path / "a.db").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["--database-url", "mysql://localhost/x"],
        ["--database-url", "sqlite:///x.db", "--batch-size", "0"],
        ["--database-url", "sqlite:///x.db", "--interval", "0"],
        ["--database-url", "sqlite:///x.db", "--refresh-grace-seconds", "-1"],
        [],
    ],
)
async def test_usage_errors_exit_2(args: list[str]) -> None:
    result = await invoke(*args)
    assert result.exit_code == 2, result.output


async def test_a_database_without_the_tables_fails_with_exit_1(tmp_path: Path) -> None:
    """§4.1: a failing DELETE is reported, never swallowed."""
    result = await invoke("--database-url", f"sqlite:///{tmp_path / 'empty.db'}")
    assert result.exit_code == 1
    assert "sweep failed" in result.stderr


async def test_periodic_mode_prints_a_report_per_sweep_until_stopped(db: Db) -> None:
    """SWP-07 through the CLI's periodic mode (the signal handler only sets ``stop``)."""
    lines: list[str] = []
    timer = ManualTimer()
    stop = asyncio.Event()
    await insert(db.engine, db.tables, db.tables.dpop_nonces, time.time() - 60)
    task = asyncio.create_task(
        sweep_periodically(
            db.engine, db.tables, interval_seconds=30, stop=stop, echo=lines.append,
            sleep=timer.sleep,
        )
    )
    await timer.sleeping(1)
    assert lines == []
    timer.fire()
    await timer.sleeping(2)
    timer.fire()
    await timer.sleeping(3)
    stop.set()
    runner = await asyncio.wait_for(task, 30)

    assert not runner.running
    assert runner.sweeps_completed == 2
    assert timer.requested == [30, 30, 30]
    headers = [line for line in lines if line.startswith("sweep at ")]
    assert len(headers) == 2
    assert "  dpop_nonces: 1 deleted" in lines
    assert "  dpop_nonces: 0 deleted" in lines
    assert len(lines) == 2 * (1 + len(TABLE_NAMES) + 1)
