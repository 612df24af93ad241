"""GEN-15: the generated revision through a real Alembic environment, on SQLite and PostgreSQL.

Spec: authward spec/stores.md §1.2, §6.1 GEN-15, §7 items 1 and 10.

Each test builds a throwaway Alembic environment (``alembic.ini`` + an async ``env.py`` that uses
authward's ``create_engine`` and ``connection.run_sync``), runs ``authward gen-migration`` into
it, then drives ``alembic upgrade`` / ``downgrade`` programmatically. Alembic's commands call
``asyncio.run`` inside ``env.py``, so they run in a worker thread.
"""

from __future__ import annotations

import asyncio
import textwrap
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from authward.cli.main import cli
from authward.stores.sql.engine import create_engine
from authward.stores.sql.schema import Dialect, Tables, build_metadata
from tests.dbkit import KINDS, empty_database
from tests.migrations.kit import ALEMBIC_VERSION, reflect

ENV_PY = textwrap.dedent(
    '''\
    """Test Alembic environment: async, on authward's engine factory."""
    import asyncio

    from alembic import context

    from authward.stores.sql.engine import create_engine

    config = context.config


    def run_migrations(connection):
        context.configure(connection=connection, target_metadata=None)
        with context.begin_transaction():
            context.run_migrations()


    async def main():
        engine = create_engine(
            config.get_main_option("sqlalchemy.url"),
            **config.attributes.get("engine_options", {}),
        )
        try:
            async with engine.connect() as connection:
                await connection.run_sync(run_migrations)
                await connection.commit()
        finally:
            await engine.dispose()


    asyncio.run(main())
    '''
)

SCRIPT_MAKO = textwrap.dedent(
    '''\
    """${message}"""
    revision = ${repr(up_revision)}
    down_revision = ${repr(down_revision)}
    branch_labels = None
    depends_on = None


    def upgrade() -> None:
        pass


    def downgrade() -> None:
        pass
    '''
)


def make_environment(root: Path, url: str, engine_options: dict[str, Any]) -> Config:
    """Write alembic.ini, env.py and an empty versions directory under ``root``."""
    scripts = root / "migrations"
    (scripts / "versions").mkdir(parents=True)
    (scripts / "env.py").write_text(ENV_PY)
    (scripts / "script.py.mako").write_text(SCRIPT_MAKO)
    ini = root / "alembic.ini"
    ini.write_text(
        "[alembic]\n"
        "script_location = %(here)s/migrations\n"
        f"sqlalchemy.url = {url.replace('%', '%%')}\n"
    )
    config = Config(str(ini))
    config.attributes["engine_options"] = engine_options
    return config


def gen_migration(config: Config, prefix: str) -> Path:
    """Run the real ``authward gen-migration`` command against the environment."""
    assert config.config_file_name is not None
    result = CliRunner().invoke(
        cli,
        ["gen-migration", "--alembic-config", config.config_file_name, "--table-prefix", prefix],
    )
    assert result.exit_code == 0, result.output + result.stderr
    versions = Path(config.config_file_name).parent / "migrations" / "versions"
    (path,) = versions.glob("*_create_authward_tables.py")
    return path


def _differences(conn: Connection, tables: Tables) -> list[Any]:
    def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
        return not (type_ == "table" and name == ALEMBIC_VERSION)

    context = MigrationContext.configure(
        conn,
        opts={
            "compare_type": True,
            # Server defaults compare cleanly on both engines here ('{}'::character
            # varying[] / '{}'::jsonb / false / 0 on PostgreSQL, '[]' / '{}' on SQLite).
            "compare_server_default": True,
            "include_name": include_name,
        },
    )
    return list(compare_metadata(context, tables.metadata))


async def differences(engine: AsyncEngine, tables: Tables) -> list[Any]:
    """Autogenerate differences between the live schema and ``tables`` (all other tables too)."""
    async with engine.connect() as conn:
        return await conn.run_sync(_differences, tables)


