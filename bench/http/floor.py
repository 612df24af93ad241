"""The floor app: per scenario, only the work no token endpoint can avoid, on the same runtime.

Spec: authward GitHub issue 10 item 1 ("a floor app ... doing only the unavoidable work");
RFC 6749 §2.3.1, §4.1.3, §4.4, §6 (the grants); RFC 7636 §4.6 (S256); RFC 7523 §3 and
RFC 7521 §5.2 (assertion checks, one use per ``jti``); RFC 9449 §4.3 (proof checks), §5, §6.1
(``cnf.jkt``); RFC 7662 §2.2 (introspection answer); RFC 9068 §2 (access token ``typ``).

A Starlette app served by uvicorn with the settings ``authward serve`` uses (its default loop
and HTTP implementation: uvloop and httptools when installed; the access log as serve has it
with ``--config``), on SQLAlchemy 2 async Core with asyncpg or aiosqlite (SQLite in WAL mode,
``synchronous=NORMAL``, ``BEGIN IMMEDIATE``), all through authward's own ``create_engine``:
SQLite transactions run inline on one synchronous connection
(``authward.stores.sql.sqlite_inline``) and PostgreSQL single statements on the AUTOCOMMIT
pool, as the stores' do. Three small tables of its own (``bench_floor_*``) in the same
database. One endpoint per scenario (``/<scenario>/token``, ``/introspection/introspect``):

* parse the form body (``parse_qsl``) and check the client: one constant-time compare of the
  SHA-256 digest of a ``client_secret_basic`` secret; or an ES256 client assertion verified
  with joserfc, its claims checked and its ``jti`` recorded with one ``INSERT ... ON CONFLICT
  DO NOTHING``;
* ``code_exchange``: one ``DELETE ... RETURNING`` of the code row, then redirect URI, expiry
  and PKCE S256;
* refresh: one transaction that consumes the old row (if it is live, the client's and bound to
  the proof key's thumbprint) and inserts the successor: on PostgreSQL one statement (a CTE
  whose ``UPDATE ... RETURNING`` feeds the ``INSERT``), on SQLite an ``UPDATE ... RETURNING``
  and an ``INSERT``; with DPoP the proof is first verified with joserfc (``typ``, ES256,
  ``htm``, ``htu``, ``iat``) and its ``jti`` recorded with one ``INSERT``;
* sign the same tokens authward returned for that scenario, with the same algorithms, keys and
  claim names (the bench copies them from one authward response per scenario, see
  :class:`TokenShape`), straight with ``cryptography``;
* write the JSON with ``Cache-Control: no-store``.

Single statements run on an AUTOCOMMIT connection on PostgreSQL (no ``BEGIN``/``COMMIT`` round
trips, as authward's stores do) and in a ``BEGIN IMMEDIATE`` transaction on SQLite; every
statement is built once with bind parameters (:class:`FloorStatements`) and joserfc's algorithm
registries once, so a request pays for neither.

Introspection: the client check, the access token's signature (joserfc), ``exp`` and the
caller, one indexed read of the token's revocation record (RFC 7662 §2.2: a revoked token is
inactive), then the RFC 7662 JSON. Run: ``python -m bench.http.floor CONFIG.json --port P``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import secrets
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl, unquote_plus

import sqlalchemy as sa
import uvicorn
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey, RSAKey
from joserfc.jws import JWSRegistry
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from authward.stores.sql.context import Statements, store_context
from authward.stores.sql.engine import create_engine
from bench.http.jws import Alg, CompactSigner, b64url, sha256_b64url

__all__ = [
    "FloorConfig",
    "TokenShape",
    "TokenTemplate",
    "create_app",
    "create_tables",
    "floor_engine",
    "main",
    "read_config",
    "seed_codes",
    "seed_refresh_tokens",
    "token_digest",
    "write_config",
]

ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
DPOP_WINDOW_SECONDS: Final = 60
DPOP_FUTURE_SKEW_SECONDS: Final = 5
ASSERTION_MAX_LIFETIME: Final = 300
_JSON_HEADERS: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}

metadata = sa.MetaData()
codes_table = sa.Table(
    "bench_floor_codes",
    metadata,
    sa.Column("code_hash", sa.String(64), primary_key=True),
    sa.Column("client_id", sa.String(255), nullable=False),
    sa.Column("redirect_uri", sa.String(2000), nullable=False),
    sa.Column("code_challenge", sa.String(128), nullable=False),
    sa.Column("scope", sa.String(1000), nullable=False),
    sa.Column("subject", sa.String(255), nullable=False),
    sa.Column("nonce", sa.String(255)),
    sa.Column("expires_at", sa.Float, nullable=False),
)
refresh_table = sa.Table(
    "bench_floor_refresh_tokens",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("client_id", sa.String(255), nullable=False),
    sa.Column("subject", sa.String(255), nullable=False),
    sa.Column("scope", sa.String(1000), nullable=False),
    sa.Column("jkt", sa.String(64)),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("consumed", sa.Boolean, nullable=False, default=False),
)
revoked_table = sa.Table(
    "bench_floor_revoked_access_tokens",
    metadata,
    sa.Column("jti", sa.String(255), primary_key=True),
    sa.Column("expires_at", sa.Float, nullable=False),
)
replay_table = sa.Table(
    "bench_floor_replays",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("expires_at", sa.Float, nullable=False),
)


# --- configuration ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenTemplate:
    """A JWT as authward issued it: its protected ``header`` and its ``claims``. The floor
    signs the same claims with fresh ``iat``/``exp``/``jti`` (and ``at_hash``, ``cnf``)."""

    header: dict[str, Any]
    claims: dict[str, Any]


@dataclass(frozen=True)
class TokenShape:
    """What authward's token response held for one scenario: the access token, the ID token
    (if any), whether a refresh token came back, and the other members (``token_type``,
    ``expires_in``, ``scope``) as they were."""

    access: TokenTemplate
    id_token: TokenTemplate | None = None
    refresh: bool = False
    members: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FloorConfig:
    """Everything the floor serves with.

    ``issuer`` is the floor's own base URL (assertion audience, DPoP ``htu``, token ``iss``);
    ``key_file`` is authward's key file (the floor signs with the same active keys);
    ``secret_digest`` is the hex SHA-256 of ``secret_client``'s secret; ``jwt_client_jwk`` the
    public ES256 key of ``jwt_client``; ``dpop_client`` is the public DPoP client; ``shapes``
    maps each scenario to what authward returned for it.
    """

    database_url: str
    issuer: str
    key_file: str
    secret_client: str
    secret_digest: str
    jwt_client: str
    jwt_client_jwk: dict[str, Any]
    dpop_client: str
    redirect_uri: str
    shapes: dict[str, TokenShape]
    access_log: bool = False
    refresh_ttl: int = 1_209_600


def write_config(path: Path, config: FloorConfig) -> None:
    """Write ``config`` as JSON."""
    path.write_text(json.dumps(asdict(config), indent=1), encoding="utf-8")


def _template(data: Mapping[str, Any] | None) -> TokenTemplate | None:
    if data is None:
        return None
    return TokenTemplate(header=dict(data["header"]), claims=dict(data["claims"]))


def read_config(path: Path) -> FloorConfig:
    """The floor configuration in JSON file ``path``."""
    data = json.loads(path.read_text(encoding="utf-8"))
    shapes: dict[str, TokenShape] = {}
    for name, shape in data.pop("shapes").items():
        access = _template(shape["access"])
        assert access is not None
        shapes[name] = TokenShape(
            access=access,
            id_token=_template(shape.get("id_token")),
            refresh=bool(shape.get("refresh")),
            members=dict(shape.get("members", {})),
        )
    return FloorConfig(**data, shapes=shapes)


# --- database --------------------------------------------------------------------------------


def floor_engine(url: str) -> AsyncEngine:
    """An AsyncEngine on ``url`` (``sqlite://`` or ``postgresql://``) set up as described in
    the module docstring."""
    # authward's own engine: on SQLite WAL, synchronous=NORMAL, BEGIN IMMEDIATE and the inline
    # transactions of the stores (sqlite_inline); on PostgreSQL the same pools, the AUTOCOMMIT
    # one for single statements.
    return create_engine(url)


def token_digest(value: str) -> str:
    """Hex SHA-256 of a code, refresh token or replay key: what the tables store."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


async def create_tables(engine: AsyncEngine) -> None:
    """Create the floor's tables if missing."""
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)


