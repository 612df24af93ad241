"""The ``authward gen-migration`` command: write the frozen Alembic revision for the nine tables.

Spec: authward spec/stores.md §1.2 (options, targets, prefix resolution, refusals, exit codes).

Exit codes: 0 written, 2 usage or validation error (invalid prefix, no target, unsupported
dialect), 3 refused because a target already holds the revision. Nothing connects to a database.
"""

from __future__ import annotations

from pathlib import Path

import click

from authward.cli.options import table_prefix_options
from authward.migrations.generator import (
    GenerationError,
    generate,
    resolve_prefix,
    resolve_targets,
)


@click.command("gen-migration")
@click.option(
    "--alembic-config",
    "alembic_configs",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="An alembic.ini whose versions directory receives the revision. Repeatable.",
)
@click.option(
    "--database-url",
    "database_urls",
    multiple=True,
    metavar="URL",
    help="For hosts without alembic.ini: a postgresql:// or sqlite:// URL (never connected), "
    "paired with --migrations-path. Repeatable.",
)
@click.option(
    "--migrations-path",
    "migrations_paths",
    multiple=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Directory the revision is written to (created if missing).",
)
@table_prefix_options
@click.pass_context
def gen_migration(
    ctx: click.Context,
    alembic_configs: tuple[Path, ...],
    database_urls: tuple[str, ...],
    migrations_paths: tuple[Path, ...],
    table_prefix: str | None,
    settings: str | None,
) -> None:
    """Write an Alembic revision that creates the nine authward tables.

    The prefix falls back to --settings, then [tool.authward] table_prefix in pyproject.toml,
    then none. Without a target, ./alembic.ini or [tool.authward] alembic_config is used.
    """
    cwd = Path.cwd()
    try:
        prefix = resolve_prefix(table_prefix, settings, cwd)
        targets = resolve_targets(alembic_configs, database_urls, migrations_paths, cwd)
        written = generate(targets, prefix)
    except GenerationError as exc:
        click.echo(f"Error: {exc}", err=True)
        ctx.exit(exc.exit_code)
    for item in written:
        down = "none" if item.down_revision is None else repr(item.down_revision)
        click.echo(f"wrote {item.path} (revision {item.revision}, down_revision {down})")
