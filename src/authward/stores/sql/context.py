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
from sqlalchemy.util import greenlet_spawn

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


class AutocommitStatements:
    """Single statements on an AUTOCOMMIT engine, each on a pooled connection of its own.

    ``async with`` gives the object itself. Each :meth:`execute` checks a connection out, runs
    the statement, fetches its rows and returns the connection in ONE hand-off to
    SQLAlchemy's synchronous core (``greenlet_spawn``, what ``AsyncConnection`` does for each of
    those steps), about 90 µs less per statement than ``async with engine.connect()``. Two
    statements in one block may run on different connections, which changes nothing under
    AUTOCOMMIT: each is committed as it completes.
    """

    __slots__ = ("_sync",)

    def __init__(self, engine: AsyncEngine) -> None:
        self._sync = engine.sync_engine.execution_options(prebuffer_rows=True)

    async def __aenter__(self) -> AutocommitStatements:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        return None

    async def execute(
        self, statement: Executable, parameters: Mapping[str, Any] | None = None, /
    ) -> CursorResult[Any]:
        """Run ``statement`` (committed when it completes); its rows are already fetched."""
        return await greenlet_spawn(self._run, statement, parameters)

    def _run(
        self, statement: Executable, parameters: Mapping[str, Any] | None
    ) -> CursorResult[Any]:
        with self._sync.connect() as conn:
            return conn.execute(statement, parameters)


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
        """Where to run one statement (or one claim and the read that explains a lost one),
        each committed as it completes.

        PostgreSQL: :class:`AutocommitStatements` on the engine's AUTOCOMMIT pool, since a
        single statement is atomic on its own and ``BEGIN``/``COMMIT`` would be two more round
        trips. SQLite: a ``BEGIN IMMEDIATE`` ... ``COMMIT`` transaction (:meth:`transaction`),
        which costs no network.
        """
        if self.tables.dialect == "postgresql":
            return self._autocommit
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
    def _autocommit(self) -> AutocommitStatements:
        return AutocommitStatements(autocommit_engine_of(self.engine))

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
