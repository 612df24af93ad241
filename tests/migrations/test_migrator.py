"""`authward migrate` logic: create what is missing, report what differs, on both engines.

Spec: authward spec/stores.md §1.2, §2, §7 items 1, 3 (nine tables, no tenth) and 10.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from authward.migrations.migrator import migrate_database, migrate_engine
from authward.stores.errors import InvalidTablePrefixError
from authward.stores.sql.engine import create_engine
from authward.stores.sql.schema import TABLE_NAMES, build_metadata
from tests.dbkit import KINDS, empty_database
from tests.migrations.kit import reflect


@dataclass
class Empty:
    """An empty database of ``kind`` and an engine on it."""

    kind: str
    url: str
    options: dict[str, Any]
    engine: AsyncEngine


@pytest.fixture(params=KINDS)
async def empty(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Empty]:
    async with empty_database(request.param, tmp_path) as (url, options):
        engine = create_engine(url, **options)
        try:
            yield Empty(request.param, url, options, engine)
        finally:
            await engine.dispose()


async def test_migrate_creates_exactly_the_nine_tables(empty: Empty) -> None:
    """§7 item 3: nine tables with all their indexes, no alembic_version, nothing else."""
    report = await migrate_database(empty.url, "", **empty.options)
    assert report.created_tables == TABLE_NAMES
    assert report.created_indexes == ()
    assert report.up_to_date
    live = await reflect(empty.engine)
    assert set(live) == set(TABLE_NAMES)
    expected = build_metadata("", "sqlite")
    for table in expected.in_creation_order():
        assert set(live[table.name]["indexes"]) == {ix.name for ix in table.indexes}


async def test_second_run_creates_nothing(empty: Empty) -> None:
    """Idempotent: the second run reports nothing created and no differences."""
    await migrate_engine(empty.engine, "oauth_")
    report = await migrate_engine(empty.engine, "oauth_")
    assert (report.created_tables, report.created_indexes, report.differences) == ((), (), ())
    assert not report.changed
    assert report.up_to_date


async def test_prefixed_tables_are_created(empty: Empty) -> None:
    """§7 item 1: the prefix reaches every table and index."""
    report = await migrate_engine(empty.engine, "oauth_")
    assert report.created_tables == tuple("oauth_" + name for name in TABLE_NAMES)
    live = await reflect(empty.engine)
    assert set(live) == {"oauth_" + name for name in TABLE_NAMES}
    for table, info in live.items():
        assert all(name.startswith(table) for name in info["indexes"])


async def test_a_missing_index_is_recreated(empty: Empty) -> None:
    """A table that lost an index gets it back; nothing else is touched."""
    await migrate_engine(empty.engine)
    async with empty.engine.begin() as conn:
        await conn.execute(sa.text("DROP INDEX attesto_refresh_tokens_family_id_generation_index"))
    report = await migrate_engine(empty.engine)
    assert report.created_tables == ()
    assert report.created_indexes == ("attesto_refresh_tokens_family_id_generation_index",)
    assert report.up_to_date


async def test_a_drifted_table_is_reported_not_altered(empty: Empty) -> None:
    """A pre-existing table missing a column is reported as a remaining difference."""
    async with empty.engine.begin() as conn:
        await conn.execute(
            sa.text(
                "CREATE TABLE dpop_replays (jti VARCHAR(255) NOT NULL PRIMARY KEY, "
                "expires_at TIMESTAMP NOT NULL)"
            )
        )
    report = await migrate_engine(empty.engine)
    assert "dpop_replays" not in report.created_tables
    assert len(report.created_tables) == 8
    assert report.created_indexes == ("dpop_replays_expires_at_index",)
    assert not report.up_to_date
    assert any("add_column" in d and "dpop_replays.inserted_at" in d for d in report.differences)
    live = await reflect(empty.engine)
    assert "inserted_at" not in live["dpop_replays"]["columns"]


async def test_host_tables_are_left_alone_and_not_reported(empty: Empty) -> None:
    """Other tables in the same database are the host's: no differences for them."""
    async with empty.engine.begin() as conn:
        await conn.execute(sa.text("CREATE TABLE host_users (id INTEGER PRIMARY KEY)"))
    report = await migrate_engine(empty.engine)
    assert report.up_to_date
    assert "host_users" in await reflect(empty.engine)


async def test_invalid_prefix_creates_nothing(empty: Empty) -> None:
    """An invalid prefix raises before any table is created."""
    with pytest.raises(InvalidTablePrefixError, match="invalid --table-prefix"):
        await migrate_engine(empty.engine, "bad-prefix;")
    assert await reflect(empty.engine) == {}


@pytest.mark.parametrize("kind", KINDS)
async def test_two_nodes_migrating_an_empty_database_at_once_both_succeed(
    kind: str, tmp_path: Path
) -> None:
    """Two nodes started together on an empty database, ten times in a row: both migrations
    succeed and the nine tables are created exactly once between them (no CREATE TABLE
    race: PostgreSQL takes an advisory lock, SQLite's BEGIN IMMEDIATE one writer)."""
    for round_ in range(10):
        folder = tmp_path / f"round-{round_}"
        folder.mkdir()
        async with empty_database(kind, folder) as (url, options):
            first, second = await asyncio.gather(
                migrate_database(url, **options), migrate_database(url, **options)
            )
            created = sorted([*first.created_tables, *second.created_tables])
            nine = build_metadata("", "sqlite").in_creation_order()
            assert created == sorted(table.name for table in nine)
            assert first.differences == second.differences == ()
