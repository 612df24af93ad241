"""End-to-end harness: authward served by uvicorn in its own process, over real HTTP.

Spec: authward issue 4 ("Must show": E2E over real HTTP, both databases, two processes sharing
PostgreSQL, malformed input for every endpoint).

A ``Deployment`` is one database (a SQLite file, or tables under a random ``e<hex>_`` prefix in
the PostgreSQL ``test`` database), one signing key file, one TOML config file and one or more
``ServerProcess`` nodes (``authward serve`` in a subprocess on 127.0.0.1). Every wait is bounded:
a node that does not answer its discovery document within ``START_TIMEOUT`` fails the test with
its log; a node is terminated (then killed) at teardown. Each node's stdout and stderr go to a
log file that ``tests/e2e/conftest.py`` attaches to every failing test's report.

Tables are created by ``authward migrate`` (the documented deployment path) and, on PostgreSQL,
dropped at teardown.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

import httpx
import sqlalchemy as sa
from argon2 import PasswordHasher
from joserfc.jwk import ECKey

from authward.core.defaults import hash_secret
from authward.stores.sql.engine import create_engine
from authward.stores.sql.schema import Tables, build_metadata
from tests.dbkit import PG_URL, require_postgres

#: Seconds a node has to answer its discovery document after start.
START_TIMEOUT: Final = 30.0
#: Seconds a node has to exit after SIGTERM before it is killed.
STOP_TIMEOUT: Final = 10.0
#: Seconds any single HTTP request of the suite may take.
HTTP_TIMEOUT: Final = 15.0

#: Cheap argon2 parameters: the server verifies with the parameters each hash encodes.
CHEAP_HASHER: Final = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)

USERNAME: Final = "alice"
PASSWORD: Final = "correct horse battery staple"
SUBJECT: Final = "user-alice-1"
USER_CLAIMS: Final = {
    "name": "Alice Example",
    "email": "alice@example.com",
    "email_verified": True,
}

REDIRECT_URI: Final = "https://client.e2e.example/cb"

WEB_CLIENT: Final = "e2e-web"
WEB_SECRET: Final = "e2e-web-secret-0123456789"
SPA_CLIENT: Final = "e2e-spa"
JWT_CLIENT: Final = "e2e-jwt"
DPOP_CLIENT: Final = "e2e-dpop"
PAR_CLIENT: Final = "e2e-par-only"
PAR_SECRET: Final = "e2e-par-secret-0123456789"
#: A confidential client that is a resource server (its id is its RFC 8707 resource URI):
#: it introspects tokens addressed to it.
RS_CLIENT: Final = "https://rs.e2e.example/api"
RS_SECRET: Final = "e2e-resource-server-secret"

#: The nine tables, by their attribute name on ``Tables``.
TABLE_NAMES: Final = (
    "authorization_codes",
    "refresh_tokens",
    "device_codes",
    "logout_sessions",
    "dpop_nonces",
    "dpop_replays",
    "pushed_authorization_requests",
    "client_id_metadata",
    "consent_grants",
)

_T = TypeVar("_T")


def run_async(make: Callable[[], Awaitable[_T]]) -> _T:
    """Run a coroutine to completion in a worker thread with its own event loop.

    Sync fixtures use it so the test's event loop (pytest-asyncio's) is never touched.
    """

    async def main() -> _T:
        return await make()

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, main()).result(timeout=120)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def basic_auth(client_id: str, secret: str) -> str:
    """An ``Authorization: Basic`` value (RFC 6749 §2.3.1: form-encode, then base64)."""
    from urllib.parse import quote

    raw = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


# --- the database ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Database:
    """Where a deployment keeps its rows: ``url`` and ``prefix`` as given to ``authward``."""

    kind: str
    url: str
    prefix: str

    @property
    def tables(self) -> Tables:
        return build_metadata(self.prefix, "postgresql" if self.kind == "postgresql" else "sqlite")

    async def row_counts(self) -> dict[str, int]:
        """The number of rows in each of the nine tables (a fresh engine, then disposed)."""
        engine = create_engine(self.url, poolclass=sa.pool.NullPool)
        tables = self.tables
        try:
            async with engine.connect() as conn:
                counts: dict[str, int] = {}
                for name in TABLE_NAMES:
                    table: sa.Table = getattr(tables, name)
                    result = await conn.execute(sa.select(sa.func.count()).select_from(table))
                    counts[name] = int(result.scalar_one())
                return counts
        finally:
            await engine.dispose()

    async def rows(self, name: str) -> list[dict[str, Any]]:
        """Every row of table ``name`` (an attribute name of ``Tables``) as a dict."""
        engine = create_engine(self.url, poolclass=sa.pool.NullPool)
        try:
            async with engine.connect() as conn:
                result = await conn.execute(sa.select(getattr(self.tables, name)))
                return [dict(row._mapping) for row in result]
        finally:
            await engine.dispose()


@contextlib.contextmanager
def provisioned_database(kind: str, directory: Path) -> Iterator[Database]:
    """A database of ``kind`` with the nine tables created by ``authward migrate``.

    SQLite: a new file in ``directory``. PostgreSQL: tables under a random ``e<hex>_`` prefix
    in the ``test`` database (skipped when unreachable, failed under CI), dropped afterwards.
    """
    if kind == "sqlite":
        database = Database(kind, f"sqlite:///{directory / 'authward-e2e.db'}", "")
    else:
        run_async(require_postgres)
        database = Database(kind, PG_URL, f"e{secrets.token_hex(3)}_")
    migrate = subprocess.run(  # noqa: S603 - our own CLI, fixed arguments
        [_authward(), "migrate", "--table-prefix", database.prefix],
        env={**_child_env(), "AUTHWARD_DATABASE_URL": database.url},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if migrate.returncode != 0:
        raise AssertionError(
            f"authward migrate failed ({migrate.returncode}):\n{migrate.stdout}\n{migrate.stderr}"
        )
    try:
        yield database
    finally:
        if kind == "postgresql":
            run_async(lambda: _drop_tables(database))


async def _drop_tables(database: Database) -> None:
    engine = create_engine(database.url, poolclass=sa.pool.NullPool)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(database.tables.metadata.drop_all)
    finally:
        await engine.dispose()


# --- keys and configuration ------------------------------------------------------------------


def _authward() -> str:
    return str(Path(sys.executable).with_name("authward"))


def _child_env() -> dict[str, str]:
    """The environment for child processes: ours without any AUTHWARD_ variable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHWARD_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def generate_key_file(path: Path) -> Path:
    """A signing key file made by ``authward keys generate`` (RS256 and ES256)."""
    result = subprocess.run(  # noqa: S603 - our own CLI, fixed arguments
        [_authward(), "keys", "generate", "--file", str(path)],
        env=_child_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"authward keys generate failed:\n{result.stdout}\n{result.stderr}")
    return path


