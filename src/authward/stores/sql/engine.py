"""AsyncEngine construction for the two supported databases, configured for the stores.

Spec: authward spec/stores.md §2.12 "Engine requirements".

SQLite (aiosqlite): version 3.35 or newer (``RETURNING``), WAL journal, a busy timeout, foreign
keys on, and every transaction opened with ``BEGIN IMMEDIATE`` so it holds the write lock from its
first statement (SQLAlchemy's documented recipe: the driver's own BEGIN is switched off and the
``begin`` event emits ours). Connections are
:class:`~authward.stores.sql.sqlite_driver.InlineFirstConnection`: each call runs on the event
loop thread unless the database is locked, in which case the connection's thread runs it with
the busy timeout (``sqlite_inline=False`` keeps plain aiosqlite, every call on the thread).
PostgreSQL (asyncpg): bounded pools with recycling, whose connections are pinged at checkout
only after sitting idle (:func:`ping_idle_connections`). Two pools: the engine's own, for
transactions and everything a host does with it, and a companion engine whose connections are
``AUTOCOMMIT`` from the start (:func:`autocommit_engine_of`), for the stores' single statements.
Switching a shared connection to ``AUTOCOMMIT`` at checkout and back at return costs about 75 µs
per statement here (SQLAlchemy's isolation-level bookkeeping), a fifth of the statement.
"""

from __future__ import annotations

import sqlite3
import time
import weakref
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from authward.stores.errors import StoreContractError
from authward.stores.sql.cursor_events import forward_cursor_events
from authward.stores.sql.schema import Dialect
from authward.stores.sql.sqlite_driver import inline_first_connect
from authward.stores.sql.sqlite_inline import attach_inline_sqlite

MIN_SQLITE_VERSION: Final = (3, 35, 0)
SQLITE_BUSY_TIMEOUT_MS: Final = 30_000
#: A PostgreSQL connection idle in the pool longer than this is pinged before reuse.
PING_AFTER_IDLE_SECONDS: Final = 1.0


@dataclass(frozen=True)
class PoolSize:
    """A PostgreSQL pool's size: connections kept open, and how many more it may open."""

    size: int
    max_overflow: int


#: Default PostgreSQL pools (per process), 20 connections in all: the AUTOCOMMIT pool of the
#: stores' single statements holds most; the engine's own pool serves transactions (rarer on
#: PostgreSQL) and whatever the host does with the engine.
STATEMENT_POOL: Final = PoolSize(10, 5)
ENGINE_POOL: Final = PoolSize(2, 3)
_RETURNED_AT: Final = "authward_returned_at"
#: The AUTOCOMMIT companion of each PostgreSQL engine made by create_engine (by sync facade).
_AUTOCOMMIT: Final[weakref.WeakKeyDictionary[sa.Engine, AsyncEngine]] = (
    weakref.WeakKeyDictionary()
)


class UnsupportedDatabaseError(StoreContractError):
    """The database URL names a dialect or a server version authward cannot run on."""


