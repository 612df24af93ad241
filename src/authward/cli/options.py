"""Command-line options shared by several ``authward`` sub-commands.

Spec: authward spec/stores.md §1.2 (``migrate``) and §4.2 "Runners" (``sweep``): the database
they run against.
"""

from __future__ import annotations

from typing import Final

import click

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