@dataclass(frozen=True)
class ClientKey:
    """The private key of the ``private_key_jwt`` client (its public half is in the config)."""

    key: ECKey = field(default_factory=lambda: ECKey.generate_key("P-256"))

    @property
    def kid(self) -> str:
        return self.key.thumbprint()

    def public_jwk(self) -> dict[str, Any]:
        jwk = dict(self.key.as_dict(private=False))
        jwk["kid"] = self.kid
        jwk["alg"] = "ES256"
        jwk["use"] = "sig"
        return jwk


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    raise TypeError(type(value))


def _table(header: str, values: Mapping[str, object]) -> str:
    lines = [header]
    lines.extend(f"{name} = {_toml(value)}" for name, value in values.items())
    return "\n".join(lines) + "\n"


def config_text(
    *,
    issuer: str,
    prefix: str,
    client_key: ClientKey,
    settings: dict[str, object] | None = None,
    extra_clients: Sequence[Mapping[str, object]] = (),
    login: Mapping[str, object] | None = None,
) -> str:
    """The TOML config of a test deployment: settings, the standard clients plus
    ``extra_clients`` (``[[clients]]`` tables), and one user. ``login`` adds keys to the
    ``[login]`` table (which always has the cookie secret).

    A ``settings`` value that is a mapping becomes a ``[authward.<name>]`` section (for
    example ``{"logout": {"enabled": True}}``)."""
    authward: dict[str, object] = {
        "issuer": issuer,
        "table_prefix": prefix,
    }
    sections: dict[str, Mapping[str, object]] = {}
    for name, value in (settings or {}).items():
        if isinstance(value, Mapping):
            sections[name] = value
        else:
            authward[name] = value
    code_grants = ["authorization_code", "refresh_token"]
    clients: list[dict[str, object]] = [
        {
            "client_id": WEB_CLIENT,
            "client_type": "confidential",
            "token_endpoint_auth_method": "client_secret_basic",
            "client_secret_hash": hash_secret(WEB_SECRET, hasher=CHEAP_HASHER),
            "redirect_uris": [REDIRECT_URI],
            "grant_types": [*code_grants, "client_credentials"],
            "scope": "openid profile email offline_access api",
            "client_name": "E2E Web",
        },
        {
            "client_id": SPA_CLIENT,
            "client_type": "public",
            "token_endpoint_auth_method": "none",
            "redirect_uris": [REDIRECT_URI],
            "grant_types": code_grants,
            "scope": "openid profile email offline_access",
        },
        {
            "client_id": JWT_CLIENT,
            "client_type": "confidential",
            "token_endpoint_auth_method": "private_key_jwt",
            "redirect_uris": [REDIRECT_URI],
            "grant_types": [*code_grants, "client_credentials"],
            "scope": "openid offline_access api",
            "jwks": {"keys": [client_key.public_jwk()]},
        },
        {
            "client_id": DPOP_CLIENT,
            "client_type": "public",
            "token_endpoint_auth_method": "none",
            "redirect_uris": [REDIRECT_URI],
            "grant_types": code_grants,
            "scope": "openid profile offline_access",
            "dpop_bound_access_tokens": True,
        },
        {
            "client_id": PAR_CLIENT,
            "client_type": "confidential",
            "token_endpoint_auth_method": "client_secret_basic",
            "client_secret_hash": hash_secret(PAR_SECRET, hasher=CHEAP_HASHER),
            "redirect_uris": [REDIRECT_URI],
            "grant_types": code_grants,
            "scope": "openid offline_access",
            "require_pushed_authorization_requests": True,
        },
        {
            "client_id": RS_CLIENT,
            "client_type": "confidential",
            # Authlib's client_secret_basic does not form-encode the id (RFC 6749 §2.3.1),
            # which breaks on the ':' of a URL client id; this client posts its secret.
            "token_endpoint_auth_method": "client_secret_post",
            "client_secret_hash": hash_secret(RS_SECRET, hasher=CHEAP_HASHER),
            "grant_types": ["client_credentials"],
        },
        *(dict(client) for client in extra_clients),
    ]
    user = {
        "subject": SUBJECT,
        "username": USERNAME,
        "password_hash": hash_secret(PASSWORD, hasher=CHEAP_HASHER),
    }
    parts = [_table("[authward]", authward)]
    parts.extend(_table(f"[authward.{name}]", dict(values)) for name, values in sections.items())
    parts.append(
        _table(
            "[authward.refresh_successor_keys]",
            {"k1": "e2e-successor-key-0123456789abcdef"},
        )
    )
    parts.append(
        _table(
            "[login]",
            {
                "cookie_secret": "e2e-login-cookie-secret-0123456789abcdef",
                # one user signs in for every test of a shared deployment: keep the login
                # limit and its growing delay out of the way unless a test sets its own
                # (test_login_limit)
                "max_failed_logins": 1000,
                "failure_delay_seconds": 0,
                "max_failure_delay_seconds": 0,
                **(login or {}),
            },
        )
    )
    parts.extend(_table("[[clients]]", client) for client in clients)
    parts.append(_table("[[users]]", user))
    parts.append(_table("[users.claims]", dict(USER_CLAIMS)))
    return "\n".join(parts)