async def seed_codes(engine: AsyncEngine, rows: Sequence[Mapping[str, object]]) -> None:
    """Insert authorization code rows (``code_hash`` and the other columns) in one batch."""
    if rows:
        async with engine.begin() as conn:
            await conn.execute(codes_table.insert(), [dict(r) for r in rows])


async def seed_refresh_tokens(engine: AsyncEngine, rows: Sequence[Mapping[str, object]]) -> None:
    """Insert refresh token rows in one batch."""
    if rows:
        async with engine.begin() as conn:
            await conn.execute(refresh_table.insert(), [dict(r) for r in rows])


# --- keys ------------------------------------------------------------------------------------


def _active_keys(key_file: str) -> dict[str, tuple[str, Any, Any]]:
    """alg -> (kid, cryptography private key, joserfc public key) of each active key."""
    document = json.loads(Path(key_file).read_text(encoding="utf-8"))
    found: dict[str, tuple[str, Any, Any]] = {}
    for entry in document["keys"]:
        if entry.get("status") != "active":
            continue
        jwk_members = {k: v for k, v in entry.items() if k not in ("status", "created_at")}
        kty = jwk_members["kty"]
        key: ECKey | RSAKey | OKPKey
        if kty == "EC":
            key = ECKey.import_key(jwk_members)
        elif kty == "RSA":
            key = RSAKey.import_key(jwk_members)
        else:
            key = OKPKey.import_key(jwk_members)
        public = type(key).import_key(key.as_dict(private=False))
        found[entry["alg"]] = (entry.get("kid") or key.thumbprint(), key.private_key, public)
    return found


