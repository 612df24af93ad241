"""The SQL refresh-token store: families with sticky revocation and one-transaction rotation.

Spec: authward spec/stores.md §2.4 (table), §3.0 (atomicity toolbox), §3.2.1-§3.2.6 (operations
and the successor envelope), §3.2.8 (atomic rotate), §7 items 3, 4 and 6.

Serialising one family: PostgreSQL takes ``pg_advisory_xact_lock(1096045126, hashtext(family))``
(the namespace is "ATRF", as in attesto_phoenix); SQLite needs nothing more, because the engine
opens every transaction with ``BEGIN IMMEDIATE`` and so holds the database write lock.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from authward.stores.clock import Clock
from authward.stores.digest import digest
from authward.stores.errors import DuplicateKeyError, StoreContractError
from authward.stores.refresh import (
    Claimed,
    ConsumeOutcome,
    Expired,
    FamilyRevoked,
    Found,
    FreshChild,
    GetOutcome,
    Inserted,
    InsertOutcome,
    Missing,
    NotRotated,
    RefreshData,
    RefreshEntry,
    RememberFailed,
    RememberOk,
    RememberOutcome,
    Reuse,
    Rotated,
    RotateOutcome,
    SameGrantOutcome,
    Successor,
)
from authward.stores.sql.context import Statements, store_context
from authward.stores.sql.convert import (
    check_length,
    check_list,
    from_seconds_column,
    require,
    to_seconds_column,
)
from authward.stores.sql.schema import HASH_SIZE, IDENT_SIZE
from authward.stores.successor_cipher import SuccessorCipher, successor_from_json

#: Advisory-lock namespace shared with attesto_phoenix: 0x41545246, "ATRF".
FAMILY_LOCK_NAMESPACE: Final = 1096045126

_FAMILY_LOCK = sa.text("SELECT pg_advisory_xact_lock(:ns, hashtext(:family_id))")


class SqlRefreshTokenStore:
    """``RefreshTokenStore`` on the ``attesto_refresh_tokens`` table of a prefix.

    ``successor_keys`` maps key ids to secrets of at least 32 bytes; ``active_kid`` names the
    one new envelopes are sealed with (optional when there is one key). Without keys the store
    keeps no retry payloads: ``remember_successor`` fails closed and ``rotate`` refuses a
    successor.
    """

    def __init__(
        self,
        engine: AsyncEngine | None,
        *,
        table_prefix: str = "",
        clock: Clock | None = None,
        successor_keys: Mapping[str, bytes] | None = None,
        active_kid: str | None = None,
    ) -> None:
        self._ctx = store_context(engine, table_prefix, clock)
        self._t = self._ctx.tables.refresh_tokens
        self._cipher = (
            SuccessorCipher(successor_keys, active_kid) if successor_keys else None
        )
        self._build_statements()

    def _build_statements(self) -> None:
        """The hot-path statements, built once with bind parameters (SQLAlchemy memoizes a
        statement's cache key, so a call only supplies values)."""
        t = self._t
        insert = postgresql.insert if self._ctx.dialect == "postgresql" else sqlite.insert
        row = {name: sa.bindparam(f"v_{name}", type_=t.c[name].type) for name in _ROW_COLUMNS}
        self._get = sa.select(t).where(
            t.c.token_hash == sa.bindparam("b_hash"), t.c.family_revoked.is_(False)
        )
        self._insert = (
            insert(t).values(**row).on_conflict_do_nothing().returning(t.c.id)
        )
        self._claim = (
            sa.update(t)
            .where(
                t.c.token_hash == sa.bindparam("v_parent_hash"),
                t.c.family_id == sa.bindparam("v_family_id"),
                t.c.generation == sa.bindparam("b_parent_generation"),
                t.c.consumed.is_(False),
                t.c.family_revoked.is_(False),
                t.c.expires_at > sa.bindparam("v_inserted_at"),
            )
            .values(
                consumed=True,
                consumed_at=sa.bindparam("v_inserted_at"),
                successor=sa.bindparam("b_successor", type_=t.c.successor.type),
            )
        )
        lock = sa.select(
            sa.func.pg_advisory_xact_lock(
                FAMILY_LOCK_NAMESPACE, sa.func.hashtext(sa.bindparam("v_family_id"))
            ).label("held")
        ).cte("family_lock")
        claimed = (
            self._claim.where(sa.exists(sa.select(lock.c.held)))
            .returning(t.c.id)
            .cte("claimed")
        )
        inserted = (
            sa.insert(t)
            .from_select(list(row), sa.select(*row.values()).select_from(claimed))
            .returning(t.c.id)
            .cte("inserted")
        )
        self._rotate_pg = sa.select(
            sa.select(sa.func.count()).select_from(claimed).scalar_subquery().label("claimed"),
            sa.select(sa.func.count()).select_from(inserted).scalar_subquery().label("inserted"),
        )
        self._claim_sqlite = self._claim.returning(t.c.id)
        self._same_grant = {
            bound: self._same_grant_statement(bound=bound) for bound in (False, True)
        }

    def _same_grant_statement(self, *, bound: bool) -> sa.Executable:
        """``rotate_same_grant``'s statement: on PostgreSQL one CTE (the family lock, taken on
        the family the parent names before the parent row is locked; the guarded claim; the
        child copied from the claimed row), on SQLite the guarded claim alone."""
        t = self._t
        jkt = t.c.cnf["jkt"].as_string()
        claim = (
            sa.update(t)
            .where(
                t.c.token_hash == sa.bindparam("b_parent_hash"),
                t.c.consumed.is_(False),
                t.c.family_revoked.is_(False),
                t.c.expires_at > sa.bindparam("b_now", type_=t.c.expires_at.type),
                t.c.client_id == sa.bindparam("b_client_id"),
                jkt == sa.bindparam("b_jkt") if bound else jkt.is_(None),
            )
            .values(consumed=True, consumed_at=sa.bindparam("b_now"), successor=None)
        )
        if self._ctx.dialect != "postgresql":
            return claim.returning(*t.c)
        parent = t.alias("parent")
        lock = (
            sa.select(
                sa.func.pg_advisory_xact_lock(
                    FAMILY_LOCK_NAMESPACE, sa.func.hashtext(parent.c.family_id)
                ).label("held")
            )
            .where(parent.c.token_hash == sa.bindparam("b_parent_hash"))
            .cte("family_lock")
        )
        claimed = claim.where(sa.exists(sa.select(lock.c.held))).returning(*t.c).cte("claimed")
        copied = {
            "id": sa.bindparam("b_child_id", type_=t.c.id.type),
            "token_hash": sa.bindparam("b_child_hash"),
            "generation": claimed.c.generation + 1,
            "consumed": sa.false(),
            "consumed_at": sa.null(),
            "successor": sa.null(),
            "family_revoked": sa.false(),
            "expires_at": sa.bindparam("b_child_expires_at", type_=t.c.expires_at.type),
            "parent_hash": claimed.c.token_hash,
            "inserted_at": sa.bindparam("b_now"),
        }
        columns = [
            copied.get(name, claimed.c[name]) for name in _ROW_COLUMNS
        ]
        return (
            sa.insert(t)
            .from_select(list(_ROW_COLUMNS), sa.select(*columns))
            .returning(*t.c)
        )

    @property
    def seals_successors(self) -> bool:
        """See ``RefreshTokenStore.seals_successors``."""
        return self._cipher is not None

    async def insert(self, entry: RefreshEntry, *, now: float | None = None) -> InsertOutcome:
        """See ``RefreshTokenStore.insert``."""
        values = _insert_values(entry, self._ctx.now(now))
        async with self._ctx.transaction() as conn:
            await self._lock_family(conn, entry.family_id)
            if await self._family_revoked(conn, entry.family_id):
                return FamilyRevoked()
            await self._insert_row(conn, values)
        return Inserted()

    async def get(self, token_hash: str, *, now: float | None = None) -> GetOutcome:
        """See ``RefreshTokenStore.get``."""
        async with self._ctx.one_statement() as conn:
            row = (await conn.execute(self._get, {"b_hash": token_hash})).first()
        return Missing() if row is None else Found(self._entry(row._mapping))

    async def consume(self, token_hash: str, *, now: float | None = None) -> ConsumeOutcome:
        """See ``RefreshTokenStore.consume``."""
        claim = (
            sa.update(self._t)
            .where(
                self._t.c.token_hash == token_hash,
                self._t.c.consumed.is_(False),
                self._t.c.family_revoked.is_(False),
            )
            .values(consumed=True, consumed_at=to_seconds_column(self._ctx.now(now)))
            .returning(*self._t.c)
        )
        async with self._ctx.one_statement() as conn:
            row = (await conn.execute(claim)).first()
            if row is not None:
                before = self._entry(row._mapping)
                return Claimed(dataclasses.replace(before, consumed=False, consumed_at=None))
            # Lost or unknown: the decision is made; this read only classifies it.
            seen = (
                await conn.execute(sa.select(self._t).where(self._t.c.token_hash == token_hash))
            ).first()
        if seen is None or seen.family_revoked or not seen.consumed:
            return Missing()
        return Reuse(self._entry(seen._mapping))

    async def remember_successor(
        self, parent_hash: str, successor: Successor, *, now: float | None = None
    ) -> RememberOutcome:
        """See ``RefreshTokenStore.remember_successor``."""
        if self._cipher is None:
            return RememberFailed()
        async with self._ctx.transaction() as conn:
            parent = (
                await conn.execute(
                    sa.select(self._t.c.family_id, self._t.c.generation).where(
                        self._t.c.token_hash == parent_hash
                    )
                )
            ).first()
            if parent is None:
                return RememberFailed()
            if successor.generation != parent.generation + 1:
                raise StoreContractError("the successor's generation must be the parent's + 1")
            envelope = self._cipher.seal(
                successor, parent_hash=parent_hash, family_id=parent.family_id
            )
            written = await conn.execute(
                sa.update(self._t)
                .where(
                    self._t.c.token_hash == parent_hash,
                    self._t.c.family_id == parent.family_id,
                    self._t.c.consumed.is_(True),
                    self._t.c.family_revoked.is_(False),
                )
                .values(successor=envelope)
            )
        return RememberOk() if written.rowcount == 1 else RememberFailed()

    async def revoke_family(self, family_id: str, *, now: float | None = None) -> None:
        """See ``RefreshTokenStore.revoke_family``."""
        async with self._ctx.transaction() as conn:
            await self._lock_family(conn, family_id)
            await conn.execute(
                sa.update(self._t)
                .where(self._t.c.family_id == family_id)
                .values(family_revoked=True)
            )

    async def rotate(
        self,
        parent_hash: str,
        child: RefreshEntry,
        successor: Successor | None,
        *,
        now: float | None = None,
    ) -> RotateOutcome:
        """See ``RefreshTokenStore.rotate``."""
        at = self._ctx.now(now)
        values = _insert_values(child, at)
        values["parent_hash"] = parent_hash
        if successor is not None:
            if self._cipher is None:
                raise StoreContractError("rotate got a successor but no successor key is set")
            if (
                successor.generation != child.generation
                or digest(successor.token) != child.token_hash
                or successor.context != child.data
            ):
                raise StoreContractError("the successor does not describe the child entry")
        check_length("parent_hash", parent_hash, HASH_SIZE)
        if child.generation < 1:
            raise StoreContractError(
                "the child must belong to the parent's family with generation + 1"
            )
        envelope = (
            None
            if successor is None or self._cipher is None
            else self._cipher.seal(successor, parent_hash=parent_hash, family_id=child.family_id)
        )
        params = {f"v_{name}": value for name, value in values.items()}
        params["b_parent_generation"] = child.generation - 1
        params["b_successor"] = envelope
        if self._ctx.dialect == "postgresql":
            outcome = await self._rotate_in_one_statement(params, values)
        else:
            outcome = await self._rotate_in_one_transaction(params, values)
        if outcome is not None:
            return outcome
        return Rotated(_normalised(child))

    async def rotate_same_grant(
        self,
        parent_hash: str,
        child: FreshChild,
        *,
        client_id: str,
        dpop_jkt: str | None,
        now: float | None = None,
    ) -> SameGrantOutcome:
        """See ``RefreshTokenStore.rotate_same_grant``."""
        require("token_hash", child.token_hash)
        check_length("token_hash", child.token_hash, HASH_SIZE)
        if not _is_int(child.expires_at):
            raise StoreContractError(
                f"expires_at must be integer Unix seconds, got {child.expires_at!r}"
            )
        at = to_seconds_column(self._ctx.now(now))
        params: dict[str, Any] = {
            "b_parent_hash": parent_hash,
            "b_now": at,
            "b_client_id": client_id,
            "b_jkt": dpop_jkt,
        }
        statement = self._same_grant[dpop_jkt is not None]
        try:
            if self._ctx.dialect == "postgresql":
                params.update(
                    b_child_id=uuid.uuid4(),
                    b_child_hash=child.token_hash,
                    b_child_expires_at=to_seconds_column(child.expires_at),
                )
                async with self._ctx.one_statement() as conn:
                    row = (await conn.execute(statement, params)).first()
                return NotRotated() if row is None else Rotated(self._entry(row._mapping))
            async with self._ctx.transaction() as conn:
                claimed = (await conn.execute(statement, params)).first()
                if claimed is None:
                    return NotRotated()
                values = _child_of(claimed._mapping, child, at)
                await self._insert_row(conn, values)
        except sa.exc.IntegrityError:
            raise DuplicateKeyError(
                "a refresh token with this token_hash or (family_id, generation) exists already"
            ) from None
        return Rotated(self._entry({**values, "successor": None}))

    async def _rotate_in_one_statement(
        self, params: dict[str, Any], values: dict[str, Any]
    ) -> RotateOutcome | None:
        """PostgreSQL: family lock, parent claim and child insert as ONE autocommit statement.

        The transaction-scoped advisory lock is a condition of the claim, so it is taken before
        the parent row is locked and held until the statement commits: a concurrent
        ``revoke_family`` either runs first (the claim re-reads the parent, now revoked, and
        claims nothing) or waits and then sees the child. A child that collides with an existing
        row fails the whole statement, so the parent stays unconsumed.
        """
        try:
            async with self._ctx.one_statement() as conn:
                row = (await conn.execute(self._rotate_pg, params)).one()
                if row.claimed == 1 and row.inserted == 1:
                    return None
                return await self._why_not_rotated(conn, values)
        except sa.exc.IntegrityError:
            raise DuplicateKeyError(
                "a refresh token with this token_hash or (family_id, generation) exists already"
            ) from None

    async def _rotate_in_one_transaction(
        self, params: dict[str, Any], values: dict[str, Any]
    ) -> RotateOutcome | None:
        """SQLite: claim the parent and insert the child in one ``BEGIN IMMEDIATE`` transaction
        (which holds the database write lock, so the family needs no lock of its own)."""
        async with self._ctx.transaction() as conn:
            if (await conn.execute(self._claim_sqlite, params)).first() is None:
                return await self._why_not_rotated(conn, values)
            await self._insert_row(conn, values)
        return None

    async def _why_not_rotated(
        self, conn: Statements, values: dict[str, Any]
    ) -> RotateOutcome:
        """Name the reason a claim found nothing; the decision is already taken."""
        t = self._t
        parent = (
            await conn.execute(sa.select(t).where(t.c.token_hash == values["parent_hash"]))
        ).first()
        if parent is None:
            return Missing()
        if await self._family_revoked(conn, parent.family_id):
            return FamilyRevoked()
        if parent.consumed:
            return Reuse(self._entry(parent._mapping))
        if from_seconds_column(parent.expires_at) <= from_seconds_column(values["inserted_at"]):
            return Expired()
        raise StoreContractError(
            "the child must belong to the parent's family with generation + 1"
        )

    # --- helpers ---

    async def _lock_family(self, conn: Statements, family_id: str) -> None:
        if self._ctx.dialect == "postgresql":
            await conn.execute(
                _FAMILY_LOCK, {"ns": FAMILY_LOCK_NAMESPACE, "family_id": family_id}
            )

    async def _family_revoked(self, conn: Statements, family_id: str) -> bool:
        stmt = sa.select(
            sa.exists().where(
                self._t.c.family_id == family_id, self._t.c.family_revoked.is_(True)
            )
        )
        return bool((await conn.execute(stmt)).scalar_one())

    async def _insert_row(self, conn: Statements, values: dict[str, Any]) -> None:
        params = {f"v_{name}": value for name, value in values.items()}
        if (await conn.execute(self._insert, params)).first() is None:
            # Raising rolls the whole transaction back (rotate: the parent stays unconsumed).
            raise DuplicateKeyError(
                "a refresh token with this token_hash or (family_id, generation) exists already"
            )

    def _entry(self, row: Mapping[Any, Any]) -> RefreshEntry:
        cnf = row["cnf"]
        jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
        consumed_at = row["consumed_at"]
        return RefreshEntry(
            token_hash=row["token_hash"],
            family_id=row["family_id"],
            generation=row["generation"],
            data=RefreshData(
                subject=row["subject"],
                scope=tuple(row["scope"] or ()),
                resource=tuple(row["resource"] or ()),
                acr=row["acr"],
                auth_time=row["auth_time"],
                client_id=row["client_id"],
                dpop_jkt=jkt if isinstance(jkt, str) else None,
                claims=dict(row["claims"] or {}),
            ),
            expires_at=from_seconds_column(row["expires_at"]),
            consumed=bool(row["consumed"]),
            consumed_at=None if consumed_at is None else from_seconds_column(consumed_at),
            successor=self._open(row),
            family_revoked=bool(row["family_revoked"]),
        )

    def _open(self, row: Mapping[Any, Any]) -> Successor | None:
        stored = row["successor"]
        if not isinstance(stored, dict):
            return None
        if "v" not in stored:
            # A legacy plaintext payload written by another system (spec §3.2 bridge, RT-28).
            legacy = successor_from_json(stored)
            if legacy is None or legacy.generation != row["generation"] + 1:
                return None
            return legacy
        if self._cipher is None:
            return None
        return self._cipher.open(
            stored,
            parent_hash=row["token_hash"],
            family_id=row["family_id"],
            generation=row["generation"] + 1,
        )


#: The columns a new row is written with (``_insert_values`` fills every one).
_ROW_COLUMNS: Final = (
    "id", "token_hash", "family_id", "generation", "client_id", "subject", "scope", "resource",
    "acr", "auth_time", "cnf", "claims", "consumed", "consumed_at", "successor",
    "family_revoked", "expires_at", "parent_hash", "inserted_at",
)


def _child_of(parent: Mapping[Any, Any], child: FreshChild, now: Any) -> dict[str, Any]:
    """The column values of ``child``: the parent's grant in its family at generation + 1."""
    values = {name: parent[name] for name in _ROW_COLUMNS}
    values.update(
        id=uuid.uuid4(),
        token_hash=child.token_hash,
        generation=parent["generation"] + 1,
        consumed=False,
        consumed_at=None,
        successor=None,
        family_revoked=False,
        expires_at=to_seconds_column(child.expires_at),
        parent_hash=parent["token_hash"],
        inserted_at=now,
    )
    return values


def _normalised_data(data: RefreshData) -> RefreshData:
    claims = data.claims if data.claims is not None else {}
    return dataclasses.replace(
        data,
        scope=tuple(dict.fromkeys(data.scope or ())),
        resource=tuple(data.resource or ()),
        claims=dict(claims),
    )


def _normalised(entry: RefreshEntry) -> RefreshEntry:
    return dataclasses.replace(entry, data=_normalised_data(entry.data))


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _insert_values(entry: RefreshEntry, now: float) -> dict[str, Any]:
    """Validate a fresh entry (fail closed) and flatten it into column values."""
    require("token_hash", entry.token_hash)
    require("family_id", entry.family_id)
    if not isinstance(entry.data, RefreshData):
        raise StoreContractError("data is required")
    require("subject", entry.data.subject)
    if not _is_int(entry.expires_at):
        raise StoreContractError(
            f"expires_at must be integer Unix seconds, got {entry.expires_at!r}"
        )
    if not _is_int(entry.generation) or entry.generation < 0:
        raise StoreContractError(
            f"generation must be a non-negative integer, got {entry.generation!r}"
        )
    if entry.consumed or entry.consumed_at is not None or entry.successor is not None:
        raise StoreContractError("a refresh token must be inserted unconsumed, without successor")
    if entry.family_revoked:
        raise StoreContractError("a refresh token cannot be inserted into a revoked state")
    data = _normalised_data(entry.data)
    if data.auth_time is not None and not _is_int(data.auth_time):
        raise StoreContractError("auth_time must be integer Unix seconds")
    check_length("token_hash", entry.token_hash, HASH_SIZE)
    check_length("family_id", entry.family_id, IDENT_SIZE)
    check_length("subject", data.subject, IDENT_SIZE)
    check_length("client_id", data.client_id, IDENT_SIZE)
    check_length("acr", data.acr, IDENT_SIZE)
    check_length("dpop_jkt", data.dpop_jkt, IDENT_SIZE)
    scope, resource = list(data.scope), list(data.resource)
    check_list("scope", scope)
    check_list("resource", resource)
    if not isinstance(data.claims, Mapping):
        raise StoreContractError("claims must be a mapping")
    return {
        "id": uuid.uuid4(),
        "token_hash": entry.token_hash,
        "family_id": entry.family_id,
        "generation": entry.generation,
        "client_id": data.client_id,
        "subject": data.subject,
        "scope": scope,
        "resource": resource,
        "acr": data.acr,
        "auth_time": data.auth_time,
        "cnf": {"jkt": data.dpop_jkt} if data.dpop_jkt else None,
        "claims": dict(data.claims),
        "consumed": False,
        "consumed_at": None,
        "successor": None,
        "family_revoked": False,
        "expires_at": to_seconds_column(entry.expires_at),
        "parent_hash": None,
        "inserted_at": to_seconds_column(now),
    }
