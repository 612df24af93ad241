"""The SQL device code store: RFC 8628 device codes in ``<prefix>attesto_device_codes``.

Spec: authward spec/stores.md §2.5, §3.0 (atomicity toolbox), §3.3, §7 item 8.

Every transition is one statement; any follow-up read only explains a loss and never changes it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from authward.stores.clock import Clock
from authward.stores.device_codes import (
    AlreadyDecided,
    Approval,
    Consumed,
    ConsumeOutcome,
    Decided,
    DecisionOutcome,
    DeviceCodeEntry,
    DeviceCodeStatus,
    Expired,
    Failed,
    Found,
    LookupOutcome,
    Missing,
    NewDeviceCode,
    NotFound,
    PendingView,
    Polled,
    PollOutcome,
    PutOutcome,
    SlowDown,
    Stored,
    UserCodeTaken,
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
from authward.stores.sql.schema import HASH_SIZE, IDENT_SIZE

_STATUSES: Final[dict[str, DeviceCodeStatus]] = {
    "pending": "pending",
    "approved": "approved",
    "denied": "denied",
    "consumed": "consumed",
}


class SqlDeviceCodeStore:
    """``DeviceCodeStore`` on SQLAlchemy Core (PostgreSQL or SQLite)."""

    def __init__(
        self,
        engine: AsyncEngine | None,
        *,
        table_prefix: str = "",
        clock: Clock | None = None,
    ) -> None:
        self._ctx = store_context(engine, table_prefix, clock)
        self._t = self._ctx.tables.device_codes

    async def put(self, entry: NewDeviceCode, *, now: float | None = None) -> PutOutcome:
        """Insert a pending code; a taken user code is ``UserCodeTaken``, a taken hash raises.

        One ``INSERT ... ON CONFLICT DO NOTHING``; when it inserts nothing, a follow-up read
        tells which key collided (never the constraint name). If the colliding row vanished in
        between (swept), the result is ``UserCodeTaken`` so the caller simply retries.
        """
        _check_new(entry)
        at = self._ctx.now(now)
        t = self._t
        values: dict[str, Any] = {
            "id": uuid.uuid4(),
            "device_code_hash": entry.device_code_hash,
            "user_code": entry.user_code,
            "client_id": entry.client_id,
            "scope": list(entry.scope),
            "resource": list(entry.resource),
            "dpop_jkt": entry.dpop_jkt,
            "status": "pending",
            "subject": None,
            "granted_scope": None,
            "granted_claims": None,
            "last_polled_at": None,
            "expires_at": to_seconds_column(entry.expires_at),
            "inserted_at": to_seconds_column(at),
        }
        insert = postgresql.insert if self._ctx.dialect == "postgresql" else sqlite.insert
        stmt = insert(t).values(**values).on_conflict_do_nothing()
        async with self._ctx.one_statement() as conn:
            inserted = (await conn.execute(stmt)).rowcount
        if inserted == 1:
            return Stored()
        async with self._ctx.one_statement() as conn:
            hash_taken = (
                await conn.execute(
                    sa.select(t.c.id).where(t.c.device_code_hash == entry.device_code_hash)
                )
            ).first()
        if hash_taken is not None:
            raise DuplicateKeyError("a device code with this device_code_hash already exists")
        return UserCodeTaken()

    async def lookup_user_code(
        self, user_code: str, *, now: float | None = None
    ) -> LookupOutcome:
        """The pending view of ``user_code`` whatever its status or expiry, else ``NotFound``."""
        row = await self._by_user_code(user_code)
        if row is None:
            return NotFound()
        return Found(
            PendingView(
                user_code=row.user_code,
                client_id=row.client_id,
                scope=_strings(row.scope),
                resource=_strings(row.resource),
                status=_status(row.status),
                expires_at=from_seconds_column(row.expires_at),
            )
        )

    async def approve(
        self, user_code: str, approval: Approval, *, now: float | None = None
    ) -> DecisionOutcome:
        """``pending`` to ``approved`` with subject, granted scope and claims, if unexpired."""
        require("subject", approval.subject)
        check_length("subject", approval.subject, IDENT_SIZE)
        check_list("granted_scope", list(approval.granted_scope))
        if not isinstance(approval.granted_claims, Mapping):
            raise StoreContractError("granted_claims must be a mapping")
        return await self._decide(
            user_code,
            {
                "status": "approved",
                "subject": approval.subject,
                "granted_scope": list(approval.granted_scope),
                "granted_claims": dict(approval.granted_claims),
            },
            now,
        )

    async def deny(self, user_code: str, *, now: float | None = None) -> DecisionOutcome:
        """``pending`` to ``denied``, if unexpired."""
        return await self._decide(user_code, {"status": "denied"}, now)

    async def poll(
        self, device_code_hash: str, interval: int, *, now: float | None = None
    ) -> PollOutcome:
        """Stamp an accepted poll and return the row in any state; else ``SlowDown``/``Missing``.

        A poll exactly ``interval`` seconds after the last accepted one is accepted (times are
        whole seconds, truncated).
        """
        if isinstance(interval, bool) or not isinstance(interval, int) or interval < 0:
            raise StoreContractError(f"interval must be a non-negative integer, got {interval!r}")
        at = to_seconds_column(self._ctx.now(now))
        cutoff = to_seconds_column(from_seconds_column(at) - interval)
        t = self._t
        stmt = (
            sa.update(t)
            .where(
                t.c.device_code_hash == device_code_hash,
                sa.or_(t.c.last_polled_at.is_(None), t.c.last_polled_at <= cutoff),
            )
            .values(last_polled_at=at)
            .returning(*t.c)
        )
        async with self._ctx.one_statement() as conn:
            row = (await conn.execute(stmt)).first()
        if row is not None:
            return Polled(_entry(row))
        async with self._ctx.one_statement() as conn:
            exists = (
                await conn.execute(
                    sa.select(t.c.id).where(t.c.device_code_hash == device_code_hash)
                )
            ).first()
        return SlowDown() if exists is not None else Missing()

    async def consume(
        self, device_code_hash: str, *, now: float | None = None
    ) -> ConsumeOutcome:
        """``approved`` to ``consumed`` if ``expires_at > now``; exactly one caller wins."""
        at = to_seconds_column(self._ctx.now(now))
        t = self._t
        stmt = (
            sa.update(t)
            .where(
                t.c.device_code_hash == device_code_hash,
                t.c.status == "approved",
                t.c.expires_at > at,
            )
            .values(status="consumed")
            .returning(*t.c)
        )
        async with self._ctx.one_statement() as conn:
            row = (await conn.execute(stmt)).first()
        return Failed() if row is None else Consumed(_entry(row))

    async def _decide(
        self, user_code: str, values: dict[str, Any], now: float | None
    ) -> DecisionOutcome:
        at = to_seconds_column(self._ctx.now(now))
        t = self._t
        stmt = (
            sa.update(t)
            .where(t.c.user_code == user_code, t.c.status == "pending", t.c.expires_at > at)
            .values(**values)
            .returning(*t.c)
        )
        async with self._ctx.one_statement() as conn:
            row = (await conn.execute(stmt)).first()
        if row is not None:
            return Decided(_entry(row))
        current = await self._by_user_code(user_code)
        if current is None:
            return NotFound()
        status = _status(current.status)
        if status != "pending":
            return AlreadyDecided(status)
        return Expired()

    async def _by_user_code(self, user_code: str) -> sa.Row[Any] | None:
        t = self._t
        async with self._ctx.one_statement() as conn:
            return (await conn.execute(sa.select(t).where(t.c.user_code == user_code))).first()


def _check_new(entry: NewDeviceCode) -> None:
    require("device_code_hash", entry.device_code_hash)
    require("user_code", entry.user_code)
    require("client_id", entry.client_id)
    require("expires_at", entry.expires_at)
    check_length("device_code_hash", entry.device_code_hash, HASH_SIZE)
    check_length("user_code", entry.user_code, IDENT_SIZE)
    check_length("client_id", entry.client_id, IDENT_SIZE)
    check_length("dpop_jkt", entry.dpop_jkt, IDENT_SIZE)
    check_list("scope", list(entry.scope))
    check_list("resource", list(entry.resource))


def _status(value: str) -> DeviceCodeStatus:
    status = _STATUSES.get(value)
    if status is None:
        raise StoreContractError(f"unknown device code status {value!r} in the database")
    return status


def _strings(value: object) -> tuple[str, ...]:
    return tuple(value) if isinstance(value, list | tuple) else ()


def _entry(row: sa.Row[Any]) -> DeviceCodeEntry:
    return DeviceCodeEntry(
        device_code_hash=row.device_code_hash,
        user_code=row.user_code,
        client_id=row.client_id,
        scope=_strings(row.scope),
        resource=_strings(row.resource),
        dpop_jkt=row.dpop_jkt,
        status=_status(row.status),
        subject=row.subject,
        granted_scope=None if row.granted_scope is None else _strings(row.granted_scope),
        granted_claims=None if row.granted_claims is None else dict(row.granted_claims),
        expires_at=from_seconds_column(row.expires_at),
        last_polled_at=(
            None if row.last_polled_at is None else from_seconds_column(row.last_polled_at)
        ),
    )
