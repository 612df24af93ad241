"""The nine authward tables, built for one table prefix: the one source of every Table.

Spec: authward spec/stores.md §2 (tables), §2.12 (portable rendition), §7 items 1, 3 and 6.

The PostgreSQL DDL keeps parity with attesto_phoenix 0.19 (``varchar(n)``, ``varchar(255)[]``
lists defaulting to ``'{}'``, ``jsonb`` maps, ``timestamp(0)``/``timestamp(6)`` without time
zone holding UTC, application-generated ``uuid`` keys, ``<table>_<cols>_index`` index names and
no primary key on the authorization-code table). SQLite gets portable equivalents: JSON text for
lists and maps. One extra unique index,
``<prefix>attesto_refresh_tokens_family_id_generation_index``, fixes spec §7 item 3; it is the
only addition to the 0.19 schema.

Every column type here is a plain SQLAlchemy primitive, so the migration generator can freeze
the tables into a revision without importing authward. Timestamps are naive and hold UTC; the
stores convert at the boundary (see ``authward.stores.sql.convert``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from authward.stores.errors import InvalidTablePrefixError

Dialect = Literal["postgresql", "sqlite"]

PREFIX_PATTERN: Final = re.compile(r"^[a-z_][a-z0-9_]*$")
MAX_IDENTIFIER_BYTES: Final = 63

HASH_SIZE: Final = 88
JTI_SIZE: Final = 255
NONCE_SIZE: Final = 255
IDENT_SIZE: Final = 255

#: The nine base table names, in creation order (spec §1.1). Drop order is the reverse.
TABLE_NAMES: Final = (
    "attesto_authorization_codes",
    "attesto_refresh_tokens",
    "attesto_device_codes",
    "attesto_logout_sessions",
    "dpop_nonces",
    "dpop_replays",
    "attesto_pushed_authorization_requests",
    "attesto_client_id_metadata",
    "attesto_consent_grants",
)


@dataclass(frozen=True)
class Tables:
    """The nine tables of one prefix, bound to one MetaData."""

    metadata: sa.MetaData
    prefix: str
    dialect: Dialect
    authorization_codes: sa.Table
    refresh_tokens: sa.Table
    device_codes: sa.Table
    logout_sessions: sa.Table
    dpop_nonces: sa.Table
    dpop_replays: sa.Table
    pushed_authorization_requests: sa.Table
    client_id_metadata: sa.Table
    consent_grants: sa.Table

    def in_creation_order(self) -> tuple[sa.Table, ...]:
        """The tables in the order a migration creates them (spec §1.1)."""
        return (
            self.authorization_codes,
            self.refresh_tokens,
            self.device_codes,
            self.logout_sessions,
            self.dpop_nonces,
            self.dpop_replays,
            self.pushed_authorization_requests,
            self.client_id_metadata,
            self.consent_grants,
        )


def validate_table_prefix(table_prefix: object) -> str:
    """Return the prefix if it is usable, else raise ``InvalidTablePrefixError``.

    Valid: ``""`` or a match of ``^[a-z_][a-z0-9_]*$`` such that every identifier the schema
    emits (tables, indexes, constraints) is at most 63 bytes, PostgreSQL's limit.
    """
    if not isinstance(table_prefix, str):
        raise InvalidTablePrefixError("table prefix must be a string")
    if table_prefix and not PREFIX_PATTERN.match(table_prefix):
        raise InvalidTablePrefixError(
            f"invalid --table-prefix {table_prefix!r}: expected an empty string or a lowercase "
            "identifier matching [a-z_][a-z0-9_]*"
        )
    too_long = [
        name
        for name in identifier_names(_build(table_prefix, "postgresql").metadata)
        if len(name.encode()) > MAX_IDENTIFIER_BYTES
    ]
    if too_long:
        raise InvalidTablePrefixError(
            f"invalid --table-prefix {table_prefix!r}: it makes {len(too_long)} identifier(s) "
            f"longer than {MAX_IDENTIFIER_BYTES} bytes, e.g. {too_long[0]!r}"
        )
    return table_prefix


def build_metadata(table_prefix: str = "", dialect: Dialect = "postgresql") -> Tables:
    """Build the nine tables for ``table_prefix`` as ``dialect`` stores them.

    ``dialect`` only changes the server default of list columns (``'{}'`` on PostgreSQL, a JSON
    ``'[]'`` on SQLite); names, columns, sizes, nullability and indexes are the same on both.
    """
    validate_table_prefix(table_prefix)
    return _build(table_prefix, dialect)


def identifier_names(metadata: sa.MetaData) -> list[str]:
    """Every table, index and named constraint identifier in ``metadata``."""
    names: list[str] = []
    for table in metadata.tables.values():
        names.append(table.name)
        names.extend(str(ix.name) for ix in table.indexes)
        names.extend(
            str(c.name) for c in table.constraints if isinstance(c.name, str) and c.name
        )
    return names


# --- column types: SQLAlchemy primitives only (the migration freezes them) ---


def _list_type() -> sa.types.TypeEngine[Any]:
    return sa.JSON(none_as_null=True).with_variant(
        postgresql.ARRAY(sa.String(IDENT_SIZE)), "postgresql"
    )


def _map_type() -> sa.types.TypeEngine[Any]:
    return sa.JSON(none_as_null=True).with_variant(
        postgresql.JSONB(none_as_null=True), "postgresql"
    )


def _seconds_type() -> sa.types.TypeEngine[Any]:
    return sa.DateTime().with_variant(postgresql.TIMESTAMP(precision=0), "postgresql")


def _micros_type() -> sa.types.TypeEngine[Any]:
    return sa.DateTime().with_variant(postgresql.TIMESTAMP(precision=6), "postgresql")


def _build(prefix: str, dialect: Dialect) -> Tables:
    md = sa.MetaData()
    empty_list = sa.text("'{}'::character varying[]" if dialect == "postgresql" else "'[]'")
    empty_map = sa.text("'{}'::jsonb" if dialect == "postgresql" else "'{}'")
    false = sa.text("false")

    def name(base: str) -> str:
        return prefix + base

    def col(cname: str, type_: sa.types.TypeEngine[Any], nullable: bool,
            **kw: Any) -> sa.Column[Any]:
        return sa.Column(cname, type_, nullable=nullable, **kw)

    def s(n: int) -> sa.String:
        return sa.String(n)

    def lst(cname: str, *, default: bool = True, nullable: bool = False) -> sa.Column[Any]:
        if default:
            return col(cname, _list_type(), nullable, server_default=empty_list)
        return col(cname, _list_type(), nullable)

    def ix(table: str, *cols: str, unique: bool = False, **kw: Any) -> sa.Index:
        return sa.Index(f"{table}_{'_'.join(cols)}_index", *cols, unique=unique, **kw)

    def pk(table: str, *cols: str) -> sa.PrimaryKeyConstraint:
        return sa.PrimaryKeyConstraint(*cols, name=f"{table}_pkey")

    t = name("attesto_authorization_codes")
    authorization_codes = sa.Table(
        t, md,
        col("code_hash", s(HASH_SIZE), False),
        col("client_id", s(IDENT_SIZE), False),
        col("subject", s(IDENT_SIZE), False),
        lst("scope"),
        lst("resource"),
        col("redirect_uri", sa.Text(), False),
        col("code_challenge", s(IDENT_SIZE), True),
        col("code_challenge_method", s(16), True),
        col("cnf", _map_type(), True),
        col("nonce", s(NONCE_SIZE), True),
        col("claims", _map_type(), False, server_default=empty_map),
        col("family_id", s(IDENT_SIZE), True),
        col("access_token_jti", s(JTI_SIZE), True),
        col("access_token_expires_at", _seconds_type(), True),
        col("access_token_revoked_at", _seconds_type(), True),
        col("expires_at", _seconds_type(), False),
        col("consumed_at", _seconds_type(), True),
        col("consumed_success", sa.Boolean(), False, server_default=false),
        col("inserted_at", _seconds_type(), False),
        ix(t, "code_hash", unique=True),
        ix(t, "expires_at"),
        ix(t, "family_id"),
        ix(t, "access_token_jti"),
    )

    t = name("attesto_refresh_tokens")
    refresh_tokens = sa.Table(
        t, md,
        col("id", sa.Uuid(), False),
        col("token_hash", s(HASH_SIZE), False),
        col("family_id", s(IDENT_SIZE), False),
        col("generation", sa.Integer(), False, server_default=sa.text("0")),
        col("client_id", s(IDENT_SIZE), True),
        col("subject", s(IDENT_SIZE), False),
        lst("scope"),
        lst("resource"),
        col("acr", s(IDENT_SIZE), True),
        col("auth_time", sa.BigInteger(), True),
        col("cnf", _map_type(), True),
        col("claims", _map_type(), False, server_default=empty_map),
        col("consumed", sa.Boolean(), False, server_default=false),
        col("consumed_at", _seconds_type(), True),
        col("successor", _map_type(), True),
        col("family_revoked", sa.Boolean(), False, server_default=false),
        col("expires_at", _seconds_type(), False),
        col("parent_hash", s(HASH_SIZE), True),
        col("inserted_at", _seconds_type(), False),
        pk(t, "id"),
        ix(t, "token_hash", unique=True),
        ix(t, "family_id"),
        ix(t, "expires_at"),
        ix(t, "family_id", "generation", unique=True),
    )

    t = name("attesto_device_codes")
    device_codes = sa.Table(
        t, md,
        col("id", sa.Uuid(), False),
        col("device_code_hash", s(HASH_SIZE), False),
        col("user_code", s(IDENT_SIZE), False),
        col("client_id", s(IDENT_SIZE), False),
        lst("scope"),
        lst("resource"),
        col("dpop_jkt", s(IDENT_SIZE), True),
        col("status", s(16), False, server_default=sa.text("'pending'")),
        col("subject", s(IDENT_SIZE), True),
        lst("granted_scope", default=False, nullable=True),
        col("granted_claims", _map_type(), True),
        col("last_polled_at", _seconds_type(), True),
        col("expires_at", _seconds_type(), False),
        col("inserted_at", _seconds_type(), False),
        pk(t, "id"),
        ix(t, "device_code_hash", unique=True),
        ix(t, "user_code", unique=True),
        ix(t, "expires_at"),
    )

    t = name("attesto_logout_sessions")
    logout_sessions = sa.Table(
        t, md,
        col("id", sa.Uuid(), False),
        col("sid", s(IDENT_SIZE), False),
        col("subject", s(IDENT_SIZE), False),
        col("client_id", s(IDENT_SIZE), False),
        col("backchannel_logout_uri", sa.Text(), False),
        col("session_required", sa.Boolean(), False, server_default=false),
        col("expires_at", _seconds_type(), False),
        col("inserted_at", _seconds_type(), False),
        pk(t, "id"),
        ix(t, "sid", "client_id", unique=True),
        ix(t, "subject"),
        ix(t, "expires_at"),
    )

    t = name("dpop_nonces")
    dpop_nonces = sa.Table(
        t, md,
        col("id", sa.Uuid(), False),
        col("nonce", s(NONCE_SIZE), False),
        col("issued_at", _seconds_type(), False),
        col("expires_at", _seconds_type(), False),
        col("used_at", _seconds_type(), True),
        pk(t, "id"),
        ix(t, "nonce", unique=True),
        sa.Index(
            f"{t}_unused_index", "used_at",
            postgresql_where=sa.text("used_at IS NULL"),
            sqlite_where=sa.text("used_at IS NULL"),
        ),
    )

    t = name("dpop_replays")
    dpop_replays = sa.Table(
        t, md,
        col("jti", s(JTI_SIZE), False),
        col("expires_at", _micros_type(), False),
        col("inserted_at", _micros_type(), False),
        pk(t, "jti"),
        ix(t, "expires_at"),
    )

    t = name("attesto_pushed_authorization_requests")
    pushed_authorization_requests = sa.Table(
        t, md,
        col("request_uri", s(IDENT_SIZE), False),
        col("params", _map_type(), False),
        col("expires_at", _seconds_type(), False),
        col("inserted_at", _seconds_type(), False),
        pk(t, "request_uri"),
        ix(t, "expires_at"),
    )

    t = name("attesto_client_id_metadata")
    client_id_metadata = sa.Table(
        t, md,
        col("url", s(IDENT_SIZE), False),
        col("metadata", _map_type(), False),
        col("expires_at", _seconds_type(), False),
        col("inserted_at", _seconds_type(), False),
        pk(t, "url"),
        ix(t, "expires_at"),
    )

    t = name("attesto_consent_grants")
    consent_grants = sa.Table(
        t, md,
        col("token", s(IDENT_SIZE), False),
        col("binding_hash", s(HASH_SIZE), False),
        col("subject", s(IDENT_SIZE), False),
        col("consumed_at", _micros_type(), True),
        col("expires_at", _micros_type(), False),
        col("inserted_at", _micros_type(), False),
        col("updated_at", _micros_type(), False),
        pk(t, "token"),
        ix(t, "expires_at"),
    )

    return Tables(
        metadata=md,
        prefix=prefix,
        dialect=dialect,
        authorization_codes=authorization_codes,
        refresh_tokens=refresh_tokens,
        device_codes=device_codes,
        logout_sessions=logout_sessions,
        dpop_nonces=dpop_nonces,
        dpop_replays=dpop_replays,
        pushed_authorization_requests=pushed_authorization_requests,
        client_id_metadata=client_id_metadata,
        consent_grants=consent_grants,
    )
