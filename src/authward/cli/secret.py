"""The ``authward secret`` commands: make a client secret, and hash a secret for the host file.

Spec: RFC 6749 §2.3.1 (client passwords), §10.10 (guessing); RFC 6819 §5.1.4.1.3 (no cleartext
at rest), §5.1.4.2.2 (high-entropy secrets); authward ARCHITECTURE.md (layer ``cli``; generated
secrets as SHA-256 digests, argon2 for human-chosen ones).

* ``authward secret generate [--json]`` makes a new client secret (32 random bytes, 43
  base64url characters) and prints it ONCE, with the ``$sha256$`` digest to put in
  ``client_secret_hash``. Nothing is written anywhere; give the secret to the client and keep
  only the digest. ``--json`` prints ``{"client_secret": ..., "client_secret_hash": ...}``.
* ``authward secret hash --fast | --argon2`` reads one secret from standard input (never from
  the command line, where ``ps`` and shell history would see it; on a terminal it asks twice
  without echo) and prints only its at-rest form: ``--fast`` the ``$sha256$`` digest, for a
  generated secret of at least 43 characters (a shorter or obviously non-random one is
  refused); ``--argon2`` the argon2id hash, for a password or any secret a person chose.
  One trailing newline is dropped; a secret must be one line.

Exit codes: 0 done, 1 the secret was refused (empty, several lines, or too weak for
``--fast``), 2 usage errors (including neither ``--fast`` nor ``--argon2``).
"""

from __future__ import annotations

import json
import sys

import click

from authward.core.defaults.hashing import generate_client_secret, hash_secret

__all__ = ["secret"]


@click.group("secret")
def secret() -> None:
    """Make client secrets and hash secrets for the host file (see `secret COMMAND -h`)."""


@secret.command("generate")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (for scripts).")
def generate(as_json: bool) -> None:
    """Print a new random client secret ONCE, and the $sha256$ digest to store."""
    made = generate_client_secret()
    if as_json:
        click.echo(json.dumps({"client_secret": made.secret, "client_secret_hash": made.digest}))
        return
    click.echo(f"client secret: {made.secret}")
    click.echo(f"client_secret_hash = {json.dumps(made.digest)}")
    click.echo(
        "The secret is shown only now: give it to the client. Put the client_secret_hash line "
        "in the client's [[clients]] table.",
        err=True,
    )


@secret.command("hash")
@click.option("--fast", "form", flag_value="fast",
              help="The $sha256$ digest, for a generated secret of at least 43 characters.")
@click.option("--argon2", "form", flag_value="argon2",
              help="The argon2id hash, for a password or a secret a person chose.")
def hash_command(form: str | None) -> None:
    """Read a secret from standard input and print its at-rest form (one of the options)."""
    if form is None:
        raise click.UsageError(
            "choose --fast (a generated client secret, checked in microseconds) or --argon2 "
            "(a password or human-chosen secret)"
        )
    plain = _read_secret()
    try:
        hashed = hash_secret(plain, fast=form == "fast")
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    click.echo(hashed)


def _read_secret() -> str:
    stdin = sys.stdin
    if stdin.isatty():
        text: str = click.prompt(
            "Secret", hide_input=True, confirmation_prompt=True, err=True, default="",
            show_default=False,
        )
    else:
        text = stdin.read()
        if text.endswith("\r\n"):
            text = text[:-2]
        elif text.endswith("\n"):
            text = text[:-1]
    if not text:
        raise click.ClickException("no secret on standard input")
    if "\n" in text or "\r" in text:
        raise click.ClickException("the secret must be one line")
    return text
