"""The SQL device code store contract (spec §3.3, §6.4 DEV-01..08), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from authward.stores.device_codes import (
    AlreadyDecided,
    Approval,
    Consumed,
    Decided,
    Expired,
    Failed,
    Found,
    Missing,
    NewDeviceCode,
    NotFound,
    PendingView,
    Polled,
    SlowDown,
    Stored,
    UserCodeTaken,
)
from authward.stores.digest import digest
from authward.stores.errors import DuplicateKeyError, NoDatabaseError, ValueTooLongError
from authward.stores.sql.device_codes import SqlDeviceCodeStore
from authward.stores.sql.engine import PoolSize
from tests.dbkit import T0, Db

HASH = digest("device-code-1")


def store(db: Db, engine: AsyncEngine | None = None) -> SqlDeviceCodeStore:
    return SqlDeviceCodeStore(engine or db.engine, clock=db.clock)


def new_code(
    device_code_hash: str = HASH, user_code: str = "BCDFGHJK", **kw: object
) -> NewDeviceCode:
    fields: dict[str, object] = {
        "client_id": "cli-1",
        "expires_at": int(T0) + 600,
        "scope": ("a", "b"),
        "resource": ("https://rs.example",),
        "dpop_jkt": None,
    }
    fields.update(kw)
    return NewDeviceCode(device_code_hash, user_code, **fields)  # type: ignore[arg-type]


async def test_put_then_lookup_returns_the_pending_view(db: Db) -> None:
    """DEV-01."""
    s = store(db)
    assert await s.put(new_code()) == Stored()
    assert await s.lookup_user_code("BCDFGHJK") == Found(
        PendingView(
            user_code="BCDFGHJK",
            client_id="cli-1",
            scope=("a", "b"),
            resource=("https://rs.example",),
            status="pending",
            expires_at=int(T0) + 600,
        )
    )
    (row,) = await db.rows(db.tables.device_codes)
    assert row.status == "pending"
    assert row.subject is None
    assert row.last_polled_at is None
    assert row.granted_scope is None


async def test_lookup_of_an_unknown_user_code_is_not_found(db: Db) -> None:
    assert await store(db).lookup_user_code("ZZZZZZZZ") == NotFound()


async def test_lookup_has_no_status_or_expiry_filter(db: Db) -> None:
    s = store(db)
    await s.put(new_code())
    await s.deny("BCDFGHJK")
    found = await s.lookup_user_code("BCDFGHJK", now=T0 + 10_000)
    assert isinstance(found, Found)
    assert found.view.status == "denied"


async def test_approve_moves_pending_to_approved_exactly_once(db: Db) -> None:
    """DEV-02."""
    s = store(db)
    await s.put(new_code())
    approval = Approval("alice", ("a",), {"acr": "urn:mace:incommon:iap:silver", "auth_time": 5})
    decided = await s.approve("BCDFGHJK", approval)
    assert isinstance(decided, Decided)
    assert decided.entry.status == "approved"
    assert await s.approve("BCDFGHJK", Approval("mallory")) == AlreadyDecided("approved")
    assert await s.deny("BCDFGHJK") == AlreadyDecided("approved")
    polled = await s.poll(HASH, 5)
    assert isinstance(polled, Polled)
    assert polled.entry.status == "approved"
    assert polled.entry.subject == "alice"
    assert polled.entry.granted_scope == ("a",)
    assert polled.entry.granted_claims == {
        "acr": "urn:mace:incommon:iap:silver",
        "auth_time": 5,
    }


async def test_deny_moves_pending_to_denied_and_poll_shows_it(db: Db) -> None:
    """DEV-03."""
    s = store(db)
    await s.put(new_code())
    decided = await s.deny("BCDFGHJK")
    assert isinstance(decided, Decided)
    assert decided.entry.status == "denied"
    assert decided.entry.subject is None
    polled = await s.poll(HASH, 5)
    assert isinstance(polled, Polled)
    assert polled.entry.status == "denied"
    assert await s.approve("BCDFGHJK", Approval("alice")) == AlreadyDecided("denied")


async def test_approve_or_deny_of_an_unknown_user_code_is_not_found(db: Db) -> None:
    """DEV-04."""
    s = store(db)
    assert await s.approve("ZZZZZZZZ", Approval("alice")) == NotFound()
    assert await s.deny("ZZZZZZZZ") == NotFound()


async def test_consume_moves_approved_to_consumed_exactly_once(db: Db) -> None:
    """DEV-05."""
    s = store(db)
    await s.put(new_code())
    await s.approve("BCDFGHJK", Approval("alice", ("a",)))
    consumed = await s.consume(HASH)
    assert isinstance(consumed, Consumed)
    assert consumed.entry.status == "consumed"
    assert consumed.entry.subject == "alice"
    assert await s.consume(HASH) == Failed()
    (row,) = await db.rows(db.tables.device_codes)
    assert row.status == "consumed"


async def test_consume_of_a_pending_or_denied_or_unknown_code_fails(db: Db) -> None:
    """DEV-06."""
    s = store(db)
    await s.put(new_code())
    assert await s.consume(HASH) == Failed()
    await s.deny("BCDFGHJK")
    assert await s.consume(HASH) == Failed()
    assert await s.consume(digest("nope")) == Failed()


async def test_consume_of_an_approved_but_expired_code_fails(db: Db) -> None:
    s = store(db)
    await s.put(new_code())
    await s.approve("BCDFGHJK", Approval("alice"))
    assert await s.consume(HASH, now=T0 + 600) == Failed()
    (row,) = await db.rows(db.tables.device_codes)
    assert row.status == "approved"


async def test_poll_interval_is_enforced_and_unknown_hash_is_missing(db: Db) -> None:
    """DEV-07: a rejected poll does not move the stamp; exactly ``interval`` later is fine."""
    s = store(db)
    await s.put(new_code())
    first = await s.poll(HASH, 5, now=T0)
    assert isinstance(first, Polled)
    assert first.entry.last_polled_at == int(T0)
    assert await s.poll(HASH, 5, now=T0 + 1) == SlowDown()
    (row,) = await db.rows(db.tables.device_codes)
    assert row.last_polled_at is not None
    assert await s.poll(HASH, 5, now=T0 + 4) == SlowDown()
    later = await s.poll(HASH, 5, now=T0 + 6)
    assert isinstance(later, Polled)
    assert later.entry.last_polled_at == int(T0) + 6
    assert isinstance(await s.poll(HASH, 5, now=T0 + 11), Polled)
    assert await s.poll(digest("unknown"), 5) == Missing()


async def test_poll_returns_the_row_even_when_expired(db: Db) -> None:
    s = store(db)
    await s.put(new_code())
    polled = await s.poll(HASH, 5, now=T0 + 10_000)
    assert isinstance(polled, Polled)
    assert polled.entry.expires_at == int(T0) + 600


async def test_approve_of_an_expired_pending_code_is_expired(db: Db) -> None:
    """DEV-08: the guard has ``expires_at > now``; ``expires_at == now`` is already expired."""
    s = store(db)
    await s.put(new_code())
    assert await s.approve("BCDFGHJK", Approval("alice"), now=T0 + 600) == Expired()
    assert await s.deny("BCDFGHJK", now=T0 + 601) == Expired()
    (row,) = await db.rows(db.tables.device_codes)
    assert row.status == "pending"
    assert row.subject is None
    assert isinstance(await s.approve("BCDFGHJK", Approval("alice"), now=T0 + 599), Decided)


async def test_taken_user_code_is_user_code_taken(db: Db) -> None:
    """DEV-10 (store half)."""
    s = store(db)
    await s.put(new_code())
    assert await s.put(new_code(digest("another"))) == UserCodeTaken()
    assert len(await db.rows(db.tables.device_codes)) == 1


async def test_taken_device_code_hash_raises(db: Db) -> None:
    s = store(db)
    await s.put(new_code())
    with pytest.raises(DuplicateKeyError):
        await s.put(new_code(user_code="ZZZZZZZZ"))
    with pytest.raises(DuplicateKeyError):
        await s.put(new_code())  # both keys collide: the hash is the bug
    assert len(await db.rows(db.tables.device_codes)) == 1


async def test_over_long_values_are_refused_before_any_write(db: Db) -> None:
    s = store(db)
    with pytest.raises(ValueTooLongError):
        await s.put(new_code(client_id="c" * 256))
    with pytest.raises(ValueTooLongError):
        await s.put(new_code(scope=("s" * 256,)))
    assert await db.rows(db.tables.device_codes) == []


def test_a_store_without_an_engine_refuses_to_exist() -> None:
    with pytest.raises(NoDatabaseError):
        SqlDeviceCodeStore(None)


async def test_fifty_concurrent_consumes_have_exactly_one_winner(db: Db) -> None:
    """Spec §3.3 consume atomicity, on 50 separate pooled connections."""
    await store(db).put(new_code())
    await store(db).approve("BCDFGHJK", Approval("alice"))
    engine = db.new_engine(statement_pool=PoolSize(60, 0))
    try:
        s = store(db, engine)
        results = await asyncio.gather(*(s.consume(HASH) for _ in range(50)))
    finally:
        await engine.dispose()
    assert sum(isinstance(r, Consumed) for r in results) == 1
    assert sum(r == Failed() for r in results) == 49
