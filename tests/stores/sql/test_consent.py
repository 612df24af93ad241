"""The SQL consent-grant store (spec §3.9, §6.10 CON-01..17, CON-32), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from authward.stores.consent import (
    BindingMismatch,
    ConsentBinding,
    Consumed,
    Expired,
    Granted,
    NotFound,
    binding_hash,
)
from authward.stores.digest import digest
from authward.stores.errors import NoDatabaseError, StoreContractError, ValueTooLongError
from authward.stores.sql.consent import SqlConsentGrantStore
from authward.stores.sql.engine import PoolSize, create_engine
from tests.dbkit import T0, Db

BINDING = ConsentBinding(
    subject="alice",
    client_id="client-1",
    redirect_uri="https://app.example/cb",
    scope=("openid", "profile"),
    code_challenge="E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
    code_challenge_method="S256",
)
EPOCH = dt.datetime(1970, 1, 1)


def store_for(db: Db) -> SqlConsentGrantStore:
    return SqlConsentGrantStore(db.engine, clock=db.clock)


@contextmanager
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """Record every SQL statement ``engine`` sends while the block runs."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


def test_store_without_engine_refuses_to_build() -> None:
    with pytest.raises(NoDatabaseError):
        SqlConsentGrantStore(None)


async def test_mint_returns_url_safe_token_and_stores_the_binding(db: Db) -> None:
    """CON-01."""
    token = await store_for(db).mint(BINDING, 300, now=T0 + 0.123456)
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)
    (row,) = await db.rows(db.tables.consent_grants)
    assert row.subject == "alice"
    assert row.binding_hash == binding_hash(BINDING)
    assert row.consumed_at is None
    assert row.expires_at == EPOCH + dt.timedelta(seconds=T0 + 300, microseconds=123456)
    assert row.inserted_at == row.updated_at == EPOCH + dt.timedelta(
        seconds=T0, microseconds=123456
    )


async def test_raw_token_never_reaches_the_table(db: Db) -> None:
    """Project decision 5 / §7 item 9: the key column holds digest(token)."""
    token = await store_for(db).mint(BINDING, 300)
    (row,) = await db.rows(db.tables.consent_grants)
    assert row.token == digest(token)
    assert token not in repr(tuple(row))


async def test_two_mints_return_distinct_tokens(db: Db) -> None:
    """CON-02."""
    store = store_for(db)
    assert await store.mint(BINDING, 300) != await store.mint(BINDING, 300)
    assert len(await db.rows(db.tables.consent_grants)) == 2


async def test_matching_consume_marks_the_row_and_keeps_it(db: Db) -> None:
    """CON-03: updated_at is not touched by consume."""
    store = store_for(db)
    token = await store.mint(BINDING, 300)
    assert await store.consume(token, BINDING, now=T0 + 5.5) == Granted()
    (row,) = await db.rows(db.tables.consent_grants)
    assert row.consumed_at == EPOCH + dt.timedelta(seconds=T0 + 5.5)
    assert row.updated_at == row.inserted_at


async def test_second_consume_is_consumed(db: Db) -> None:
    """CON-04."""
    store = store_for(db)
    token = await store.mint(BINDING, 300)
    assert await store.consume(token, BINDING) == Granted()
    assert await store.consume(token, BINDING) == Consumed()


async def test_scope_in_another_order_still_consumes(db: Db) -> None:
    """CON-05."""
    store = store_for(db)
    token = await store.mint(BINDING, 300)
    assert await store.consume(token, replace(BINDING, scope=("profile", "openid"))) == Granted()


async def test_other_scope_set_mismatches_and_leaves_the_grant_usable(db: Db) -> None:
    """CON-06."""
    store = store_for(db)
    token = await store.mint(BINDING, 300)
    wider = replace(BINDING, scope=("openid", "profile", "email"))
    assert await store.consume(token, wider) == BindingMismatch()
    (row,) = await db.rows(db.tables.consent_grants)
    assert row.consumed_at is None
    assert await store.consume(token, BINDING) == Granted()


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(replace(BINDING, client_id="client-2"), id="CON-07-client_id"),
        pytest.param(replace(BINDING, redirect_uri="https://app.example/x"), id="CON-08-redirect"),
        pytest.param(replace(BINDING, code_challenge="x" * 43), id="CON-09-challenge"),
        pytest.param(replace(BINDING, subject="bob"), id="CON-12-subject"),
        pytest.param(replace(BINDING, code_challenge=None, code_challenge_method=None),
                     id="no-pkce"),
    ],
)
async def test_different_request_gives_binding_mismatch(db: Db, other: ConsentBinding) -> None:
    """CON-07, CON-08, CON-09, CON-12; the grant survives every mismatch."""
    store = store_for(db)
    token = await store.mint(BINDING, 300)
    assert await store.consume(token, other) == BindingMismatch()
    assert await store.consume(token, BINDING) == Granted()


