"""The SQL refresh-token store on SQLite and PostgreSQL (spec §3.2, §6.3 RT-01..29, RT-36)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import secrets
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from authward.stores.digest import b64url, digest
from authward.stores.errors import DuplicateKeyError, StoreContractError, ValueTooLongError
from authward.stores.refresh import (
    Claimed,
    Expired,
    FamilyRevoked,
    Found,
    Inserted,
    Missing,
    RefreshData,
    RefreshEntry,
    RememberFailed,
    RememberOk,
    Reuse,
    Rotated,
    Successor,
)
from authward.stores.sql.engine import PoolSize
from authward.stores.sql.refresh import FAMILY_LOCK_NAMESPACE, SqlRefreshTokenStore
from tests.dbkit import KINDS, T0, Db, database

KEYS = {"k1": b"k" * 32}
EXP = int(T0) + 3600

DATA = RefreshData(
    subject="alice",
    scope=("openid", "offline_access", "read"),
    resource=("https://api.example.com",),
    acr="urn:acr:2",
    auth_time=int(T0) - 100,
    client_id="client-1",
    dpop_jkt=None,
    claims={"sid": "s-1"},
)


def token() -> str:
    return b64url(secrets.token_bytes(32))


def entry(**changes: object) -> RefreshEntry:
    base = RefreshEntry(
        token_hash=digest(token()),
        family_id="fam-" + secrets.token_hex(4),
        generation=0,
        data=DATA,
        expires_at=EXP,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def store(db: Db, engine: AsyncEngine | None = None, *, keys: bool = True) -> SqlRefreshTokenStore:
    return SqlRefreshTokenStore(
        engine or db.engine, clock=db.clock, successor_keys=KEYS if keys else None
    )


def child_of(parent: RefreshEntry, tok: str, **data_changes: object) -> RefreshEntry:
    return RefreshEntry(
        token_hash=digest(tok),
        family_id=parent.family_id,
        generation=parent.generation + 1,
        data=replace(parent.data, **data_changes),  # type: ignore[arg-type]
        expires_at=EXP + 100,
    )


def successor_for(child: RefreshEntry, tok: str) -> Successor:
    return Successor(
        token=tok, generation=child.generation, context=child.data, retry_until=int(T0) + 60
    )


async def test_insert_then_get_round_trips_every_field_rt_01_29(db: Db) -> None:
    """RT-01, RT-29."""
    s, e = store(db), entry()
    assert await s.insert(e) == Inserted()
    got = await s.get(e.token_hash)
    assert got == Found(e)
    assert isinstance(got, Found)
    assert got.entry.consumed is False
    assert got.entry.data.resource == ("https://api.example.com",)
    assert got.entry.data.acr == "urn:acr:2"
    assert got.entry.data.auth_time == int(T0) - 100


async def test_dpop_jkt_is_stored_in_cnf_and_comes_back_rt_02_24_27(db: Db) -> None:
    """RT-02, RT-24, RT-27."""
    s, e = store(db), entry(data=replace(DATA, dpop_jkt="thumb"))
    await s.insert(e)
    (row,) = await db.rows(db.tables.refresh_tokens)
    assert row.cnf == {"jkt": "thumb"}
    got = await s.get(e.token_hash)
    assert isinstance(got, Found)
    assert got.entry.data.dpop_jkt == "thumb"


async def test_get_of_unknown_hash_is_missing_rt_03(db: Db) -> None:
    """RT-03."""
    assert await store(db).get(digest("nope")) == Missing()


async def test_insert_into_revoked_family_is_refused_and_stores_nothing_rt_04(db: Db) -> None:
    """RT-04."""
    s, first = store(db), entry()
    await s.insert(first)
    await s.revoke_family(first.family_id)
    second = entry(family_id=first.family_id, generation=1)
    assert await s.insert(second) == FamilyRevoked()
    assert await s.get(second.token_hash) == Missing()
    assert len(await db.rows(db.tables.refresh_tokens)) == 1


async def test_first_consume_returns_the_row_as_it_was_rt_05_22(db: Db) -> None:
    """RT-05, RT-22."""
    s, e = store(db), entry()
    await s.insert(e)
    got = await s.consume(e.token_hash, now=T0 + 5.7)
    assert got == Claimed(e)
    after = await s.get(e.token_hash)
    assert isinstance(after, Found)
    assert after.entry.consumed is True
    assert after.entry.consumed_at == int(T0) + 5
    (row,) = await db.rows(db.tables.refresh_tokens)
    assert row.consumed is True
    assert row.consumed_at == dt.datetime(2026, 1, 1, 0, 0, 5)


async def test_second_consume_is_reuse_with_the_family_rt_06(db: Db) -> None:
    """RT-06."""
    s, e = store(db), entry()
    await s.insert(e)
    await s.consume(e.token_hash)
    got = await s.consume(e.token_hash)
    assert isinstance(got, Reuse)
    assert got.entry.family_id == e.family_id
    assert got.entry.consumed is True
    assert got.entry.consumed_at == int(T0)


async def test_remembered_successor_is_encrypted_and_decrypted_on_reuse_rt_07(db: Db) -> None:
    """RT-07."""
    s, e = store(db), entry()
    await s.insert(e)
    await s.consume(e.token_hash)
    tok = token()
    succ = successor_for(child_of(e, tok), tok)
    assert await s.remember_successor(e.token_hash, succ) == RememberOk()
    (row,) = await db.rows(db.tables.refresh_tokens)
    assert set(row.successor) == {"v", "kid", "ct"}
    assert tok not in json.dumps(row.successor)
    got = await s.consume(e.token_hash)
    assert isinstance(got, Reuse)
    assert got.entry.successor == succ


async def test_remember_successor_without_a_key_fails_and_writes_nothing_rt_08(db: Db) -> None:
    """RT-08."""
    s, e = store(db, keys=False), entry()
    assert s.seals_successors is False
    await s.insert(e)
    await s.consume(e.token_hash)
    tok = token()
    assert await s.remember_successor(e.token_hash, successor_for(child_of(e, tok), tok)) == (
        RememberFailed()
    )
    (row,) = await db.rows(db.tables.refresh_tokens)
    assert row.successor is None


async def test_remember_successor_on_unconsumed_or_unknown_parent_fails_rt_09(db: Db) -> None:
    """RT-09."""
    s, e = store(db), entry()
    await s.insert(e)
    tok = token()
    succ = successor_for(child_of(e, tok), tok)
    assert await s.remember_successor(e.token_hash, succ) == RememberFailed()
    assert await s.remember_successor(digest("unknown"), succ) == RememberFailed()
    (row,) = await db.rows(db.tables.refresh_tokens)
    assert row.successor is None


async def test_remember_successor_on_revoked_family_fails(db: Db) -> None:
    s, e = store(db), entry()
    await s.insert(e)
    await s.consume(e.token_hash)
    await s.revoke_family(e.family_id)
    tok = token()
    assert await s.remember_successor(e.token_hash, successor_for(child_of(e, tok), tok)) == (
        RememberFailed()
    )


async def test_consume_of_unknown_hash_is_missing_never_reuse_rt_10(db: Db) -> None:
    """RT-10."""
    s = store(db)
    assert await s.consume(digest("unknown")) == Missing()
    assert await s.consume(digest("unknown")) == Missing()


async def test_consumed_token_in_revoked_family_is_missing_not_reuse(db: Db) -> None:
    """§3.2.3: revocation wins over consumption."""
    s, e = store(db), entry()
    await s.insert(e)
    await s.consume(e.token_hash)
    await s.revoke_family(e.family_id)
    assert await s.consume(e.token_hash) == Missing()
    assert await s.get(e.token_hash) == Missing()


async def test_unconsumed_token_in_revoked_family_cannot_be_consumed(db: Db) -> None:
    s, e = store(db), entry()
    await s.insert(e)
    await s.revoke_family(e.family_id)
    assert await s.consume(e.token_hash) == Missing()
    (row,) = await db.rows(db.tables.refresh_tokens)
    assert row.consumed is False


async def test_two_concurrent_consumes_one_claimed_one_reuse_rt_11(db: Db) -> None:
    """RT-11, on two separate engines (connections)."""
    e = entry()
    await store(db).insert(e)
    other = db.new_engine()
    try:
        results = await asyncio.gather(
            store(db).consume(e.token_hash), store(db, other).consume(e.token_hash)
        )
    finally:
        await other.dispose()
    assert sorted(type(r).__name__ for r in results) == ["Claimed", "Reuse"]


async def test_revoke_family_marks_every_row_and_keeps_them_rt_14_16(db: Db) -> None:
    """RT-14, RT-16."""
    s, a0 = store(db), entry()
    a1 = entry(family_id=a0.family_id, generation=1)
    b0 = entry()
    for e in (a0, a1, b0):
        await s.insert(e)
    await s.revoke_family(a0.family_id)
    rows = {r.token_hash: r for r in await db.rows(db.tables.refresh_tokens)}
    assert len(rows) == 3
    assert rows[a0.token_hash].family_revoked is True
    assert rows[a1.token_hash].family_revoked is True
    assert rows[b0.token_hash].family_revoked is False
    assert await s.get(b0.token_hash) == Found(b0)


async def test_revoke_family_is_idempotent_and_accepts_unknown_families_rt_15(db: Db) -> None:
    """RT-15."""
    s, e = store(db), entry()
    await s.insert(e)
    await s.revoke_family(e.family_id)
    await s.revoke_family(e.family_id)
    await s.revoke_family("no-such-family")
    (row,) = await db.rows(db.tables.refresh_tokens)
    assert row.family_revoked is True


async def test_entry_with_only_required_fields_is_valid_rt_17_26(db: Db) -> None:
    """RT-17, RT-26."""
    s = store(db)
    e = RefreshEntry(
        token_hash=digest("t"),
        family_id="f",
        generation=0,
        data=RefreshData(subject="bob"),
        expires_at=EXP,
    )
    assert await s.insert(e) == Inserted()
    got = await s.get(e.token_hash)
    assert isinstance(got, Found)
    d = got.entry.data
    assert (d.scope, d.resource, d.acr, d.auth_time, d.client_id, d.dpop_jkt, d.claims) == (
        (), (), None, None, None, None, {},
    )


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("token_hash", {"token_hash": None}),
        ("token_hash", {"token_hash": ""}),
        ("family_id", {"family_id": None}),
        ("subject", {"data": RefreshData(subject=None)}),  # type: ignore[arg-type]
        ("subject", {"data": RefreshData(subject="")}),
        ("expires_at", {"expires_at": None}),
        ("expires_at", {"expires_at": 1.5}),
        ("data", {"data": None}),
        ("generation", {"generation": -1}),
    ],
)
async def test_missing_required_field_is_rejected_rt_18(
    db: Db, field: str, change: dict[str, object]
) -> None:
    """RT-18."""
    with pytest.raises(StoreContractError, match=field):
        await store(db).insert(entry(**change))
    assert await db.rows(db.tables.refresh_tokens) == []


async def test_null_claims_and_scope_become_empty_rt_19(db: Db) -> None:
    """RT-19."""
    s = store(db)
    e = entry(data=RefreshData(subject="bob", claims=None, scope=None))  # type: ignore[arg-type]
    await s.insert(e)
    (row,) = await db.rows(db.tables.refresh_tokens)
    assert row.claims == {}
    assert list(row.scope) == []


async def test_scope_is_deduplicated_keeping_order_rt_20(db: Db) -> None:
    """RT-20."""
    s = store(db)
    e = entry(data=replace(DATA, scope=("read", "read", "write", "read")))
    await s.insert(e)
    (row,) = await db.rows(db.tables.refresh_tokens)
    assert list(row.scope) == ["read", "write"]


@pytest.mark.parametrize(
    "change",
    [
        {"consumed": True},
        {"family_revoked": True},
        {"consumed_at": int(T0)},
        {
            "successor": Successor(
                token="x", generation=1, context=RefreshData(subject="a"), retry_until=None
            )
        },
    ],
)
async def test_entry_smuggled_in_consumed_or_revoked_is_rejected_rt_21(
    db: Db, change: dict[str, object]
) -> None:
    """RT-21."""
    with pytest.raises(StoreContractError):
        await store(db).insert(entry(**change))
    assert await db.rows(db.tables.refresh_tokens) == []


async def test_entry_is_flattened_into_the_row_rt_23(db: Db) -> None:
    """RT-23."""
    e = entry()
    await store(db).insert(e)
    (row,) = await db.rows(db.tables.refresh_tokens)
    assert row.token_hash == e.token_hash
    assert row.family_id == e.family_id
    assert row.generation == 0
    assert row.client_id == "client-1"
    assert row.subject == "alice"
    assert list(row.scope) == ["openid", "offline_access", "read"]
    assert list(row.resource) == ["https://api.example.com"]
    assert (row.acr, row.auth_time) == ("urn:acr:2", int(T0) - 100)
    assert (row.cnf, row.successor, row.consumed_at, row.parent_hash) == (None, None, None, None)
    assert row.claims == {"sid": "s-1"}
    assert row.expires_at == dt.datetime(2026, 1, 1, 1, 0, 0)
    assert row.inserted_at == dt.datetime(2026, 1, 1)
    assert (row.consumed, row.family_revoked) == (False, False)


async def test_duplicate_token_hash_or_generation_raises(db: Db) -> None:
    s, e = store(db), entry()
    await s.insert(e)
    with pytest.raises(DuplicateKeyError):
        await s.insert(replace(e, family_id="other"))
    with pytest.raises(DuplicateKeyError):
        await s.insert(entry(family_id=e.family_id, generation=0))
    assert len(await db.rows(db.tables.refresh_tokens)) == 1


@pytest.mark.parametrize(
    "change",
    [
        {"token_hash": "h" * 89},
        {"family_id": "f" * 256},
        {"data": replace(DATA, subject="s" * 256)},
        {"data": replace(DATA, client_id="c" * 256)},
        {"data": replace(DATA, acr="a" * 256)},
        {"data": replace(DATA, dpop_jkt="j" * 256)},
        {"data": replace(DATA, scope=("s" * 256,))},
        {"data": replace(DATA, resource=("r" * 256,))},
    ],
)
async def test_over_long_values_are_refused_before_writing(
    db: Db, change: dict[str, object]
) -> None:
    """§7 item 6."""
    with pytest.raises(ValueTooLongError):
        await store(db).insert(entry(**change))
    assert await db.rows(db.tables.refresh_tokens) == []


async def test_legacy_plaintext_successor_is_normalised_rt_28(db: Db) -> None:
    """RT-28: a plaintext map with string keys, written by another system."""
    s, e = store(db, keys=False), entry()
    await s.insert(e)
    await s.consume(e.token_hash, now=T0 + 3)
    legacy = {"token": "legacy-token", "generation": 1, "context": {"subject": "alice"}}
    async with db.engine.begin() as conn:
        await conn.execute(sa.update(db.tables.refresh_tokens).values(successor=legacy))
    got = await s.consume(e.token_hash)
    assert isinstance(got, Reuse)
    assert got.entry.consumed_at == int(T0) + 3
    assert got.entry.successor == Successor(
        token="legacy-token",
        generation=1,
        retry_until=None,
        context=RefreshData(subject="alice"),
    )


async def test_envelope_copied_onto_another_parent_fails_authentication_rt_36(db: Db) -> None:
    """RT-36 through the store: the copied envelope reads as no successor."""
    s, a, b = store(db), entry(), entry()
    for e in (a, b):
        await s.insert(e)
        await s.consume(e.token_hash)
    tok = token()
    succ = successor_for(child_of(a, tok), tok)
    assert await s.remember_successor(a.token_hash, succ) == RememberOk()
    t = db.tables.refresh_tokens
    async with db.engine.begin() as conn:
        env = (
            await conn.execute(sa.select(t.c.successor).where(t.c.token_hash == a.token_hash))
        ).scalar_one()
        await conn.execute(sa.update(t).where(t.c.token_hash == b.token_hash).values(successor=env))
    got_a, got_b = await s.get(a.token_hash), await s.get(b.token_hash)
    assert isinstance(got_a, Found)
    assert got_a.entry.successor == succ
    assert isinstance(got_b, Found)
    assert got_b.entry.successor is None


async def test_envelope_under_an_unknown_key_reads_as_no_successor(db: Db) -> None:
    s, e = store(db), entry()
    await s.insert(e)
    await s.consume(e.token_hash)
    tok = token()
    await s.remember_successor(e.token_hash, successor_for(child_of(e, tok), tok))
    other = SqlRefreshTokenStore(db.engine, clock=db.clock, successor_keys={"k2": b"z" * 32})
    got = await other.consume(e.token_hash)
    assert isinstance(got, Reuse)
    assert got.entry.successor is None
    unkeyed = await store(db, keys=False).consume(e.token_hash)
    assert isinstance(unkeyed, Reuse)
    assert unkeyed.entry.successor is None


# --- the atomic rotate (§3.2.8) ---


async def test_rotate_consumes_parent_seals_successor_and_inserts_child_rt_25(db: Db) -> None:
    """RT-25: ``parent_hash`` is filled in by rotate."""
    s, parent = store(db), entry()
    await s.insert(parent)
    tok = token()
    child = child_of(parent, tok, scope=("read",))
    succ = successor_for(child, tok)
    assert await s.rotate(parent.token_hash, child, succ, now=T0 + 9) == Rotated(child)
    rows = {r.token_hash: r for r in await db.rows(db.tables.refresh_tokens)}
    assert rows[child.token_hash].parent_hash == parent.token_hash
    assert rows[child.token_hash].generation == 1
    assert rows[parent.token_hash].parent_hash is None
    got = await s.get(parent.token_hash)
    assert isinstance(got, Found)
    assert got.entry.consumed is True
    assert got.entry.consumed_at == int(T0) + 9
    assert got.entry.successor == succ
    assert await s.get(child.token_hash) == Found(child)


async def test_rotate_of_consumed_parent_is_reuse_with_its_successor(db: Db) -> None:
    s, parent = store(db), entry()
    await s.insert(parent)
    tok = token()
    child = child_of(parent, tok)
    await s.rotate(parent.token_hash, child, successor_for(child, tok))
    tok2 = token()
    again = await s.rotate(
        parent.token_hash, child_of(parent, tok2), successor_for(child_of(parent, tok2), tok2)
    )
    assert isinstance(again, Reuse)
    assert again.entry.successor == successor_for(child, tok)
    assert len(await db.rows(db.tables.refresh_tokens)) == 2


async def test_rotate_in_revoked_family_is_family_revoked(db: Db) -> None:
    s, parent = store(db), entry()
    await s.insert(parent)
    await s.revoke_family(parent.family_id)
    tok = token()
    child = child_of(parent, tok)
    assert await s.rotate(parent.token_hash, child, successor_for(child, tok)) == FamilyRevoked()
    assert len(await db.rows(db.tables.refresh_tokens)) == 1


async def test_rotate_of_expired_parent_is_expired_and_writes_nothing(db: Db) -> None:
    s, parent = store(db), entry(expires_at=int(T0) + 10)
    await s.insert(parent)
    tok = token()
    child = child_of(parent, tok)
    assert await s.rotate(parent.token_hash, child, None, now=T0 + 10) == Expired()
    (row,) = await db.rows(db.tables.refresh_tokens)
    assert row.consumed is False


async def test_rotate_of_unknown_parent_is_missing(db: Db) -> None:
    parent = entry()
    tok = token()
    child = child_of(parent, tok)
    assert await store(db).rotate(parent.token_hash, child, None) == Missing()


async def test_rotate_without_successor_works_without_a_key(db: Db) -> None:
    s, parent = store(db, keys=False), entry()
    await s.insert(parent)
    child = child_of(parent, token())
    assert await s.rotate(parent.token_hash, child, None) == Rotated(child)


async def test_rotate_refuses_a_successor_without_a_key(db: Db) -> None:
    s, parent = store(db, keys=False), entry()
    await s.insert(parent)
    tok = token()
    child = child_of(parent, tok)
    with pytest.raises(StoreContractError, match="successor key"):
        await s.rotate(parent.token_hash, child, successor_for(child, tok))
    (row,) = await db.rows(db.tables.refresh_tokens)
    assert row.consumed is False


@pytest.mark.parametrize("bad", ["generation", "family", "successor"])
async def test_rotate_with_an_inconsistent_child_writes_nothing(db: Db, bad: str) -> None:
    s, parent = store(db), entry()
    await s.insert(parent)
    tok = token()
    child = child_of(parent, tok)
    succ = successor_for(child, tok)
    if bad == "generation":
        child, succ = replace(child, generation=5), replace(succ, generation=5)
    elif bad == "family":
        child = replace(child, family_id="another")
    else:
        succ = replace(succ, token=token())
    with pytest.raises(StoreContractError):
        await s.rotate(parent.token_hash, child, succ)
    (row,) = await db.rows(db.tables.refresh_tokens)
    assert row.consumed is False


async def test_rotate_onto_an_existing_child_rolls_back_the_claim(db: Db) -> None:
    s, parent = store(db), entry()
    await s.insert(parent)
    squatter = entry(family_id=parent.family_id, generation=1)
    await s.insert(squatter)
    tok = token()
    child = child_of(parent, tok)
    with pytest.raises(DuplicateKeyError):
        await s.rotate(parent.token_hash, child, successor_for(child, tok))
    got = await s.get(parent.token_hash)
    assert isinstance(got, Found)
    assert got.entry.consumed is False
    assert got.entry.successor is None


async def fifty_connections(db: Db) -> AsyncEngine:
    return await db.racing_engine(50)


async def test_fifty_concurrent_rotations_one_rotated_the_rest_reuse(db: Db) -> None:
    """§3.2.8 under contention: 50 connections rotate one token; exactly one wins and every
    loser sees the winner's sealed successor (never a consumed parent without it)."""
    parent = entry()
    await store(db).insert(parent)
    racing = await fifty_connections(db)
    try:
        s = store(db, racing)
        attempts = []
        for _ in range(50):
            tok = token()
            child = child_of(parent, tok)
            attempts.append((child, successor_for(child, tok)))
        results = await asyncio.gather(
            *(s.rotate(parent.token_hash, c, succ) for c, succ in attempts)
        )
    finally:
        await racing.dispose()
    winners = [r for r in results if isinstance(r, Rotated)]
    reuses = [r for r in results if isinstance(r, Reuse)]
    assert len(winners) == 1
    assert len(reuses) == 49
    (_, winner_succ) = next(a for a in attempts if a[0] == winners[0].child)
    assert all(r.entry.successor == winner_succ for r in reuses)
    assert len(await db.rows(db.tables.refresh_tokens)) == 2


