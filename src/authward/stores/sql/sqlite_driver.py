"""aiosqlite connections that run each call on the event loop thread unless it would block.

Spec: authward spec/stores.md §2.12 "Engine requirements" (SQLite: WAL, a busy timeout,
``BEGIN IMMEDIATE``).

aiosqlite runs every call on a thread of its own: the event loop queues the call, wakes the
thread, and is woken again when the result is ready. Each of those hand-offs costs far more
than the SQLite work of a small indexed statement (tens of microseconds in WAL mode with
``synchronous=NORMAL``, which syncs nothing at commit), and a single-statement transaction
makes nine of them. Measured on the token endpoint's write paths, the hand-offs, not SQLite,
were most of the time.

:class:`InlineFirstConnection` keeps aiosqlite's API, its thread and SQLAlchemy's adapter, and
changes one thing: a call is first run right away on the calling (event loop) thread with the
connection's busy timeout at zero, so it can never wait for a lock there. A call that finds the
database locked (another connection or process holds the write lock: ``SQLITE_BUSY`` or
``SQLITE_LOCKED``) did nothing, and is handed to the connection's own thread, which runs it
again with the full busy timeout (:data:`~authward.stores.sql.engine.SQLITE_BUSY_TIMEOUT_MS`)
while the event loop serves other requests. Connecting and closing stay on the thread.

What this costs: the event loop does the SQLite work itself, so a statement that takes long
(a sweep deleting many rows, a checkpoint after many writes) holds the loop for that long, as
CPU work in a handler would. With the small, indexed statements of the stores that is far less
than the hand-offs it saves.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from functools import partial
from queue import SimpleQueue
from typing import Any, Final

import aiosqlite

__all__ = ["InlineFirstConnection", "inline_first_connect", "is_locked_error"]

#: SQLite primary result codes of a lock held by someone else.
_SQLITE_BUSY: Final = 5
_SQLITE_LOCKED: Final = 6

_Item = tuple["asyncio.Future[Any] | None", Callable[[], Any]]


def is_locked_error(error: BaseException) -> bool:
    """Whether ``error`` is SQLite's "database is locked" (``SQLITE_BUSY``/``SQLITE_LOCKED``,
    extended codes included): the statement did nothing and may run again."""
    if not isinstance(error, sqlite3.OperationalError):
        return False
    code = getattr(error, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
    return "locked" in str(error).lower()


def _with_busy_timeout(
    connection: sqlite3.Connection, busy_ms: int, call: Callable[[], Any]
) -> Any:
    """Run ``call`` on the worker thread with the full busy timeout, then set it back to zero
    for the inline calls."""
    connection.execute(f"PRAGMA busy_timeout={busy_ms:d}")
    try:
        return call()
    finally:
        connection.execute("PRAGMA busy_timeout=0")


class _InlineFirstQueue:
    """Stands in for aiosqlite's call queue: runs a call at once when it can, else queues it
    for the worker thread (which reads the real queue)."""

    def __init__(self, owner: InlineFirstConnection, queue: SimpleQueue[_Item]) -> None:
        self._owner = owner
        self._queue = queue

    def put_nowait(self, item: _Item) -> None:
        future, call = item
        connection = self._owner._connection
        if future is None or connection is None or not self._owner._running:
            self._queue.put_nowait(item)  # connect, close, stop: the worker thread's work
            return
        try:
            result = call()
        except BaseException as error:  # handed to the awaiting caller, as the thread does
            if is_locked_error(error):
                retry = partial(_with_busy_timeout, connection, self._owner.busy_timeout_ms, call)
                self._queue.put_nowait((future, retry))
                return
            if not future.done():
                future.set_exception(error)
            return
        if not future.done():
            future.set_result(result)

    def get(self) -> _Item:
        return self._queue.get()


class InlineFirstConnection(aiosqlite.Connection):
    """An aiosqlite connection whose calls run inline unless the database is locked (see the
    module docstring). ``busy_timeout_ms`` is the wait a locked call gets on the thread; the
    connection's own busy timeout must be set to zero once it is open (the engine's connect
    hook does it)."""

    def __init__(
        self, connector: Callable[[], sqlite3.Connection], *, busy_timeout_ms: int
    ) -> None:
        super().__init__(connector, iter_chunk_size=64)
        self.busy_timeout_ms = busy_timeout_ms
        self._tx = _InlineFirstQueue(self, self._tx)  # type: ignore[assignment]


def inline_first_connect(
    database: str, *, busy_timeout_ms: int, **connect_kwargs: Any
) -> InlineFirstConnection:
    """An unopened :class:`InlineFirstConnection` to ``database`` (await it to open), with
    ``connect_kwargs`` for ``sqlite3.connect``. The worker thread is a daemon thread, as
    SQLAlchemy makes aiosqlite's."""
    connection = InlineFirstConnection(
        partial(sqlite3.connect, database, **connect_kwargs), busy_timeout_ms=busy_timeout_ms
    )
    connection._thread.daemon = True
    return connection
