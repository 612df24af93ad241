"""Expiry housekeeping: delete expired rows from the nine tables in short batches.

Spec: authward spec/stores.md "Project decisions" item 3, §0.4 (one ``now``, strict ``<``),
§4.1, §4.2 (batched deletes and the retention rules), §7 item 2.

The sweeper is not needed for correctness (every store re-checks ``expires_at`` on read); it only
stops the tables growing without bound. One sweep captures ``now`` once and, for every table of
the given prefix, repeats

    DELETE FROM t WHERE <key> IN (SELECT <key> FROM t WHERE <rule> LIMIT :batch)

until a batch deletes fewer than ``batch_size`` rows. Each batch is its own short transaction.
The retention rules (§4.2):

* authorization codes: ``expires_at < now`` AND (``access_token_expires_at IS NULL`` OR
  ``access_token_expires_at < now``), so the access-token revocation record and the code-reuse
  marker live as long as the access token they describe (§7 item 2). The table has no primary
  key; its unique ``code_hash`` is the batch key.
* refresh tokens: at their own ``expires_at < now``. A revoked family's rows (and with them the
  sticky ``family_revoked`` marker) go when they expire; this is the accepted behaviour of
  project decision 3 (nine tables, no family table). Every member that could still be presented
  is unexpired and therefore still carries the marker.
* every other table: ``expires_at < now``.

In the same pass, refresh successor envelopes are redacted (``successor = NULL``) once the retry
grace window is over: ``consumed AND consumed_at < now - refresh_grace_seconds``.

Errors (a missing table, a lost connection) propagate to the caller; nothing is swallowed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from authward.stores.clock import Clock, SystemClock
from authward.stores.errors import NoDatabaseError
from authward.stores.sql.convert import to_micros_column
from authward.stores.sql.schema import Tables

DEFAULT_BATCH_SIZE: Final = 5000
#: The server's default refresh retry grace window (spec §8); successors stay sealed this long.
DEFAULT_REFRESH_GRACE_SECONDS: Final = 60


@dataclass(frozen=True, slots=True)
class SweepReport:
    """What one sweep did.

    ``now`` is the single instant (Unix seconds) every rule compared against. ``deleted`` maps
    each prefixed table name, in creation order, to the rows deleted from it.
    ``successors_redacted`` counts refresh rows whose successor envelope was set to NULL.
    ``complete`` is False when ``max_batches`` stopped a step while rows may remain.
    """

    now: float
    deleted: Mapping[str, int]
    successors_redacted: int
    complete: bool = True

    @property
    def total_deleted(self) -> int:
        """Rows deleted over all nine tables."""
        return sum(self.deleted.values())


def check_positive_int(name: str, value: object) -> int:
    """Return ``value`` if it is an int above zero (not a bool), else raise ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def check_sweep_target(engine: object, tables: object) -> tuple[AsyncEngine, Tables]:
    """Return ``(engine, tables)`` if they are an AsyncEngine and ``build_metadata`` Tables.

    A missing or wrong engine raises ``NoDatabaseError`` (fail closed); wrong tables raise
    ``TypeError``.
    """
    if engine is None or not isinstance(engine, AsyncEngine):
        raise NoDatabaseError("the sweeper needs an AsyncEngine; none was given")
    if not isinstance(tables, Tables):
        raise TypeError(
            f"the sweeper needs the Tables of build_metadata(prefix), got {type(tables).__name__}"
        )
    return engine, tables


