"""The SQL authorization-code store: one row per code, claimed by one conditional UPDATE.

Spec: authward spec/stores.md §2.3 (table), §3.0 (atomicity toolbox), §3.1 (bridge, validation,
operations), §7 item 6 (lengths checked before writing).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from authward.stores.clock import Clock
from authward.stores.codes import (
    S256,
    AccessTokenRevoked,
    AccessTokenRevokeOutcome,
    Bound,
    CodeEntry,
    Consumed,
    ConsumedMeta,
    Found,
    GetOutcome,
    Missing,
    NoAccessTokenRecord,
    Taken,
    TakeOutcome,
)
from authward.stores.errors import DuplicateKeyError, StoreContractError
from authward.stores.sql.context import store_context
from authward.stores.sql.convert import (
    check_length,
    check_list,
    from_seconds_column,
    require,
    to_seconds_column,
)
from authward.stores.sql.schema import HASH_SIZE, IDENT_SIZE, JTI_SIZE, NONCE_SIZE


class SqlAuthorizationCodeStore:
    """``AuthorizationCodeStore`` on the ``attesto_authorization_codes`` table of a prefix."""

    def __init__(
        self,
        engine: AsyncEngine | None,
        *,
        table_prefix: str = "",
        clock: Clock | None = None,
    ) -> None:
        self._ctx = store_context(engine, table_prefix, clock)
        self._t = self._ctx.tables.authorization_codes
        self._entry_columns = [
            self._t.c[name]
            for name in (
                "code_hash", "client_id", "subject", "scope", "resource", "redirect_uri",
                "code_challenge", "code_challenge_method", "cnf", "nonce", "claims",
                "family_id", "expires_at",
            )
        ]
        t = self._t
        #: Hot-path statements, built once: SQLAlchemy memoizes a statement's cache key, so
        #: only the parameters are new per call.
        self._take_any = self._claim(unbound_only=False)
        self._take_unbound = self._claim(unbound_only=True)
        self._why_not_taken = sa.select(
            t.c.consumed_success, t.c.family_id, t.c.subject, t.c.consumed_at
        ).where(t.c.code_hash == sa.bindparam("b_code_hash"))
        self._revoked = sa.select(
            sa.exists().where(
                t.c.access_token_jti == sa.bindparam("jti"),
                t.c.access_token_revoked_at.is_not(None),
                t.c.access_token_expires_at > sa.bindparam("now", type_=t.c.expires_at.type),
            )
        )

        self._finalise = sa.update(t).where(t.c.code_hash == sa.bindparam("b_code_hash"))
        self._finalise_with_token = self._finalise.values(
            consumed_success=True,
            access_token_jti=sa.bindparam("jti"),
            access_token_expires_at=sa.bindparam("exp", type_=t.c.expires_at.type),
        )
        self._finalise = self._finalise.values(consumed_success=True)

    def _claim(self, *, unbound_only: bool) -> sa.Update:
        t = self._t
        claim = sa.update(t).where(
            t.c.code_hash == sa.bindparam("b_code_hash"), t.c.consumed_at.is_(None)
        )
        if unbound_only:
            claim = claim.where(t.c.cnf["jkt"].as_string().is_(None))
        return claim.values(
            consumed_at=sa.bindparam("now", type_=t.c.consumed_at.type)
        ).returning(*self._entry_columns)

    async def put(self, entry: CodeEntry, *, now: float | None = None) -> None:
        """See ``AuthorizationCodeStore.put``."""
        values = _row_values(entry)
        values["inserted_at"] = to_seconds_column(self._ctx.now(now))
        insert = postgresql.insert if self._ctx.dialect == "postgresql" else sqlite.insert
        stmt = (
            insert(self._t)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["code_hash"])
            .returning(self._t.c.code_hash)
        )
        async with self._ctx.one_statement() as conn:
            inserted = (await conn.execute(stmt)).first()
        if inserted is None:
            raise DuplicateKeyError("an authorization code with this code_hash exists already")

    async def get(self, code_hash: str, *, now: float | None = None) -> GetOutcome:
        """See ``AuthorizationCodeStore.get``."""
        stmt = sa.select(*self._entry_columns).where(
            self._t.c.code_hash == code_hash, self._t.c.consumed_at.is_(None)
        )
        async with self._ctx.one_statement() as conn:
            row = (await conn.execute(stmt)).first()
        return Missing() if row is None else Found(_entry(row._mapping))

    async def take(
        self, code_hash: str, *, now: float | None = None, unbound_only: bool = False
    ) -> TakeOutcome:
        """See ``AuthorizationCodeStore.take``."""
        claim = self._take_unbound if unbound_only else self._take_any
        params = {"b_code_hash": code_hash, "now": to_seconds_column(self._ctx.now(now))}
        async with self._ctx.one_statement() as conn:
            row = (await conn.execute(claim, params)).first()
            if row is not None:
                return Taken(_entry(row._mapping))
            # Lost, unknown or bound: the decision is made; this read only names the reason.
            seen = (await conn.execute(self._why_not_taken, {"b_code_hash": code_hash})).first()
        if seen is not None and seen.consumed_success:
            return Consumed(ConsumedMeta(family_id=seen.family_id, subject=seen.subject))
        if unbound_only and seen is not None and seen.consumed_at is None:
            return Bound()
        return Missing()

    async def mark_consumed(
        self,
        code_hash: str,
        *,
        now: float | None = None,
        access_token_jti: str | None = None,
        access_token_expires_at: int | None = None,
    ) -> None:
        """See ``AuthorizationCodeStore.mark_consumed``."""
        if (access_token_jti is None) != (access_token_expires_at is None):
            raise StoreContractError("access_token_jti and access_token_expires_at go together")
        stmt = self._finalise
        params: dict[str, object] = {"b_code_hash": code_hash}
        if access_token_jti is not None and access_token_expires_at is not None:
            require("jti", access_token_jti)
            check_length("jti", access_token_jti, JTI_SIZE)
            _require_unix("expires_at", access_token_expires_at)
            stmt = self._finalise_with_token
            params.update(
                jti=access_token_jti, exp=to_seconds_column(access_token_expires_at)
            )
        async with self._ctx.one_statement() as conn:
            await conn.execute(stmt, params)

    async def record_access_token(
        self, family_id: str, jti: str, expires_at: int, *, now: float | None = None
    ) -> None:
        """See ``AuthorizationCodeStore.record_access_token``."""
        require("family_id", family_id)
        require("jti", jti)
        check_length("family_id", family_id, IDENT_SIZE)
        check_length("jti", jti, JTI_SIZE)
        _require_unix("expires_at", expires_at)
        stmt = (
            sa.update(self._t)
            .where(self._t.c.family_id == family_id)
            .values(
                access_token_jti=jti,
                access_token_expires_at=to_seconds_column(expires_at),
            )
        )
        async with self._ctx.one_statement() as conn:
            await conn.execute(stmt)

    async def revoke_family_access_tokens(
        self, family_id: str, *, now: float | None = None
    ) -> None:
        """See ``AuthorizationCodeStore.revoke_family_access_tokens``."""
        stmt = (
            sa.update(self._t)
            .where(self._t.c.family_id == family_id, self._t.c.access_token_jti.is_not(None))
            .values(access_token_revoked_at=to_seconds_column(self._ctx.now(now)))
        )
        async with self._ctx.one_statement() as conn:
            await conn.execute(stmt)

    async def revoke_access_token(
        self, jti: str, *, now: float | None = None
    ) -> AccessTokenRevokeOutcome:
        """See ``AuthorizationCodeStore.revoke_access_token``."""
        at = self._ctx.now(now)
        stmt = (
            sa.update(self._t)
            .where(
                self._t.c.access_token_jti == jti,
                self._t.c.access_token_expires_at > to_seconds_column(at),
            )
            .values(access_token_revoked_at=to_seconds_column(at))
        )
        async with self._ctx.one_statement() as conn:
            result = await conn.execute(stmt)
        return AccessTokenRevoked() if result.rowcount else NoAccessTokenRecord()

    async def access_token_revoked(self, jti: str, *, now: float | None = None) -> bool:
        """See ``AuthorizationCodeStore.access_token_revoked``."""
        # Expiry columns hold whole seconds, so ``exp > floor(now)`` equals ``exp > now``.
        params = {"jti": jti, "now": to_seconds_column(self._ctx.now(now))}
        async with self._ctx.one_statement() as conn:
            return bool((await conn.execute(self._revoked, params)).scalar_one())


def _require_unix(field: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise StoreContractError(f"{field} must be integer Unix seconds, got {value!r}")


def _row_values(entry: CodeEntry) -> dict[str, Any]:
    """Validate ``entry`` (fail closed, nothing defaulted) and spread it over the columns."""
    for name in ("code_hash", "client_id", "subject", "redirect_uri"):
        require(name, getattr(entry, name))
    _require_unix("expires_at", entry.expires_at)
    if entry.code_challenge_method is not None and entry.code_challenge_method != S256:
        raise StoreContractError(
            f"code_challenge_method must be {S256!r}, got {entry.code_challenge_method!r}"
        )
    check_length("code_hash", entry.code_hash, HASH_SIZE)
    check_length("client_id", entry.client_id, IDENT_SIZE)
    check_length("subject", entry.subject, IDENT_SIZE)
    check_length("code_challenge", entry.code_challenge, IDENT_SIZE)
    check_length("dpop_jkt", entry.dpop_jkt, IDENT_SIZE)
    check_length("nonce", entry.nonce, NONCE_SIZE)
    check_length("family_id", entry.family_id, IDENT_SIZE)
    scope, resource = list(entry.scope), list(entry.resource)
    check_list("scope", scope)
    check_list("resource", resource)
    if not isinstance(entry.claims, Mapping):
        raise StoreContractError("claims must be a mapping")
    challenge = entry.code_challenge or None
    return {
        "code_hash": entry.code_hash,
        "client_id": entry.client_id,
        "subject": entry.subject,
        "scope": scope,
        "resource": resource,
        "redirect_uri": entry.redirect_uri,
        "code_challenge": challenge,
        # NULL without a challenge (never a stray "S256"); S256 when a challenge has no method.
        "code_challenge_method": None if challenge is None else S256,
        "cnf": {"jkt": entry.dpop_jkt} if entry.dpop_jkt else None,
        "nonce": entry.nonce,
        "claims": dict(entry.claims),
        "family_id": entry.family_id,
        "expires_at": to_seconds_column(entry.expires_at),
    }


def _entry(row: sa.RowMapping) -> CodeEntry:
    """Rebuild the contract entry from a row; ``access_token_*``/``consumed_*`` stay out."""
    cnf = row["cnf"]
    jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
    return CodeEntry(
        code_hash=row["code_hash"],
        client_id=row["client_id"],
        subject=row["subject"],
        scope=tuple(row["scope"] or ()),
        resource=tuple(row["resource"] or ()),
        redirect_uri=row["redirect_uri"],
        code_challenge=row["code_challenge"],
        code_challenge_method=row["code_challenge_method"],
        dpop_jkt=jkt if isinstance(jkt, str) else None,
        nonce=row["nonce"],
        claims=dict(row["claims"] or {}),
        family_id=row["family_id"],
        expires_at=from_seconds_column(row["expires_at"]),
    )
