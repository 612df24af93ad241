"""Shared fixtures. ``db`` runs a test once on SQLite and once on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.dbkit import KINDS, Db, database


@pytest.fixture(params=KINDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Db]:
    """A fresh database with the nine unprefixed tables, on each engine in turn."""
    async with database(request.param, tmp_path) as d:
        yield d


@pytest.fixture
async def pg(tmp_path: Path) -> AsyncIterator[Db]:
    """A fresh PostgreSQL database (schema) with the nine tables; for concurrency tests."""
    async with database("postgresql", tmp_path) as d:
        yield d
