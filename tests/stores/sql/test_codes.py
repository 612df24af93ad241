"""The SQL authorization-code store on SQLite and PostgreSQL (spec §3.1, §6.2 CODE-01..29, 33)."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa

from authward.stores.codes import (
    AccessTokenRevoked,
    Bound,
    CodeEntry,
    Consumed,
    ConsumedMeta,
    Found,
    Missing,
    NoAccessTokenRecord,
    Taken,
)
from authward.stores.digest import b64url, digest
from authward.stores.errors import DuplicateKeyError, StoreContractError, ValueTooLongError
from authward.stores.sql.codes import SqlAuthorizationCodeStore
from tests.dbkit import KINDS, T0, Db, database

EXP = int(T0) + 60


def new_code() -> str:
    return b64url(secrets.token_bytes(32))


def entry(**changes: object) -> CodeEntry:
    base = CodeEntry(
        code_hash=digest(new_code()),
        client_id="client-1",
        subject="alice",
        scope=("openid", "profile"),
        resource=("https://api.example.com",),
        redirect_uri="https://app.example.com/cb",
        code_challenge="E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        code_challenge_method="S256",
        nonce="n-0S6_WzA2Mj",
        claims={"auth_time": int(T0), "acr": "urn:mace:incommon:iap:silver"},
        family_id=b64url(secrets.token_bytes(32)),
        expires_at=EXP,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def store(db: Db) -> SqlAuthorizationCodeStore:
    return SqlAuthorizationCodeStore(db.engine, clock=db.clock)


async def test_put_then_take_returns_the_entry_code_01_02_03(db: Db) -> None:
    """CODE-01, CODE-02, CODE-03."""
    s, e = store(db), entry()
    await s.put(e)
    got = await s.take(e.code_hash)
    assert got == Taken(e)
    assert isinstance(got, Taken)
    assert got.entry.expires_at == EXP


async def test_duplicate_code_hash_raises_and_keeps_the_original_row_code_04(db: Db) -> None:
    """CODE-04."""
    s, e = store(db), entry(subject="first")
    await s.put(e)
    with pytest.raises(DuplicateKeyError):
        await s.put(replace(e, subject="second", client_id="other"))
    rows = await db.rows(db.tables.authorization_codes)
    assert [(r.subject, r.client_id) for r in rows] == [("first", "client-1")]


@pytest.mark.parametrize("missing", ["code_hash", "client_id", "subject", "redirect_uri"])
async def test_missing_required_field_raises_and_stores_nothing_code_05_23(
    db: Db, missing: str
) -> None:
    """CODE-05, CODE-23."""
    s = store(db)
    for empty in (None, ""):
        with pytest.raises(StoreContractError, match=missing):
            await s.put(entry(**{missing: empty}))
    assert await db.rows(db.tables.authorization_codes) == []


async def test_missing_expiry_raises_code_05(db: Db) -> None:
    """CODE-05 (expires_at is required too; nothing is defaulted)."""
    with pytest.raises(StoreContractError, match="expires_at"):
        await store(db).put(entry(expires_at=None))
    assert await db.rows(db.tables.authorization_codes) == []


async def test_second_take_before_finalisation_is_missing_code_06_13(db: Db) -> None:
    """CODE-06, CODE-13 at the store level: claimed but not finalised replays as Missing."""
    s, e = store(db), entry()
    await s.put(e)
    assert isinstance(await s.take(e.code_hash), Taken)
    assert await s.take(e.code_hash) == Missing()
    (row,) = await db.rows(db.tables.authorization_codes)
    assert row.consumed_at is not None
    assert row.consumed_success is False


async def test_take_after_finalisation_is_consumed_with_meta_code_07_14(db: Db) -> None:
    """CODE-07, CODE-14 at the store level."""
    s, e = store(db), entry()
    await s.put(e)
    await s.take(e.code_hash)
    await s.mark_consumed(e.code_hash)
    await s.mark_consumed(e.code_hash)  # idempotent
    assert await s.take(e.code_hash) == Consumed(ConsumedMeta(e.family_id, "alice"))
    (row,) = await db.rows(db.tables.authorization_codes)
    assert row.consumed_success is True


async def test_take_of_unknown_code_is_missing_code_08(db: Db) -> None:
    """CODE-08."""
    assert await store(db).take(digest("never-issued")) == Missing()


async def test_mark_consumed_of_unknown_code_is_missing_not_consumed(db: Db) -> None:
    """CODE-08 (finalising an unknown hash creates nothing)."""
    s = store(db)
    await s.mark_consumed(digest("never-issued"))
    assert await s.take(digest("never-issued")) == Missing()


async def test_expired_code_is_still_taken_once_code_09(db: Db) -> None:
    """CODE-09: the store does not check expiry."""
    s, e = store(db), entry(expires_at=int(T0) - 10)
    await s.put(e)
    assert await s.take(e.code_hash) == Taken(e)
    assert await s.take(e.code_hash) == Missing()


async def test_take_stamps_consumed_at_from_the_clock(db: Db) -> None:
    s, e = store(db), entry()
    await s.put(e)
    await s.take(e.code_hash, now=T0 + 7.9)
    (row,) = await db.rows(db.tables.authorization_codes)
    assert row.consumed_at == dt.datetime(2026, 1, 1, 0, 0, 7)


async def test_two_concurrent_takes_one_taken_one_missing_code_10(db: Db) -> None:
    """CODE-10 with two separate connections."""
    s, e = store(db), entry()
    await s.put(e)
    other = db.new_engine()
    try:
        s2 = SqlAuthorizationCodeStore(other, clock=db.clock)
        results = await asyncio.gather(s.take(e.code_hash), s2.take(e.code_hash))
    finally:
        await other.dispose()
    assert sorted(type(r).__name__ for r in results) == ["Missing", "Taken"]


async def test_fifty_concurrent_takes_exactly_one_taken_code_10(db: Db) -> None:
    """CODE-10 stress: 50 separate pooled connections race for one code."""
    e = entry()
    await store(db).put(e)
    racing = await db.racing_engine(50)
    try:
        s = SqlAuthorizationCodeStore(racing, clock=db.clock)
        results = await asyncio.gather(*(s.take(e.code_hash) for _ in range(50)))
    finally:
        await racing.dispose()
    assert sum(isinstance(r, Taken) for r in results) == 1
    assert sum(isinstance(r, Missing) for r in results) == 49


async def test_revoked_access_token_reports_revoked_until_it_expires_code_11_12(
    db: Db,
) -> None:
    """CODE-11, CODE-12."""
    s, e = store(db), entry()
    await s.put(e)
    assert e.family_id is not None
    await s.record_access_token(e.family_id, "jti-1", int(T0) + 900)
    assert await s.access_token_revoked("jti-1") is False
    await s.revoke_family_access_tokens(e.family_id)
    assert await s.access_token_revoked("jti-1") is True
    assert await s.access_token_revoked("jti-1", now=T0 + 899.5) is True
    assert await s.access_token_revoked("jti-1", now=T0 + 900) is False  # CODE-12
    assert await s.access_token_revoked("jti-other") is False


async def test_access_token_is_revoked_by_its_jti_until_it_expires(db: Db) -> None:
    """RFC 7009 §2.1: one access token revoked through the jti its code row records."""
    s, e = store(db), entry()
    await s.put(e)
    assert e.family_id is not None
    await s.record_access_token(e.family_id, "jti-1", int(T0) + 900)
    assert isinstance(await s.revoke_access_token("jti-other"), NoAccessTokenRecord)
    assert await s.access_token_revoked("jti-1") is False
    assert isinstance(await s.revoke_access_token("jti-1"), AccessTokenRevoked)
    assert await s.access_token_revoked("jti-1") is True
    assert isinstance(await s.revoke_access_token("jti-1"), AccessTokenRevoked)
    assert isinstance(
        await s.revoke_access_token("jti-1", now=T0 + 900), NoAccessTokenRecord
    )


async def test_take_without_a_proof_leaves_a_dpop_bound_code_unclaimed(db: Db) -> None:
    """RFC 9449 §10: a request without a proof does not spend a code bound to a DPoP key."""
    s, e = store(db), entry(dpop_jkt="jkt-1")
    await s.put(e)
    assert await s.take(e.code_hash, unbound_only=True) == Bound()
    (row,) = await db.rows(db.tables.authorization_codes)
    assert row.consumed_at is None
    taken = await s.take(e.code_hash)
    assert isinstance(taken, Taken)
    assert taken.entry.dpop_jkt == "jkt-1"
    assert isinstance(await s.take(e.code_hash, unbound_only=True), Missing)


async def test_take_without_a_proof_claims_an_unbound_code(db: Db) -> None:
    s, e = store(db), entry()
    await s.put(e)
    assert isinstance(await s.take(e.code_hash, unbound_only=True), Taken)
    assert isinstance(await s.take(digest(new_code()), unbound_only=True), Missing)


async def test_mark_consumed_records_the_access_token_in_the_same_statement(db: Db) -> None:
    s, e = store(db), entry()
    await s.put(e)
    assert isinstance(await s.take(e.code_hash), Taken)
    await s.mark_consumed(
        e.code_hash, access_token_jti="jti-1", access_token_expires_at=int(T0) + 900
    )
    (row,) = await db.rows(db.tables.authorization_codes)
    assert row.consumed_success is True
    assert row.access_token_jti == "jti-1"
    assert isinstance(await s.revoke_access_token("jti-1"), AccessTokenRevoked)
    assert await s.access_token_revoked("jti-1") is True


async def test_mark_consumed_refuses_half_an_access_token_record(db: Db) -> None:
    s, e = store(db), entry()
    await s.put(e)
    with pytest.raises(StoreContractError):
        await s.mark_consumed(e.code_hash, access_token_jti="jti-1")
    with pytest.raises(ValueTooLongError):
        await s.mark_consumed(
            e.code_hash, access_token_jti="j" * 256, access_token_expires_at=int(T0) + 900
        )
    (row,) = await db.rows(db.tables.authorization_codes)
    assert row.consumed_success is False
    assert row.access_token_jti is None


async def test_revoking_a_family_without_a_recorded_token_revokes_nothing(db: Db) -> None:
    s, e = store(db), entry()
    await s.put(e)
    assert e.family_id is not None
    await s.revoke_family_access_tokens(e.family_id)
    (row,) = await db.rows(db.tables.authorization_codes)
    assert row.access_token_revoked_at is None


async def test_over_long_jti_is_refused_before_writing(db: Db) -> None:
    s, e = store(db), entry()
    await s.put(e)
    assert e.family_id is not None
    with pytest.raises(ValueTooLongError):
        await s.record_access_token(e.family_id, "j" * 256, int(T0) + 900)
    (row,) = await db.rows(db.tables.authorization_codes)
    assert row.access_token_jti is None


async def test_valid_entry_is_spread_across_the_columns_code_15_16_17(db: Db) -> None:
    """CODE-15, CODE-16, CODE-17."""
    e = entry()
    await store(db).put(e)
    (row,) = await db.rows(db.tables.authorization_codes)
    assert row.client_id == "client-1"
    assert row.subject == "alice"
    assert list(row.scope) == ["openid", "profile"]
    assert list(row.resource) == ["https://api.example.com"]
    assert row.redirect_uri == "https://app.example.com/cb"
    assert row.claims == {"auth_time": int(T0), "acr": "urn:mace:incommon:iap:silver"}
    assert row.family_id == e.family_id
    assert row.expires_at == dt.datetime(2026, 1, 1, 0, 1, 0)
    assert row.consumed_at is None
    assert row.consumed_success is False


async def test_inserted_at_comes_from_the_clock_truncated_to_seconds_code_18(db: Db) -> None:
    """CODE-18."""
    db.clock.advance(0.999)
    await store(db).put(entry())
    (row,) = await db.rows(db.tables.authorization_codes)
    assert row.inserted_at == dt.datetime(2026, 1, 1, 0, 0, 0)


async def test_dpop_jkt_is_stored_as_cnf_code_19_27_29(db: Db) -> None:
    """CODE-19, CODE-27, CODE-29."""
    s, e = store(db), entry(dpop_jkt="0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I")
    await s.put(e)
    (row,) = await db.rows(db.tables.authorization_codes)
    assert row.cnf == {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}
    assert await s.get(e.code_hash) == Found(e)
    assert await s.take(e.code_hash) == Taken(e)


async def test_unbound_code_stores_cnf_as_null_not_empty_object_code_20(db: Db) -> None:
    """CODE-20."""
    await store(db).put(entry(dpop_jkt=None))
    async with db.engine.connect() as conn:
        nulls = (
            await conn.execute(
                sa.select(sa.func.count()).where(db.tables.authorization_codes.c.cnf.is_(None))
            )
        ).scalar_one()
    assert nulls == 1


async def test_nonce_is_carried_through_code_21(db: Db) -> None:
    """CODE-21."""
    s, e = store(db), entry(nonce="abc")
    await s.put(e)
    got = await s.take(e.code_hash)
    assert isinstance(got, Taken)
    assert got.entry.nonce == "abc"


@pytest.mark.parametrize("kind", KINDS)
async def test_table_prefix_is_applied_code_22(kind: str, tmp_path: Path) -> None:
    """CODE-22: a prefixed store writes the prefixed table; no prefix means none applied."""
    async with database(kind, tmp_path, prefix="oauth_") as pdb:
        s = SqlAuthorizationCodeStore(pdb.engine, table_prefix="oauth_", clock=pdb.clock)
        e = entry()
        await s.put(e)
        assert pdb.tables.authorization_codes.name == "oauth_attesto_authorization_codes"
        assert len(await pdb.rows(pdb.tables.authorization_codes)) == 1
        assert await s.take(e.code_hash) == Taken(e)
        unprefixed = SqlAuthorizationCodeStore(pdb.engine, clock=pdb.clock)
        with pytest.raises(sa.exc.DBAPIError):
            await unprefixed.get(e.code_hash)  # attesto_authorization_codes does not exist


async def test_code_without_pkce_stores_null_challenge_and_method_code_24(db: Db) -> None:
    """CODE-24: both NULL, never a stray S256."""
    s = store(db)
    for method in (None, "S256"):
        e = entry(code_challenge=None, code_challenge_method=method)
        await s.put(e)
        got = await s.take(e.code_hash)
        assert isinstance(got, Taken)
        assert got.entry.code_challenge is None
        assert got.entry.code_challenge_method is None
    rows = await db.rows(db.tables.authorization_codes)
    assert [(r.code_challenge, r.code_challenge_method) for r in rows] == [(None, None)] * 2


async def test_challenge_without_method_defaults_to_s256(db: Db) -> None:
    s, e = store(db), entry(code_challenge_method=None)
    await s.put(e)
    got = await s.take(e.code_hash)
    assert isinstance(got, Taken)
    assert got.entry.code_challenge_method == "S256"


@pytest.mark.parametrize("method", ["plain", "s256", "S384", ""])
async def test_non_s256_challenge_method_is_rejected_code_25(db: Db, method: str) -> None:
    """CODE-25."""
    with pytest.raises(StoreContractError, match="code_challenge_method"):
        await store(db).put(entry(code_challenge_method=method))
    assert await db.rows(db.tables.authorization_codes) == []


async def test_empty_columns_come_back_as_empty_defaults_code_26_28(db: Db) -> None:
    """CODE-26, CODE-28: a row written without scope/resource/claims/cnf reads as [] / {} /
    None (the columns are NOT NULL with defaults, so the database fills them)."""
    t = db.tables.authorization_codes
    async with db.engine.begin() as conn:
        await conn.execute(
            sa.insert(t).values(
                code_hash="h" * 43,
                client_id="c",
                subject="s",
                redirect_uri="https://x/cb",
                expires_at=dt.datetime(2026, 1, 1, 0, 1),
                inserted_at=dt.datetime(2026, 1, 1),
            )
        )
    got = await store(db).get("h" * 43)
    assert got == Found(
        CodeEntry(
            code_hash="h" * 43,
            client_id="c",
            subject="s",
            redirect_uri="https://x/cb",
            expires_at=int(T0) + 60,
        )
    )
    assert isinstance(got, Found)
    assert got.entry.resource == ()
    assert got.entry.dpop_jkt is None
    assert got.entry.claims == {}


async def test_get_does_not_consume_and_claimed_code_reads_missing_code_33(db: Db) -> None:
    """CODE-33."""
    s, e = store(db), entry()
    await s.put(e)
    assert await s.get(e.code_hash) == Found(e)
    assert await s.get(e.code_hash) == Found(e)
    assert await s.take(e.code_hash) == Taken(e)
    assert await s.get(e.code_hash) == Missing()
    assert await s.get(digest("unknown")) == Missing()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("code_hash", "h" * 89),
        ("client_id", "c" * 256),
        ("subject", "s" * 256),
        ("code_challenge", "x" * 256),
        ("nonce", "n" * 256),
        ("family_id", "f" * 256),
        ("dpop_jkt", "j" * 256),
        ("scope", ("s" * 256,)),
    ],
)
async def test_over_long_values_are_refused_before_any_write(
    db: Db, field: str, value: object
) -> None:
    """§7 item 6: lengths are checked before writing, on both engines."""
    with pytest.raises(ValueTooLongError):
        await store(db).put(entry(**{field: value}))
    assert await db.rows(db.tables.authorization_codes) == []


def test_store_without_engine_fails_closed() -> None:
    from authward.stores.errors import NoDatabaseError

    with pytest.raises(NoDatabaseError):
        SqlAuthorizationCodeStore(None)