async def test_concurrent_inserts_and_revocation_leave_no_live_member(db: Db) -> None:
    """§3.2.1/§3.2.5 interleaving: whatever the order, no row of a revoked family is live."""
    first = entry()
    await store(db).insert(first)
    racing = db.new_engine(pool_size=25, max_overflow=0)
    try:
        s = store(db, racing)
        jobs = [s.insert(entry(family_id=first.family_id, generation=g)) for g in range(1, 21)]
        jobs.insert(10, s.revoke_family(first.family_id))  # type: ignore[arg-type]
        await asyncio.gather(*jobs)
    finally:
        await racing.dispose()
    rows = await db.rows(db.tables.refresh_tokens)
    assert rows
    assert all(r.family_revoked for r in rows)


async def test_rotations_racing_their_family_revocation_leave_no_live_child(db: Db) -> None:
    """§3.2.5/§3.2.8: a rotation and the revocation of its family, started together in 20
    families: whichever wins, no child escapes the revocation (the rotation takes the family
    lock before it claims the parent)."""
    parents = [entry() for _ in range(20)]
    for parent in parents:
        await store(db).insert(parent)
    racing = db.new_engine(pool_size=20, max_overflow=0, statement_pool=PoolSize(20, 0))
    try:
        s = store(db, racing)
        jobs = []
        for index, parent in enumerate(parents):
            tok = token()
            child = child_of(parent, tok)
            rotate = s.rotate(parent.token_hash, child, successor_for(child, tok))
            revoke = s.revoke_family(parent.family_id)
            jobs += [rotate, revoke] if index % 2 else [revoke, rotate]
        await asyncio.gather(*jobs)
    finally:
        await racing.dispose()
    rows = await db.rows(db.tables.refresh_tokens)
    assert len(rows) >= len(parents)
    assert all(r.family_revoked for r in rows)


