"""Telling "the database is unreachable" apart from a bug.

Spec: RFC 9110 §15.6.4 (503 Service Unavailable, ``Retry-After``).

A request that fails because the database cannot be reached (refused or reset connections,
a server restarting, an exhausted pool) is not a programming error: the transport answers it
with 503 and ``Retry-After`` and logs the outage once, instead of a 500 and a stack trace per
request. :func:`is_database_unavailable` is the one place that decides which exceptions mean
that, for both engines.
"""

from __future__ import annotations

import sqlite3
from typing import Final

from sqlalchemy import exc as sa_exc

__all__ = ["is_database_unavailable"]

#: asyncpg's errors for a server that refuses or drops connections (by class name, so the
#: check needs no asyncpg import on a SQLite-only host): shutting down, starting up, too many
#: connections, an administrator's terminate, a lost connection.
_ASYNCPG_UNAVAILABLE: Final = frozenset(
    {
        "AdminShutdownError",
        "CannotConnectNowError",
        "ConnectionDoesNotExistError",
        "ConnectionFailureError",
        "CrashShutdownError",
        "InterfaceError",
        "TooManyConnectionsError",
    }
)


def is_database_unavailable(error: BaseException) -> bool:
    """True when ``error`` (or what it wraps) says the database cannot be reached now."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _unavailable(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def _unavailable(error: BaseException) -> bool:
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, sa_exc.TimeoutError | sa_exc.DisconnectionError):
        return True  # the pool had no connection to give, or a checkout ping failed
    if isinstance(error, OSError):  # refused, reset, unreachable, timed out
        return True
    if isinstance(error, sqlite3.OperationalError):
        text = str(error).lower()
        return "unable to open" in text or "disk i/o error" in text or "locked" in text
    return type(error).__name__ in _ASYNCPG_UNAVAILABLE and type(error).__module__.startswith(
        "asyncpg"
    )
