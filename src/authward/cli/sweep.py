"""The ``authward sweep`` command: delete expired rows once (cron) or every interval.

Spec: authward spec/stores.md §4.2 "Runners", §4.1, §6.11.

Without ``--interval`` it sweeps once and prints one line per table, ``<table>: <n> deleted``,
then ``successors redacted: <n>``. With ``--interval SECONDS`` it runs the in-process
``SweepRunner`` (first sweep one interval after start) and prints the same report, under a
``sweep at <time>`` header, after every sweep until Ctrl-C or SIGTERM; a failed sweep is logged
and retried on the next interval.

Exit codes: 0 done (or stopped by a signal), 1 the sweep failed (database error), 2 usage or
validation error (invalid prefix, unsupported database URL, bad number).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import signal
from collections.abc import Callable

import click
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from authward.cli.options import check_database_url, database_url_option
from authward.stores.errors import InvalidTablePrefixError
from authward.stores.sql.engine import (
    create_engine,
    dialect_of,
)
from authward.stores.sql.schema import Tables, build_metadata, validate_table_prefix
from authward.stores.sql.sweep_runner import Sleep, SweepRunner
from authward.stores.sql.sweeper import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_REFRESH_GRACE_SECONDS,
    SweepReport,
)
from authward.stores.sql.sweeper import sweep as sweep_tables


def report_lines(report: SweepReport) -> list[str]:
    """The printed form of one sweep: a line per table, then the successor redactions."""
    lines = [f"{table}: {count} deleted" for table, count in report.deleted.items()]
    lines.append(f"successors redacted: {report.successors_redacted}")
    return lines


def tables_on(engine: AsyncEngine, table_prefix: str) -> Tables:
    """The nine tables of ``table_prefix`` as ``engine``'s database stores them."""
    return build_metadata(table_prefix, dialect_of(engine))


async def sweep_once(
    engine: AsyncEngine,
    tables: Tables,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    refresh_grace_seconds: int = DEFAULT_REFRESH_GRACE_SECONDS,
    echo: Callable[[str], None] = click.echo,
) -> SweepReport:
    """Sweep once with the system clock and print the report; errors propagate."""
    report = await sweep_tables(
        engine, tables, batch_size=batch_size, refresh_grace_seconds=refresh_grace_seconds
    )
    for line in report_lines(report):
        echo(line)
    return report


async def sweep_periodically(
    engine: AsyncEngine,
    tables: Tables,
    *,
    interval_seconds: int,
    stop: asyncio.Event,
    batch_size: int = DEFAULT_BATCH_SIZE,
    refresh_grace_seconds: int = DEFAULT_REFRESH_GRACE_SECONDS,
    echo: Callable[[str], None] = click.echo,
    sleep: Sleep = asyncio.sleep,
) -> SweepRunner:
    """Run a ``SweepRunner`` printing each report until ``stop`` is set; return the runner.

    Failed sweeps are logged by the runner and retried on the next interval.
    """

    def print_report(report: SweepReport) -> None:
        at = dt.datetime.fromtimestamp(report.now, dt.UTC).isoformat(timespec="seconds")
        echo(f"sweep at {at}")
        for line in report_lines(report):
            echo(f"  {line}")

    runner = SweepRunner(
        engine,
        tables,
        interval_seconds,
        batch_size=batch_size,
        refresh_grace_seconds=refresh_grace_seconds,
        sleep=sleep,
        on_report=print_report,
    )
    async with runner:
        await stop.wait()
    return runner


@click.command("sweep")
@database_url_option
@click.option(
    "--table-prefix", default="", metavar="P", help="Prefix of every table name, e.g. oauth_."
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=DEFAULT_BATCH_SIZE,
    show_default=True,
    help="Rows deleted per statement (each batch is its own transaction).",
)
@click.option(
    "--refresh-grace-seconds",
    type=click.IntRange(min=0),
    default=DEFAULT_REFRESH_GRACE_SECONDS,
    show_default=True,
    help="Refresh retry grace window (the server's refresh_token_rotation_grace_seconds): "
    "successors of tokens consumed longer ago are redacted.",
)
@click.option(
    "--interval",
    type=click.IntRange(min=1),
    default=None,
    metavar="SECONDS",
    help="Sweep every SECONDS (first sweep after one interval) until Ctrl-C or SIGTERM.",
)
@click.pass_context
def sweep(
    ctx: click.Context,
    database_url: str,
    table_prefix: str,
    batch_size: int,
    refresh_grace_seconds: int,
    interval: int | None,
) -> None:
    """Delete expired rows from the nine authward tables (codes wait for their access token).

    Safe to run from cron or a Kubernetes CronJob, on any number of nodes at once.
    """
    try:
        validate_table_prefix(table_prefix)
    except InvalidTablePrefixError as exc:
        click.echo(f"Error: {exc}", err=True)
        ctx.exit(2)
    check_database_url(ctx, database_url)
    try:
        if interval is None:
            asyncio.run(_once(database_url, table_prefix, batch_size, refresh_grace_seconds))
        else:
            click.echo(
                f"sweeping every {interval} s, first sweep in {interval} s; "
                "Ctrl-C or SIGTERM stops",
                err=True,
            )
            asyncio.run(
                _until_signalled(
                    database_url, table_prefix, batch_size, refresh_grace_seconds, interval
                )
            )
    except KeyboardInterrupt:  # signal handlers could not be installed (e.g. Windows)
        click.echo("stopped", err=True)
    except (SQLAlchemyError, OSError) as exc:
        click.echo(f"Error: sweep failed: {exc}", err=True)
        ctx.exit(1)


async def _once(url: str, prefix: str, batch_size: int, grace: int) -> None:
    engine = create_engine(url)
    try:
        await sweep_once(
            engine, tables_on(engine, prefix), batch_size=batch_size, refresh_grace_seconds=grace
        )
    finally:
        await engine.dispose()


async def _until_signalled(
    url: str, prefix: str, batch_size: int, grace: int, interval: int
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        # Not available on Windows event loops or outside the main thread: Ctrl-C then
        # arrives as KeyboardInterrupt instead.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    engine = create_engine(url)
    try:
        await sweep_periodically(
            engine,
            tables_on(engine, prefix),
            interval_seconds=interval,
            stop=stop,
            batch_size=batch_size,
            refresh_grace_seconds=grace,
        )
        click.echo("stopped", err=True)
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        await engine.dispose()
