"""What every SQL store holds: its engine, its prefixed tables and its clock.

Spec: authward spec/stores.md §0.4 (injectable clock), §0.5 (explicit database handle),
§7 item 1 (one prefix drives every store).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.base import Executable

from authward.stores.clock import Clock, SystemClock
from authward.stores.errors import NoDatabaseError
from authward.stores.sql.engine import autocommit_engine_of, dialect_of
from authward.stores.sql.schema import Dialect, Tables, build_metadata
from authward.stores.sql.sqlite_inline import InlineSqlite, inline_sqlite_of


class Statements(Protocol):
    """What a store runs its statements on: an ``AsyncConnection`` or an inline SQLite
    transaction (both return results whose rows are already fetched)."""

    async def execute(
        self, statement: Executable, parameters: Mapping[str, Any] | None = None, /
    ) -> CursorResult[Any]:
        """Run one statement."""
        ...


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

    def one_statement(self) -> AbstractAsyncContextManager[Statements]:
        """A connection for one statement (or one claim and the read that explains a lost one),
        committed as it completes.

        PostgreSQL: an ``AUTOCOMMIT`` connection, since a single statement is atomic on its own
        and ``BEGIN``/``COMMIT`` would be two more round trips. SQLite: a ``BEGIN IMMEDIATE``
        ... ``COMMIT`` transaction (:meth:`transaction`), which costs no network.
        """
        if self.tables.dialect == "postgresql":
            return self._autocommit.connect()
        return self.transaction()

    def transaction(self) -> AbstractAsyncContextManager[Statements]:
        """A transaction of several statements, committed when the block ends without an error.

        On a SQLite file opened by ``create_engine`` it runs on the event loop thread through
        the engine's :class:`~authward.stores.sql.sqlite_inline.InlineSqlite`; otherwise it is
        ``engine.begin()``.
        """
        inline = self._inline
        if inline is not None:
            return inline.transaction()
        return self.engine.begin()

    @functools.cached_property
    def _inline(self) -> InlineSqlite | None:
        return inline_sqlite_of(self.engine.sync_engine)

    @functools.cached_property
    def _autocommit(self) -> AsyncEngine:
        """The engine single statements run on (:func:`autocommit_engine_of`)."""
        return autocommit_engine_of(self.engine)

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
