"""The SQL CIMD metadata cache (spec §3.8, §6.9 CIMD-01..05), on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from authward.stores.client_metadata import ClientMetadata, Hit, Miss
from authward.stores.errors import NoDatabaseError, StoreContractError, ValueTooLongError
from authward.stores.sql.client_metadata import SqlClientMetadataCache
from tests.dbkit import T0, Db

URL = "https://app.example/client.json"
DOC: ClientMetadata = {
    "client_id": URL,
    "redirect_uris": ["https://app.example/cb"],
    "token_endpoint_auth_method": "none",
    "jwks": {"keys": [{"kty": "EC", "crv": "P-256", "x": "abc", "y": "def"}]},
    "client_name": "Äpp ☃",
}
NEWER: ClientMetadata = {**DOC, "client_name": "App v2", "redirect_uris": ["https://app.example/2"]}


def cache_for(db: Db) -> SqlClientMetadataCache:
    return SqlClientMetadataCache(db.engine, clock=db.clock)


def test_cache_without_engine_refuses_to_build() -> None:
    with pytest.raises(NoDatabaseError):
        SqlClientMetadataCache(None)


async def test_put_then_get_returns_metadata_verbatim(db: Db) -> None:
    """CIMD-01."""
    cache = cache_for(db)
    await cache.put(URL, DOC, T0 + 600)
    assert await cache.get(URL) == Hit(DOC)
    assert await cache.get(URL) == Hit(DOC)


async def test_get_of_unknown_url_is_a_miss(db: Db) -> None:
    """CIMD-02."""
    cache = cache_for(db)
    await cache.put(URL, DOC, T0 + 600)
    assert await cache.get("https://other.example/client.json") == Miss()
    assert await cache.get("") == Miss()


async def test_expired_row_is_a_miss(db: Db) -> None:
    """CIMD-03: fresh means expires_at > now, strictly; expires_at is truncated to seconds."""
    cache = cache_for(db)
    await cache.put(URL, DOC, T0 + 60.9)
    assert await cache.get(URL, now=T0 + 59.5) == Hit(DOC)
    assert await cache.get(URL, now=T0 + 60) == Miss()
    db.clock.advance(61)
    assert await cache.get(URL) == Miss()
    assert len(await db.rows(db.tables.client_id_metadata)) == 1


async def test_put_upserts_newest_wins_with_one_row(db: Db) -> None:
    """CIMD-04: one row per URL; inserted_at keeps the first insert's time."""
    cache = cache_for(db)
    await cache.put(URL, DOC, T0 + 600)
    await cache.put(URL, NEWER, T0 + 300, now=T0 + 10)
    assert await cache.get(URL) == Hit(NEWER)
    (row,) = await db.rows(db.tables.client_id_metadata)
    assert row.metadata == NEWER
    assert (row.expires_at - row.inserted_at).total_seconds() == 300
    assert await cache.get(URL, now=T0 + 300) == Miss()


async def test_upsert_keeps_inserted_at(db: Db) -> None:
    cache = cache_for(db)
    await cache.put(URL, DOC, T0 + 600)
    (before,) = await db.rows(db.tables.client_id_metadata)
    await cache.put(URL, NEWER, T0 + 9000, now=T0 + 5000)
    (after,) = await db.rows(db.tables.client_id_metadata)
    assert after.inserted_at == before.inserted_at
    assert after.expires_at != before.expires_at


async def test_put_over_expired_row_brings_it_back(db: Db) -> None:
    """CIMD-05."""
    cache = cache_for(db)
    await cache.put(URL, DOC, T0 + 60)
    db.clock.advance(120)
    assert await cache.get(URL) == Miss()
    await cache.put(URL, NEWER, db.clock.now() + 60)
    assert await cache.get(URL) == Hit(NEWER)
    assert len(await db.rows(db.tables.client_id_metadata)) == 1


async def test_url_longer_than_255_characters_raises_before_any_write(db: Db) -> None:
    """Project decision 4: over-long client_id URLs are refused before the database."""
    cache = cache_for(db)
    long_url = "https://app.example/" + "a" * (256 - len("https://app.example/"))
    assert len(long_url) == 256
    with pytest.raises(ValueTooLongError) as caught:
        await cache.put(long_url, {**DOC, "client_id": long_url}, T0 + 600)
    assert caught.value.field == "url"
    assert await db.rows(db.tables.client_id_metadata) == []
    assert await cache.get(long_url) == Miss()
    exact = long_url[:255]
    await cache.put(exact, {**DOC, "client_id": exact}, T0 + 600)
    assert await cache.get(exact) == Hit({**DOC, "client_id": exact})


@pytest.mark.parametrize("metadata", [["x"], {1: "x"}, {"x": float("inf")}, {"x": {1, 2}}])
async def test_put_of_non_json_object_metadata_raises(db: Db, metadata: object) -> None:
    with pytest.raises(StoreContractError, match="metadata"):
        await cache_for(db).put(URL, metadata, T0 + 600)  # type: ignore[arg-type]
    assert await db.rows(db.tables.client_id_metadata) == []
