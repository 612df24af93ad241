"""The ``authward keys`` commands: generate, rotate and show the signing keys.

Spec: RFC 7517 §5 (JWK Set); OIDC Core 1.0 §10.1.1 (signing key rotation); authward
ARCHITECTURE.md (layer ``cli``).

The key file defaults to ``./authward-keys.json`` (in the working directory); ``--file`` picks
another. It holds PRIVATE keys and is written with mode 0600. ``show`` only ever prints the
public JWK Set; there is deliberately no option to print private keys.

Exit codes: 0 done, 2 usage error (including refusing to overwrite an existing key file without
``--force``), 1 the key file cannot be read or written.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from authward.core.clock import SystemClock
from authward.core.jose import SIGNING_ALGORITHMS, SigningAlgorithm
from authward.core.keys import DEFAULT_KEY_FILE, KeyFileError, KeySet, load_key_file, save_key_file

DEFAULT_ALGORITHMS: tuple[SigningAlgorithm, ...] = ("ES256", "RS256")
DEFAULT_MAX_TOKEN_LIFETIME = 86_400

_file_option = click.option(
    "--file",
    "path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=DEFAULT_KEY_FILE,
    show_default=True,
    help="The private key file (a JWK Set written with mode 0600).",
)
_lifetime_option = click.option(
    "--max-token-lifetime",
    type=click.IntRange(min=0),
    default=DEFAULT_MAX_TOKEN_LIFETIME,
    show_default=True,
    metavar="SECONDS",
    help="Longest lifetime of any token signed with these keys, plus clock leeway: retired "
    "keys stay published this long after retirement.",
)


@click.group("keys")
def keys() -> None:
    """Manage the signing keys (default file: ./authward-keys.json)."""


@keys.command("generate")
@_file_option
@click.option(
    "--alg",
    "algorithms",
    multiple=True,
    type=click.Choice(SIGNING_ALGORITHMS),
    help="Algorithm to create an active and a next key for. Repeatable. "
    "Default: ES256 and RS256 (OIDC requires RS256 for ID tokens).",
)
@click.option("--force", is_flag=True, help="Replace an existing key file (its keys are lost).")
def generate(path: Path, algorithms: tuple[SigningAlgorithm, ...], force: bool) -> None:
    """Create a new key file with one active and one published next key per algorithm."""
    if path.exists() and not force:
        raise click.UsageError(
            f"{path} already exists; pass --force to replace it (its keys will be lost), "
            "or use `authward keys rotate`."
        )
    keyset = KeySet.generate(algorithms or DEFAULT_ALGORITHMS, now=SystemClock().now())
    try:
        save_key_file(keyset, path, overwrite=force)
    except FileExistsError as error:
        raise click.UsageError(f"{path} appeared meanwhile; pass --force to replace it") from error
    except OSError as error:
        raise click.ClickException(f"cannot write {path}: {error.strerror}") from error
    click.echo(f"wrote {len(keyset.keys)} keys ({', '.join(keyset.algorithms)}) to {path}")


@keys.command("rotate")
@_file_option
@_lifetime_option
def rotate(path: Path, max_token_lifetime: int) -> None:
    """Promote each published next key to active, retire the old one, publish a new next key.

    Retired keys older than --max-token-lifetime are dropped at the same time.
    """
    now = SystemClock().now()
    keyset = _load(path)
    rotated = keyset.rotate(now=now).prune(now=now, max_token_lifetime=max_token_lifetime)
    try:
        save_key_file(rotated, path, overwrite=True)
    except OSError as error:
        raise click.ClickException(f"cannot write {path}: {error.strerror}") from error
    for alg in rotated.algorithms:
        click.echo(f"{alg}: now signing with {rotated.signing_key(alg).kid}")


@keys.command("show")
@_file_option
@_lifetime_option
def show(path: Path, max_token_lifetime: int) -> None:
    """Print the public JWK Set (next, active and still-needed retired keys) as JSON."""
    keyset = _load(path)
    jwks = keyset.public_jwks(now=SystemClock().now(), max_token_lifetime=max_token_lifetime)
    click.echo(json.dumps(jwks, indent=2))


def _load(path: Path) -> KeySet:
    try:
        return load_key_file(path)
    except KeyFileError as error:
        raise click.ClickException(str(error)) from error
