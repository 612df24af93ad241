"""The SQL logout session store contract (spec §3.4, §6.5 LOG-01..13), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from authward.stores.errors import StoreContractError, ValueTooLongError
from authward.stores.logout_sessions import (
    Deleted,
    LogoutCriteria,
    LogoutSession,
    LogoutTarget,
    Recorded,
)
from authward.stores.sql.engine import PoolSize
from authward.stores.sql.logout_sessions import SqlLogoutSessionStore
from tests.dbkit import T0, Db

LIVE = int(T0) + 86_400


def store(db: Db, engine: AsyncEngine | None = None) -> SqlLogoutSessionStore:
    return SqlLogoutSessionStore(engine or db.engine, clock=db.clock)


def session(
    sid: str = "sid-1",
    client_id: str = "rp-1",
    subject: str = "alice",
    uri: str = "https://rp1.example/logout",
    expires_at: int = LIVE,
    session_required: bool = False,
) -> LogoutSession:
    return LogoutSession(sid, subject, client_id, uri, expires_at, session_required)


def target(
    client_id: str, sid: str, uri: str | None = None, required: bool = False
) -> LogoutTarget:
    return LogoutTarget(client_id, uri or f"https://{client_id}.example/logout", sid, required)


async def seed(db: Db) -> SqlLogoutSessionStore:
    """alice holds sid-1 (rp-1, rp-2) and sid-2 (rp-1); bob holds sid-3 (rp-1)."""
    s = store(db)
    for sid, client_id, subject in [
        ("sid-1", "rp-1", "alice"),
        ("sid-1", "rp-2", "alice"),
        ("sid-2", "rp-1", "alice"),
        ("sid-3", "rp-1", "bob"),
    ]:
        await s.record(session(sid, client_id, subject, f"https://{client_id}.example/logout"))
    return s


async def test_record_then_targets_by_sid(db: Db) -> None:
    """LOG-01."""
    s = store(db)
    assert await s.record(session(session_required=True)) == Recorded()
    assert await s.targets(LogoutCriteria(sid="sid-1")) == (
        LogoutTarget("rp-1", "https://rp1.example/logout", "sid-1", True),
    )


async def test_record_is_an_upsert_on_sid_and_client(db: Db) -> None:
    """LOG-02."""
    s = store(db)
    await s.record(session())
    await s.record(session(uri="https://rp1.example/new-logout", session_required=True))
    assert await s.targets(LogoutCriteria(sid="sid-1")) == (
        LogoutTarget("rp-1", "https://rp1.example/new-logout", "sid-1", True),
    )
    assert len(await db.rows(db.tables.logout_sessions)) == 1


async def test_targets_by_sid_returns_every_relying_party_of_the_session(db: Db) -> None:
    """LOG-03."""
    s = await seed(db)
    assert await s.targets(LogoutCriteria(sid="sid-1")) == (
        target("rp-1", "sid-1"),
        target("rp-2", "sid-1"),
    )


async def test_targets_by_subject_returns_every_session_of_the_subject(db: Db) -> None:
    """LOG-04."""
    s = await seed(db)
    assert await s.targets(LogoutCriteria(subject="alice")) == (
        target("rp-1", "sid-1"),
        target("rp-2", "sid-1"),
        target("rp-1", "sid-2"),
    )


async def test_sid_wins_over_subject(db: Db) -> None:
    """LOG-05."""
    s = await seed(db)
    assert await s.targets(LogoutCriteria(sid="sid-3", subject="alice")) == (
        target("rp-1", "sid-3"),
    )
    assert await s.targets(LogoutCriteria(sid="", subject="bob")) == (target("rp-1", "sid-3"),)


async def test_expired_rows_are_not_targets(db: Db) -> None:
    """LOG-06: ``expires_at == now`` is already expired."""
    s = store(db)
    await s.record(session(expires_at=int(T0)))
    await s.record(session(client_id="rp-2", uri="https://rp-2.example/logout"))
    assert await s.targets(LogoutCriteria(sid="sid-1")) == (target("rp-2", "sid-1"),)
    assert await s.targets(LogoutCriteria(sid="sid-1"), now=T0 - 1) == (
        target("rp-1", "sid-1", "https://rp1.example/logout"),
        target("rp-2", "sid-1"),
    )


async def test_delete_by_sid_clears_that_session(db: Db) -> None:
    """LOG-07: expired rows of the session go too."""
    s = await seed(db)
    await s.record(session("sid-1", "rp-3", "alice", expires_at=int(T0) - 10))
    assert await s.delete(LogoutCriteria(sid="sid-1")) == Deleted(3)
    rows = await db.rows(db.tables.logout_sessions)
    assert sorted((r.sid, r.client_id) for r in rows) == [("sid-2", "rp-1"), ("sid-3", "rp-1")]


async def test_delete_by_subject_clears_all_of_its_sessions(db: Db) -> None:
    """LOG-08."""
    s = await seed(db)
    assert await s.delete(LogoutCriteria(subject="alice")) == Deleted(3)
    rows = await db.rows(db.tables.logout_sessions)
    assert [(r.sid, r.subject) for r in rows] == [("sid-3", "bob")]


async def test_empty_criteria_match_nothing(db: Db) -> None:
    """LOG-09: never 'everyone'."""
    s = await seed(db)
    empties = [LogoutCriteria(), LogoutCriteria(sid="", subject=""), LogoutCriteria(None, "")]
    for criteria in empties:
        assert await s.targets(criteria) == ()
        assert await s.delete(criteria) == Deleted(0)
    assert len(await db.rows(db.tables.logout_sessions)) == 4


async def test_take_targets_returns_and_removes(db: Db) -> None:
    """LOG-10."""
    s = await seed(db)
    taken = await s.take_targets(LogoutCriteria(sid="sid-1"))
    assert taken == (target("rp-1", "sid-1"), target("rp-2", "sid-1"))
    assert await s.take_targets(LogoutCriteria(sid="sid-1")) == ()
    assert await s.targets(LogoutCriteria(sid="sid-1")) == ()
    assert len(await db.rows(db.tables.logout_sessions)) == 2


async def test_take_targets_ignores_expired_rows(db: Db) -> None:
    """LOG-11: expired rows are neither returned nor deleted (the sweeper owns them)."""
    s = store(db)
    await s.record(session(expires_at=int(T0) - 1))
    await s.record(session(client_id="rp-2", uri="https://rp-2.example/logout"))
    assert await s.take_targets(LogoutCriteria(sid="sid-1")) == (target("rp-2", "sid-1"),)
    rows = await db.rows(db.tables.logout_sessions)
    assert [r.client_id for r in rows] == ["rp-1"]


async def test_take_targets_with_empty_criteria_takes_nothing(db: Db) -> None:
    """LOG-12."""
    s = await seed(db)
    assert await s.take_targets(LogoutCriteria()) == ()
    assert await s.take_targets(LogoutCriteria(sid="", subject="")) == ()
    assert len(await db.rows(db.tables.logout_sessions)) == 4


async def test_upsert_keeps_the_original_id_and_inserted_at(db: Db) -> None:
    """LOG-13."""
    s = store(db)
    await s.record(session(), now=T0)
    (before,) = await db.rows(db.tables.logout_sessions)
    await s.record(session(subject="alice2", expires_at=LIVE + 100), now=T0 + 3600)
    (after,) = await db.rows(db.tables.logout_sessions)
    assert after.id == before.id
    assert after.inserted_at == before.inserted_at
    assert after.subject == "alice2"
    assert after.expires_at > before.expires_at


async def test_missing_or_over_long_fields_are_refused_before_any_write(db: Db) -> None:
    s = store(db)
    with pytest.raises(StoreContractError):
        await s.record(session(sid=""))
    with pytest.raises(ValueTooLongError):
        await s.record(session(client_id="c" * 256))
    assert await db.rows(db.tables.logout_sessions) == []


async def test_fifty_concurrent_takers_deliver_each_row_once(db: Db) -> None:
    """Spec §3.4: two concurrent logouts never both deliver to one relying party."""
    s = await seed(db)
    engine = db.new_engine(statement_pool=PoolSize(60, 0))
    try:
        racer = store(db, engine)
        results = await asyncio.gather(
            *(racer.take_targets(LogoutCriteria(sid="sid-1")) for _ in range(50))
        )
    finally:
        await engine.dispose()
    delivered = [t for taken in results for t in taken]
    assert sorted(delivered, key=lambda t: t.client_id) == [
        target("rp-1", "sid-1"),
        target("rp-2", "sid-1"),
    ]
    assert sum(1 for taken in results if taken) == 1
    assert await s.targets(LogoutCriteria(subject="alice")) == (target("rp-1", "sid-2"),)
