"""Fixed-window attempt limits over the shared replay table.

RFC 6749 §10.10, RFC 6819 §5.1.4.2.3, RFC 8628 §5.1; authward spec/stores.md §3.6 (digested
replay keys). Real SQL replay stores on SQLite and PostgreSQL; the clock is frozen at ``T0``
(a multiple of every window used here).
"""

from __future__ import annotations

import asyncio

import pytest

from authward.core.attempt_limits import (
    AttemptLimit,
    AttemptsLeft,
    AttemptWindow,
    GrowingDelay,
    Locked,
    Proceed,
    identifier_digest,
)
from authward.stores.digest import digest
from authward.stores.sql.convert import from_column
from tests.core.endpoints.kit import Kit, build
from tests.dbkit import T0, Db


def limit(failures: int = 3, window: int = 60, steps: int = 4) -> AttemptLimit:
    return AttemptLimit("test_attempts", failures, window, steps)


def at(kit: Kit, identifier: str = "alice", lim: AttemptLimit | None = None) -> AttemptWindow:
    return (lim or limit()).window(kit.server.stores.replay, identifier, kit.clock.now())


async def test_failures_count_down_then_lock_until_the_window_ends(db: Db) -> None:
    kit = build(db)
    assert [await at(kit).fail() for _ in range(3)] == [
        AttemptsLeft(2), AttemptsLeft(1), AttemptsLeft(0)
    ]
    assert await at(kit).fail() == Locked(60)
    kit.clock.advance(25)
    assert await at(kit).fail() == Locked(35)


async def test_the_last_failure_locks_the_step_path_too(db: Db) -> None:
    """Once the failures are spent, a step (the work a right answer would do) is refused."""
    kit = build(db)
    assert await at(kit).step() == Proceed()
    for _ in range(3):
        await at(kit).fail()
    assert await at(kit).step() == Locked(60)


async def test_steps_are_capped_and_do_not_use_the_failure_budget(db: Db) -> None:
    kit = build(db)
    assert [await at(kit).step() for _ in range(4)] == [Proceed()] * 4
    assert await at(kit).step() == Locked(60)
    assert await at(kit).fail() == AttemptsLeft(2)


async def test_a_new_window_starts_a_fresh_budget(db: Db) -> None:
    kit = build(db)
    for _ in range(3):
        await at(kit).fail()
    kit.clock.advance(59)
    assert await at(kit).step() == Locked(1)
    kit.clock.advance(1)
    assert await at(kit).step() == Proceed()
    assert await at(kit).fail() == AttemptsLeft(2)


async def test_the_window_is_fixed_not_sliding(db: Db) -> None:
    """Failures late in one window do not carry into the next one."""
    kit = build(db)
    kit.clock.advance(50)
    await at(kit).fail()
    await at(kit).fail()
    kit.clock.advance(10)
    assert await at(kit).fail() == AttemptsLeft(2)


async def test_identifiers_and_namespaces_have_separate_budgets(db: Db) -> None:
    kit = build(db)
    for _ in range(3):
        await at(kit, "alice").fail()
    assert await at(kit, "alice").step() == Locked(60)
    assert await at(kit, "bob").step() == Proceed()
    other = AttemptLimit("other_attempts", 3, 60, 4)
    assert await at(kit, "alice", other).step() == Proceed()


async def test_every_node_on_the_database_shares_the_budget(db: Db) -> None:
    """No process memory: a second server on its own engine counts into the same budget."""
    kit = build(db)
    other_engine = db.new_engine()
    try:
        node_b = kit.sibling(other_engine)
        assert await at(kit).fail() == AttemptsLeft(2)
        assert await at(node_b).fail() == AttemptsLeft(1)
        assert await at(kit).fail() == AttemptsLeft(0)
        assert await at(node_b).step() == Locked(60)
        assert await at(kit).step() == Locked(60)
    finally:
        await other_engine.dispose()


async def test_concurrent_failures_get_each_count_once(db: Db) -> None:
    """Each failure key goes to exactly one caller: 8 at once on a budget of 3 give 2, 1, 0
    and five locks, never more failures than the budget."""
    kit = build(db)
    outcomes = await asyncio.gather(*(at(kit).fail() for _ in range(8)))
    left = sorted(o.left for o in outcomes if isinstance(o, AttemptsLeft))
    assert left == [0, 1, 2]
    assert outcomes.count(Locked(60)) == 5


