"""The periodic in-process sweep runner: refusal to start, scheduling, failure handling.

Spec: spec/stores.md §4.1 "Scheduling", §4.2 "Runners", §6.11 (SWP-01, 02, 03, 07).

Time is driven by a manual timer injected as the runner's ``sleep``: a tick happens only when the
test fires it, so nothing here depends on how fast the machine is.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from authward.stores.errors import NoDatabaseError
from authward.stores.sql.schema import build_metadata
from authward.stores.sql.sweep_runner import SweepRunner
from authward.stores.sql.sweeper import SweepReport
from tests.dbkit import T0, Db
from tests.stores.sql.sweep_rows import ManualTimer, insert, keys


def runner_for(db: Db, timer: ManualTimer, **kw: Any) -> SweepRunner:
    return SweepRunner(db.engine, db.tables, 60, clock=db.clock, sleep=timer.sleep, **kw)


async def test_starting_without_an_engine_or_tables_raises(db: Db) -> None:
    """SWP-01: no settings, or settings of the wrong type, refuse to start."""
    with pytest.raises(NoDatabaseError):
        SweepRunner(None, db.tables, 60)
    with pytest.raises(NoDatabaseError):
        SweepRunner("sqlite:///x.db", db.tables, 60)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Tables"):
        SweepRunner(db.engine, None, 60)
    with pytest.raises(TypeError, match="Tables"):
        SweepRunner(db.engine, {"prefix": "oauth_"}, 60)  # type: ignore[arg-type]


@pytest.mark.parametrize("interval", [None, 0, -60, 1.5, "60", True])
async def test_an_interval_that_is_not_a_positive_integer_refuses_to_start(
    db: Db, interval: Any
) -> None:
    """SWP-02: the interval unset, zero, negative or not an int raises."""
    with pytest.raises(ValueError, match="must be a positive integer"):
        SweepRunner(db.engine, db.tables, interval)


async def test_no_sweep_runs_at_start_up_and_the_runner_is_alive(db: Db) -> None:
    """SWP-03: the first sweep is one interval away; start-up sweeps nothing."""
    expired = await insert(db.engine, db.tables, db.tables.dpop_replays, T0 - 10)
    timer = ManualTimer()
    async with runner_for(db, timer) as runner:
        await timer.sleeping(1)
        assert timer.requested == [60]
        assert runner.running
        assert runner.sweeps_completed == 0
        assert runner.last_report is None
        assert await keys(db.engine, db.tables, db.tables.dpop_replays) == {expired}
    assert not runner.running


async def test_each_tick_sweeps_all_tables_and_reschedules(db: Db) -> None:
    """SWP-07: a tick runs a full sweep, schedules the next one, and the runner stays alive."""
    reports: list[SweepReport] = []
    for table in db.tables.in_creation_order():
        await insert(db.engine, db.tables, table, T0 - 10)
    timer = ManualTimer()
    async with runner_for(db, timer, on_report=reports.append) as runner:
        await timer.sleeping(1)
        timer.fire()
        await timer.sleeping(2)
        assert runner.running
        assert runner.sweeps_completed == 1
        assert len(reports) == 1
        assert reports[0].total_deleted == 9
        assert reports[0].now == T0
        for table in db.tables.in_creation_order():
            assert await keys(db.engine, db.tables, table) == set()

        again = await insert(db.engine, db.tables, db.tables.consent_grants, T0 - 1)
        timer.fire()
        await timer.sleeping(3)
        assert runner.sweeps_completed == 2
        assert reports[1].deleted["attesto_consent_grants"] == 1
        assert again not in await keys(db.engine, db.tables, db.tables.consent_grants)
        assert timer.requested == [60, 60, 60]
        assert runner.running


async def test_a_failing_sweep_is_logged_kept_and_retried_next_interval(
    db: Db, caplog: pytest.LogCaptureFixture
) -> None:
    """§4.1/§4.2: failures are loud (logged, counted, kept) and retried; never swallowed."""
    missing = build_metadata("later_", db.tables.dialect)
    errors: list[Exception] = []
    timer = ManualTimer()
    runner = SweepRunner(
        db.engine, missing, 60, clock=db.clock, sleep=timer.sleep, on_error=errors.append
    )
    with caplog.at_level(logging.ERROR, logger="authward.sweeper"):
        async with runner:
            await timer.sleeping(1)
            timer.fire()
            await timer.sleeping(2)

            assert runner.running
            assert runner.failures == 1
            assert runner.consecutive_failures == 1
            assert runner.sweeps_completed == 0
            assert runner.last_error is not None
            assert errors == [runner.last_error]
            assert "authward sweep failed" in caplog.text
            assert type(runner.last_error).__name__ in caplog.text

            # The tables appear (e.g. a migration ran): the next tick succeeds.
            async with db.engine.begin() as conn:
                await conn.run_sync(missing.metadata.create_all)
            await insert(db.engine, missing, missing.dpop_nonces, T0 - 10)
            timer.fire()
            await timer.sleeping(3)

            assert runner.sweeps_completed == 1
            assert runner.consecutive_failures == 0
            assert runner.failures == 1
            assert runner.last_report is not None
            assert runner.last_report.deleted["later_dpop_nonces"] == 1


async def test_sweep_now_sweeps_at_once_and_propagates_errors(db: Db) -> None:
    """§4.1: the synchronous "sweep now" call for tests and diagnostics."""
    await insert(db.engine, db.tables, db.tables.logout_sessions, T0 - 10)
    timer = ManualTimer()
    runner = runner_for(db, timer)
    report = await runner.sweep_now()
    assert report.deleted["attesto_logout_sessions"] == 1
    assert runner.last_report is report
    assert timer.requested == []

    broken = SweepRunner(db.engine, build_metadata("gone_", db.tables.dialect), 60)
    with pytest.raises(Exception, match="gone_"):
        await broken.sweep_now(now=T0)


async def test_a_runner_starts_once_and_stops_cleanly(db: Db) -> None:
    timer = ManualTimer()
    runner = runner_for(db, timer)
    await runner.start()
    with pytest.raises(RuntimeError, match="already started"):
        await runner.start()
    await timer.sleeping(1)
    await runner.stop()
    assert not runner.running
    await runner.stop()  # idempotent


async def test_the_default_sleep_is_real_time_and_stop_interrupts_it(db: Db) -> None:
    """The production path: ``asyncio.sleep`` for a whole interval, cancelled by ``stop``."""
    runner = SweepRunner(db.engine, db.tables, 3600)
    await runner.start()
    await asyncio.sleep(0)
    assert runner.running
    await runner.stop()
    assert not runner.running
    assert runner.sweeps_completed == 0
