"""Bring a live database up to the nine authward tables without Alembic (`authward migrate`).

Spec: authward spec/stores.md §1.2, §2, §2.12, §7 items 1 and 10.

For hosts that do not run Alembic and for the embedded SQLite default: every missing table and
index of ``build_metadata(prefix, dialect)`` is created (nine tables, never a version table), then
the live schema is compared with that metadata by Alembic's autogenerate comparison, restricted
to the nine tables, and whatever still differs is reported rather than altered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from authward.stores.sql.engine import create_engine, dialect_of
from authward.stores.sql.schema import Tables, build_metadata


@dataclass(frozen=True, slots=True)
class MigrationReport:
    """What one ``migrate`` run did and what it could not fix."""

    created_tables: tuple[str, ...]
    created_indexes: tuple[str, ...]
    #: Remaining differences between the live schema and the metadata, one readable line each.
    differences: tuple[str, ...]

    @property
    def changed(self) -> bool:
        """True when this run created anything."""
        return bool(self.created_tables or self.created_indexes)

    @property
    def up_to_date(self) -> bool:
        """True when the live schema now matches the metadata."""
        return not self.differences


#: A transaction-scoped advisory lock per table prefix, held while the schema is checked and
#: created (released at commit).
_MIGRATION_LOCK: Final = sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))")


async def migrate_database(
    url: str, table_prefix: str = "", **engine_options: Any
) -> MigrationReport:
    """Connect to ``url`` and create whatever of the nine tables and their indexes is missing.

    ``table_prefix`` must be valid (``InvalidTablePrefixError`` otherwise). Idempotent: a second
    run creates nothing. ``engine_options`` go to ``authward.stores.sql.engine.create_engine``.
    """
    engine = create_engine(url, **engine_options)
    try:
        return await migrate_engine(engine, table_prefix)
    finally:
        await engine.dispose()


async def migrate_engine(engine: AsyncEngine, table_prefix: str = "") -> MigrationReport:
    """Like ``migrate_database`` on an existing engine (left open)."""
    dialect = dialect_of(engine)
    tables = build_metadata(table_prefix, dialect)
    async with engine.begin() as conn:
        if dialect == "postgresql":
            # Nodes started together on an empty database: the first creates, the others wait
            # here for its commit and then find the tables (no CREATE TABLE race). SQLite's
            # BEGIN IMMEDIATE already lets one writer in at a time.
            await conn.execute(_MIGRATION_LOCK, {"key": f"authward:migrate:{table_prefix}"})
        created_tables, created_indexes = await conn.run_sync(_create_missing, tables)
    async with engine.connect() as conn:
        differences = await conn.run_sync(schema_differences, tables)
    return MigrationReport(
        created_tables=tuple(created_tables),
        created_indexes=tuple(created_indexes),
        differences=tuple(differences),
    )


def _create_missing(conn: Connection, tables: Tables) -> tuple[list[str], list[str]]:
    inspector = sa.inspect(conn)
    existing = set(inspector.get_table_names())
    created_tables: list[str] = []
    created_indexes: list[str] = []
    for table in tables.in_creation_order():
        if table.name not in existing:
            table.create(conn)
            created_tables.append(table.name)
            continue
        present = {ix["name"] for ix in inspector.get_indexes(table.name)}
        for index in sorted(table.indexes, key=lambda ix: str(ix.name)):
            if index.name not in present:
                index.create(conn)
                created_indexes.append(str(index.name))
    return created_tables, created_indexes


def schema_differences(conn: Connection, tables: Tables) -> list[str]:
    """Alembic autogenerate differences between the live schema and ``tables``, as text.

    Only the nine tables are considered: other tables in the database are the host's business.
    Types and server defaults are compared.
    """
    names = {table.name for table in tables.in_creation_order()}

    def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
        if type_ == "table":
            return name in names
        return True

    context = MigrationContext.configure(
        conn,
        opts={
            "compare_type": True,
            "compare_server_default": True,
            "include_name": include_name,
        },
    )
    return [_describe(diff) for diff in compare_metadata(context, tables.metadata)]


def _describe(diff: Sequence[Any] | Any) -> str:
    """One readable line for an autogenerate diff entry (a tuple, or a list of column diffs)."""
    if isinstance(diff, list):
        return "; ".join(_describe(item) for item in diff)
    if not isinstance(diff, tuple) or not diff:
        return repr(diff)
    kind = diff[0]
    rest = diff[1:]
    parts: list[str] = []
    for item in rest:
        if isinstance(item, sa.Table):
            parts.append(f"table {item.name}")
        elif isinstance(item, sa.Index):
            parts.append(f"index {item.name}")
        elif isinstance(item, sa.Column):
            parts.append(f"column {item.table.name}.{item.name}")
        elif isinstance(item, sa.Constraint):
            parts.append(f"constraint {item.name}")
        elif isinstance(item, dict):
            continue
        else:
            parts.append(repr(item))
    return f"{kind}: {', '.join(parts)}"
