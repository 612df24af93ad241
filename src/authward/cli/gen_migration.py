"""Placeholder for the `authward gen-migration` command (being written)."""

import click


@click.command("gen-migration")
def gen_migration() -> None:
    """Not written yet."""
    raise click.ClickException("not implemented yet")
