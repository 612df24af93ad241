"""``rotate_same_grant``: the common refresh rotation in one step, on SQLite and PostgreSQL.

It must rotate exactly what the reasoned path (``get``, the checks, ``rotate``) would rotate
with an unchanged grant, refuse everything else without writing, and keep ``rotate``'s
guarantees under concurrency (one winner; no child escapes a family revocation).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
import sqlalchemy as sa

from authward.stores.digest import digest
from authward.stores.errors import DuplicateKeyError, StoreContractError
from authward.stores.refresh import (
    Found,
    FreshChild,
    Missing,
    NotRotated,
    RefreshEntry,
    Rotated,
)
from authward.stores.sql.refresh import FAMILY_LOCK_NAMESPACE
from tests.dbkit import T0, Db
from tests.stores.sql.test_consent import statements
from tests.stores.sql.test_refresh import DATA, EXP, entry, store, token

NOW = T0


def fresh(tok: str | None = None) -> tuple[str, FreshChild]:
    tok = tok or token()
    return tok, FreshChild(token_hash=digest(tok), expires_at=EXP + 100)


async def rows_of(db: Db) -> list[sa.Row[object]]:
    return sorted(await db.rows(db.tables.refresh_tokens), key=lambda r: r.generation)


async def test_rotates_the_parent_into_a_child_with_the_same_grant(db: Db) -> None:
    parent = entry(generation=3)
    await store(db).insert(parent)
    _, child = fresh()

    got = await store(db).rotate_same_grant(
        parent.token_hash, child, client_id="client-1", dpop_jkt=None, now=NOW
    )

    expected = RefreshEntry(
        token_hash=child.token_hash,
        family_id=parent.family_id,
        generation=4,
        data=DATA,
        expires_at=child.expires_at,
    )
    assert got == Rotated(expected)
    assert await store(db).get(child.token_hash) == Found(expected)
    old = await store(db).get(parent.token_hash)
    assert isinstance(old, Found)
    assert old.entry.consumed is True
    assert old.entry.consumed_at == NOW
    assert old.entry.successor is None
    rows = await rows_of(db)
    assert [r.generation for r in rows] == [3, 4]
    assert rows[1].parent_hash == parent.token_hash
    assert not rows[1].consumed
    assert not rows[1].family_revoked


async def test_a_dpop_bound_parent_rotates_with_its_key(db: Db) -> None:
    bound = replace(DATA, dpop_jkt="j" * 43, client_id="public-1")
    parent = entry(data=bound)
    await store(db).insert(parent)
    _, child = fresh()
    got = await store(db).rotate_same_grant(
        parent.token_hash, child, client_id="public-1", dpop_jkt="j" * 43, now=NOW
    )
    assert isinstance(got, Rotated)
    assert got.child.data.dpop_jkt == "j" * 43
    found = await store(db).get(child.token_hash)
    assert isinstance(found, Found)
    assert found.entry.data == bound


@pytest.mark.parametrize(
    ("case", "client_id", "jkt"),
    [
        ("unknown", "client-1", None),
        ("consumed", "client-1", None),
        ("expired", "client-1", None),
        ("revoked", "client-1", None),
        ("other client", "client-2", None),
        ("no client on the parent", "client-1", None),
        ("bound parent, no proof", "client-1", None),
        ("bound parent, other key", "client-1", "k" * 43),
        ("unbound parent, a proof", "client-1", "j" * 43),
    ],
)
async def test_anything_else_is_not_rotated_and_nothing_is_written(
    db: Db, case: str, client_id: str, jkt: str | None
) -> None:
    s = store(db)
    changes: dict[str, object] = {}
    if case == "expired":
        changes["expires_at"] = int(NOW)  # expires_at <= now
    if case == "no client on the parent":
        changes["data"] = replace(DATA, client_id=None)
    if case.startswith("bound parent"):
        changes["data"] = replace(DATA, dpop_jkt="j" * 43)
    parent = entry(**changes)
    if case != "unknown":
        await s.insert(parent)
    if case == "consumed":
        await s.consume(parent.token_hash, now=NOW - 5)
    if case == "revoked":
        await s.revoke_family(parent.family_id)
    before = await rows_of(db)
    _, child = fresh()

    got = await s.rotate_same_grant(
        parent.token_hash, child, client_id=client_id, dpop_jkt=jkt, now=NOW
    )

    assert got == NotRotated()
    assert await rows_of(db) == before
    assert await s.get(child.token_hash) == Missing()


async def test_a_colliding_child_writes_nothing(db: Db) -> None:
    parent = entry()
    squatter = entry()
    await store(db).insert(parent)
    await store(db).insert(squatter)
    child = FreshChild(token_hash=squatter.token_hash, expires_at=EXP)
    with pytest.raises(DuplicateKeyError):
        await store(db).rotate_same_grant(
            parent.token_hash, child, client_id="client-1", dpop_jkt=None, now=NOW
        )
    got = await store(db).get(parent.token_hash)
    assert isinstance(got, Found)
    assert got.entry.consumed is False
    assert len(await rows_of(db)) == 2


async def test_a_malformed_child_is_refused_before_any_write(db: Db) -> None:
    parent = entry()
    await store(db).insert(parent)
    for child in (FreshChild("", EXP), FreshChild(digest("x"), 1.5)):  # type: ignore[arg-type]
        with pytest.raises(StoreContractError):
            await store(db).rotate_same_grant(
                parent.token_hash, child, client_id="client-1", dpop_jkt=None, now=NOW
            )
    assert len(await rows_of(db)) == 1


async def test_fifty_concurrent_rotations_have_one_winner(db: Db) -> None:
    parent = entry()
    await store(db).insert(parent)
    racing = await db.racing_engine(50)
    try:
        s = store(db, racing)
        results = await asyncio.gather(
            *(
                s.rotate_same_grant(
                    parent.token_hash, fresh()[1], client_id="client-1", dpop_jkt=None, now=NOW
                )
                for _ in range(50)
            )
        )
    finally:
        await racing.dispose()
    assert sum(isinstance(r, Rotated) for r in results) == 1
    assert sum(isinstance(r, NotRotated) for r in results) == 49
    assert len(await rows_of(db)) == 2


async def test_rotations_racing_their_family_revocation_leave_no_live_child(db: Db) -> None:
    parents = [entry() for _ in range(20)]
    for parent in parents:
        await store(db).insert(parent)
    racing = await db.racing_engine(20)
    try:
        s = store(db, racing)
        jobs = []
        for index, parent in enumerate(parents):
            rotate = s.rotate_same_grant(
                parent.token_hash, fresh()[1], client_id="client-1", dpop_jkt=None, now=NOW
            )
            revoke = s.revoke_family(parent.family_id)
            jobs += [rotate, revoke] if index % 2 else [revoke, rotate]
        await asyncio.gather(*jobs)
    finally:
        await racing.dispose()
    rows = await rows_of(db)
    assert len(rows) >= len(parents)
    assert all(r.family_revoked for r in rows)


async def test_postgresql_rotates_in_one_statement(pg: Db) -> None:
    parent = entry()
    await store(pg).insert(parent)
    with statements(pg.engine) as seen:
        got = await store(pg).rotate_same_grant(
            parent.token_hash, fresh()[1], client_id="client-1", dpop_jkt=None, now=NOW
        )
    assert isinstance(got, Rotated)
    assert len(seen) == 1
    assert "pg_advisory_xact_lock" in seen[0]


async def test_postgresql_waits_for_a_revocation_holding_the_family_lock(pg: Db) -> None:
    """The lock is taken on the family the parent names before the parent row is claimed: a
    rotation started while another transaction revokes the family finds it revoked."""
    parent = entry()
    await store(pg).insert(parent)
    other = pg.new_engine(poolclass=sa.pool.NullPool)
    try:
        async with other.begin() as conn:
            await conn.execute(
                sa.text("SELECT pg_advisory_xact_lock(:ns, hashtext(:family))"),
                {"ns": FAMILY_LOCK_NAMESPACE, "family": parent.family_id},
            )
            rotating = asyncio.ensure_future(
                store(pg).rotate_same_grant(
                    parent.token_hash, fresh()[1], client_id="client-1", dpop_jkt=None, now=NOW
                )
            )
            await asyncio.sleep(0.3)
            assert not rotating.done()  # blocked on the lock
            table = pg.tables.refresh_tokens
            await conn.execute(
                sa.update(table)
                .where(table.c.family_id == parent.family_id)
                .values(family_revoked=True)
            )
        assert await rotating == NotRotated()
    finally:
        await other.dispose()
    rows = await rows_of(pg)
    assert [r.token_hash for r in rows] == [parent.token_hash]
    assert not rows[0].consumed