# --- the app ---------------------------------------------------------------------------------


class RefusedError(Exception):
    """A request the floor refuses: ``status`` and the OAuth ``error``."""

    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error


def _json(
    status: int, body: Mapping[str, object], extra: Mapping[str, str] | None = None
) -> Response:
    headers = dict(_JSON_HEADERS)
    if extra:
        headers.update(extra)
    return Response(
        json.dumps(body, separators=(",", ":")).encode("utf-8"),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


@dataclass(frozen=True)
class FloorStatements:
    """Every statement the floor runs, built once with bind parameters: a request supplies
    values only (SQLAlchemy memoizes a statement's cache key), as authward's stores do."""

    record_once: sa.Executable
    consume_code: sa.Executable
    revoked: sa.Executable
    #: by "bound to a DPoP key": the refresh claim (SQLite), the one-statement rotation (PG)
    consume_refresh: Mapping[bool, sa.Executable]
    rotate: Mapping[bool, sa.Executable]
    insert_refresh: sa.Executable

    @classmethod
    def build(cls, insert: Any, *, postgres: bool) -> FloorStatements:
        t = refresh_table
        now = sa.bindparam("now", type_=sa.Float)

        def consume(bound: bool) -> sa.Update:
            return (
                sa.update(t)
                .where(
                    t.c.token_hash == sa.bindparam("b_presented"),
                    t.c.consumed.is_(False),
                    t.c.expires_at > now,
                    t.c.client_id == sa.bindparam("b_client_id"),
                    t.c.jkt == sa.bindparam("b_jkt") if bound else t.c.jkt.is_(None),
                )
                .values(consumed=True)
                .returning(t.c.subject, t.c.scope)
            )

        def rotate(bound: bool) -> sa.Executable:
            consumed = consume(bound).cte("consumed")
            successor = sa.select(
                sa.bindparam("b_successor", type_=sa.String(64)),
                sa.bindparam("b_client_id", type_=sa.String(255)),
                consumed.c.subject,
                consumed.c.scope,
                sa.bindparam("b_jkt", type_=sa.String(64)),
                sa.bindparam("b_expires_at", type_=sa.Float),
                sa.false(),
            )
            columns = ["token_hash", "client_id", "subject", "scope", "jkt", "expires_at",
                       "consumed"]
            return (
                t.insert().from_select(columns, successor).returning(t.c.subject, t.c.scope)
            )

        return cls(
            record_once=insert(replay_table)
            .values(key=sa.bindparam("key"), expires_at=sa.bindparam("b_expires_at"))
            .on_conflict_do_nothing(index_elements=["key"])
            .returning(replay_table.c.key),
            consume_code=sa.delete(codes_table)
            .where(codes_table.c.code_hash == sa.bindparam("code_hash"))
            .returning(*codes_table.c),
            revoked=sa.select(
                sa.exists().where(
                    revoked_table.c.jti == sa.bindparam("jti"), revoked_table.c.expires_at > now
                )
            ),
            consume_refresh={bound: consume(bound) for bound in (False, True)},
            rotate={bound: rotate(bound) for bound in (False, True)} if postgres else {},
            insert_refresh=t.insert().values(
                token_hash=sa.bindparam("b_successor"),
                client_id=sa.bindparam("b_client_id"),
                subject=sa.bindparam("b_subject"),
                scope=sa.bindparam("b_scope"),
                jkt=sa.bindparam("b_jkt"),
                expires_at=sa.bindparam("b_expires_at"),
                consumed=False,
            ),
        )


class Floor:
    """The floor's endpoints over one engine, one key set and one configuration."""

    def __init__(self, config: FloorConfig, engine: AsyncEngine) -> None:
        self.config = config
        self.engine = engine
        self._keys = _active_keys(config.key_file)
        self._signers: dict[tuple[str, str], CompactSigner] = {}
        self._secret_digest = bytes.fromhex(config.secret_digest)
        self._client_key = ECKey.import_key(config.jwt_client_jwk)
        self._postgres = engine.dialect.name == "postgresql"
        self._insert = pg_insert if self._postgres else sqlite_insert
        self._context = store_context(engine)
        self._registries = {
            alg: JWSRegistry(algorithms=[alg], strict_check_header=False)
            for alg in ("ES256", *self._keys)
        }
        self._dpop_htu = config.issuer + "/refresh_dpop_public/token"
        self._audiences = {config.issuer, config.issuer + "/cc_private_key_jwt/token"}
        self._sql = FloorStatements.build(self._insert, postgres=self._postgres)

    # -- signing --

    def _signer(self, template: TokenTemplate) -> CompactSigner:
        alg = str(template.header["alg"])
        typ = str(template.header.get("typ", ""))
        signer = self._signers.get((alg, typ))
        if signer is None:
            kid, private, _ = self._keys[alg]
            header: dict[str, object] = {"typ": typ} if typ else {}
            header["kid"] = kid
            signer = CompactSigner(_alg(alg), private, header)
            self._signers[(alg, typ)] = signer
        return signer

    def _claims(
        self, template: TokenTemplate, now: int, *, subject: str | None, extra: Mapping[str, Any]
    ) -> dict[str, Any]:
        claims = dict(template.claims)
        lifetime = int(claims.get("exp", now + 900)) - int(claims.get("iat", now))
        claims["iss"] = self.config.issuer
        claims["iat"] = now
        claims["exp"] = now + lifetime
        if "nbf" in claims:
            claims["nbf"] = now
        if "auth_time" in claims:
            claims["auth_time"] = now
        if "jti" in claims:
            claims["jti"] = secrets.token_urlsafe(16)
        if subject is not None:
            claims["sub"] = subject
        claims.update(extra)
        return claims

    def _tokens(
        self,
        shape: TokenShape,
        *,
        subject: str | None,
        scope: str | None,
        jkt: str | None = None,
        nonce: str | None = None,
        refresh_token: str | None = None,
    ) -> dict[str, Any]:
        now = int(time.time())
        extra: dict[str, Any] = {}
        if scope is not None and "scope" in shape.access.claims:
            extra["scope"] = scope
        if jkt is not None:
            extra["cnf"] = {"jkt": jkt}
        access = self._signer(shape.access).sign(
            self._claims(shape.access, now, subject=subject, extra=extra)
        )
        body: dict[str, Any] = {"access_token": access, **shape.members}
        if jkt is not None:
            body["token_type"] = "DPoP"  # noqa: S105 - a token type
        if shape.id_token is not None:
            template = shape.id_token
            id_extra: dict[str, Any] = {}
            if "at_hash" in template.claims:
                id_extra["at_hash"] = _half_hash(access, str(template.header["alg"]))
            if nonce is not None and "nonce" in template.claims:
                id_extra["nonce"] = nonce
            body["id_token"] = self._signer(template).sign(
                self._claims(template, now, subject=subject, extra=id_extra)
            )
        if refresh_token is not None:
            body["refresh_token"] = refresh_token
        return body

    # -- client authentication --

    def _basic_client(self, request: Request) -> str:
        header = request.headers.get("authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            raise RefusedError(401, "invalid_client")
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise RefusedError(401, "invalid_client") from None
        raw_id, colon, raw_secret = decoded.partition(":")
        client_id, secret = unquote_plus(raw_id), unquote_plus(raw_secret)
        presented = hashlib.sha256(secret.encode("utf-8")).digest()
        matches = hmac.compare_digest(presented, self._secret_digest)
        if not colon or client_id != self.config.secret_client or not matches:
            raise RefusedError(401, "invalid_client")
        return client_id

    def _one_statement(self) -> AbstractAsyncContextManager[Statements]:
        """A connection for one statement, committed as it completes: AUTOCOMMIT on
        PostgreSQL (no BEGIN/COMMIT round trips), a ``BEGIN IMMEDIATE`` transaction on SQLite
        (no network there)."""
        return self._context.one_statement()

    def _transaction(self) -> AbstractAsyncContextManager[Statements]:
        """A transaction as authward's stores open one (inline on SQLite, see
        ``authward.stores.sql.sqlite_inline``)."""
        return self._context.transaction()

    def _decode(self, token: str, key: Any, alg: str) -> Mapping[str, Any]:
        """The claims of ``token`` once its ``alg`` signature verifies with ``key``."""
        claims: Mapping[str, Any] = jwt.decode(token, key, registry=self._registries[alg]).claims
        return claims

    async def _record_once(self, conn: Statements, key: str, ttl: int) -> bool:
        params = {"key": token_digest(key), "b_expires_at": time.time() + ttl}
        return (await conn.execute(self._sql.record_once, params)).first() is not None

    async def _assertion_client(self, form: Mapping[str, str]) -> str:
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise RefusedError(401, "invalid_client")
        try:
            claims = self._decode(form.get("client_assertion", ""), self._client_key, "ES256")
        except (JoseError, ValueError):
            raise RefusedError(401, "invalid_client") from None
        client_id = self.config.jwt_client
        now = time.time()
        exp, iat, jti = claims.get("exp"), claims.get("iat", now), claims.get("jti")
        if (
            claims.get("iss") != client_id
            or claims.get("sub") != client_id
            or claims.get("aud") not in self._audiences
            or not isinstance(exp, int | float)
            or not isinstance(iat, int | float)
            or exp <= now
            or exp - iat > ASSERTION_MAX_LIFETIME
            or not isinstance(jti, str)
            or not jti
        ):
            raise RefusedError(401, "invalid_client")
        async with self._one_statement() as conn:
            if not await self._record_once(conn, f"{client_id}:{jti}", ASSERTION_MAX_LIFETIME):
                raise RefusedError(401, "invalid_client")
        return client_id

    def _dpop_key(self, request: Request) -> tuple[str, str]:
        """Verify the DPoP proof; return (jkt, jti)."""
        proofs = request.headers.getlist("dpop")
        if len(proofs) != 1:
            raise RefusedError(400, "invalid_dpop_proof")
        proof = proofs[0]
        try:
            header = json.loads(base64.urlsafe_b64decode(_padded(proof.partition(".")[0])))
            jwk = header.get("jwk")
            if header.get("typ") != "dpop+jwt" or header.get("alg") != "ES256":
                raise RefusedError(400, "invalid_dpop_proof")
            if not isinstance(jwk, dict) or "d" in jwk:
                raise RefusedError(400, "invalid_dpop_proof")
            key = ECKey.import_key(jwk)
            claims = self._decode(proof, key, "ES256")
        except (JoseError, ValueError, binascii.Error):
            raise RefusedError(400, "invalid_dpop_proof") from None
        now = time.time()
        iat, jti = claims.get("iat"), claims.get("jti")
        if (
            claims.get("htm") != "POST"
            or claims.get("htu") != self._dpop_htu
            or not isinstance(iat, int | float)
            or not now - DPOP_WINDOW_SECONDS <= iat <= now + DPOP_FUTURE_SKEW_SECONDS
            or not isinstance(jti, str)
            or not jti
        ):
            raise RefusedError(400, "invalid_dpop_proof")
        return key.thumbprint(), jti

    # -- grants --

    async def _rotate(
        self, presented: str, client_id: str, jkt: str | None
    ) -> tuple[str, str, str]:
        """Consume ``presented`` (when it is live and belongs to ``client_id`` and ``jkt``)
        and insert its successor, in one transaction; return (successor, subject, scope).

        PostgreSQL: one statement, a CTE whose ``UPDATE ... RETURNING`` feeds the ``INSERT``.
        SQLite: the ``UPDATE ... RETURNING`` and the ``INSERT`` in one ``BEGIN IMMEDIATE``.
        """
        now = time.time()
        successor = secrets.token_urlsafe(32)
        params = {
            "b_presented": token_digest(presented),
            "now": now,
            "b_client_id": client_id,
            "b_jkt": jkt,
            "b_successor": token_digest(successor),
            "b_expires_at": now + self.config.refresh_ttl,
        }
        bound = jkt is not None
        if self._postgres:
            async with self._one_statement() as conn:
                row = (await conn.execute(self._sql.rotate[bound], params)).first()
            if row is None:
                raise RefusedError(400, "invalid_grant")
            return successor, row.subject, row.scope
        async with self._transaction() as conn:
            row = (await conn.execute(self._sql.consume_refresh[bound], params)).first()
            if row is None:
                raise RefusedError(400, "invalid_grant")
            await conn.execute(
                self._sql.insert_refresh,
                {**params, "b_subject": row.subject, "b_scope": row.scope},
            )
        return successor, row.subject, row.scope

    async def cc_secret_basic(self, request: Request) -> Response:
        form = await _form(request)
        self._basic_client(request)
        return _json(
            200, self._tokens(self._shape("cc_secret_basic"), subject=None, scope=form.get("scope"))
        )

    async def cc_private_key_jwt(self, request: Request) -> Response:
        form = await _form(request)
        await self._assertion_client(form)
        return _json(
            200,
            self._tokens(self._shape("cc_private_key_jwt"), subject=None, scope=form.get("scope")),
        )

    async def code_exchange(self, request: Request) -> Response:
        form = await _form(request)
        client_id = self._basic_client(request)
        code = {"code_hash": token_digest(form.get("code", ""))}
        shape = self._shape("code_exchange")
        # one statement, unless a refresh token is issued with the code (then a transaction)
        scope = self._transaction() if shape.refresh else self._one_statement()
        async with scope as conn:
            row = (await conn.execute(self._sql.consume_code, code)).first()
            challenge = sha256_b64url(form.get("code_verifier", "") or "-")
            if (
                row is None
                or row.client_id != client_id
                or row.redirect_uri != form.get("redirect_uri")
                or row.expires_at <= time.time()
                or not hmac.compare_digest(challenge, row.code_challenge)
            ):
                raise RefusedError(400, "invalid_grant")
            refresh_token = None
            if shape.refresh:
                refresh_token = secrets.token_urlsafe(32)
                await conn.execute(
                    self._sql.insert_refresh,
                    {
                        "b_successor": token_digest(refresh_token),
                        "b_client_id": client_id,
                        "b_subject": row.subject,
                        "b_scope": row.scope,
                        "b_jkt": None,
                        "b_expires_at": time.time() + self.config.refresh_ttl,
                    },
                )
        return _json(
            200,
            self._tokens(
                shape,
                subject=row.subject,
                scope=row.scope,
                nonce=row.nonce,
                refresh_token=refresh_token,
            ),
        )

    async def refresh_confidential(self, request: Request) -> Response:
        form = await _form(request)
        client_id = self._basic_client(request)
        successor, subject, scope = await self._rotate(
            form.get("refresh_token", ""), client_id, None
        )
        return _json(
            200,
            self._tokens(
                self._shape("refresh_confidential"),
                subject=subject,
                scope=scope,
                refresh_token=successor,
            ),
        )

    async def refresh_dpop_public(self, request: Request) -> Response:
        form = await _form(request)
        client_id = form.get("client_id")
        if client_id != self.config.dpop_client:
            raise RefusedError(401, "invalid_client")
        jkt, jti = self._dpop_key(request)
        async with self._one_statement() as conn:
            if not await self._record_once(
                conn, f"dpop:{jti}", DPOP_WINDOW_SECONDS + DPOP_FUTURE_SKEW_SECONDS
            ):
                raise RefusedError(400, "invalid_dpop_proof")
        successor, subject, scope = await self._rotate(
            form.get("refresh_token", ""), client_id, jkt
        )
        return _json(
            200,
            self._tokens(
                self._shape("refresh_dpop_public"),
                subject=subject,
                scope=scope,
                jkt=jkt,
                refresh_token=successor,
            ),
        )

    async def introspection(self, request: Request) -> Response:
        form = await _form(request)
        client_id = self._basic_client(request)
        template = self._shape("cc_secret_basic").access
        alg = str(template.header["alg"])
        try:
            claims = self._decode(form.get("token", ""), self._keys[alg][2], alg)
        except (JoseError, ValueError):
            return _json(200, {"active": False})
        exp = claims.get("exp")
        if (
            not isinstance(exp, int | float)
            or exp <= time.time()
            or claims.get("client_id") != client_id
            or claims.get("iss") != self.config.issuer
        ):
            return _json(200, {"active": False})
        # RFC 7662 §2.2: a revoked token is inactive, so a server that revokes access tokens
        # (RFC 7009) reads its revocation record: one indexed SELECT, as authward does.
        revoked = {"jti": str(claims.get("jti", "")), "now": time.time()}
        async with self._one_statement() as conn:
            if (await conn.execute(self._sql.revoked, revoked)).scalar_one():
                return _json(200, {"active": False})
        body: dict[str, Any] = {"active": True}
        for name in ("client_id", "sub", "exp", "iat", "iss", "aud", "jti", "scope"):
            if name in claims:
                body[name] = claims[name]
        body["token_type"] = "Bearer"  # noqa: S105 - a token type
        return _json(200, body)

    def _shape(self, scenario: str) -> TokenShape:
        return self.config.shapes[scenario]


def _alg(name: str) -> Alg:
    if name not in ("ES256", "RS256", "PS256", "EdDSA"):
        raise ValueError(f"the floor cannot sign {name}")
    return name  # type: ignore[return-value]


def _padded(text: str) -> str:
    return text + "=" * (-len(text) % 4)


_HALF_HASH: Final = {"ES256": "sha256", "RS256": "sha256", "PS256": "sha256", "EdDSA": "sha512"}


def _half_hash(token: str, alg: str) -> str:
    digest = hashlib.new(_HALF_HASH[alg], token.encode("ascii")).digest()
    return b64url(digest[: len(digest) // 2])


async def _form(request: Request) -> dict[str, str]:
    if request.headers.get("content-type", "").split(";")[0].strip() != (
        "application/x-www-form-urlencoded"
    ):
        raise RefusedError(400, "invalid_request")
    body = (await request.body()).decode("utf-8")
    return dict(parse_qsl(body, keep_blank_values=True))


Handler = Callable[[Request], Awaitable[Response]]


def _endpoint(handler: Handler) -> Handler:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except RefusedError as refused:
            extra = {"WWW-Authenticate": "Basic"} if refused.status == 401 else None
            return _json(refused.status, {"error": refused.error}, extra)

    return endpoint


def create_app(config: FloorConfig) -> Starlette:
    """The floor's Starlette app; its lifespan creates the tables and disposes the engine."""
    engine = floor_engine(config.database_url)
    floor = Floor(config, engine)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await create_tables(engine)
        try:
            yield
        finally:
            await engine.dispose()

    async def health(_request: Request) -> Response:
        return Response("ok", media_type="text/plain")

    routes = [Route("/health", health, methods=["GET"])]
    for scenario, handler in (
        ("cc_secret_basic", floor.cc_secret_basic),
        ("cc_private_key_jwt", floor.cc_private_key_jwt),
        ("code_exchange", floor.code_exchange),
        ("refresh_confidential", floor.refresh_confidential),
        ("refresh_dpop_public", floor.refresh_dpop_public),
    ):
        routes.append(Route(f"/{scenario}/token", _endpoint(handler), methods=["POST"]))
    routes.append(
        Route("/introspection/introspect", _endpoint(floor.introspection), methods=["POST"])
    )
    return Starlette(routes=routes, lifespan=lifespan)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.http.floor CONFIG.json --port P``: serve until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m bench.http.floor", description=__doc__)
    parser.add_argument("config", type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    config = read_config(args.config)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(config),
            host=args.host,
            port=args.port,
            lifespan="on",
            access_log=config.access_log,
        )
    )
    server.run()
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
