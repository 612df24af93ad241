"""The ``authward migrate`` command: create the nine tables directly, without Alembic.

Spec: authward spec/stores.md §1.2, §2.12, §7 item 10.

Exit codes: 0 the schema matches, 1 differences remain that it cannot fix (or the database
failed), 2 usage or validation error (invalid prefix, unsupported database).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import click
from sqlalchemy.exc import SQLAlchemyError

from authward.cli.options import check_database_url, database_url_option, table_prefix_options
from authward.migrations.generator import GenerationError, resolve_prefix
from authward.migrations.migrator import migrate_database


@click.command("migrate")
@database_url_option
@table_prefix_options
@click.pass_context
def migrate(
    ctx: click.Context, database_url: str, table_prefix: str | None, settings: str | None
) -> None:
    """Create every missing authward table and index, then report remaining differences.

    For hosts without Alembic and for the embedded SQLite default. Never creates a version
    table; running it again creates nothing.
    """
    try:
        prefix = resolve_prefix(table_prefix, settings, Path.cwd())
    except GenerationError as exc:
        click.echo(f"Error: {exc}", err=True)
        ctx.exit(exc.exit_code)
    check_database_url(ctx, database_url)
    try:
        report = asyncio.run(migrate_database(database_url, prefix))
    except (SQLAlchemyError, OSError) as exc:
        click.echo(f"Error: migration failed: {exc}", err=True)
        ctx.exit(1)
    for name in report.created_tables:
        click.echo(f"created table {name}")
    for name in report.created_indexes:
        click.echo(f"created index {name}")
    if report.differences:
        click.echo("the schema still differs from authward's tables:", err=True)
        for line in report.differences:
            click.echo(f"  {line}", err=True)
        ctx.exit(1)
    if not report.changed:
        click.echo("schema is up to date")