async def test_no_identifier_is_stored_in_clear(db: Db) -> None:
    kit = build(db)
    await at(kit, "alice@example.com").fail()
    await at(kit, "alice@example.com").step()
    rows = await db.rows(db.tables.dpop_replays)
    assert len(rows) == 2
    for row in rows:
        text = " ".join(str(value) for value in row)
        assert "alice" not in text
        assert row.jti.startswith("test_attempts:")


async def test_an_over_long_identifier_is_digested_not_refused(db: Db) -> None:
    kit = build(db)
    assert await at(kit, "x" * 5000).fail() == AttemptsLeft(2)


async def test_keys_expire_when_their_window_ends(db: Db) -> None:
    kit = build(db)
    kit.clock.advance(20)
    await at(kit).fail()
    rows = await db.rows(db.tables.dpop_replays)
    assert [from_column(row.expires_at) for row in rows] == [T0 + 60]


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("Bad-Name", 1, 1, 1), "namespace"),
        (("", 1, 1, 1), "namespace"),
        (("ok", 0, 1, 1), "max_failures"),
        (("ok", True, 1, 1), "max_failures"),
        (("ok", 1, 0, 1), "window_seconds"),
        (("ok", 1, 1, 0), "max_steps"),
    ],
)
def test_the_limit_refuses_bad_parameters(args: tuple[str, int, int, int], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        AttemptLimit(*args)


def test_the_event_digest_is_short_stable_and_not_the_identifier() -> None:
    assert identifier_digest("alice") == identifier_digest("alice") == digest("alice")[:16]
    assert identifier_digest("alice") != identifier_digest("bob")
    assert "alice" not in identifier_digest("alice")


async def test_asking_locked_reads_only_and_costs_no_budget(db: Db) -> None:
    """``locked()`` reads the lock marker: any number of checks claim nothing, and it turns
    on exactly when the last failure is counted."""
    kit = build(db)
    for _ in range(10):
        assert await at(kit).locked() is None
    rows_before = len(await db.rows(db.tables.dpop_replays))
    assert rows_before == 0
    for _ in range(2):
        await at(kit).fail()
    assert await at(kit).locked() is None
    await at(kit).fail()
    assert await at(kit).locked() == Locked(60)
    # three failure keys and the lock marker; no step was claimed by any check
    assert len(await db.rows(db.tables.dpop_replays)) == 4


async def test_failures_counts_the_recorded_failures_and_claims_nothing(db: Db) -> None:
    """A binary search over the failure keys: right after every failure, up to the lock, and
    the number of rows stays what the failures wrote."""
    kit = build(db)
    lim = limit(failures=7, steps=1)
    assert await at(kit, lim=lim).failures() == 0
    for k in range(1, 8):
        await at(kit, lim=lim).fail()
        assert await at(kit, lim=lim).failures() == k
        assert await at(kit, "bob", lim=lim).failures() == 0
    # seven failure keys and the lock marker: counting wrote nothing
    assert len(await db.rows(db.tables.dpop_replays)) == 8
    kit.clock.advance(60)
    assert await at(kit, lim=lim).failures() == 0


def test_the_growing_delay_is_free_then_doubles_up_to_its_cap() -> None:
    delay = GrowingDelay()
    assert [delay.seconds(k) for k in range(8)] == [0, 0, 0, 1, 2, 4, 8, 8]
    assert GrowingDelay(free_failures=0, first_seconds=0.5, max_seconds=3).seconds(1) == 0.5
    assert GrowingDelay(free_failures=0, first_seconds=0.5, max_seconds=3).seconds(4) == 3
    assert GrowingDelay(first_seconds=0, max_seconds=0).seconds(100) == 0
    assert GrowingDelay().seconds(10**6) == 8


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((-1, 1.0, 8.0), "free_failures"),
        ((2, -1.0, 8.0), "first_seconds"),
        ((2, float("nan"), 8.0), "first_seconds"),
        ((2, 1.0, float("inf")), "max_seconds"),
        ((2, True, 8.0), "first_seconds"),
        ((2, 4.0, 2.0), "at least first_seconds"),
    ],
)
def test_the_growing_delay_refuses_bad_parameters(
    args: tuple[int, float, float], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        GrowingDelay(*args)
