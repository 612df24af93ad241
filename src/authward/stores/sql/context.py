"""What every SQL store holds: its engine, its prefixed tables and its clock.

Spec: authward spec/stores.md §0.4 (injectable clock), §0.5 (explicit database handle),
§7 item 1 (one prefix drives every store).
"""

from __future__ import annotations

import functools
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from authward.stores.clock import Clock, SystemClock
from authward.stores.errors import NoDatabaseError
from authward.stores.sql.engine import dialect_of
from authward.stores.sql.schema import Dialect, Tables, build_metadata


@dataclass(frozen=True)
class StoreContext:
    """An engine, the tables of one prefix on that engine's dialect, and a clock."""

    engine: AsyncEngine
    tables: Tables
    clock: Clock

    @property
    def dialect(self) -> Dialect:
        """``postgresql`` or ``sqlite``."""
        return self.tables.dialect

    def one_statement(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A connection for one statement (or one claim and the read that explains a lost one),
        committed as it completes.

        PostgreSQL: an ``AUTOCOMMIT`` connection, since a single statement is atomic on its own
        and ``BEGIN``/``COMMIT`` would be two more round trips. SQLite: an ordinary transaction
        (``BEGIN IMMEDIATE`` ... ``COMMIT``, the engine's recipe), which costs no network.
        """
        if self.tables.dialect == "postgresql":
            return self._autocommit.connect()
        return self.engine.begin()

    @functools.cached_property
    def _autocommit(self) -> AsyncEngine:
        """The engine with ``isolation_level=AUTOCOMMIT``, sharing its pool."""
        return self.engine.execution_options(isolation_level="AUTOCOMMIT")

    def now(self, now: float | None) -> float:
        """``now`` if the caller injected one, else the store clock's reading."""
        return self.clock.now() if now is None else now


@functools.lru_cache(maxsize=64)
def tables_for(table_prefix: str, dialect: Dialect) -> Tables:
    """The (cached) tables of ``table_prefix`` on ``dialect``."""
    return build_metadata(table_prefix, dialect)


def store_context(
    engine: AsyncEngine | None, table_prefix: str = "", clock: Clock | None = None
) -> StoreContext:
    """Build a ``StoreContext``; a missing engine raises ``NoDatabaseError`` (fail closed)."""
    if engine is None or not isinstance(engine, AsyncEngine):
        raise NoDatabaseError("a store needs an AsyncEngine; none was given")
    return StoreContext(
        engine=engine,
        tables=tables_for(table_prefix, dialect_of(engine)),
        clock=clock if clock is not None else SystemClock(),
    )
