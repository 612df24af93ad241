"""The SQL DPoP nonce store contract (spec §3.5, §6.6 NON-01..16), on SQLite and PostgreSQL.

NON-13: Elixir's settings dispatcher is replaced by constructor injection (``default_ttl``), so the
test checks the default of 300 and that it can be configured. NON-17 needs the HTTP token
endpoint and belongs with that endpoint's tests; it is not here.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import re
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from authward.stores.dpop_nonces import (
    DEFAULT_NONCE_POLICY,
    Accepted,
    Expired,
    Unknown,
    Used,
)
from authward.stores.errors import StoreContractError
from authward.stores.sql.convert import from_column, to_seconds_column
from authward.stores.sql.dpop_nonces import SqlDpopNonceStore
from authward.stores.sql.engine import PoolSize
from tests.dbkit import T0, Db, database


def store(
    db: Db, engine: AsyncEngine | None = None, default_ttl: int = 300
) -> SqlDpopNonceStore:
    return SqlDpopNonceStore(engine or db.engine, clock=db.clock, default_ttl=default_ttl)


async def row_of(db: Db, nonce: str) -> sa.Row[object]:
    t = db.tables.dpop_nonces
    async with db.engine.connect() as conn:
        return (await conn.execute(sa.select(t).where(t.c.nonce == nonce))).one()


async def test_store_built_from_settings_persists_into_its_prefixed_table(
    db: Db, tmp_path: Path
) -> None:
    """NON-01: engine and table prefix come from the constructor; the row lands there."""
    where = tmp_path / "prefixed"
    where.mkdir()
    async with database(db.kind, where, "oauth_") as prefixed:
        s = SqlDpopNonceStore(prefixed.engine, table_prefix="oauth_", clock=prefixed.clock)
        nonce = await s.issue()
        assert prefixed.tables.dpop_nonces.name == "oauth_dpop_nonces"
        assert [r.nonce for r in await prefixed.rows(prefixed.tables.dpop_nonces)] == [nonce]


async def test_issued_nonce_is_unpadded_base64url_of_32_bytes(db: Db) -> None:
    """NON-02."""
    nonce = await store(db).issue()
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", nonce)
    raw = base64.urlsafe_b64decode(nonce + "=")
    assert len(raw) == 32
    assert base64.urlsafe_b64encode(raw).rstrip(b"=").decode() == nonce


async def test_two_issues_are_distinct(db: Db) -> None:
    """NON-03."""
    s = store(db)
    assert await s.issue() != await s.issue()
    assert len(await db.rows(db.tables.dpop_nonces)) == 2


async def test_issued_row_is_unused_and_expires_after_issue(db: Db) -> None:
    """NON-04."""
    nonce = await store(db).issue(now=T0)
    row = await row_of(db, nonce)
    assert row.used_at is None
    assert row.expires_at > row.issued_at
    assert from_column(row.issued_at) == T0
    assert from_column(row.expires_at) == T0 + 300


@pytest.mark.parametrize("ttl", [0, -1, True, 1.5, "300"])
async def test_issue_with_a_non_positive_or_non_integer_ttl_raises(db: Db, ttl: object) -> None:
    """NON-05."""
    with pytest.raises(StoreContractError):
        await store(db).issue(ttl)  # type: ignore[arg-type]
    assert await db.rows(db.tables.dpop_nonces) == []


async def test_valid_is_a_read_only_check(db: Db) -> None:
    """NON-06."""
    s = store(db)
    nonce = await s.issue(ttl=300, now=T0)
    assert await s.valid(nonce, now=T0 + 299)
    assert await s.valid(nonce, now=T0 + 1)  # still valid: valid wrote nothing
    assert (await row_of(db, nonce)).used_at is None
    assert not await s.valid("unknown-nonce")
    assert not await s.valid(nonce, now=T0 + 300)  # expires_at == now is expired
    for bad in [None, 42, b"bytes", [nonce], "", "x" * 10_000]:
        assert not await s.valid(bad)
    assert await s.accept(nonce, 300, now=T0 + 2) == Accepted()
    assert not await s.valid(nonce, now=T0 + 3)


async def test_accept_is_ok_once_then_used(db: Db) -> None:
    """NON-07."""
    s = store(db)
    nonce = await s.issue()
    assert await s.accept(nonce, 300) == Accepted()
    assert await s.accept(nonce, 300) == Used()


async def test_winning_accept_sets_used_at(db: Db) -> None:
    """NON-08."""
    s = store(db)
    nonce = await s.issue()
    await s.accept(nonce, 300)
    assert (await row_of(db, nonce)).used_at is not None


async def test_accept_of_an_unknown_nonce_is_unknown(db: Db) -> None:
    """NON-09."""
    s = store(db)
    assert await s.accept("never-issued", 300) == Unknown()
    assert await s.accept(None, 300) == Unknown()
    assert await s.accept("x" * 10_000, 300) == Unknown()


async def test_accept_uses_the_callers_ttl_with_an_inclusive_cutoff(db: Db) -> None:
    """NON-10: ttl+1 ago is Expired, ttl-1 ago is ok, exactly ttl ago is ok; old beats unused."""
    s = store(db)
    old = await s.issue(ttl=3600, now=T0)
    assert await s.accept(old, 60, now=T0 + 61) == Expired()
    assert (await row_of(db, old)).used_at is None
    recent = await s.issue(ttl=3600, now=T0)
    assert await s.accept(recent, 60, now=T0 + 59) == Accepted()
    edge = await s.issue(ttl=3600, now=T0)
    assert await s.accept(edge, 60, now=T0 + 60) == Accepted()
    assert await s.accept(recent, 60, now=T0 + 600) == Used()


@pytest.mark.parametrize("ttl", [0, -5, False])
async def test_accept_with_a_non_positive_ttl_raises(db: Db, ttl: int) -> None:
    """NON-11."""
    s = store(db)
    nonce = await s.issue()
    with pytest.raises(StoreContractError):
        await s.accept(nonce, ttl)
    assert (await row_of(db, nonce)).used_at is None


async def test_fifty_concurrent_accepts_have_exactly_one_winner(db: Db) -> None:
    """NON-12, on 50 separate pooled connections."""
    nonce = await store(db).issue()
    engine = db.new_engine(statement_pool=PoolSize(60, 0))
    try:
        s = store(db, engine)
        results = await asyncio.gather(*(s.accept(nonce, 300) for _ in range(50)))
    finally:
        await engine.dispose()
    assert results.count(Accepted()) == 1
    assert results.count(Used()) == 49


async def test_default_issue_ttl_is_300_and_configurable(db: Db) -> None:
    """NON-13 (constructor injection instead of a settings dispatcher)."""
    plain = store(db)
    assert plain.default_ttl == 300
    row = await row_of(db, await plain.issue(now=T0))
    assert from_column(row.expires_at) - from_column(row.issued_at) == 300
    configured = store(db, default_ttl=120)
    row = await row_of(db, await configured.issue(now=T0))
    assert from_column(row.expires_at) - from_column(row.issued_at) == 120
    row = await row_of(db, await configured.issue(30, now=T0))
    assert from_column(row.expires_at) - from_column(row.issued_at) == 30
    with pytest.raises(StoreContractError):
        store(db, default_ttl=0)


def test_windowed_is_the_default_nonce_policy() -> None:
    assert DEFAULT_NONCE_POLICY == "windowed"


async def test_schema_of_the_nonce_table(db: Db) -> None:
    """NON-14: name, exact columns, uuid id, second-resolution timestamps, no updated_at."""
    async with db.engine.connect() as conn:
        columns = await conn.run_sync(
            lambda c: {col["name"]: col for col in sa.inspect(c).get_columns("dpop_nonces")}
        )
    assert set(columns) == {"id", "nonce", "issued_at", "expires_at", "used_at"}
    s = store(db)
    nonce = await s.issue(now=T0 + 0.75)
    row = await row_of(db, nonce)
    assert isinstance(row.id, uuid.UUID)
    assert row.issued_at == dt.datetime(2026, 1, 1, 0, 0, 0)
    await s.accept(nonce, 300, now=T0 + 5.9)
    assert (await row_of(db, nonce)).used_at == dt.datetime(2026, 1, 1, 0, 0, 5)
    if db.kind == "postgresql":
        async with db.engine.connect() as conn:
            precision: dict[str, int] = dict(
                (
                    await conn.execute(
                        sa.text(
                            "select column_name, datetime_precision from "
                            "information_schema.columns where table_name = 'dpop_nonces' "
                            "and table_schema = current_schema() and data_type like 'timestamp%'"
                        )
                    )
                ).all()
            )
        assert precision == {"issued_at": 0, "expires_at": 0, "used_at": 0}


async def test_table_constraints_reject_bad_rows(db: Db) -> None:
    """NON-15: a valid insert, used_at defaults to NULL, NOT NULL nonce/expires_at, unique nonce."""
    t = db.tables.dpop_nonces
    good = {
        "id": uuid.uuid4(),
        "nonce": "n-1",
        "issued_at": to_seconds_column(T0),
        "expires_at": to_seconds_column(T0 + 300),
    }
    async with db.engine.begin() as conn:
        await conn.execute(sa.insert(t).values(**good))
    assert (await row_of(db, "n-1")).used_at is None
    for bad in [
        {**good, "id": uuid.uuid4(), "nonce": "n-2", "expires_at": None},
        {**good, "id": uuid.uuid4(), "nonce": None},
        {**good, "id": uuid.uuid4()},  # same nonce
    ]:
        with pytest.raises(IntegrityError):
            async with db.engine.begin() as conn:
                await conn.execute(sa.insert(t).values(**bad))
    assert len(await db.rows(t)) == 1


async def test_accept_sets_used_at_to_the_given_time(db: Db) -> None:
    """NON-16."""
    s = store(db)
    nonce = await s.issue(now=T0)
    assert await s.accept(nonce, 300, now=T0 + 42) == Accepted()
    assert from_column((await row_of(db, nonce)).used_at) == T0 + 42
