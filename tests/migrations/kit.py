"""Helpers for the migration tests: generate a revision, load it, apply it, reflect the result."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import sqlalchemy as sa
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from authward.migrations.generator import generate, resolve_targets

ALEMBIC_VERSION = "alembic_version"


def generate_into(directory: Path, prefix: str = "") -> Path:
    """Generate the revision into ``directory`` (a plain versions directory) and return it."""
    targets = resolve_targets([], ["sqlite://"], [directory], directory.parent)
    (written,) = generate(targets, prefix)
    return written.path


def load_revision(path: Path) -> ModuleType:
    """Import a generated revision file as a fresh module."""
    spec = importlib.util.spec_from_file_location(f"rev_{path.stem}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_step(conn: Connection, module: ModuleType, step: str) -> None:
    context = MigrationContext.configure(conn)
    with Operations.context(context):
        getattr(module, step)()


async def run_step(engine: AsyncEngine, module: ModuleType, step: str) -> None:
    """Run the revision's ``upgrade`` or ``downgrade`` for real on ``engine``."""
    async with engine.begin() as conn:
        await conn.run_sync(_run_step, module, step)


def _reflect(conn: Connection) -> dict[str, dict[str, Any]]:
    inspector = sa.inspect(conn)
    return {
        name: {
            "columns": {c["name"]: c for c in inspector.get_columns(name)},
            "pk": inspector.get_pk_constraint(name),
            "indexes": {str(ix["name"]): ix for ix in inspector.get_indexes(name)},
        }
        for name in inspector.get_table_names()
    }


async def reflect(engine: AsyncEngine) -> dict[str, dict[str, Any]]:
    """Every table of the live schema: columns, primary key and indexes by name."""
    async with engine.connect() as conn:
        return await conn.run_sync(_reflect)
