"""The expiry sweeper: all nine tables, one strict ``now``, batches, retention rules.

Spec: spec/stores.md decision 3, §0.4, §4.1, §4.2, §6.11 (SWP-04..06, SWP-08, SWP-09), §6.2
(CODE-34), §7 item 2.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from authward.stores.errors import NoDatabaseError
from authward.stores.sql.convert import to_seconds_column
from authward.stores.sql.schema import TABLE_NAMES, build_metadata
from authward.stores.sql.sweeper import sweep
from tests.dbkit import KINDS, T0, Db, database
from tests.stores.sql.sweep_rows import insert, keys


@dataclass
class ReadCountingClock:
    """A clock that moves 100 s forward every time it is read, and counts the reads."""

    at: float
    reads: int = 0

    def now(self) -> float:
        value = self.at
        self.reads += 1
        self.at += 100
        return value


async def test_one_sweep_deletes_expired_rows_from_all_nine_tables(db: Db) -> None:
    """SWP-04: every table is swept exactly once and the report counts per table."""
    survivors = {}
    for table in db.tables.in_creation_order():
        await insert(db.engine, db.tables, table, T0 - 10)
        survivors[table.name] = await insert(db.engine, db.tables, table, T0 + 10)

    report = await sweep(db.engine, db.tables, now=T0)

    assert list(report.deleted) == list(TABLE_NAMES)
    assert dict(report.deleted) == dict.fromkeys(TABLE_NAMES, 1)
    assert report.total_deleted == 9
    assert report.complete
    for table in db.tables.in_creation_order():
        assert await keys(db.engine, db.tables, table) == {survivors[table.name]}


async def test_a_second_sweep_finds_nothing_more_to_delete(db: Db) -> None:
    """SWP-04: the counts are rows actually deleted, not rows matched before."""
    for table in db.tables.in_creation_order():
        await insert(db.engine, db.tables, table, T0 - 10)
    await sweep(db.engine, db.tables, now=T0)
    report = await sweep(db.engine, db.tables, now=T0)
    assert dict(report.deleted) == dict.fromkeys(TABLE_NAMES, 0)


@pytest.mark.parametrize("kind", KINDS)
async def test_prefixed_tables_are_swept_and_unprefixed_ones_left_alone(
    kind: str, tmp_path: Path
) -> None:
    """SWP-05: the prefix is applied to every delete (the prefixed Table objects are used)."""
    async with database(kind, tmp_path, prefix="oauth_") as pdb:
        plain = build_metadata("", pdb.tables.dialect)
        async with pdb.engine.begin() as conn:
            await conn.run_sync(plain.metadata.create_all)
        untouched = {}
        for prefixed_table, plain_table in zip(
            pdb.tables.in_creation_order(), plain.in_creation_order(), strict=True
        ):
            await insert(pdb.engine, pdb.tables, prefixed_table, T0 - 10)
            untouched[plain_table.name] = await insert(pdb.engine, plain, plain_table, T0 - 10)

        report = await sweep(pdb.engine, pdb.tables, now=T0)

        assert list(report.deleted) == ["oauth_" + name for name in TABLE_NAMES]
        assert report.total_deleted == 9
        for prefixed_table, plain_table in zip(
            pdb.tables.in_creation_order(), plain.in_creation_order(), strict=True
        ):
            assert await keys(pdb.engine, pdb.tables, prefixed_table) == set()
            assert await keys(pdb.engine, plain, plain_table) == {untouched[plain_table.name]}


async def test_one_now_is_read_once_and_used_for_every_table_strictly(db: Db) -> None:
    """SWP-06: a single ``now`` for all nine tables, compared with a strict ``<``."""
    clock = ReadCountingClock(T0)
    kept: dict[str, set[str]] = {}
    for table in db.tables.in_creation_order():
        await insert(db.engine, db.tables, table, T0 - 1)
        kept[table.name] = {
            await insert(db.engine, db.tables, table, T0),  # == now: survives
            # Would be swept by any table that read the clock a second time.
            await insert(db.engine, db.tables, table, T0 + 50),
        }

    report = await sweep(db.engine, db.tables, clock=clock)

    assert clock.reads == 1
    assert report.now == T0
    assert dict(report.deleted) == dict.fromkeys(TABLE_NAMES, 1)
    for table in db.tables.in_creation_order():
        assert await keys(db.engine, db.tables, table) == kept[table.name]


async def test_without_now_or_clock_the_wall_clock_is_read_between_before_and_after(
    db: Db,
) -> None:
    """SWP-06: the default ``now`` lies between the instants taken around the call."""
    before = time.time()
    report = await sweep(db.engine, db.tables)
    after = time.time()
    assert before <= report.now <= after


async def test_injected_now_wins_over_the_clock(db: Db) -> None:
    """§0.4: an injected ``now`` is used as is and the clock is not read."""
    clock = ReadCountingClock(T0 + 1000)
    await insert(db.engine, db.tables, db.tables.dpop_replays, T0 + 500)
    report = await sweep(db.engine, db.tables, now=T0, clock=clock)
    assert clock.reads == 0
    assert report.now == T0
    assert report.deleted["dpop_replays"] == 0


async def test_batches_of_two_remove_five_expired_rows(db: Db) -> None:
    """SWP-08: batched deletes remove everything, over several batches."""
    for table in (db.tables.authorization_codes, db.tables.dpop_replays):
        for _ in range(5):
            await insert(db.engine, db.tables, table, T0 - 10)

    report = await sweep(db.engine, db.tables, now=T0, batch_size=2)

    assert report.deleted["attesto_authorization_codes"] == 5
    assert report.deleted["dpop_replays"] == 5
    assert report.complete
    assert await keys(db.engine, db.tables, db.tables.authorization_codes) == set()
    assert await keys(db.engine, db.tables, db.tables.dpop_replays) == set()


async def test_max_batches_bounds_one_sweep_and_the_next_sweep_finishes(db: Db) -> None:
    """SWP-08: one batch of two goes per table when capped; the rest goes next time."""
    for _ in range(5):
        await insert(db.engine, db.tables, db.tables.authorization_codes, T0 - 10)

    first = await sweep(db.engine, db.tables, now=T0, batch_size=2, max_batches=1)
    assert first.deleted["attesto_authorization_codes"] == 2
    assert not first.complete
    assert len(await keys(db.engine, db.tables, db.tables.authorization_codes)) == 3

    second = await sweep(db.engine, db.tables, now=T0, batch_size=2)
    assert second.deleted["attesto_authorization_codes"] == 3
    assert second.complete


async def test_a_row_expiring_exactly_now_survives_the_sweep(db: Db) -> None:
    """SWP-08, §0.4: strict ``<``; the row goes on the next sweep after ``now`` moves on."""
    row = await insert(db.engine, db.tables, db.tables.device_codes, T0)
    report = await sweep(db.engine, db.tables, now=T0, batch_size=2)
    assert report.deleted["attesto_device_codes"] == 0
    assert await keys(db.engine, db.tables, db.tables.device_codes) == {row}

    later = await sweep(db.engine, db.tables, now=T0 + 1)
    assert later.deleted["attesto_device_codes"] == 1


async def test_code_row_is_kept_while_its_access_token_lives(db: Db) -> None:
    """CODE-34, SWP-09 (§4.2 rule 1, §7 item 2): the revocation record outlives the code."""
    codes = db.tables.authorization_codes
    live_token = await insert(
        db.engine, db.tables, codes, T0 - 60,
        access_token_jti="jti-live",
        access_token_expires_at=to_seconds_column(T0 + 840),
        access_token_revoked_at=to_seconds_column(T0 - 30),
    )
    token_expires_now = await insert(
        db.engine, db.tables, codes, T0 - 60,
        access_token_jti="jti-now", access_token_expires_at=to_seconds_column(T0),
    )
    code_still_live = await insert(
        db.engine, db.tables, codes, T0 + 30,
        access_token_jti="jti-old", access_token_expires_at=to_seconds_column(T0 - 1),
    )
    await insert(
        db.engine, db.tables, codes, T0 - 60,
        access_token_jti="jti-dead", access_token_expires_at=to_seconds_column(T0 - 1),
    )
    await insert(db.engine, db.tables, codes, T0 - 60)  # never redeemed: no access token

    report = await sweep(db.engine, db.tables, now=T0)

    assert report.deleted["attesto_authorization_codes"] == 2
    assert await keys(db.engine, db.tables, codes) == {
        live_token, token_expires_now, code_still_live
    }

    after_token = await sweep(db.engine, db.tables, now=T0 + 841)
    assert after_token.deleted["attesto_authorization_codes"] == 3


async def test_successor_envelopes_are_redacted_after_the_grace_window(db: Db) -> None:
    """SWP-09 (§4.2 rule 3): consumed AND consumed_at < now - grace loses its successor."""
    refresh = db.tables.refresh_tokens
    envelope = {"v": 1, "ciphertext": "opaque"}
    grace = 60

    async def consumed(at: float) -> str:
        return await insert(
            db.engine, db.tables, refresh, T0 + 3600,
            consumed=True, consumed_at=to_seconds_column(at), successor=envelope,
        )

    stale = await consumed(T0 - grace - 1)
    at_the_edge = await consumed(T0 - grace)  # strict <: kept
    in_grace = await consumed(T0 - 10)
    unconsumed = await insert(db.engine, db.tables, refresh, T0 + 3600, successor=envelope)

    report = await sweep(db.engine, db.tables, now=T0, refresh_grace_seconds=grace)

    assert report.successors_redacted == 1
    assert report.deleted["attesto_refresh_tokens"] == 0
    async with db.engine.connect() as conn:
        rows = (await conn.execute(sa.select(refresh.c.id, refresh.c.successor))).all()
    successors = {str(r.id): r.successor for r in rows}
    assert successors == {
        stale: None,
        at_the_edge: envelope,
        in_grace: envelope,
        unconsumed: envelope,
    }
    again = await sweep(db.engine, db.tables, now=T0, refresh_grace_seconds=grace)
    assert again.successors_redacted == 0


async def test_zero_grace_redacts_every_consumed_successor_before_now(db: Db) -> None:
    """SWP-09: with no grace window a successor is kept only up to the rotation instant."""
    refresh = db.tables.refresh_tokens
    for at in (T0 - 5, T0 - 1, T0):
        await insert(
            db.engine, db.tables, refresh, T0 + 3600,
            consumed=True, consumed_at=to_seconds_column(at), successor={"v": 1},
        )
    report = await sweep(db.engine, db.tables, now=T0, batch_size=1, refresh_grace_seconds=0)
    assert report.successors_redacted == 2


async def test_default_grace_matches_the_servers_60_second_retry_window(db: Db) -> None:
    """Spec §8: a sweep without an explicit grace keeps successors for the server default, 60 s,
    so a cron sweep cannot turn an honest retry into a family revocation."""
    refresh = db.tables.refresh_tokens
    for at in (T0 - 61, T0 - 30):
        await insert(
            db.engine, db.tables, refresh, T0 + 3600,
            consumed=True, consumed_at=to_seconds_column(at), successor={"v": 1},
        )
    report = await sweep(db.engine, db.tables, now=T0)
    assert report.successors_redacted == 1


async def test_revoked_family_rows_are_deleted_only_at_their_own_expiry(db: Db) -> None:
    """Decision 3 / §4.2 rule 2, accepted behaviour: the sticky ``family_revoked`` marker lives
    on each member row and goes with it at that row's own expiry, never earlier. A member that
    could still be presented is unexpired, so it still carries the marker."""
    refresh = db.tables.refresh_tokens
    live_member = await insert(
        db.engine, db.tables, refresh, T0 + 10, family_id="fam-r", generation=1,
        family_revoked=True, consumed=True, consumed_at=to_seconds_column(T0 - 20),
    )
    await insert(
        db.engine, db.tables, refresh, T0 - 10, family_id="fam-r", generation=0,
        family_revoked=True, consumed=True, consumed_at=to_seconds_column(T0 - 30),
    )

    report = await sweep(db.engine, db.tables, now=T0)
    assert report.deleted["attesto_refresh_tokens"] == 1
    async with db.engine.connect() as conn:
        rows = (await conn.execute(sa.select(refresh.c.id, refresh.c.family_revoked))).all()
    assert [(str(r.id), r.family_revoked) for r in rows] == [(live_member, True)]

    later = await sweep(db.engine, db.tables, now=T0 + 11)
    assert later.deleted["attesto_refresh_tokens"] == 1
    assert await keys(db.engine, db.tables, refresh) == set()


async def test_a_missing_table_error_propagates(db: Db) -> None:
    """§4.1: a failing DELETE is loud; the sweeper never swallows it."""
    missing = build_metadata("nope_", db.tables.dialect)
    with pytest.raises(sa.exc.DBAPIError):
        await sweep(db.engine, missing, now=T0)


async def test_bad_arguments_are_refused_before_any_delete(db: Db) -> None:
    await insert(db.engine, db.tables, db.tables.dpop_replays, T0 - 10)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        await sweep(db.engine, db.tables, now=T0, batch_size=0)
    with pytest.raises(ValueError, match="max_batches must be a positive integer"):
        await sweep(db.engine, db.tables, now=T0, max_batches=0)
    with pytest.raises(ValueError, match="refresh_grace_seconds"):
        await sweep(db.engine, db.tables, now=T0, refresh_grace_seconds=-1)
    with pytest.raises(NoDatabaseError):
        await sweep(None, db.tables, now=T0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Tables"):
        await sweep(db.engine, "oauth_", now=T0)  # type: ignore[arg-type]
    assert len(await keys(db.engine, db.tables, db.tables.dpop_replays)) == 1