async def sweep(
    engine: AsyncEngine,
    tables: Tables,
    *,
    now: float | None = None,
    clock: Clock | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_batches: int | None = None,
    refresh_grace_seconds: int = DEFAULT_REFRESH_GRACE_SECONDS,
) -> SweepReport:
    """Delete every expired row of the nine ``tables`` and redact stale refresh successors.

    ``now`` (Unix seconds) is read once: the injected value, else ``clock.now()``, else the
    system clock; the same instant is used for every table with a strict ``<``, so a row whose
    ``expires_at`` equals ``now`` survives this sweep. ``batch_size`` rows at most go per
    statement; ``max_batches`` (per table, and for the redaction) bounds one sweep's work, and
    the report says whether it cut a step short. Database errors propagate.
    """
    check_sweep_target(engine, tables)
    check_positive_int("batch_size", batch_size)
    if max_batches is not None:
        check_positive_int("max_batches", max_batches)
    if (
        isinstance(refresh_grace_seconds, bool)
        or not isinstance(refresh_grace_seconds, int)
        or refresh_grace_seconds < 0
    ):
        raise ValueError(
            f"refresh_grace_seconds must be a non-negative integer, got {refresh_grace_seconds!r}"
        )

    if now is None:
        now = (clock if clock is not None else SystemClock()).now()
    cutoff = to_micros_column(now)
    deleted: dict[str, int] = {}
    complete = True

    for table in tables.in_creation_order():
        keeps_minted_token = table is tables.authorization_codes
        count, finished = await _delete_in_batches(
            engine, table, _expired_rows(keeps_minted_token, cutoff), batch_size, max_batches
        )
        deleted[table.name] = count
        complete = complete and finished

    redacted, finished = await _redact_successors(
        engine,
        tables.refresh_tokens,
        to_micros_column(now - refresh_grace_seconds),
        batch_size,
        max_batches,
    )
    return SweepReport(
        now=now,
        deleted=MappingProxyType(deleted),
        successors_redacted=redacted,
        complete=complete and finished,
    )


def _batch_key(table: sa.Table) -> str:
    """The one column that identifies a row: the primary key, or the codes' unique hash."""
    keys = [c.name for c in table.primary_key.columns]
    if len(keys) == 1:
        return keys[0]
    if not keys and "code_hash" in table.c:
        return "code_hash"
    raise TypeError(f"table {table.name!r} has no single-column key to sweep by")


def _expired_rows(
    keeps_minted_token: bool, cutoff: dt.datetime
) -> Callable[[sa.FromClause], sa.ColumnElement[bool]]:
    """The §4.2 retention rule of one table, as a WHERE clause over (an alias of) it."""

    def rule(t: sa.FromClause) -> sa.ColumnElement[bool]:
        expired = t.c.expires_at < cutoff
        if not keeps_minted_token:
            return expired
        # Authorization codes: also wait for the access token the code minted (§7 item 2).
        minted = t.c.access_token_expires_at
        return sa.and_(expired, sa.or_(minted.is_(None), minted < cutoff))

    return rule


async def _delete_in_batches(
    engine: AsyncEngine,
    table: sa.Table,
    rule: Callable[[sa.FromClause], sa.ColumnElement[bool]],
    batch_size: int,
    max_batches: int | None,
) -> tuple[int, bool]:
    """Run the batched DELETE until a short batch; return (rows deleted, finished)."""
    key = _batch_key(table)
    # The inner SELECT reads an alias so it never correlates with the DELETE's own table.
    inner = table.alias("sweep_batch")
    batch = sa.select(inner.c[key]).where(rule(inner)).limit(batch_size)
    statement = sa.delete(table).where(table.c[key].in_(batch))
    return await _run_batches(engine, statement, batch_size, max_batches)


async def _redact_successors(
    engine: AsyncEngine,
    refresh: sa.Table,
    consumed_before: dt.datetime,
    batch_size: int,
    max_batches: int | None,
) -> tuple[int, bool]:
    """Set ``successor = NULL`` on consumed rows whose grace window is over, in batches."""
    inner = refresh.alias("sweep_batch")
    batch = (
        sa.select(inner.c.id)
        .where(
            inner.c.consumed.is_(sa.true()),
            inner.c.consumed_at < consumed_before,
            inner.c.successor.is_not(None),
        )
        .limit(batch_size)
    )
    statement = sa.update(refresh).where(refresh.c.id.in_(batch)).values(successor=None)
    return await _run_batches(engine, statement, batch_size, max_batches)


async def _run_batches(
    engine: AsyncEngine,
    statement: sa.Delete | sa.Update,
    batch_size: int,
    max_batches: int | None,
) -> tuple[int, bool]:
    total = 0
    batches = 0
    while True:
        async with engine.begin() as conn:
            affected = (await conn.execute(statement)).rowcount
        total += affected
        batches += 1
        if affected < batch_size:
            return total, True
        if max_batches is not None and batches >= max_batches:
            return total, False


__all__ = ["DEFAULT_BATCH_SIZE", "SweepReport", "check_positive_int", "check_sweep_target", "sweep"]