async def test_rotation_waits_for_a_revocation_holding_the_family_lock(pg: Db) -> None:
    """§3.2.8 on PostgreSQL: while another transaction holds the family's advisory lock and
    revokes the family, a rotation waits, then finds the family revoked and inserts nothing."""
    parent = entry()
    await store(pg).insert(parent)
    tok = token()
    child = child_of(parent, tok)
    other = pg.new_engine(poolclass=sa.pool.NullPool)
    try:
        async with other.begin() as conn:
            await conn.execute(
                sa.text("SELECT pg_advisory_xact_lock(:ns, hashtext(:family))"),
                {"ns": FAMILY_LOCK_NAMESPACE, "family": parent.family_id},
            )
            rotating = asyncio.ensure_future(
                store(pg).rotate(parent.token_hash, child, successor_for(child, tok))
            )
            await asyncio.sleep(0.3)
            assert not rotating.done()  # blocked on the lock, not on the parent row
            table = pg.tables.refresh_tokens
            await conn.execute(
                sa.update(table)
                .where(table.c.family_id == parent.family_id)
                .values(family_revoked=True)
            )
        assert isinstance(await rotating, FamilyRevoked)
    finally:
        await other.dispose()
    rows = await pg.rows(pg.tables.refresh_tokens)
    assert [r.token_hash for r in rows] == [parent.token_hash]
    assert not rows[0].consumed


@pytest.mark.parametrize("kind", KINDS)
async def test_table_prefix_drives_the_store(kind: str, tmp_path: Path) -> None:
    async with database(kind, tmp_path, prefix="oauth_") as pdb:
        s = SqlRefreshTokenStore(pdb.engine, table_prefix="oauth_", clock=pdb.clock)
        e = entry()
        await s.insert(e)
        assert len(await pdb.rows(pdb.tables.refresh_tokens)) == 1
        assert await s.get(e.token_hash) == Found(e)
