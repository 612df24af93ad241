"""The ``authward serve`` command: run the authorization server with uvicorn, demo-ready.

Spec: authward ARCHITECTURE.md (layer ``cli``); RFC 8414 §3 (discovery URL printed);
RFC 7636 §4.1-§4.2 (the printed PKCE pair); RFC 8252 §7.3 (the demo public client's loopback
redirect URIs, any port); RFC 6819 §5.1.4.2.2 (only hashes of secrets are stored).

Without ``--config`` it runs in **demo mode** in the working directory: it creates ``./var/``
with the SQLite database ``var/authward.db``, the key file ``var/authward-keys.json`` (ES256 and
RS256) and ``var/authward-demo.toml`` (mode 0600): a confidential client ``demo-confidential``
(``client_secret_basic``), a public client ``demo-public`` (PKCE, loopback redirect URIs), the
user ``demo``, a refresh successor key and a login-cookie secret. The client secret and the
password are random, printed ONCE when the file is created, and stored only as digests (the
secret as a fast ``$sha256$`` digest, the password as argon2):
later starts reuse the files and cannot print them again (delete the demo file for new ones).
Demo mode also serves ``/demo/callback``, a page showing the authorization response, so a
person can finish a code flow in a browser and exchange the code with ``curl``. The demo turns
on every flow: the clients may use the device authorization grant (RFC 8628; the banner drives
it with the confidential client, as a public device client must also send DPoP proofs); both
clients register ``/demo/signed-out`` as their ``post_logout_redirect_uri`` and the demo
receiver ``/demo/backchannel-logout`` as their ``backchannel_logout_uri`` (OIDC RP-Initiated and
Back-Channel Logout; ``[authward.logout] allow_loopback`` lets delivery reach this machine); and
Client ID Metadata Documents are enabled for public https document hosts.

With ``--config FILE`` the file (``[authward]`` settings, ``[[clients]]``, ``[[users]]``,
``[login]``, ``[consent]``; see ``authward.cli.wiring``) is used as is and nothing is printed
about clients or users. The database URL defaults to ``var/authward.db`` and the key file to
``var/authward-keys.json`` in both modes; a missing key file is created.

The schema (every missing table, with the configured prefix) is created before serving.
``--workers N`` (N > 1) runs uvicorn's process manager on the import string
``authward.cli.serve:app_from_environment`` (an app factory): the parent passes the resolved
configuration to the workers in the ``AUTHWARD_SERVE_*`` environment variables and
``AUTHWARD_DATABASE_URL``. Use SQLite with several workers only on one machine; every worker
shares the database, the key file and the login-cookie secret.

Exit codes: 0 after a clean shutdown (Ctrl-C / SIGINT or SIGTERM), 1 when the configuration,
key file or database cannot be used, 2 usage errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import os
import secrets
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode

import click
import uvicorn
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from authward.asgi.app import App
from authward.asgi.demo import (
    DEMO_BACKCHANNEL_LOGOUT_PATH,
    DEMO_CALLBACK_PATH,
    DEMO_SIGNED_OUT_PATH,
)
from authward.cli.http_protocol import HeaderDeadlineProtocol
from authward.cli.options import DATABASE_URL_ENVVAR, check_database_url
from authward.cli.wiring import build_server, load_host_config, load_settings
from authward.core.clock import SystemClock
from authward.core.config import Settings, SettingsError
from authward.core.defaults import HostFileError, hash_secret
from authward.core.defaults.toml_file import load_toml, table
from authward.core.keys import KeyFileError, KeySet, save_key_file
from authward.core.pkce import s256_challenge
from authward.migrations.migrator import migrate_database
from authward.stores.errors import StoreError

__all__ = [
    "CONFIG_ENVVAR",
    "DEMO_CONFIDENTIAL_CLIENT_ID",
    "DEMO_PUBLIC_CLIENT_ID",
    "DEMO_USERNAME",
    "DemoFile",
    "RedactQueryStrings",
    "app_from_environment",
    "configure_logging",
    "ensure_demo_file",
    "serve",
]

VAR_DIR: Final = "var"
DATABASE_FILE: Final = "authward.db"
KEY_FILE: Final = "authward-keys.json"
DEMO_FILE: Final = "authward-demo.toml"
DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 8000

DEMO_CONFIDENTIAL_CLIENT_ID: Final = "demo-confidential"
DEMO_PUBLIC_CLIENT_ID: Final = "demo-public"
DEMO_USERNAME: Final = "demo"
DEMO_SCOPE: Final = "openid profile email offline_access"
DEVICE_CODE_GRANT: Final = "urn:ietf:params:oauth:grant-type:device_code"

#: Environment variables the parent sets for ``app_from_environment`` (``--workers`` > 1).
CONFIG_ENVVAR: Final = "AUTHWARD_SERVE_CONFIG"
KEY_FILE_ENVVAR: Final = "AUTHWARD_SERVE_KEY_FILE"
ISSUER_ENVVAR: Final = "AUTHWARD_SERVE_ISSUER"
DEMO_ENVVAR: Final = "AUTHWARD_SERVE_DEMO"
TOKEN_EVENTS_ENVVAR: Final = "AUTHWARD_SERVE_TOKEN_EVENTS"  # noqa: S105 - a variable name

_KEY_ALGORITHMS: Final = ("ES256", "RS256")
_FILE_MODE: Final = 0o600


@dataclass(frozen=True, slots=True)
class DemoFile:
    """The demo configuration file; ``client_secret`` and ``password`` are set only when this
    call created the file (they are not recoverable afterwards)."""

    path: Path
    created: bool
    client_secret: str | None = None
    password: str | None = None


def _toml(value: str) -> str:
    """A TOML basic string (JSON string escapes are valid TOML escapes)."""
    return json.dumps(value)


def _demo_document(issuer: str, client_secret: str, password: str) -> str:
    base = issuer.rstrip("/")
    callback = base + DEMO_CALLBACK_PATH
    logout_uris = (
        f"post_logout_redirect_uris = [{_toml(base + DEMO_SIGNED_OUT_PATH)}]",
        f"backchannel_logout_uri = {_toml(base + DEMO_BACKCHANNEL_LOGOUT_PATH)}",
    )
    lines = [
        "# authward demo configuration, written by `authward serve` on its first start.",
        "# The client secret is stored only as a $sha256$ digest and the password as an argon2",
        "# hash; both were printed once (delete this file for new ones). Keep it private, 0600:",
        "# it holds the login-cookie secret and the refresh successor key.",
        "",
        "[authward]",
        "# the issuer comes from --issuer (default http://127.0.0.1:<port>)",
        f"refresh_successor_keys = {{ demo-1 = {_toml(secrets.token_urlsafe(32))} }}",
        "",
        "[authward.logout]",
        "enabled = true",
        "# development only: the demo relying party's back-channel receiver is on this machine",
        "allow_loopback = true",
        "",
        "[authward.client_id_metadata]",
        "# a client_id that is an https URL is resolved from the document it serves",
        "enabled = true",
        "",
        "[login]",
        f"cookie_secret = {_toml(secrets.token_urlsafe(32))}",
        "",
        "[[clients]]",
        f"client_id = {_toml(DEMO_CONFIDENTIAL_CLIENT_ID)}",
        'client_name = "Demo confidential client"',
        'client_type = "confidential"',
        'token_endpoint_auth_method = "client_secret_basic"',
        f"client_secret_hash = {_toml(hash_secret(client_secret, fast=True))}",
        f"redirect_uris = [{_toml(callback)}]",
        'grant_types = ["authorization_code", "refresh_token", "client_credentials", '
        f'{_toml(DEVICE_CODE_GRANT)}]',
        f"scope = {_toml(DEMO_SCOPE)}",
        *logout_uris,
        "",
        "[[clients]]",
        f"client_id = {_toml(DEMO_PUBLIC_CLIENT_ID)}",
        'client_name = "Demo public client"',
        'client_type = "public"',
        'token_endpoint_auth_method = "none"',
        "native = true  # loopback redirect URIs match on any port (RFC 8252 section 7.3)",
        f'redirect_uris = ["http://127.0.0.1{DEMO_CALLBACK_PATH}", "http://127.0.0.1/callback"]',
        f'grant_types = ["authorization_code", "refresh_token", {_toml(DEVICE_CODE_GRANT)}]',
        f"scope = {_toml(DEMO_SCOPE)}",
        *logout_uris,
        "",
        "[[users]]",
        'subject = "demo-user"',
        f"username = {_toml(DEMO_USERNAME)}",
        f"password_hash = {_toml(hash_secret(password))}",
        "[users.claims]",
        'name = "Demo User"',
        'preferred_username = "demo"',
        'email = "demo@example.com"',
        "email_verified = true",
        "",
    ]
    return "\n".join(lines)


def ensure_demo_file(path: Path, *, issuer: str) -> DemoFile:
    """Create the demo configuration at ``path`` (mode 0600) unless it exists.

    A new file gets a random client secret and password (returned, stored only hashed); an
    existing file is reused as is and nothing secret is returned.
    """
    if path.exists():
        return DemoFile(path=path, created=False)
    client_secret = secrets.token_urlsafe(32)
    password = secrets.token_urlsafe(12)
    document = _demo_document(issuer, client_secret, password)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
    except FileExistsError:
        return DemoFile(path=path, created=False)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        os.fchmod(handle.fileno(), _FILE_MODE)
        handle.write(document)
    return DemoFile(path=path, created=True, client_secret=client_secret, password=password)


def _ensure_key_file(path: Path) -> bool:
    """Create a key file with ES256 and RS256 keys unless it exists; True when created."""
    if path.exists():
        return False
    keyset = KeySet.generate(_KEY_ALGORITHMS, now=SystemClock().now())
    try:
        save_key_file(keyset, path, overwrite=False)
    except FileExistsError:
        return False
    return True


def _display_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # a URL check follows; never echo a password here
        return "<database url>"


def _demo_banner(issuer: str, port: int, demo: DemoFile) -> list[str]:
    verifier = secrets.token_urlsafe(48)
    state = secrets.token_urlsafe(12)
    redirect_uri = f"http://127.0.0.1:{port}{DEMO_CALLBACK_PATH}"
    query = urlencode(
        {
            "response_type": "code",
            "client_id": DEMO_PUBLIC_CLIENT_ID,
            "redirect_uri": redirect_uri,
            "scope": "openid profile email",
            "state": state,
            "code_challenge": s256_challenge(verifier),
            "code_challenge_method": "S256",
        }
    )
    lines = [
        f"  public client:        {DEMO_PUBLIC_CLIENT_ID} (no secret; PKCE)",
        f"  confidential client:  {DEMO_CONFIDENTIAL_CLIENT_ID} (client_secret_basic)",
    ]
    if demo.created:
        lines += [
            f"  client secret:        {demo.client_secret}",
            f"  demo user:            {DEMO_USERNAME}",
            f"  password:             {demo.password}",
            "  (shown once: only their hashes are stored; delete "
            f"{VAR_DIR}/{DEMO_FILE} to get new ones)",
        ]
    else:
        lines += [
            f"  demo user:            {DEMO_USERNAME}",
            "  the client secret and the password were printed when "
            f"{VAR_DIR}/{DEMO_FILE} was created",
            "  (only their hashes are stored; delete that file to get new ones)",
        ]
    lines += [
        "",
        "Try it in a browser: open this authorization URL, sign in as "
        f"{DEMO_USERNAME!r} and approve:",
        f"  {issuer}/authorize?{query}",
        f"  code verifier:        {verifier}",
        "Then exchange the code shown on the /demo/callback page (within a minute):",
        f"  curl -s {issuer}/token -d grant_type=authorization_code "
        f"-d client_id={DEMO_PUBLIC_CLIENT_ID} -d redirect_uri={redirect_uri} "
        f"-d code_verifier={verifier} -d code=CODE",
        "Sign out (RP-initiated logout; back-channel logout tokens go to the demo receiver, "
        f"listed at {issuer}{DEMO_BACKCHANNEL_LOGOUT_PATH}):",
        f"  {issuer}/end_session?"
        + urlencode(
            {
                "client_id": DEMO_PUBLIC_CLIENT_ID,
                "post_logout_redirect_uri": f"{issuer}{DEMO_SIGNED_OUT_PATH}",
                "state": "bye",
            }
        )
        + "&id_token_hint=ID_TOKEN",
        "Device flow (RFC 8628): start it as the device, open the verification_uri_complete "
        "it returns, approve, then poll (a public device client must also send DPoP proofs):",
        f"  curl -s -u {DEMO_CONFIDENTIAL_CLIENT_ID}:CLIENT_SECRET {issuer}/device_authorization "
        "-d scope=openid",
        f"  curl -s -u {DEMO_CONFIDENTIAL_CLIENT_ID}:CLIENT_SECRET {issuer}/token "
        f"-d grant_type={DEVICE_CODE_GRANT} -d device_code=DEVICE_CODE",
        "Client ID Metadata Documents: use any https URL that serves a client metadata "
        "document (client_id equal to that URL) as the client_id of an authorization request.",
    ]
    return lines


def _prepare(database_url: str, settings: Settings) -> list[str]:
    report = asyncio.run(migrate_database(database_url, settings.table_prefix))
    return [*report.created_tables]


@click.command("serve")
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="The host TOML file ([authward] settings, [[clients]], [[users]], [login], "
    "[consent]). Without it: demo mode with files in ./var/.",
)
@click.option(
    "--database-url",
    envvar=DATABASE_URL_ENVVAR,
    default=None,
    metavar="URL",
    help="postgresql:// or sqlite:// URL (also AUTHWARD_DATABASE_URL). "
    "Default: sqlite:///var/authward.db in the working directory.",
)
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="Address to bind.")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True,
    help="Port to bind.",
)
@click.option(
    "--workers", type=click.IntRange(min=1), default=1, show_default=True,
    help="uvicorn worker processes (more than one uses the app factory "
    "authward.cli.serve:app_from_environment).",
)
@click.option(
    "--key-file", type=click.Path(path_type=Path, dir_okay=False), default=None,
    help="The signing key file (created if missing). Default: var/authward-keys.json.",
)
@click.option(
    "--issuer", default=None,
    help="The issuer URL (https; http only for localhost/127.0.0.1). Default: the config "
    "file's [authward] issuer, else http://127.0.0.1:<port>.",
)
@click.option(
    "--access-log/--no-access-log", "access_log", default=None,
    help="uvicorn's per-request access log (query strings redacted). Default: on in demo "
    "mode, off with --config (authward's own events are logged either way).",
)
@click.option(
    "--token-events/--no-token-events", "token_events", default=None,
    help="Log a token.issued / token.refused event line per token request. Default: on in "
    "demo mode, off with --config (other events are logged either way).",
)
@click.pass_context
def serve(
    ctx: click.Context,
    config_file: Path | None,
    database_url: str | None,
    host: str,
    port: int,
    workers: int,
    key_file: Path | None,
    issuer: str | None,
    access_log: bool | None,
    token_events: bool | None,
) -> None:
    """Run the authorization server (demo mode without --config; see the module docs)."""
    var = Path.cwd() / VAR_DIR
    demo_mode = config_file is None
    needs_var = demo_mode or database_url is None or key_file is None
    if needs_var:
        var.mkdir(mode=0o700, exist_ok=True)
    database_url = database_url or f"sqlite:///{var / DATABASE_FILE}"
    check_database_url(ctx, database_url)
    key_file = key_file or var / KEY_FILE
    demo: DemoFile | None = None
    if access_log is None:
        access_log = demo_mode
    if token_events is None:
        token_events = demo_mode
    try:
        if issuer is None:
            issuer = load_settings_issuer(config_file) or f"http://127.0.0.1:{port}"
        if demo_mode:
            demo = ensure_demo_file(var / DEMO_FILE, issuer=issuer)
            config_file = demo.path
        settings = load_settings(config_file, issuer=issuer)
        load_host_config(config_file)  # fail before anything is created or printed
        key_created = _ensure_key_file(key_file)
        created_tables = _prepare(database_url, settings)
    except (SettingsError, HostFileError, KeyFileError) as exc:
        raise click.ClickException(str(exc)) from exc
    except (SQLAlchemyError, StoreError, OSError) as exc:
        raise click.ClickException(f"cannot prepare the database: {exc}") from exc

    issuer_url = settings.issuer.rstrip("/")
    lines = [
        f"authward serve: {'demo mode' if demo_mode else 'configuration ' + str(config_file)}",
        f"  issuer:               {issuer_url}",
        f"  discovery:            {issuer_url}/.well-known/openid-configuration",
        f"  database:             {_display_url(database_url)}"
        + (f" (created {len(created_tables)} tables)" if created_tables else ""),
        f"  signing keys:         {key_file}" + (" (created)" if key_created else ""),
    ]
    if demo is not None:
        lines.append(f"  demo configuration:   {demo.path}" + (" (created)" if demo.created
                                                                  else ""))
        lines += _demo_banner(issuer_url, port, demo)
    lines.append(f"Listening on http://{host}:{port} (Ctrl-C to stop)")
    click.echo("\n".join(lines))

    if workers > 1:
        os.environ[DATABASE_URL_ENVVAR] = database_url
        os.environ[KEY_FILE_ENVVAR] = str(key_file)
        os.environ[ISSUER_ENVVAR] = issuer_url
        if config_file is not None:
            os.environ[CONFIG_ENVVAR] = str(config_file)
        os.environ[DEMO_ENVVAR] = "1" if demo_mode else "0"
        os.environ[TOKEN_EVENTS_ENVVAR] = "1" if token_events else "0"
        uvicorn.run(
            "authward.cli.serve:app_from_environment",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            lifespan="on",
            log_config=uvicorn_log_config(),
            http=HeaderDeadlineProtocol,
            access_log=access_log,
        )
        return
    try:
        app = build_server(
            settings,
            database_url=database_url,
            key_file=key_file,
            config_file=config_file,
            demo=demo_mode,
        ).app
    except (SettingsError, HostFileError, KeyFileError) as exc:
        raise click.ClickException(str(exc)) from exc
    configure_logging(token_events=token_events)
    server = _Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            lifespan="on",
            log_config=uvicorn_log_config(),
            http=HeaderDeadlineProtocol,
            access_log=access_log,
        )
    )
    server.run()
    if not server.started:
        ctx.exit(1)


def configure_logging(*, token_events: bool = False) -> None:
    """Send authward's own log records (``authward.*``: events such as ``logout.delivered``,
    warnings, errors) at INFO and above to stderr, next to uvicorn's; with ``token_events``
    also the per-request ``token.issued``/``token.refused`` events (DEBUG on
    ``authward.events``, see ``LoggingEventSink``).

    Nothing changes when the ``authward`` logger already has a handler (a host configured it).
    """
    logger = logging.getLogger("authward")
    if logger.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    if token_events:
        logging.getLogger("authward.events").setLevel(logging.DEBUG)


class RedactQueryStrings(logging.Filter):
    """Drop the query string from uvicorn's access log lines.

    Query strings carry secrets: the authorization ``code`` on a redirect URI (the demo
    callback), ``user_code`` on the device page, ``id_token_hint`` at end-session. The access log
    keeps the method, the path and the status.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            path, separator, _ = args[2].partition("?")
            if separator:
                record.args = (*args[:2], f"{path}?[redacted]", *args[3:])
        return True


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's default logging configuration with :class:`RedactQueryStrings` on the access
    log handler."""
    config: dict[str, Any] = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config.setdefault("filters", {})["redact_query"] = {"()": RedactQueryStrings}
    config["handlers"]["access"]["filters"] = ["redact_query"]
    return config


class _Server(uvicorn.Server):
    """uvicorn's server, except that SIGINT/SIGTERM end in a clean exit (status 0) after the
    graceful shutdown instead of being re-raised (which ends in KeyboardInterrupt)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        handled = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