async def test_pkce_method_swap_mismatches_both_ways(db: Db) -> None:
    """CON-10."""
    store = store_for(db)
    plain = replace(BINDING, code_challenge_method="plain")
    s256_token = await store.mint(BINDING, 300)
    assert await store.consume(s256_token, plain) == BindingMismatch()
    assert await store.consume(s256_token, BINDING) == Granted()
    plain_token = await store.mint(plain, 300)
    assert await store.consume(plain_token, BINDING) == BindingMismatch()
    assert await store.consume(plain_token, plain) == Granted()


async def test_no_pkce_on_either_side_consumes(db: Db) -> None:
    """CON-11."""
    store = store_for(db)
    bare = replace(BINDING, code_challenge=None, code_challenge_method=None)
    token = await store.mint(bare, 300)
    assert await store.consume(token, replace(bare, code_challenge="")) == Granted()


async def test_unknown_token_is_not_found(db: Db) -> None:
    """CON-13."""
    store = store_for(db)
    await store.mint(BINDING, 300)
    assert await store.consume("A" * 43, BINDING) == NotFound()


async def test_none_token_is_not_found_without_a_database_call(db: Db) -> None:
    """CON-14: no statement is sent (a store on never-created tables proves it too)."""
    store = store_for(db)
    with statements(db.engine) as seen:
        assert await store.consume(None, BINDING) == NotFound()
    assert seen == []
    with statements(db.engine) as seen:
        await store.consume("A" * 43, BINDING)
    assert seen, "the statement counter must see a real consume"


async def test_none_and_empty_token_never_touch_a_missing_table(tmp_path: Path) -> None:
    """CON-14, CON-15: on an engine whose tables were never created, nothing fails."""
    engine = create_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        store = SqlConsentGrantStore(engine)
        assert await store.consume(None, BINDING) == NotFound()
        assert await store.consume("", BINDING) == NotFound()
        with pytest.raises(Exception, match="no such table"):
            await store.consume("A" * 43, BINDING)
    finally:
        await engine.dispose()


async def test_empty_token_is_not_found(db: Db) -> None:
    """CON-15."""
    store = store_for(db)
    await store.mint(BINDING, 300)
    with statements(db.engine) as seen:
        assert await store.consume("", BINDING) == NotFound()
    assert seen == []


async def test_expired_matching_grant_is_expired(db: Db) -> None:
    """CON-16: live means expires_at > now, strictly; an expired grant stays unspent."""
    store = store_for(db)
    token = await store.mint(BINDING, 300)
    assert await store.consume(token, BINDING, now=T0 + 300) == Expired()
    assert await store.consume(token, BINDING, now=T0 + 301) == Expired()
    (row,) = await db.rows(db.tables.consent_grants)
    assert row.consumed_at is None
    assert await store.consume(token, BINDING, now=T0 + 299.999999) == Granted()


async def test_expired_mismatched_grant_is_binding_mismatch(db: Db) -> None:
    """CON-17: the mismatch check comes first."""
    store = store_for(db)
    token = await store.mint(BINDING, 300)
    other = replace(BINDING, client_id="client-2")
    assert await store.consume(token, other, now=T0 + 400) == BindingMismatch()


async def test_consumed_mismatched_grant_is_binding_mismatch(db: Db) -> None:
    store = store_for(db)
    token = await store.mint(BINDING, 300)
    assert await store.consume(token, BINDING) == Granted()
    assert await store.consume(token, replace(BINDING, subject="bob")) == BindingMismatch()


async def test_consumed_then_expired_grant_reports_consumed(db: Db) -> None:
    store = store_for(db)
    token = await store.mint(BINDING, 300)
    assert await store.consume(token, BINDING) == Granted()
    assert await store.consume(token, BINDING, now=T0 + 900) == Consumed()


async def test_concurrent_consumes_have_exactly_one_winner(db: Db) -> None:
    """CON-32: 50 consumes of one grant over 50 connections; one Granted, 49 Consumed."""
    token = await store_for(db).mint(BINDING, 300)
    engine = db.new_engine(statement_pool=PoolSize(50, 0), pool_timeout=60)
    try:
        racer = SqlConsentGrantStore(engine, clock=db.clock)
        results = await asyncio.gather(*(racer.consume(token, BINDING) for _ in range(50)))
    finally:
        await engine.dispose()
    assert results.count(Granted()) == 1
    assert results.count(Consumed()) == 49
    (row,) = await db.rows(db.tables.consent_grants)
    assert row.consumed_at is not None


@pytest.mark.parametrize("ttl", [0, -5, 2.5, "300", True, None])
async def test_mint_with_non_positive_integer_ttl_raises(db: Db, ttl: object) -> None:
    with pytest.raises(StoreContractError, match="ttl"):
        await store_for(db).mint(BINDING, ttl)  # type: ignore[arg-type]
    assert await db.rows(db.tables.consent_grants) == []


async def test_subject_longer_than_255_characters_raises_before_any_write(db: Db) -> None:
    with pytest.raises(ValueTooLongError):
        await store_for(db).mint(replace(BINDING, subject="s" * 256), 300)
    assert await db.rows(db.tables.consent_grants) == []
