"""Wiring for a real server: settings, database, keys and host files into one ASGI app.

Spec: authward ARCHITECTURE.md (layer ``cli`` wires everything); spec/stores.md §1.2 (one table
prefix for every store), §3.2.6 (successor keys), §2.12 (engines).

:func:`build_server` is the one place that turns configuration into a running
``AuthorizationServer`` and its Starlette app. ``authward serve`` uses it, and so can a host or
a test that wants the same server in-process::

    built = build_server(settings, database_url="sqlite:///var/authward.db",
                         key_file=Path("var/authward-keys.json"),
                         config_file=Path("authward.toml"))
    # built.app is an ASGI app; its lifespan disposes the engine on shutdown.

With ``sweep_interval_seconds`` set, the app's lifespan also runs an in-process
:class:`~authward.stores.sql.sweep_runner.SweepRunner` (first sweep one interval after start,
stopped on shutdown) with the server's refresh grace window, so a single ``authward serve``
keeps its tables trim without a separate ``authward sweep --interval``. Every node may run one:
sweeps are idempotent batched deletes.

The schema is NOT created here (run :func:`prepare_database` or ``authward migrate`` once,
before any worker starts).

The host file (``config_file``) is one TOML document:

* ``[authward]``: the :class:`~authward.core.config.Settings` (read by the caller, e.g. with
  :func:`load_settings`; ``build_server`` takes the ``Settings`` object);
* ``[[clients]]`` and ``[[users]]``: the default client registry and user directory
  (``authward.core.defaults``; client secrets as fast ``$sha256$`` digests or argon2 hashes,
  passwords as argon2 hashes, all argon2 work through one bounded verifier);
* ``[login]``: ``cookie_secret`` (at least 32 bytes, shared by every worker and node), an
  optional ``lifetime`` in seconds, and the failed sign-in limit per username
  ``max_failed_logins`` (default 10) per ``failed_login_window_seconds`` (default 900), and the
  growing delay before each check once ``free_failures`` (default 2) are spent:
  ``failure_delay_seconds`` (default 1, 0 turns it off) doubling up to
  ``max_failure_delay_seconds`` (default 8);
* ``[consent]``: optional ``first_party_clients``, client ids that never show the consent page.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from argon2 import PasswordHasher
from sqlalchemy.ext.asyncio import AsyncEngine

from authward.asgi.app import App, Resource, create_app
from authward.asgi.demo import demo_routes
from authward.asgi.pages import (
    DEFAULT_FAILED_LOGIN_WINDOW_SECONDS,
    DEFAULT_LOGIN_DELAY,
    DEFAULT_MAX_FAILED_LOGINS,
    LoginPage,
)
from authward.cli.sweep import tables_on
from authward.core.attempt_limits import GrowingDelay
from authward.core.clock import Clock, SystemClock
from authward.core.config import Settings, SettingsError
from authward.core.defaults import (
    MIN_COOKIE_SECRET_BYTES,
    AllowRequestedScopes,
    AlwaysAskConsent,
    Argon2Verifier,
    FileClientRegistry,
    FileUserDirectory,
    HostFileError,
    LoggingEventSink,
    SignedCookieLogin,
)
from authward.core.defaults.toml_file import check_keys, load_toml, table
from authward.core.keys import load_key_file
from authward.core.server import AuthorizationServer, EndpointPaths, HostPolicy, Stores
from authward.core.ssrf import GuardedFetcher
from authward.migrations.migrator import MigrationReport, migrate_engine
from authward.stores.sql.client_metadata import SqlClientMetadataCache
from authward.stores.sql.codes import SqlAuthorizationCodeStore
from authward.stores.sql.consent import SqlConsentGrantStore
from authward.stores.sql.device_codes import SqlDeviceCodeStore
from authward.stores.sql.dpop_nonces import SqlDpopNonceStore
from authward.stores.sql.engine import create_engine
from authward.stores.sql.logout_sessions import SqlLogoutSessionStore
from authward.stores.sql.par import SqlPushedAuthorizationRequestStore
from authward.stores.sql.refresh import SqlRefreshTokenStore
from authward.stores.sql.replay import SqlReplayStore
from authward.stores.sql.sweep_runner import SweepRunner

__all__ = [
    "DEFAULT_LOGIN_LIFETIME",
    "BuiltServer",
    "HostConfig",
    "build_server",
    "build_stores",
    "load_host_config",
    "load_settings",
    "prepare_database",
]

_LOG = logging.getLogger("authward.cli")
#: How long a default login session lasts unless ``[login] lifetime`` says otherwise.
DEFAULT_LOGIN_LIFETIME: Final = 8 * 3600
_LOGIN_KEYS: Final = frozenset(
    {
        "cookie_secret",
        "lifetime",
        "max_failed_logins",
        "failed_login_window_seconds",
        "free_failures",
        "failure_delay_seconds",
        "max_failure_delay_seconds",
    }
)
_CONSENT_KEYS: Final = frozenset({"first_party_clients"})
#: Upper bound of ``[login] max_failed_logins``: a locked check scans up to twice this many
#: replay keys (authward.core.attempt_limits), so the budget stays small.
_MAX_FAILED_LOGINS_CAP: Final = 1000


@dataclass(frozen=True, slots=True)
class HostConfig:
    """What the host file holds besides the settings: clients, users, login and consent."""

    clients: FileClientRegistry
    users: FileUserDirectory
    login_secret: bytes | None
    login_lifetime: int | None
    first_party_clients: tuple[str, ...]
    max_failed_logins: int = DEFAULT_MAX_FAILED_LOGINS
    failed_login_window_seconds: int = DEFAULT_FAILED_LOGIN_WINDOW_SECONDS
    login_delay: GrowingDelay = DEFAULT_LOGIN_DELAY


@dataclass(frozen=True, slots=True)
class BuiltServer:
    """A wired server: the ``server``, its ASGI ``app`` and the ``resources`` the app's lifespan
    closes on shutdown (the engine). ``engine`` and ``host`` are exposed for callers that
    prepare the schema or inspect the configuration."""

    server: AuthorizationServer
    app: App
    resources: tuple[Resource, ...]
    engine: AsyncEngine
    host: HostConfig
    sweeper: SweepRunner | None = None


def load_settings(
    config_file: Path | None, *, issuer: str | None = None, **overrides: object
) -> Settings:
    """The settings from ``config_file``'s ``[authward]`` table (none: defaults only).

    ``issuer`` (when given) and ``overrides`` replace the file's values. Raises
    ``SettingsError`` naming the bad key, or ``HostFileError`` when the file cannot be read.
    """
    data: dict[str, object] = {}
    if config_file is not None:
        document = load_toml(config_file)
        section = document.get("authward", {})
        if not isinstance(section, Mapping):
            raise SettingsError("authward", "must be a table")
        data.update(section)
    if issuer is not None:
        data["issuer"] = issuer
    data.update(overrides)
    return Settings.from_mapping(data)


def load_host_config(
    config_file: Path | None, *, hasher: PasswordHasher | None = None
) -> HostConfig:
    """Read clients, users, ``[login]`` and ``[consent]`` from ``config_file``.

    ``None`` gives an empty registry and directory and no login secret. Raises
    ``HostFileError`` naming the first bad key. The registry and the directory share one
    :class:`Argon2Verifier`, so at most one argon2 computation per CPU runs at a time.
    """
    verifier = Argon2Verifier(hasher)
    if config_file is None:
        return HostConfig(
            clients=FileClientRegistry({}, {}, verifier=verifier),
            users=FileUserDirectory((), verifier=verifier),
            login_secret=None,
            login_lifetime=None,
            first_party_clients=(),
        )
    document = load_toml(config_file)
    login = table("login", document.get("login", {}))
    check_keys("login", login, _LOGIN_KEYS)
    secret_text = login.get("cookie_secret")
    login_secret: bytes | None = None
    if secret_text is not None:
        if not isinstance(secret_text, str):
            raise HostFileError("login.cookie_secret", "must be a string")
        login_secret = secret_text.encode("utf-8")
        if len(login_secret) < MIN_COOKIE_SECRET_BYTES:
            raise HostFileError(
                "login.cookie_secret", f"must be at least {MIN_COOKIE_SECRET_BYTES} bytes"
            )
    lifetime = login.get("lifetime")
    if lifetime is not None and (type(lifetime) is not int or lifetime <= 0):
        raise HostFileError("login.lifetime", "must be a positive number of seconds")
    max_failed = login.get("max_failed_logins", DEFAULT_MAX_FAILED_LOGINS)
    if type(max_failed) is not int or not 1 <= max_failed <= _MAX_FAILED_LOGINS_CAP:
        raise HostFileError(
            "login.max_failed_logins",
            f"must be an integer from 1 to {_MAX_FAILED_LOGINS_CAP} (failed sign-ins allowed "
            "per username and window)",
        )
    failure_window = login.get("failed_login_window_seconds", DEFAULT_FAILED_LOGIN_WINDOW_SECONDS)
    if type(failure_window) is not int or failure_window <= 0:
        raise HostFileError(
            "login.failed_login_window_seconds", "must be a positive number of seconds"
        )
    login_delay = _login_delay(login)
    consent = table("consent", document.get("consent", {}))
    check_keys("consent", consent, _CONSENT_KEYS)
    first_party = consent.get("first_party_clients", [])
    if not isinstance(first_party, list) or not all(
        isinstance(item, str) and item for item in first_party
    ):
        raise HostFileError("consent.first_party_clients", "must be an array of client ids")
    return HostConfig(
        clients=FileClientRegistry.from_mapping(document, verifier=verifier),
        users=FileUserDirectory.from_mapping(document, verifier=verifier),
        login_secret=login_secret,
        login_lifetime=lifetime,
        first_party_clients=tuple(first_party),
        max_failed_logins=max_failed,
        failed_login_window_seconds=failure_window,
        login_delay=login_delay,
    )


def _login_delay(login: Mapping[str, object]) -> GrowingDelay:
    """``[login]``'s growing delay (``HostFileError`` naming the bad key)."""
    default = DEFAULT_LOGIN_DELAY
    free = login.get("free_failures", default.free_failures)
    if type(free) is not int or free < 0:
        raise HostFileError("login.free_failures", "must be an integer of at least 0")
    seconds: dict[str, float] = {}
    for key, value in (
        ("failure_delay_seconds", login.get("failure_delay_seconds", default.first_seconds)),
        ("max_failure_delay_seconds", login.get("max_failure_delay_seconds", default.max_seconds)),
    ):
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 60:
            raise HostFileError(f"login.{key}", "must be a number of seconds from 0 to 60")
        seconds[key] = float(value)
    first, most = seconds["failure_delay_seconds"], seconds["max_failure_delay_seconds"]
    if most < first:
        raise HostFileError(
            "login.max_failure_delay_seconds", "must be at least login.failure_delay_seconds"
        )
    return GrowingDelay(free_failures=free, first_seconds=first, max_seconds=most)