def load_settings_issuer(config_file: Path | None) -> str | None:
    """The ``[authward] issuer`` of ``config_file`` if it sets one."""
    if config_file is None:
        return None
    section = table("authward", load_toml(config_file).get("authward", {}))
    value = section.get("issuer")
    return value if isinstance(value, str) and value else None


def app_from_environment() -> App:
    """The app factory uvicorn workers call (``--factory``): built from ``AUTHWARD_SERVE_*``.

    Reads ``AUTHWARD_SERVE_CONFIG`` (host TOML file, optional), ``AUTHWARD_DATABASE_URL``,
    ``AUTHWARD_SERVE_KEY_FILE``, ``AUTHWARD_SERVE_ISSUER`` (optional when the file sets one)
    ``AUTHWARD_SERVE_DEMO`` (``1``: serve the demo callback page) and
    ``AUTHWARD_SERVE_TOKEN_EVENTS`` (``1``: log the per-request token events).
    ``authward serve`` sets them; a process manager may set them itself after running
    ``authward migrate`` once.
    """
    environ = os.environ
    config = environ.get(CONFIG_ENVVAR)
    config_file = Path(config) if config else None
    database_url = environ.get(DATABASE_URL_ENVVAR)
    key_file = environ.get(KEY_FILE_ENVVAR)
    if not database_url or not key_file:
        raise SettingsError(
            "environment", f"{DATABASE_URL_ENVVAR} and {KEY_FILE_ENVVAR} must be set"
        )
    settings = load_settings(config_file, issuer=environ.get(ISSUER_ENVVAR) or None)
    configure_logging(token_events=environ.get(TOKEN_EVENTS_ENVVAR) == "1")
    built = build_server(
        settings,
        database_url=database_url,
        key_file=Path(key_file),
        config_file=config_file,
        demo=environ.get(DEMO_ENVVAR) == "1",
    )
    return built.app
