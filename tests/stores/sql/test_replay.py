"""The SQL replay check contract (spec §3.6, §6.7 REP-01..11, 13, 14), on SQLite and PostgreSQL.

REP-13 uses the store's SQL-only ``connection`` parameter: the record runs inside a transaction
the test opened, and that transaction goes on to commit. REP-12 needs the HTTP token endpoint and
belongs with that endpoint's tests; it is not here.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from authward.stores.digest import digest
from authward.stores.errors import StoreContractError, ValueTooLongError
from authward.stores.replay import (
    CLIENT_ASSERTION_NAMESPACE,
    MAX_RAW_JTI_LENGTH,
    Recorded,
    Replay,
    client_assertion_jti,
    replay_key,
)
from authward.stores.sql.convert import from_column, to_micros_column, to_seconds_column
from authward.stores.sql.engine import PoolSize
from authward.stores.sql.replay import SqlReplayStore
from tests.dbkit import T0, Db


def store(db: Db, engine: AsyncEngine | None = None) -> SqlReplayStore:
    return SqlReplayStore(engine or db.engine, clock=db.clock)


async def keys(db: Db) -> list[str]:
    return sorted(r.jti for r in await db.rows(db.tables.dpop_replays))


async def test_fresh_jti_is_recorded_under_its_namespaced_digest(db: Db) -> None:
    """REP-01."""
    assert await store(db).check_and_record("dpop", "jti-1") == Recorded()
    assert await keys(db) == [f"dpop:{digest('jti-1')}"]


async def test_same_jti_twice_is_a_replay(db: Db) -> None:
    """REP-02."""
    s = store(db)
    assert await s.check_and_record("dpop", "jti-1") == Recorded()
    assert await s.check_and_record("dpop", "jti-1") == Replay()
    assert len(await keys(db)) == 1


async def test_expired_but_unswept_jti_is_still_a_replay(db: Db) -> None:
    """REP-03 (fail closed)."""
    s = store(db)
    await s.check_and_record("dpop", "jti-1", 60, now=T0)
    assert await s.check_and_record("dpop", "jti-1", 60, now=T0 + 3600) == Replay()


async def test_expiry_is_now_plus_ttl_in_microseconds(db: Db) -> None:
    """REP-04."""
    at = T0 + 0.123456
    await store(db).check_and_record("dpop", "jti-1", 120, now=at)
    (row,) = await db.rows(db.tables.dpop_replays)
    assert abs(from_column(row.expires_at) - (at + 120)) < 1
    assert row.inserted_at == dt.datetime(2026, 1, 1, 0, 0, 0, 123456)
    assert row.expires_at == dt.datetime(2026, 1, 1, 0, 2, 0, 123456)


async def test_default_ttl_is_60_seconds(db: Db) -> None:
    """REP-05 (the store clock is frozen at T0)."""
    await store(db).check_and_record("dpop", "jti-1")
    (row,) = await db.rows(db.tables.dpop_replays)
    assert abs(from_column(row.expires_at) - (T0 + 60)) <= 1


@pytest.mark.parametrize("ttl", [0, -1, True, 1.5])
async def test_non_positive_or_non_integer_ttl_raises(db: Db, ttl: int) -> None:
    """REP-06."""
    with pytest.raises(StoreContractError):
        await store(db).check_and_record("dpop", "jti-1", ttl)
    assert await keys(db) == []


async def test_distinct_jtis_and_namespaces_are_recorded_independently(db: Db) -> None:
    """REP-07."""
    s = store(db)
    assert await s.check_and_record("dpop", "jti-1") == Recorded()
    assert await s.check_and_record("dpop", "jti-2") == Recorded()
    assert await s.check_and_record("idjag", "jti-1") == Recorded()
    assert len(await keys(db)) == 3


async def test_fifty_concurrent_records_of_one_jti_have_one_first_sighting(db: Db) -> None:
    """REP-08, on 50 separate pooled connections."""
    engine = db.new_engine(statement_pool=PoolSize(60, 0))
    try:
        s = store(db, engine)
        results = await asyncio.gather(
            *(s.check_and_record("dpop", "same-jti") for _ in range(50))
        )
    finally:
        await engine.dispose()
    assert results.count(Recorded()) == 1
    assert results.count(Replay()) == 49


async def test_sweep_deletes_only_expired_rows(db: Db) -> None:
    """REP-09: two of three go; ``expires_at == now`` is kept (strict ``<``)."""
    s = store(db)
    await s.check_and_record("dpop", "old-1", 10, now=T0)
    await s.check_and_record("dpop", "old-2", 20, now=T0)
    await s.check_and_record("dpop", "edge", 30, now=T0)
    await s.check_and_record("dpop", "live", 120, now=T0)
    assert await s.sweep(now=T0 + 30) == 2
    assert await keys(db) == sorted([replay_key("dpop", "edge"), replay_key("dpop", "live")])
    assert await s.sweep(now=T0 + 30) == 0


async def test_swept_jti_can_be_recorded_again(db: Db) -> None:
    """REP-10."""
    s = store(db)
    await s.check_and_record("dpop", "jti-1", 60, now=T0)
    assert await s.sweep(now=T0 + 61) == 1
    assert await s.check_and_record("dpop", "jti-1", 60, now=T0 + 62) == Recorded()


async def test_schema_of_the_replay_table(db: Db) -> None:
    """REP-11: string PK ``jti``, microsecond timestamps, required columns, no updated_at."""
    t = db.tables.dpop_replays
    assert t.name == "dpop_replays"
    async with db.engine.connect() as conn:
        columns, pk = await conn.run_sync(
            lambda c: (
                [col["name"] for col in sa.inspect(c).get_columns("dpop_replays")],
                sa.inspect(c).get_pk_constraint("dpop_replays"),
            )
        )
    assert sorted(columns) == ["expires_at", "inserted_at", "jti"]
    assert pk["constrained_columns"] == ["jti"]
    if db.kind == "postgresql":
        assert pk["name"] == "dpop_replays_pkey"
    good = {
        "jti": "k-1",
        "expires_at": to_micros_column(T0 + 0.5),
        "inserted_at": to_micros_column(T0),
    }
    async with db.engine.begin() as conn:
        await conn.execute(sa.insert(t).values(**good))
    (row,) = await db.rows(t)
    assert row.expires_at.microsecond == 500_000
    for bad in [good, {**good, "jti": None}, {**good, "jti": "k-2", "expires_at": None}]:
        with pytest.raises(IntegrityError):
            async with db.engine.begin() as conn:
                await conn.execute(sa.insert(t).values(**bad))
    assert len(await db.rows(t)) == 1


async def test_record_inside_an_enclosing_transaction_does_not_abort_it(db: Db) -> None:
    """REP-13: a Replay inside the caller's transaction leaves it usable and committable."""
    s = store(db)
    nonces = db.tables.dpop_nonces
    async with db.engine.begin() as conn:
        assert await s.check_and_record("dpop", "jti-1", connection=conn) == Recorded()
        assert await s.check_and_record("dpop", "jti-1", connection=conn) == Replay()
        await conn.execute(
            sa.insert(nonces).values(
                id=uuid.uuid4(),
                nonce="after-the-replay",
                issued_at=to_seconds_column(T0),
                expires_at=to_seconds_column(T0 + 300),
            )
        )
    assert await keys(db) == [replay_key("dpop", "jti-1")]
    assert [r.nonce for r in await db.rows(nonces)] == ["after-the-replay"]


