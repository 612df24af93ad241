"""Command-line options shared by several ``authward`` sub-commands, and their checks.

Spec: authward spec/stores.md §1.2 (``gen-migration``/``migrate``: table prefix resolution) and
§4.2 "Runners" (``sweep``): which database and which tables a command works on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, TypeVar

import click
from sqlalchemy.exc import ArgumentError

from authward.stores.sql.engine import UnsupportedDatabaseError, normalise_url

F = TypeVar("F", bound=Callable[..., object])

#: The environment variable ``--database-url`` falls back to.
DATABASE_URL_ENVVAR: Final = "AUTHWARD_DATABASE_URL"

#: ``--database-url URL``, required, read from ``AUTHWARD_DATABASE_URL`` when not given, so a
#: URL with a password need not appear in the process list. The command line wins over the
#: environment.
database_url_option: Final = click.option(
    "--database-url",
    envvar=DATABASE_URL_ENVVAR,
    required=True,
    metavar="URL",
    help=(
        "postgresql:// or sqlite:// URL. Defaults to the AUTHWARD_DATABASE_URL environment "
        "variable; prefer it for a URL with a password, which would otherwise show in ps."
    ),
)


def check_database_url(ctx: click.Context, url: str) -> None:
    """Exit with code 2 and a clear message unless ``url`` is a postgresql:// or sqlite:// URL."""
    try:
        normalise_url(url)
    except (UnsupportedDatabaseError, ArgumentError) as exc:
        click.echo(f"Error: invalid --database-url: {exc}", err=True)
        ctx.exit(2)


def table_prefix_options(command: F) -> F:
    """``--table-prefix`` and ``--settings``, the inputs of ``resolve_prefix`` (spec §1.2).

    ``--table-prefix`` defaults to None (an empty value counts as given), so the prefix can
    fall back to ``--settings`` and then to ``[tool.authward] table_prefix``.
    """
    command = click.option(
        "--settings",
        default=None,
        metavar="MODULE:ATTR",
        help="Read table_prefix (attribute or key) from this object when --table-prefix is absent.",
    )(command)
    return click.option(
        "--table-prefix",
        default=None,
        help="Prefix for every table name, e.g. oauth_. An empty value counts as given.",
    )(command)
