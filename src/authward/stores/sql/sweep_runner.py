"""The in-process periodic sweeper: an asyncio task that runs ``sweep`` every interval.

Spec: authward spec/stores.md §4.1 "Scheduling", §4.2 "Runners", §6.11 (SWP-01..03, SWP-07).

The runner refuses to start without an engine, without the ``Tables`` of a prefix, or without a
positive integer interval (leave the runner out instead of configuring a bogus interval). The
first sweep happens one interval after ``start()``, not at start; after each sweep the next one
is scheduled. A failing sweep is logged and counted, its exception kept in ``last_error``, and
retried on the next interval: the runner stays alive and never drops a failure silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Final, Self

from sqlalchemy.ext.asyncio import AsyncEngine

from authward.stores.clock import Clock
from authward.stores.sql.schema import Tables
from authward.stores.sql.sweeper import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_REFRESH_GRACE_SECONDS,
    SweepReport,
    check_positive_int,
    check_sweep_target,
    sweep,
)

LOGGER: Final = logging.getLogger("authward.sweeper")

Sleep = Callable[[float], Awaitable[object]]


class SweepRunner:
    """Sweeps ``tables`` on ``engine`` every ``interval_seconds`` in a background task.

    ``clock``, ``batch_size``, ``max_batches`` and ``refresh_grace_seconds`` are passed to each
    ``sweep``. ``sleep`` waits between sweeps (``asyncio.sleep`` unless a test injects its own).
    ``on_report`` / ``on_error`` are called after each scheduled sweep succeeds / fails.

    Construction validates everything: a missing or wrong engine raises ``NoDatabaseError``,
    wrong ``tables`` raise ``TypeError``, and an interval that is unset, not an int or not
    above zero raises ``ValueError`` ("must be a positive integer").
    """

    def __init__(
        self,
        engine: AsyncEngine | None,
        tables: Tables | None,
        interval_seconds: int | None = None,
        *,
        clock: Clock | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_batches: int | None = None,
        refresh_grace_seconds: int = DEFAULT_REFRESH_GRACE_SECONDS,
        sleep: Sleep = asyncio.sleep,
        on_report: Callable[[SweepReport], None] | None = None,
        on_error: Callable[[Exception], None] | None = None,
        logger: logging.Logger = LOGGER,
    ) -> None:
        self._engine, self._tables = check_sweep_target(engine, tables)
        self.interval_seconds: Final = check_positive_int("interval_seconds", interval_seconds)
        check_positive_int("batch_size", batch_size)
        if max_batches is not None:
            check_positive_int("max_batches", max_batches)
        self._clock = clock
        self._batch_size = batch_size
        self._max_batches = max_batches
        self._grace = refresh_grace_seconds
        self._sleep = sleep
        self._on_report = on_report
        self._on_error = on_error
        self._logger = logger
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        #: Scheduled sweeps that completed, and the report of the latest sweep that succeeded.
        self.sweeps_completed = 0
        self.last_report: SweepReport | None = None
        #: Scheduled sweeps that failed (in total and since the last success); the latest error.
        self.failures = 0
        self.consecutive_failures = 0
        self.last_error: Exception | None = None

    @property
    def running(self) -> bool:
        """True while the background task is alive."""
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Start the background task; the first sweep runs one interval from now."""
        if self._task is not None:
            raise RuntimeError("this SweepRunner was already started")
        self._task = asyncio.create_task(self._run(), name="authward-sweeper")

    async def stop(self) -> None:
        """Cancel the background task and wait for it; a sweep in flight is abandoned.

        Each sweep batch is its own transaction, so an abandoned sweep leaves no partial batch.
        """
        task = self._task
        if task is None or task.done():
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def sweep_now(self, *, now: float | None = None) -> SweepReport:
        """Run one sweep right away (tests, diagnostics); errors propagate to the caller.

        Sweeps of one runner never overlap: this waits for a scheduled sweep in flight.
        """
        async with self._lock:
            report = await sweep(
                self._engine,
                self._tables,
                now=now,
                clock=self._clock,
                batch_size=self._batch_size,
                max_batches=self._max_batches,
                refresh_grace_seconds=self._grace,
            )
        self.last_report = report
        return report

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _run(self) -> None:
        while True:
            await self._sleep(self.interval_seconds)
            await self._tick()

    async def _tick(self) -> None:
        try:
            report = await self.sweep_now()
        except Exception as exc:
            self.failures += 1
            self.consecutive_failures += 1
            self.last_error = exc
            # Only the exception type and message: sweep statements bind timestamps and batch
            # sizes, never secrets; the engine URL (and its password) is not part of the message.
            self._logger.error(
                "authward sweep failed (%d in a row), retrying in %d s: %s: %s",
                self.consecutive_failures,
                self.interval_seconds,
                type(exc).__name__,
                exc,
            )
            if self._on_error is not None:
                self._on_error(exc)
            return
        self.sweeps_completed += 1
        self.consecutive_failures = 0
        self._logger.info(
            "authward sweep deleted %d row(s), redacted %d successor(s)",
            report.total_deleted,
            report.successors_redacted,
        )
        if self._on_report is not None:
            self._on_report(report)


__all__ = ["SweepRunner"]
