"""Refresh issue and rotation over the real SQL store (spec §3.2.7, RT-12, RT-13, RT-34, RT-35).

The core runs on the SQL refresh store of the ``db`` fixture, so every test runs on SQLite and
PostgreSQL; no HTTP server is started.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from dataclasses import replace

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from authward.core.refresh_rotation import (
    Issued,
    IssueRefused,
    RefreshRotation,
    RotationConfigError,
    RotationDenied,
    RotationGranted,
    check_rotation_settings,
)
from authward.stores.digest import digest
from authward.stores.refresh import Found, Missing, RefreshData
from authward.stores.sql.refresh import SqlRefreshTokenStore
from tests.dbkit import T0, Db
from tests.stores.sql.test_consent import statements

KEYS = {"k1": b"s" * 32}
DATA = RefreshData(
    subject="alice",
    scope=("openid", "offline_access", "read", "write"),
    resource=("https://a.example", "https://b.example"),
    acr="urn:acr:1",
    auth_time=int(T0) - 30,
    client_id="client-1",
)


def store(db: Db, engine: AsyncEngine | None = None, *, keys: bool = True) -> SqlRefreshTokenStore:
    return SqlRefreshTokenStore(
        engine or db.engine, clock=db.clock, successor_keys=KEYS if keys else None
    )


def rotation(db: Db, *, grace: int = 60, engine: AsyncEngine | None = None) -> RefreshRotation:
    return RefreshRotation(store(db, engine), clock=db.clock, grace_seconds=grace, ttl=3600)


async def issue(r: RefreshRotation, data: RefreshData = DATA) -> Issued:
    got = await r.issue(data)
    assert isinstance(got, Issued)
    return got


async def granted(r: RefreshRotation, token: str, **kw: object) -> RotationGranted:
    kw.setdefault("client_id", "client-1")
    got = await r.rotate(token, **kw)  # type: ignore[arg-type]
    assert isinstance(got, RotationGranted), got
    return got


async def family_revoked(db: Db, family_id: str) -> bool:
    rows = [r for r in await db.rows(db.tables.refresh_tokens) if r.family_id == family_id]
    assert rows
    return all(r.family_revoked for r in rows)


async def test_issue_mints_generation_zero_of_a_fresh_family(db: Db) -> None:
    r = rotation(db)
    got = await issue(r)
    assert len(got.token) == 43
    assert len(got.entry.family_id) == 22
    assert got.entry.generation == 0
    assert got.entry.expires_at == int(T0) + 3600
    assert got.entry.token_hash == digest(got.token)
    (row,) = await db.rows(db.tables.refresh_tokens)
    assert row.token_hash == digest(got.token)
    assert got.token not in repr(tuple(row))


async def test_issue_into_a_revoked_code_family_is_refused(db: Db) -> None:
    r = rotation(db)
    first = await r.issue(DATA, family_id="code-family")
    assert isinstance(first, Issued)
    assert first.entry.family_id == "code-family"
    await store(db).revoke_family("code-family")
    assert await r.issue(DATA, family_id="code-family") == IssueRefused()


async def test_rotation_issues_the_next_generation_and_spends_the_parent(db: Db) -> None:
    r = rotation(db)
    first = await issue(r)
    db.clock.advance(5)
    second = await granted(r, first.token)
    assert second.token != first.token
    assert (second.family_id, second.generation) == (first.entry.family_id, 1)
    assert second.context == DATA
    assert second.expires_at == int(T0) + 5 + 3600
    assert second.retried is False
    third = await granted(r, second.token)
    assert third.generation == 2


async def test_unknown_token_is_invalid_grant(db: Db) -> None:
    assert await rotation(db).rotate("nope", client_id="client-1") == RotationDenied(
        "invalid_grant", "unknown"
    )


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        ({"client_id": None}, "client_required"),
        ({"client_id": "client-2"}, "client_mismatch"),
        ({"client_id": "client-1", "dpop_jkt": "jkt"}, "dpop_proof_unexpected"),
    ],
)
async def test_binding_failures_do_not_burn_the_token(
    db: Db, kw: dict[str, object], reason: str
) -> None:
    r = rotation(db)
    first = await issue(r)
    assert await r.rotate(first.token, **kw) == RotationDenied(  # type: ignore[arg-type]
        "invalid_grant", reason  # type: ignore[arg-type]
    )
    await granted(r, first.token)  # still usable


@pytest.mark.parametrize(
    ("jkt", "reason"), [(None, "dpop_proof_required"), ("other", "dpop_binding_mismatch")]
)
async def test_dpop_bound_token_needs_the_same_key(db: Db, jkt: str | None, reason: str) -> None:
    r = rotation(db)
    first = await issue(r, replace(DATA, client_id=None, dpop_jkt="thumb"))
    assert await r.rotate(first.token, client_id=None, dpop_jkt=jkt) == RotationDenied(
        "invalid_grant", reason  # type: ignore[arg-type]
    )
    got = await granted(r, first.token, client_id=None, dpop_jkt="thumb")
    assert got.context.dpop_jkt == "thumb"


async def test_unbound_token_skips_the_client_check(db: Db) -> None:
    r = rotation(db)
    first = await issue(r, replace(DATA, client_id=None))
    await granted(r, first.token, client_id="anyone")


async def test_expired_token_is_refused_without_being_burned(db: Db) -> None:
    r = rotation(db)
    first = await issue(r)
    db.clock.advance(3600)
    assert await r.rotate(first.token, client_id="client-1") == RotationDenied(
        "invalid_grant", "expired"
    )
    got = await store(db).get(first.entry.token_hash)
    assert isinstance(got, Found)
    assert got.entry.consumed is False


async def test_scope_can_only_be_narrowed(db: Db) -> None:
    r = rotation(db)
    first = await issue(r)
    assert await r.rotate(first.token, client_id="client-1", scope=["read", "admin"]) == (
        RotationDenied("invalid_scope", "scope_not_granted")
    )
    got = await granted(r, first.token, scope=["read", "openid", "read"])
    assert got.context.scope == ("read", "openid")
    assert await r.rotate(got.token, client_id="client-1", scope=["write"]) == RotationDenied(
        "invalid_scope", "scope_not_granted"
    )


async def test_resource_can_only_be_narrowed(db: Db) -> None:
    r = rotation(db)
    first = await issue(r)
    assert await r.rotate(
        first.token, client_id="client-1", resource=["https://evil.example"]
    ) == RotationDenied("invalid_target", "resource_not_granted")
    got = await granted(r, first.token, resource=["https://b.example"])
    assert got.context.resource == ("https://b.example",)


async def test_honest_retry_returns_the_same_successor_which_still_rotates_rt_12(db: Db) -> None:
    """RT-12."""
    r = rotation(db)
    first = await issue(r)
    second = await granted(r, first.token, scope=["read"])
    db.clock.advance(59)
    retry = await granted(r, first.token, scope=["read"])
    assert (retry.token, retry.family_id, retry.generation, retry.context) == (
        second.token, second.family_id, second.generation, second.context,
    )
    assert retry.retried is True
    third = await granted(r, second.token)
    assert third.generation == 2
    assert not await family_revoked(db, first.entry.family_id)
    # The chain moved on: a retry of the first token is now real reuse.
    assert await r.rotate(first.token, client_id="client-1", scope=["read"]) == RotationDenied(
        "invalid_grant", "reuse_detected"
    )
    assert await family_revoked(db, first.entry.family_id)
    assert await r.rotate(third.token, client_id="client-1") == RotationDenied(
        "invalid_grant", "unknown"
    )


async def test_retry_from_another_client_revokes_the_family_rt_13(db: Db) -> None:
    """RT-13."""
    r = rotation(db)
    first = await issue(r)
    second = await granted(r, first.token)
    assert await r.rotate(first.token, client_id="client-2") == RotationDenied(
        "invalid_grant", "reuse_detected"
    )
    assert await family_revoked(db, first.entry.family_id)
    assert await r.rotate(second.token, client_id="client-1") == RotationDenied(
        "invalid_grant", "unknown"
    )


@pytest.mark.parametrize(
    "retry",
    [
        {"scope": ["read"]},  # resolves to a different scope than the successor's
        {"resource": ["https://a.example"]},
        {"dpop_jkt": "jkt"},
        {"client_id": None},
    ],
)
async def test_retry_that_differs_from_the_first_request_is_reuse(
    db: Db, retry: dict[str, object]
) -> None:
    r = rotation(db)
    first = await issue(r)
    await granted(r, first.token)
    kw: dict[str, object] = {"client_id": "client-1", **retry}
    assert await r.rotate(first.token, **kw) == RotationDenied(  # type: ignore[arg-type]
        "invalid_grant", "reuse_detected"
    )
    assert await family_revoked(db, first.entry.family_id)


async def test_retry_after_the_grace_window_is_reuse(db: Db) -> None:
    r = rotation(db)
    first = await issue(r)
    await granted(r, first.token)
    db.clock.advance(61)
    assert await r.rotate(first.token, client_id="client-1") == RotationDenied(
        "invalid_grant", "reuse_detected"
    )
    assert await family_revoked(db, first.entry.family_id)


async def test_with_zero_grace_any_replay_revokes_the_family(db: Db) -> None:
    """RT-31 at the core level (the token-endpoint test waits for the endpoint)."""
    r = rotation(db, grace=0)
    first = await issue(r)
    second = await granted(r, first.token)
    (parent_row,) = [
        row
        for row in await db.rows(db.tables.refresh_tokens)
        if row.token_hash == first.entry.token_hash
    ]
    assert parent_row.successor is None
    assert await r.rotate(first.token, client_id="client-1") == RotationDenied(
        "invalid_grant", "reuse_detected"
    )
    assert await r.rotate(second.token, client_id="client-1") == RotationDenied(
        "invalid_grant", "unknown"
    )


async def test_successor_envelope_moved_to_another_parent_is_not_honoured_rt_36(
    db: Db,
) -> None:
    """RT-36 end to end: a copied envelope does not authenticate, so the retry is reuse."""
    import sqlalchemy as sa

    r = rotation(db)
    a, b = await issue(r), await issue(r)
    await granted(r, a.token)
    await granted(r, b.token)
    t = db.tables.refresh_tokens
    async with db.engine.begin() as conn:
        env = (
            await conn.execute(
                sa.select(t.c.successor).where(t.c.token_hash == a.entry.token_hash)
            )
        ).scalar_one()
        await conn.execute(
            sa.update(t).where(t.c.token_hash == b.entry.token_hash).values(successor=env)
        )
    assert await r.rotate(b.token, client_id="client-1") == RotationDenied(
        "invalid_grant", "reuse_detected"
    )


def test_grace_without_a_successor_key_refuses_to_start_rt_35(db: Db) -> None:
    """RT-35."""
    unkeyed = store(db, keys=False)
    with pytest.raises(RotationConfigError, match="successor"):
        RefreshRotation(unkeyed, grace_seconds=60)
    RefreshRotation(unkeyed, grace_seconds=0)
    RefreshRotation(store(db), grace_seconds=60)
    with pytest.raises(RotationConfigError):
        check_rotation_settings(60, None)
    with pytest.raises(RotationConfigError):
        check_rotation_settings(60, {})
    with pytest.raises(RotationConfigError, match="32 bytes"):
        check_rotation_settings(60, {"k1": b"short"})
    with pytest.raises(RotationConfigError):
        check_rotation_settings(-1, KEYS)
    check_rotation_settings(60, KEYS)
    check_rotation_settings(0, None)


async def many_connections(db: Db, n: int = 50) -> AsyncEngine:
    return await db.racing_engine(n)


async def test_parallel_first_use_and_retries_never_revoke_the_family_rt_34(db: Db) -> None:
    """RT-34: 50 parallel presentations of one token (one wins the rotate, 49 see Reuse) all
    get the same successor, and nothing is revoked."""
    first = await issue(rotation(db))
    racing = await many_connections(db)
    try:
        r = rotation(db, engine=racing)
        results = await asyncio.gather(
            *(r.rotate(first.token, client_id="client-1") for _ in range(50))
        )
    finally:
        await racing.dispose()
    assert all(isinstance(x, RotationGranted) for x in results), results
    tokens = {x.token for x in results if isinstance(x, RotationGranted)}
    assert len(tokens) == 1
    assert sum(not x.retried for x in results if isinstance(x, RotationGranted)) == 1
    rows = await db.rows(db.tables.refresh_tokens)
    assert len(rows) == 2
    assert not any(row.family_revoked for row in rows)


async def test_parallel_retries_after_a_rotation_never_revoke_the_family_rt_34(db: Db) -> None:
    """RT-34: after a rotation, 50 parallel honest retries all get the same successor."""
    r0 = rotation(db)
    first = await issue(r0)
    second = await granted(r0, first.token)
    racing = await many_connections(db)
    try:
        r = rotation(db, engine=racing)
        results = await asyncio.gather(
            *(r.rotate(first.token, client_id="client-1") for _ in range(50))
        )
    finally:
        await racing.dispose()
    assert {x.token for x in results if isinstance(x, RotationGranted)} == {second.token}
    assert len(results) == 50
    assert not await family_revoked(db, first.entry.family_id)
    await granted(r0, second.token)


async def test_parallel_use_without_grace_revokes_and_strands_the_winner(db: Db) -> None:
    """With grace 0, the 49 losers of a 50-way race are reuse: the family is revoked and the
    winner's new token is unusable."""
    first = await issue(rotation(db, grace=0))
    racing = await many_connections(db)
    try:
        r = rotation(db, grace=0, engine=racing)
        results = await asyncio.gather(
            *(r.rotate(first.token, client_id="client-1") for _ in range(50))
        )
    finally:
        await racing.dispose()
    winners = [x for x in results if isinstance(x, RotationGranted)]
    assert len(winners) == 1
    losers = [x for x in results if not isinstance(x, RotationGranted)]
    # The first loser detects reuse and revokes; later ones may already find the family gone.
    assert RotationDenied("invalid_grant", "reuse_detected") in losers
    assert all(
        x.error == "invalid_grant" and x.reason in {"reuse_detected", "unknown", "family_revoked"}
        for x in losers
    )
    assert await family_revoked(db, first.entry.family_id)
    assert await store(db).get(digest(winners[0].token)) == Missing()
    assert await rotation(db, grace=0).rotate(winners[0].token, client_id="client-1") == (
        RotationDenied("invalid_grant", "unknown")
    )


def test_core_rotation_does_not_import_sqlalchemy() -> None:
    code = (
        "import sys, authward.core.refresh_rotation; "
        "sys.exit(1 if any(m.startswith('sqlalchemy') for m in sys.modules) else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0  # noqa: S603


async def test_a_plain_rotation_without_grace_is_one_store_step(db: Db) -> None:
    """Same grant, no successor: ``rotate_same_grant`` alone (on PostgreSQL one statement, no
    read before it); a narrowed scope takes the reasoned path (read, then rotate)."""
    r = rotation(db, grace=0)
    first = await issue(r)
    with statements(db.engine) as seen:
        plain = await granted(r, first.token)
    assert plain.context == first.entry.data
    assert plain.generation == 1
    assert plain.family_id == first.entry.family_id
    if db.kind == "postgresql":
        assert len(seen) == 1
    with statements(db.engine) as seen:
        narrowed = await granted(r, plain.token, scope=["openid"])
    assert narrowed.context.scope == ("openid",)
    if db.kind == "postgresql":
        assert len(seen) == 2
    # the plain step refused a token already rotated; the reasoned path saw the reuse
    assert await r.rotate(plain.token, client_id="client-1") == RotationDenied(
        "invalid_grant", "reuse_detected"
    )