def build_stores(engine: AsyncEngine, settings: Settings, *, clock: Clock) -> Stores:
    """The nine SQL stores on ``engine`` with ``settings.table_prefix`` and successor keys."""
    prefix = settings.table_prefix
    successor = {key.kid: key.secret for key in settings.refresh_successor_keys}
    return Stores(
        authorization_codes=SqlAuthorizationCodeStore(engine, table_prefix=prefix, clock=clock),
        refresh_tokens=SqlRefreshTokenStore(
            engine,
            table_prefix=prefix,
            clock=clock,
            successor_keys=successor or None,
            active_kid=settings.refresh_successor_active_kid,
        ),
        device_codes=SqlDeviceCodeStore(engine, table_prefix=prefix, clock=clock),
        logout_sessions=SqlLogoutSessionStore(engine, table_prefix=prefix, clock=clock),
        dpop_nonces=SqlDpopNonceStore(engine, table_prefix=prefix, clock=clock),
        replay=SqlReplayStore(engine, table_prefix=prefix, clock=clock),
        pushed_authorization_requests=SqlPushedAuthorizationRequestStore(
            engine, table_prefix=prefix, clock=clock
        ),
        client_metadata=SqlClientMetadataCache(engine, table_prefix=prefix, clock=clock),
        consent_grants=SqlConsentGrantStore(engine, table_prefix=prefix, clock=clock),
    )


