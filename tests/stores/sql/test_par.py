"""The SQL PAR store contract (spec §3.7, §6.8 PAR-01..10), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from authward.stores.digest import digest
from authward.stores.errors import NoDatabaseError, StoreContractError
from authward.stores.par import (
    REQUEST_URI_PREFIX,
    Duplicate,
    Found,
    JsonObject,
    Missing,
    Stored,
    Taken,
    new_request_uri,
)
from authward.stores.sql.engine import PoolSize
from authward.stores.sql.par import SqlPushedAuthorizationRequestStore
from tests.dbkit import T0, Db

PARAMS: JsonObject = {
    "client_id": "client-1",
    "redirect_uri": "https://app.example/cb",
    "scope": "openid profile",
    "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
    "code_challenge_method": "S256",
    "claims": {"id_token": {"acr": {"essential": True, "values": ["1", "2"]}}},
    "max_age": 300,
    "prompt": None,
    "ünïcode": "☃",
}


def store_for(db: Db) -> SqlPushedAuthorizationRequestStore:
    return SqlPushedAuthorizationRequestStore(db.engine, clock=db.clock)


def test_store_without_engine_refuses_to_build() -> None:
    with pytest.raises(NoDatabaseError):
        SqlPushedAuthorizationRequestStore(None)


def test_new_request_uri_is_the_par_urn_with_43_random_characters() -> None:
    uri = new_request_uri()
    assert uri.startswith(REQUEST_URI_PREFIX)
    assert len(uri) == 77
    assert "=" not in uri
    assert new_request_uri() != uri


async def test_put_then_fetch_returns_params_verbatim(db: Db) -> None:
    """PAR-01."""
    store = store_for(db)
    uri = new_request_uri()
    assert await store.put(uri, PARAMS, 90) == Stored()
    assert await store.fetch(uri) == Found(PARAMS)


async def test_raw_request_uri_never_reaches_the_table(db: Db) -> None:
    """Project decision 5 / §7 item 9: the key column holds digest(request_uri)."""
    store = store_for(db)
    uri = new_request_uri()
    await store.put(uri, PARAMS, 90)
    (row,) = await db.rows(db.tables.pushed_authorization_requests)
    assert row.request_uri == digest(uri)
    assert len(row.request_uri) == 43
    assert uri not in repr(tuple(row))


async def test_put_stores_second_resolution_expiry(db: Db) -> None:
    store = store_for(db)
    await store.put(new_request_uri(), PARAMS, 90, now=T0 + 0.75)
    (row,) = await db.rows(db.tables.pushed_authorization_requests)
    assert (row.expires_at - row.inserted_at).total_seconds() == 90
    assert row.inserted_at.microsecond == 0


async def test_fetch_does_not_consume(db: Db) -> None:
    """PAR-02."""
    store = store_for(db)
    uri = new_request_uri()
    await store.put(uri, PARAMS, 90)
    assert await store.fetch(uri) == Found(PARAMS)
    assert await store.fetch(uri) == Found(PARAMS)
    assert len(await db.rows(db.tables.pushed_authorization_requests)) == 1


async def test_fetch_of_unknown_request_uri_is_missing(db: Db) -> None:
    """PAR-03."""
    store = store_for(db)
    assert await store.fetch(new_request_uri()) == Missing()
    assert await store.fetch("") == Missing()


async def test_fetch_of_expired_request_is_missing(db: Db) -> None:
    """PAR-04: live means expires_at > now, strictly."""
    store = store_for(db)
    uri = new_request_uri()
    await store.put(uri, PARAMS, 90)
    assert await store.fetch(uri, now=T0 + 89.999) == Found(PARAMS)
    assert await store.fetch(uri, now=T0 + 90) == Missing()
    db.clock.advance(91)
    assert await store.fetch(uri) == Missing()


async def test_take_returns_params_and_deletes_the_row(db: Db) -> None:
    """PAR-05."""
    store = store_for(db)
    uri = new_request_uri()
    await store.put(uri, PARAMS, 90)
    assert await store.take(uri) == Taken(PARAMS)
    assert await store.take(uri) == Missing()
    assert await store.fetch(uri) == Missing()
    assert await db.rows(db.tables.pushed_authorization_requests) == []


async def test_take_of_expired_request_is_missing_and_leaves_the_row(db: Db) -> None:
    """PAR-06: expired rows are left for the sweeper."""
    store = store_for(db)
    uri = new_request_uri()
    await store.put(uri, PARAMS, 90)
    assert await store.take(uri, now=T0 + 90) == Missing()
    assert len(await db.rows(db.tables.pushed_authorization_requests)) == 1


async def test_duplicate_put_keeps_the_original(db: Db) -> None:
    """PAR-07."""
    store = store_for(db)
    uri = new_request_uri()
    await store.put(uri, {"client_id": "client-1"}, 90)
    assert await store.put(uri, {"client_id": "client-2"}, 900, now=T0 + 1) == Duplicate()
    assert await store.fetch(uri) == Found({"client_id": "client-1"})
    assert await store.fetch(uri, now=T0 + 90) == Missing()
    assert len(await db.rows(db.tables.pushed_authorization_requests)) == 1


async def test_duplicate_put_over_an_expired_row_is_still_duplicate(db: Db) -> None:
    store = store_for(db)
    uri = new_request_uri()
    await store.put(uri, {"client_id": "client-1"}, 90)
    assert await store.put(uri, {"client_id": "client-2"}, 90, now=T0 + 500) == Duplicate()
    (row,) = await db.rows(db.tables.pushed_authorization_requests)
    assert row.params == {"client_id": "client-1"}


async def test_200_concurrent_first_puts_all_succeed(db: Db) -> None:
    """PAR-08: distinct request_uris, separate connections, no lost or failed write."""
    engine = db.new_engine(statement_pool=PoolSize(50, 0), pool_timeout=60)
    try:
        store = SqlPushedAuthorizationRequestStore(engine, clock=db.clock)
        uris = [new_request_uri() for _ in range(200)]
        results = await asyncio.gather(
            *(store.put(u, {"client_id": f"c{i}"}, 90) for i, u in enumerate(uris))
        )
        assert results == [Stored()] * 200
        rows = await db.rows(db.tables.pushed_authorization_requests)
        assert sorted(r.request_uri for r in rows) == sorted(digest(u) for u in uris)
        assert await store.fetch(uris[123]) == Found({"client_id": "c123"})
    finally:
        await engine.dispose()


async def test_concurrent_takes_have_exactly_one_winner(db: Db) -> None:
    """PAR-09: 50 takes of one request_uri over 50 connections; one gets the params."""
    store = store_for(db)
    uri = new_request_uri()
    await store.put(uri, PARAMS, 90)
    engine = db.new_engine(statement_pool=PoolSize(50, 0), pool_timeout=60)
    try:
        racer = SqlPushedAuthorizationRequestStore(engine, clock=db.clock)
        results = await asyncio.gather(*(racer.take(uri) for _ in range(50)))
    finally:
        await engine.dispose()
    assert results.count(Taken(PARAMS)) == 1
    assert results.count(Missing()) == 49
    assert await db.rows(db.tables.pushed_authorization_requests) == []


@pytest.mark.parametrize("ttl", [0, -1, 1.5, "90", True, None])
async def test_put_with_non_positive_integer_ttl_raises(db: Db, ttl: object) -> None:
    """PAR-10."""
    store = store_for(db)
    with pytest.raises(StoreContractError, match="ttl"):
        await store.put(new_request_uri(), PARAMS, ttl)  # type: ignore[arg-type]
    assert await db.rows(db.tables.pushed_authorization_requests) == []


@pytest.mark.parametrize(
    "params", [["client_id"], {1: "x"}, {"x": float("nan")}, {"x": object()}]
)
async def test_put_of_non_json_object_params_raises(db: Db, params: object) -> None:
    store = store_for(db)
    with pytest.raises(StoreContractError, match="params"):
        await store.put(new_request_uri(), params, 90)  # type: ignore[arg-type]


async def test_put_with_empty_request_uri_raises(db: Db) -> None:
    with pytest.raises(StoreContractError, match="request_uri"):
        await store_for(db).put("", PARAMS, 90)