# --- server processes ------------------------------------------------------------------------


@dataclass
class ServerProcess:
    """One ``authward serve`` node on 127.0.0.1:``port``; its output goes to ``log_path``."""

    name: str
    port: int
    command: Sequence[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the process and wait (bounded) until it serves its discovery document."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our own CLI
                list(self.command),
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.log_path.parent,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        url = self.base_url + "/.well-known/openid-configuration"
        while True:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited with {self.process.returncode} before serving:\n"
                    + self.log()
                )
            try:
                if httpx.get(url, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(
                    f"{self.name} did not serve {url} within {START_TIMEOUT} s:\n" + self.log()
                )
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after ``STOP_TIMEOUT``; always reaps the process."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_TIMEOUT)

    def log(self, limit: int = 20_000) -> str:
        """The tail of the node's output."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return text[-limit:]


def serve_command(config: Path, keys: Path, port: int) -> list[str]:
    """The command line of one node: ``authward serve`` with the test config and key file.

    The database URL travels in ``AUTHWARD_DATABASE_URL`` (not on the command line).
    """
    return [
        _authward(),
        "serve",
        "--config",
        str(config),
        "--key-file",
        str(keys),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]


@dataclass
class Deployment:
    """A database, a key file, a config file and the nodes serving them."""

    database: Database
    issuer: str
    config_path: Path
    key_path: Path
    client_key: ClientKey
    directory: Path
    nodes: list[ServerProcess] = field(default_factory=list)

    @property
    def node(self) -> ServerProcess:
        """The first node (the one the issuer names)."""
        return self.nodes[0]

    def add_node(self, port: int | None = None) -> ServerProcess:
        """Start another node on the same database, keys and config."""
        port = port if port is not None else free_port()
        name = f"node{len(self.nodes)}-{self.database.kind}"
        env = {**_child_env(), "AUTHWARD_DATABASE_URL": self.database.url}
        node = ServerProcess(
            name=name,
            port=port,
            command=serve_command(self.config_path, self.key_path, port),
            env=env,
            log_path=self.directory / f"{name}.log",
        )
        self.nodes.append(node)
        node.start()
        return node

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def server_logs(self) -> list[tuple[str, str]]:
        """(name, log tail) of every node, for failure reports."""
        return [(node.name, node.log()) for node in self.nodes]

    def url(self, path: str) -> str:
        return self.issuer + path


@contextlib.contextmanager
def deployment(
    kind: str,
    directory: Path,
    keys: Path,
    *,
    settings: dict[str, object] | None = None,
    extra_clients: Sequence[Mapping[str, object]] = (),
    nodes: int = 1,
    login: Mapping[str, object] | None = None,
) -> Iterator[Deployment]:
    """A running deployment of ``nodes`` node(s) on a fresh ``kind`` database, configured by
    :func:`config_text` with ``settings``, ``extra_clients`` and ``login``."""
    directory.mkdir(parents=True, exist_ok=True)
    with provisioned_database(kind, directory) as database:
        port = free_port()
        issuer = f"http://127.0.0.1:{port}"
        client_key = ClientKey()
        config_path = directory / "authward.toml"
        config_path.write_text(
            config_text(
                issuer=issuer,
                prefix=database.prefix,
                client_key=client_key,
                settings=settings,
                extra_clients=extra_clients,
                login=login,
            ),
            encoding="utf-8",
        )
        deployed = Deployment(database, issuer, config_path, keys, client_key, directory)
        try:
            deployed.add_node(port)
            for _ in range(nodes - 1):
                deployed.add_node()
            yield deployed
        finally:
            deployed.stop()


def http_client(base_url: str, **options: Any) -> httpx.AsyncClient:
    """A plain HTTP client for ``base_url`` with the suite's bounded timeout."""
    return httpx.AsyncClient(base_url=base_url, timeout=HTTP_TIMEOUT, **options)