def build_server(
    settings: Settings,
    *,
    database_url: str,
    key_file: Path,
    config_file: Path | None,
    login_secret: bytes | None = None,
    demo: bool = False,
    clock: Clock | None = None,
    fetcher: GuardedFetcher | None = None,
    hasher: PasswordHasher | None = None,
    engine_options: Mapping[str, object] | None = None,
    extra_resources: Sequence[Resource] = (),
) -> BuiltServer:
    """Wire a complete server (stable signature; keyword arguments after ``settings``).

    * ``database_url``: ``sqlite://`` or ``postgresql://``; the engine comes from
      ``authward.stores.sql.engine.create_engine`` (with ``engine_options``) and is disposed
      by the app's lifespan.
    * ``key_file``: the signing key file (``authward keys generate``); ``KeyFileError`` when
      it cannot be read.
    * ``config_file``: the host TOML file (see the module docstring); ``None`` serves no
      clients and no users.
    * ``login_secret``: overrides ``[login] cookie_secret``. With neither, a random secret is
      made for this process (logged as a warning): sessions then end with the process and do
      not span workers or nodes.
    * ``demo``: also serve the demo callback page at ``/demo/callback``.
    * ``clock``, ``fetcher``, ``hasher``: injectable for tests (system clock, default
      SSRF-guarded fetcher, default argon2 parameters). The fetcher opens a fresh guarded
      connection per fetch, so there is no shared HTTP client to close.
    * ``extra_resources``: more resources the lifespan closes (after the engine).

    The schema is not created here: see :func:`prepare_database`.
    """
    clock = clock or SystemClock()
    host = load_host_config(config_file, hasher=hasher)
    keys = load_key_file(key_file)
    secret = login_secret or host.login_secret
    if secret is None:
        _LOG.warning(
            "no login cookie secret configured ([login] cookie_secret): using a random one; "
            "sign-ins end with this process and do not span workers"
        )
        secret = secrets.token_bytes(32)
    session = SignedCookieLogin(
        secret,
        issuer=settings.issuer,
        clock=clock,
        lifetime=host.login_lifetime or DEFAULT_LOGIN_LIFETIME,
    )
    options: dict[str, Any] = dict(engine_options or {})
    engine = create_engine(database_url, **options)
    policy = HostPolicy(
        clients=host.clients,
        login=session,
        consent=AlwaysAskConsent(host.first_party_clients),
        claims=host.users,
        scopes=AllowRequestedScopes(),
        events=LoggingEventSink(),
    )
    server = AuthorizationServer(
        settings=settings,
        stores=build_stores(engine, settings, clock=clock),
        keys=keys,
        policy=policy,
        fetcher=fetcher or GuardedFetcher(),
        clock=clock,
        paths=EndpointPaths(),
    )
    resources: tuple[Resource, ...] = (*extra_resources, engine)
    app = create_app(
        server,
        login_page=LoginPage(
            host.users,
            session,
            max_failed_logins=host.max_failed_logins,
            failed_login_window_seconds=host.failed_login_window_seconds,
            delay=host.login_delay,
        ),
        lifespan_resources=resources,
        extra_routes=demo_routes(server) if demo else (),
    )
    sweeper = None
    if settings.sweep_interval_seconds is not None:
        sweeper = SweepRunner(
            engine,
            tables_on(engine, settings.table_prefix),
            settings.sweep_interval_seconds,
            clock=clock,
            refresh_grace_seconds=settings.refresh_token_rotation_grace_seconds,
        )
        run_during_lifespan(app, sweeper)
    return BuiltServer(
        server=server, app=app, resources=resources, engine=engine, host=host, sweeper=sweeper
    )


def run_during_lifespan(app: App, runner: SweepRunner) -> None:
    """Start ``runner`` when ``app``'s lifespan starts and stop it before the app's own
    shutdown (which closes the engine the runner uses)."""
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(running: App) -> AsyncIterator[None]:
        async with inner(running), runner:
            yield

    app.router.lifespan_context = lifespan


async def prepare_database(engine: AsyncEngine, settings: Settings) -> MigrationReport:
    """Create whatever of the nine tables (with ``settings.table_prefix``) is missing."""
    return await migrate_engine(engine, settings.table_prefix)