async def round_trip(kind: str, tmp_path: Path, prefix: str) -> None:
    dialect: Dialect = "postgresql" if kind == "postgresql" else "sqlite"
    tables = build_metadata(prefix, dialect)
    names = {t.name for t in tables.in_creation_order()}
    async with empty_database(kind, tmp_path) as (url, options):
        config = make_environment(tmp_path / "env", url, options)
        command.revision(config, "host tables", rev_id="host00000001")
        path = gen_migration(config, prefix)
        assert "down_revision = 'host00000001'" in path.read_text()
        engine = create_engine(url, **options)
        try:
            await asyncio.to_thread(command.upgrade, config, "head")
            live = await reflect(engine)
            assert set(live) == names | {ALEMBIC_VERSION}
            assert await differences(engine, tables) == []

            await asyncio.to_thread(command.downgrade, config, "base")
            assert set(await reflect(engine)) <= {ALEMBIC_VERSION}

            await asyncio.to_thread(command.upgrade, config, "head")
            assert set(await reflect(engine)) == names | {ALEMBIC_VERSION}
            assert await differences(engine, tables) == []
        finally:
            await engine.dispose()


@pytest.mark.parametrize("kind", KINDS)
async def test_generated_revision_round_trips_without_differences(
    kind: str, tmp_path: Path
) -> None:
    """GEN-15: upgrade, downgrade to base, upgrade again; no autogenerate differences."""
    await round_trip(kind, tmp_path, "")


@pytest.mark.parametrize("kind", KINDS)
async def test_prefixed_revision_round_trips_without_differences(
    kind: str, tmp_path: Path
) -> None:
    """GEN-15 with prefix oauth_ (GEN-11): same result for the prefixed tables."""
    await round_trip(kind, tmp_path, "oauth_")


def _row(table: sa.Table, now: datetime) -> dict[str, Any]:
    """The required (NOT NULL, no server default) values of ``table``, nothing else."""
    values: dict[str, Any] = {}
    for column in table.columns:
        if column.nullable or column.server_default is not None:
            continue
        if isinstance(column.type, sa.Uuid):
            values[column.name] = uuid.uuid4()
        elif isinstance(column.type, sa.DateTime):
            values[column.name] = now
        elif isinstance(column.type, sa.JSON):
            values[column.name] = {"k": "v"}
        else:
            values[column.name] = f"{column.name}-1"
    return values


@pytest.mark.parametrize("kind", KINDS)
async def test_prefixed_migrated_tables_are_usable_through_the_runtime_metadata(
    kind: str, tmp_path: Path
) -> None:
    """§7 item 1: build_metadata("oauth_") finds, fills and reads the migrated tables.

    Rows are inserted with only their required columns, so the migration's server defaults
    (empty lists, empty maps, false, 0, 'pending') are what the runtime reads back.
    """
    dialect: Dialect = "postgresql" if kind == "postgresql" else "sqlite"
    tables = build_metadata("oauth_", dialect)
    now = datetime(2026, 1, 1, 12, 0, 0)
    async with empty_database(kind, tmp_path) as (url, options):
        config = make_environment(tmp_path / "env", url, options)
        gen_migration(config, "oauth_")
        await asyncio.to_thread(command.upgrade, config, "head")
        engine = create_engine(url, **options)
        try:
            async with engine.begin() as conn:
                for table in tables.in_creation_order():
                    await conn.execute(sa.insert(table).values(**_row(table, now)))
            async with engine.connect() as conn:
                for table in tables.in_creation_order():
                    rows = (await conn.execute(sa.select(table))).mappings().all()
                    assert len(rows) == 1, table.name
                    assert rows[0]["expires_at"] == now
                codes = (
                    (await conn.execute(sa.select(tables.authorization_codes))).mappings().one()
                )
                assert codes["scope"] == []
                assert codes["resource"] == []
                assert codes["claims"] == {}
                assert codes["cnf"] is None
                assert codes["consumed_success"] is False
                refresh = (await conn.execute(sa.select(tables.refresh_tokens))).mappings().one()
                assert (refresh["generation"], refresh["consumed"]) == (0, False)
                device = (await conn.execute(sa.select(tables.device_codes))).mappings().one()
                assert (device["status"], device["scope"], device["granted_scope"]) == (
                    "pending",
                    [],
                    None,
                )
                cimd = (
                    (await conn.execute(sa.select(tables.client_id_metadata))).mappings().one()
                )
                assert cimd["metadata"] == {"k": "v"}
        finally:
            await engine.dispose()
