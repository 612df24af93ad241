"""The stores' SQLite transactions, run on the event loop thread through one synchronous connection.

Spec: authward spec/stores.md §2.12 "Engine requirements" (SQLite: WAL, a busy timeout,
``BEGIN IMMEDIATE``).

A store operation on SQLite is a short transaction of one to three small indexed statements.
SQLite does that work in tens of microseconds; SQLAlchemy's asyncio layer around aiosqlite
(a greenlet switch and an awaited future per driver call, nine calls per transaction) cost
about 400 µs per transaction here, more than the rest of a token request. The stores' own
transactions therefore go through :class:`InlineSqlite`: one synchronous SQLAlchemy connection
(pysqlite) per engine and process, used directly on the event loop thread, so a transaction
costs what SQLAlchemy Core and SQLite cost and nothing more.

How it stays correct and never blocks the event loop:

* Every transaction begins with ``BEGIN IMMEDIATE`` on a connection whose busy timeout is zero:
  it takes the write lock at once or fails at once. When another connection or process holds
  the lock, the ``BEGIN`` is run again on a worker thread with the full busy timeout while the
  event loop serves other requests. Once the lock is held, no statement of the transaction can
  wait for another writer (WAL readers never block), so the body runs inline.
* A body awaits nothing that suspends, so transactions of one process never interleave on the
  shared connection. An ``asyncio.Lock`` makes that a guarantee: while one transaction waits for
  the lock on a thread, the others of the process queue behind it.
* Result rows are fetched when a statement runs (``prebuffer_rows``), as with the asyncio
  engine, so no statement stays open after its transaction.
* The cursor events (``before_cursor_execute``, ``after_cursor_execute``) are passed on to the
  asyncio engine's listeners, so statement logging or tracing set up there sees these
  statements too.
* A statement that still finds the database locked (another process changing the journal mode,
  say) is run again on the worker thread with the busy timeout, as the
  :mod:`~authward.stores.sql.sqlite_driver` connection does.

The asyncio engine stays for everything else (schema creation, the sweeper, hosts' own use);
it and this connection meet only through SQLite's locks. In-memory databases keep the asyncio
engine: a second connection to ``:memory:`` would be a second, empty database.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import weakref
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Final, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, CursorResult
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.base import Executable

from authward.stores.sql.cursor_events import forward_cursor_events
from authward.stores.sql.sqlite_driver import is_locked_error

__all__ = ["InlineSqlite", "InlineStatements", "attach_inline_sqlite", "inline_sqlite_of"]

_T = TypeVar("_T")

#: The inline runner of each asyncio engine that has one (keyed by its sync facade).
_RUNNERS: Final[weakref.WeakKeyDictionary[sa.Engine, InlineSqlite]] = (
    weakref.WeakKeyDictionary()
)


def _with_busy_timeout(raw: sqlite3.Connection, busy_ms: int, call: Callable[[], _T]) -> _T:
    """Run ``call`` (on a worker thread) with the full busy timeout, then set it back to 0."""
    raw.execute(f"PRAGMA busy_timeout={busy_ms:d}")
    try:
        return call()
    finally:
        raw.execute("PRAGMA busy_timeout=0")


class InlineStatements:
    """The statements of one open transaction (what ``StoreContext.one_statement`` yields)."""

    __slots__ = ("_connection", "_runner")

    def __init__(self, runner: InlineSqlite, connection: Connection) -> None:
        self._runner = runner
        self._connection = connection

    async def execute(
        self, statement: Executable, parameters: Mapping[str, Any] | None = None
    ) -> CursorResult[Any]:
        """Run ``statement`` now, on this thread; its rows are already fetched."""
        connection = self._connection
        try:
            return connection.execute(statement, parameters)
        except OperationalError as error:
            if error.orig is None or not is_locked_error(error.orig):
                raise
        return await self._runner.locked_call(
            connection, lambda: connection.execute(statement, parameters)
        )


class InlineSqlite:
    """One synchronous connection to a SQLite file for the stores' transactions (module doc).

    ``engine`` is a synchronous pysqlite engine built by :func:`attach_inline_sqlite`;
    ``busy_timeout_ms`` is how long a transaction waits (on a worker thread) for another
    writer's lock.
    """

    def __init__(self, engine: sa.Engine, *, busy_timeout_ms: int) -> None:
        self._engine = engine
        self._busy_ms = busy_timeout_ms
        self._connection: Connection | None = None
        self._gate: asyncio.Lock | None = None
        self._gate_loop: asyncio.AbstractEventLoop | None = None

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[InlineStatements]:
        """A ``BEGIN IMMEDIATE`` transaction, committed when the block ends without an error
        and rolled back when it raises."""
        async with self._lock():
            connection = self._connect()
            raw = connection.connection.driver_connection
            assert isinstance(raw, sqlite3.Connection)
            try:
                await self._begin_immediate(connection, raw)
                transaction = connection.begin()  # no SQL: the BEGIN above opened it
                try:
                    yield InlineStatements(self, connection)
                except BaseException:
                    transaction.rollback()
                    raise
                transaction.commit()
            finally:
                if raw.in_transaction:  # a failed COMMIT, a cancelled wait: leave it clean
                    raw.rollback()

    async def locked_call(self, connection: Connection, call: Callable[[], _T]) -> _T:
        """Run ``call``, which found the database locked, again on a worker thread with the busy
        timeout. The caller keeps the connection (and this runner's lock) until it is done,
        even if the caller is cancelled meanwhile."""
        raw = connection.connection.driver_connection
        assert isinstance(raw, sqlite3.Connection)
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(None, _with_busy_timeout, raw, self._busy_ms, call)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            # The thread still uses the connection: wait for it before giving the connection
            # back, then let the caller's cleanup (rollback) run.
            while not future.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.shield(future)
            raise

    def close(self) -> None:
        """Close the connection (a later transaction opens a new one)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    async def _begin_immediate(self, connection: Connection, raw: sqlite3.Connection) -> None:
        try:
            raw.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            if not is_locked_error(error):
                raise
            await self.locked_call(connection, lambda: raw.execute("BEGIN IMMEDIATE"))

    def _connect(self) -> Connection:
        connection = self._connection
        if connection is None or connection.closed or connection.invalidated:
            if connection is not None:
                connection.close()
            connection = self._engine.connect()
            self._connection = connection
        return connection

    def _lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._gate is None or self._gate_loop is not loop:
            self._gate, self._gate_loop = asyncio.Lock(), loop
        return self._gate


def attach_inline_sqlite(
    async_engine: sa.Engine,
    url: URL,
    *,
    busy_timeout_ms: int,
    connect_args: Mapping[str, Any],
    on_connect: Callable[[Any], None],
) -> InlineSqlite:
    """Build the :class:`InlineSqlite` of the asyncio engine whose sync facade is
    ``async_engine``, for the SQLite file ``url`` names. ``on_connect`` prepares each new
    DBAPI connection (WAL, ``synchronous``, foreign keys) as the asyncio engine's hook does;
    the busy timeout is then set to zero. Disposing the asyncio engine closes the connection.
    """
    engine = sa.create_engine(
        url.set(drivername="sqlite+pysqlite"),
        poolclass=NullPool,
        connect_args={**connect_args, "check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _prepare(dbapi_connection: Any, _record: Any) -> None:
        on_connect(dbapi_connection)
        dbapi_connection.execute("PRAGMA busy_timeout=0")

    forward_cursor_events(engine, async_engine)

    runner = InlineSqlite(
        engine.execution_options(prebuffer_rows=True), busy_timeout_ms=busy_timeout_ms
    )
    _RUNNERS[async_engine] = runner

    @event.listens_for(async_engine, "engine_disposed")
    def _disposed(_engine: Any) -> None:
        runner.close()

    return runner


def inline_sqlite_of(async_engine: sa.Engine) -> InlineSqlite | None:
    """The inline runner of an asyncio engine (by its ``sync_engine``), if it has one."""
    return _RUNNERS.get(async_engine)