async def test_record_inside_a_rolled_back_transaction_is_undone(db: Db) -> None:
    """REP-13: the record belongs to the caller's transaction."""
    s = store(db)
    async with db.engine.connect() as conn:
        tx = await conn.begin()
        assert await s.check_and_record("dpop", "jti-1", connection=conn) == Recorded()
        await tx.rollback()
    assert await keys(db) == []
    assert await s.check_and_record("dpop", "jti-1") == Recorded()


async def test_over_long_jti_is_refused_before_any_write(db: Db) -> None:
    """REP-14: never a database error; keys have a fixed length whatever the jti length."""
    s = store(db)
    with pytest.raises(ValueTooLongError):
        await s.check_and_record("dpop", "j" * (MAX_RAW_JTI_LENGTH + 1))
    assert await keys(db) == []
    assert await s.check_and_record("dpop", "j" * MAX_RAW_JTI_LENGTH) == Recorded()
    assert await s.check_and_record("dpop", "j") == Recorded()
    assert {len(k) for k in await keys(db)} == {len("dpop:") + 43}


@pytest.mark.parametrize("namespace", ["", "DPoP", "dpop:", "dp op", "a" * 33, "dpop1"])
async def test_malformed_namespace_raises(db: Db, namespace: str) -> None:
    with pytest.raises(StoreContractError):
        await store(db).check_and_record(namespace, "jti-1")
    assert await keys(db) == []


async def test_empty_or_non_string_jti_raises(db: Db) -> None:
    with pytest.raises(StoreContractError):
        await store(db).check_and_record("dpop", "")
    with pytest.raises(StoreContractError):
        await store(db).check_and_record("dpop", None)  # type: ignore[arg-type]


async def test_client_assertion_keys_are_scoped_by_client(db: Db) -> None:
    """Spec §3.6: key over client_id + NUL + jti, so clients cannot burn each other's jti."""
    s = store(db)
    ns = CLIENT_ASSERTION_NAMESPACE
    assert await s.check_and_record(ns, client_assertion_jti("cli-a", "j1")) == Recorded()
    assert await s.check_and_record(ns, client_assertion_jti("cli-b", "j1")) == Recorded()
    assert await s.check_and_record(ns, client_assertion_jti("cli-a", "j1")) == Replay()
    assert replay_key(ns, client_assertion_jti("cli-a", "j1")) == (
        "client_assertion:" + digest("cli-a\0j1")
    )


async def test_any_other_database_error_propagates(db: Db) -> None:
    """Spec §3.6: a failed insert is never reported as 'not a replay' (no such table here)."""
    s = SqlReplayStore(db.engine, table_prefix="missing_", clock=db.clock)
    with pytest.raises(DBAPIError):
        await s.check_and_record("dpop", "jti-1")


async def test_is_recorded_reads_without_recording(db: Db) -> None:
    store = SqlReplayStore(db.engine, clock=db.clock)
    assert await store.is_recorded("dpop", "jti-read") is False
    assert await store.is_recorded("dpop", "jti-read") is False
    assert await db.rows(db.tables.dpop_replays) == []
    assert isinstance(await store.check_and_record("dpop", "jti-read"), Recorded)
    assert await store.is_recorded("dpop", "jti-read") is True
    assert await store.is_recorded("client_assertion", "jti-read") is False
    with pytest.raises(StoreContractError):
        await store.is_recorded("Bad-Namespace", "jti-read")
