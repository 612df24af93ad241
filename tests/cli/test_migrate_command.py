"""``authward migrate``: output and exit codes of the real command on both engines.

Spec: authward spec/stores.md §1.2, §7 item 10.

A URL cannot carry the per-test PostgreSQL ``search_path``, so on PostgreSQL the command runs on
the public schema with a random table prefix, and the prefixed tables are dropped afterwards
(other tables in that schema, from concurrent tests, are ignored by the command by design). The
command runs its own event loop, so it is invoked from a worker thread.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from authward.cli.main import cli
from authward.cli.options import DATABASE_URL_ENVVAR
from authward.stores.sql.engine import create_engine
from authward.stores.sql.schema import TABLE_NAMES, build_metadata
from tests.dbkit import KINDS, PG_URL, require_postgres


@dataclass
class Target:
    kind: str
    url: str
    prefix: str


@pytest.fixture(params=KINDS)
async def target(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Target]:
    """An empty database reachable by URL, and a table prefix nobody else uses."""
    if request.param == "sqlite":
        yield Target("sqlite", f"sqlite:///{tmp_path / 'migrate.db'}", "oauth_")
        return
    await require_postgres()
    prefix = f"m{secrets.token_hex(3)}_"
    yield Target("postgresql", PG_URL, prefix)
    engine = create_engine(PG_URL, poolclass=sa.pool.NullPool)
    try:
        async with engine.begin() as conn:
            for name in reversed(TABLE_NAMES):
                await conn.execute(sa.text(f'DROP TABLE IF EXISTS "{prefix}{name}"'))
    finally:
        await engine.dispose()


async def invoke(*args: str, env: dict[str, str | None] | None = None) -> Result:
    """Run ``authward migrate``; ``AUTHWARD_DATABASE_URL`` is unset unless ``env`` sets it."""
    runner = CliRunner(env={DATABASE_URL_ENVVAR: None, **(env or {})})
    return await asyncio.to_thread(runner.invoke, cli, ["migrate", *args])


async def test_migrate_creates_the_tables_then_reports_up_to_date(target: Target) -> None:
    """First run lists the nine created tables (exit 0); second run: "schema is up to date"."""
    first = await invoke("--database-url", target.url, "--table-prefix", target.prefix)
    assert first.exit_code == 0, first.stderr
    for name in TABLE_NAMES:
        assert f"created table {target.prefix}{name}\n" in first.stdout
    assert "schema is up to date" not in first.stdout
    second = await invoke("--database-url", target.url, "--table-prefix", target.prefix)
    assert second.exit_code == 0, second.stderr
    assert second.stdout == "schema is up to date\n"


async def test_remaining_differences_exit_1(target: Target) -> None:
    """A drifted table it cannot fix is reported on stderr with exit code 1."""
    table = f"{target.prefix}attesto_client_id_metadata"
    engine = create_engine(target.url, poolclass=sa.pool.NullPool)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                sa.text(
                    f"CREATE TABLE {table} (url VARCHAR(255) NOT NULL PRIMARY KEY, "
                    "expires_at TIMESTAMP NOT NULL, inserted_at TIMESTAMP NOT NULL)"
                )
            )
    finally:
        await engine.dispose()
    result = await invoke("--database-url", target.url, "--table-prefix", target.prefix)
    assert result.exit_code == 1
    assert f"{table}.metadata" in result.stderr
    assert "still differs" in result.stderr


async def test_prefix_comes_from_pyproject(
    target: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same prefix resolution as gen-migration: [tool.authward] table_prefix."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text(f'[tool.authward]\ntable_prefix = "{target.prefix}"\n')
    monkeypatch.chdir(project)
    result = await invoke("--database-url", target.url)
    assert result.exit_code == 0, result.stderr
    assert f"created table {target.prefix}dpop_nonces" in result.stdout


async def test_invalid_prefix_exits_2_and_creates_nothing(tmp_path: Path) -> None:
    """Validation error: exit 2, "invalid --table-prefix", no database file created."""
    db = tmp_path / "never.db"
    result = await invoke("--database-url", f"sqlite:///{db}", "--table-prefix", "bad-prefix;")
    assert result.exit_code == 2
    assert "invalid --table-prefix" in result.stderr
    assert not db.exists()


async def test_unsupported_database_exits_2() -> None:
    """Only postgresql and sqlite URLs are accepted."""
    result = await invoke("--database-url", "mysql://u@localhost/db")
    assert result.exit_code == 2
    assert "unsupported database" in result.stderr


async def test_database_url_is_required() -> None:
    """Usage error without --database-url."""
    result = await invoke()
    assert result.exit_code == 2


async def test_database_url_can_come_from_the_environment_only(tmp_path: Path) -> None:
    """AUTHWARD_DATABASE_URL stands in for --database-url, which would show in ``ps``."""
    db = tmp_path / "env.db"
    result = await invoke("--table-prefix", "oauth_", env={DATABASE_URL_ENVVAR: f"sqlite:///{db}"})
    assert result.exit_code == 0, result.stderr
    for name in TABLE_NAMES:
        assert f"created table oauth_{name}\n" in result.stdout
    engine = create_engine(f"sqlite:///{db}")
    try:
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
    finally:
        await engine.dispose()
    assert names == {f"oauth_{name}" for name in TABLE_NAMES}


async def test_command_line_url_wins_over_the_environment(tmp_path: Path) -> None:
    given, ignored = tmp_path / "given.db", tmp_path / "ignored.db"
    result = await invoke(
        "--database-url", f"sqlite:///{given}", env={DATABASE_URL_ENVVAR: f"sqlite:///{ignored}"}
    )
    assert result.exit_code == 0, result.stderr
    assert given.exists()
    assert not ignored.exists()


async def test_migrated_tables_match_build_metadata(tmp_path: Path) -> None:
    """The command's tables are the runtime metadata's: every index is there."""
    url = f"sqlite:///{tmp_path / 'm.db'}"
    assert (await invoke("--database-url", url)).exit_code == 0
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            names = await conn.run_sync(
                lambda c: {
                    t: {ix["name"] for ix in sa.inspect(c).get_indexes(t)}
                    for t in sa.inspect(c).get_table_names()
                }
            )
    finally:
        await engine.dispose()
    expected = build_metadata("", "sqlite")
    assert names == {t.name: {ix.name for ix in t.indexes} for t in expected.in_creation_order()}
