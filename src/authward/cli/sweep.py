"""Placeholder for the `authward sweep` command (being written)."""

import click


@click.command("sweep")
def sweep() -> None:
    """Not written yet."""
    raise click.ClickException("not implemented yet")