def normalise_url(url: str | URL) -> URL:
    """Return ``url`` with the async driver authward uses (asyncpg or aiosqlite)."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        return parsed.set(drivername="postgresql+asyncpg")
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    raise UnsupportedDatabaseError(
        f"unsupported database {backend!r}: use a postgresql:// or sqlite:// URL"
    )


def dialect_of(engine: AsyncEngine) -> Dialect:
    """The schema dialect (``postgresql`` or ``sqlite``) of ``engine``."""
    name = engine.dialect.name
    if name == "postgresql":
        return "postgresql"
    if name == "sqlite":
        return "sqlite"
    raise UnsupportedDatabaseError(f"unsupported database dialect {name!r}")


def check_sqlite_version(version: tuple[int, int, int] | None = None) -> None:
    """Refuse SQLite older than 3.35 (no ``RETURNING``)."""
    found = version if version is not None else sqlite3.sqlite_version_info
    if tuple(found) < MIN_SQLITE_VERSION:
        raise UnsupportedDatabaseError(
            f"SQLite {'.'.join(map(str, found))} is too old: authward needs 3.35 or newer "
            "for RETURNING"
        )


def create_engine(
    url: str | URL,
    *,
    sqlite_inline: bool = True,
    statement_pool: PoolSize = STATEMENT_POOL,
    **engine_options: Any,
) -> AsyncEngine:
    """Create an AsyncEngine for ``url`` configured for the authward stores.

    Extra keyword arguments go to ``create_async_engine`` and override the defaults (on
    PostgreSQL the pool's size defaults to :data:`ENGINE_POOL`). ``sqlite_inline`` (SQLite
    only): run calls on the event loop thread unless the database is locked (the module
    docstring); False keeps every call on aiosqlite's thread. ``statement_pool`` (PostgreSQL
    only): the size of the AUTOCOMMIT pool of the stores' single statements, which takes the
    other options too (``poolclass`` included, which then decides alone).
    """
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _create_sqlite_engine(parsed, engine_options, inline=sqlite_inline)
    engine = _create_postgresql_engine(parsed, ENGINE_POOL, engine_options)
    if engine_options.get("isolation_level") != "AUTOCOMMIT":
        sized = {
            k: v for k, v in engine_options.items() if k not in ("pool_size", "max_overflow")
        }
        autocommit = _create_postgresql_engine(
            parsed, statement_pool, {**sized, "isolation_level": "AUTOCOMMIT"}
        )
        _AUTOCOMMIT[engine.sync_engine] = autocommit
        forward_cursor_events(autocommit.sync_engine, engine.sync_engine)

        @event.listens_for(engine.sync_engine, "engine_disposed")
        def _disposed(_engine: Any) -> None:
            # Runs inside AsyncEngine.dispose's greenlet, where the sync facade may await.
            autocommit.sync_engine.dispose()

    return engine


def _create_postgresql_engine(
    url: URL, pool: PoolSize, engine_options: dict[str, Any]
) -> AsyncEngine:
    options: dict[str, Any] = {"pool_recycle": 1800}
    if "poolclass" not in engine_options:
        options.update(pool_size=pool.size, max_overflow=pool.max_overflow, pool_timeout=30)
    options.update(engine_options)
    engine = create_async_engine(url, **options)
    if not options.get("pool_pre_ping"):
        ping_idle_connections(engine)
    return engine


def autocommit_engine_of(engine: AsyncEngine) -> AsyncEngine:
    """The engine on which the stores run single statements on ``engine``'s database.

    For a PostgreSQL engine made by :func:`create_engine`, its companion whose pooled
    connections are ``AUTOCOMMIT`` from the start (disposed with it). For any other engine (a
    host's own, say), ``engine`` with ``isolation_level=AUTOCOMMIT``, which shares its pool and
    switches each connection at checkout. (SQLite stores do not use it.)
    """
    companion = _AUTOCOMMIT.get(engine.sync_engine)
    if companion is not None:
        return companion
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def ping_idle_connections(
    engine: AsyncEngine, idle_seconds: float = PING_AFTER_IDLE_SECONDS
) -> None:
    """Check a pooled connection at checkout only when it sat idle for ``idle_seconds``.

    SQLAlchemy's ``pool_pre_ping`` pings on every checkout; asyncpg's ping is ``BEGIN; ;
    ROLLBACK``, three round trips that cost more than most store operations. A connection
    returned to the pool moments ago is almost surely alive (the reasoning of HikariCP's
    alive-bypass window), so only one that has been idle longer is pinged; a failed ping
    discards it and the pool hands out a fresh one (``DisconnectionError``). A connection that
    dies while in use still fails that one operation, which SQLAlchemy then reports as a
    disconnect and answers by invalidating the pool.
    """

    @event.listens_for(engine.sync_engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info[_RETURNED_AT] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned = record.info.get(_RETURNED_AT)
        if returned is None or time.monotonic() - returned < idle_seconds:
            return
        try:
            dbapi_connection.ping()
        except Exception as exc:
            raise DisconnectionError("pooled connection failed its idle check") from exc


def _set_wal(cursor: Any) -> None:
    """``PRAGMA journal_mode=WAL``, retried while another connection holds the lock it needs:
    switching a new file to WAL takes an exclusive lock without consulting the busy handler,
    so two nodes opening a new database at once would otherwise fail with "database is
    locked". Gives up (raises) after the busy timeout, as any other statement would."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error).lower() or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _create_sqlite_engine(
    url: URL, engine_options: dict[str, Any], *, inline: bool
) -> AsyncEngine:
    check_sqlite_version()
    options: dict[str, Any] = {}
    in_memory = url.database in (None, "", ":memory:")
    if in_memory:
        # One shared connection: every new connection to :memory: is a new, empty database.
        options["poolclass"] = StaticPool
    connect_args = dict(engine_options.pop("connect_args", {}))
    connect_args.setdefault("timeout", SQLITE_BUSY_TIMEOUT_MS / 1000)
    connect_args.setdefault("check_same_thread", False)
    busy_ms = round(float(connect_args["timeout"]) * 1000)
    if inline and "async_creator" not in engine_options:
        [database], url_args = url.get_dialect()().create_connect_args(url)
        kwargs = {**url_args, **connect_args}

        async def connect() -> Any:
            return await inline_first_connect(str(database), busy_timeout_ms=busy_ms, **kwargs)

        options["async_creator"] = connect
    else:
        inline = False
        options["connect_args"] = connect_args
    options.update(engine_options)
    engine = create_async_engine(url, **options)

    def prepare(dbapi_connection: Any) -> None:
        # Take transaction control away from the driver; the "begin" hook below emits BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not in_memory:
            _set_wal(cursor)
            cursor.execute("PRAGMA synchronous=NORMAL")
        # Inline calls never wait for a lock on the event loop thread: a locked call goes to
        # the connection's thread, which waits with ``busy_ms`` (sqlite_driver).
        cursor.execute(f"PRAGMA busy_timeout={0 if inline else busy_ms:d}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        prepare(dbapi_connection)

    if inline and not in_memory:
        attach_inline_sqlite(
            engine.sync_engine,
            url,
            busy_timeout_ms=busy_ms,
            connect_args={k: v for k, v in connect_args.items() if k != "timeout"},
            on_connect=prepare,
        )

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        if connection.get_execution_options().get("authward_single"):
            return
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
