"""The ``authward`` command: one click group, one module per sub-command.

Spec: authward ARCHITECTURE.md (layer ``cli``).
"""

from __future__ import annotations

import click

from authward.cli.gen_migration import gen_migration
from authward.cli.keys import keys
from authward.cli.migrate import migrate
from authward.cli.secret import secret
from authward.cli.serve import serve
from authward.cli.sweep import sweep


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="authward")
def cli() -> None:
    """authward: an OAuth 2.1 / OpenID Connect authorization server with its own persistence."""


cli.add_command(gen_migration)
cli.add_command(keys)
cli.add_command(migrate)
cli.add_command(secret)
cli.add_command(serve)
cli.add_command(sweep)


def main() -> None:
    """Console-script entry point."""
    cli()
