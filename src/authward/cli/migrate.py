"""Placeholder for the `authward migrate` command (being written)."""

import click


@click.command("migrate")
def migrate() -> None:
    """Not written yet."""
    raise click.ClickException("not implemented yet")
