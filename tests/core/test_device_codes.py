"""Device-grant core rules (spec §3.3 "Core rules", §6.4 DEV-09..11; RFC 8628 §3.5, §6.1).

Everything runs through the real SQL store on SQLite and PostgreSQL. ``CountingStore`` only
delegates to it and counts calls, to prove that malformed input never reaches the store.
"""

from __future__ import annotations

import re
import secrets
from collections import Counter

import pytest

from authward.core.device_codes import (
    USER_CODE_ALPHABET,
    DeviceGrant,
    DeviceRedeemError,
    InvalidUserCode,
    IssuedDeviceCode,
    UserCode,
    UserCodeUnavailable,
    approve_user_code,
    deny_user_code,
    format_user_code,
    generate_user_code,
    issue_device_code,
    look_up_user_code,
    new_device_code,
    normalise_user_code,
    redeem_device_code,
)
from authward.stores.device_codes import (
    Approval,
    ConsumeOutcome,
    Decided,
    DecisionOutcome,
    Found,
    LookupOutcome,
    NewDeviceCode,
    PollOutcome,
    PutOutcome,
    Stored,
    UserCodeTaken,
)
from authward.stores.digest import digest
from authward.stores.sql.device_codes import SqlDeviceCodeStore
from tests.dbkit import T0, Db


class CountingStore:
    """Delegates every call to a real store and counts it by method name."""

    def __init__(self, inner: SqlDeviceCodeStore) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()
        self.put_outcomes: list[PutOutcome] = []

    async def put(self, entry: NewDeviceCode, *, now: float | None = None) -> PutOutcome:
        self.calls["put"] += 1
        outcome = await self.inner.put(entry, now=now)
        self.put_outcomes.append(outcome)
        return outcome

    async def lookup_user_code(
        self, user_code: str, *, now: float | None = None
    ) -> LookupOutcome:
        self.calls["lookup_user_code"] += 1
        return await self.inner.lookup_user_code(user_code, now=now)

    async def approve(
        self, user_code: str, approval: Approval, *, now: float | None = None
    ) -> DecisionOutcome:
        self.calls["approve"] += 1
        return await self.inner.approve(user_code, approval, now=now)

    async def deny(self, user_code: str, *, now: float | None = None) -> DecisionOutcome:
        self.calls["deny"] += 1
        return await self.inner.deny(user_code, now=now)

    async def poll(
        self, device_code_hash: str, interval: int, *, now: float | None = None
    ) -> PollOutcome:
        self.calls["poll"] += 1
        return await self.inner.poll(device_code_hash, interval, now=now)

    async def consume(
        self, device_code_hash: str, *, now: float | None = None
    ) -> ConsumeOutcome:
        self.calls["consume"] += 1
        return await self.inner.consume(device_code_hash, now=now)


def counting(db: Db) -> CountingStore:
    return CountingStore(SqlDeviceCodeStore(db.engine, clock=db.clock))


def zeros_for_user_codes(n: int) -> bytes:
    """Random device codes, but every user code comes out as ``BBBBBBBB``."""
    return secrets.token_bytes(n) if n == 32 else bytes(n)


async def issue(
    s: CountingStore, *, client_id: str = "cli-1", dpop_jkt: str | None = None
) -> IssuedDeviceCode:
    issued = await issue_device_code(
        s, client_id=client_id, now=T0, scope=("read", "write"), dpop_jkt=dpop_jkt
    )
    assert isinstance(issued, IssuedDeviceCode)
    return issued


# --- user code generation and display ---


def test_generated_user_codes_use_the_base20_alphabet_and_configured_length() -> None:
    codes = [generate_user_code() for _ in range(50)]
    assert all(re.fullmatch(f"[{USER_CODE_ALPHABET}]{{8}}", c) for c in codes)
    assert len(set(codes)) == 50
    assert len(generate_user_code(12)) == 12
    assert set(USER_CODE_ALPHABET).isdisjoint("AEIOUY0123456789")


def test_user_code_draw_discards_bytes_of_240_and_above() -> None:
    """Rejection sampling keeps ``byte % 20`` unbiased (spec §3.3)."""
    feed = iter([bytes([240, 255, 0, 19]), bytes([239, 20, 241, 1])])
    code = generate_user_code(4, random_bytes=lambda n: next(feed)[:n])
    # 240 and 255 rejected; 0 -> B, 19 -> Z; then 239 -> Z (239 % 20 == 19), 20 -> B.
    assert code == "BZZB"


def test_invalid_user_code_length_is_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        generate_user_code(0)


def test_user_code_is_displayed_in_hyphenated_groups_of_four() -> None:
    assert format_user_code("BCDFGHJK") == "BCDF-GHJK"
    assert format_user_code("BCDFGHJKLM") == "BCDF-GHJK-LM"


def test_device_code_is_43_url_safe_characters() -> None:
    code = new_device_code()
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", code)
    assert new_device_code() != code


# --- DEV-11: normalisation ---


@pytest.mark.parametrize(
    "raw", ["BCDF-GHJK", "bcdf-ghjk", " bcdfghjk ", "BcDf GhJk", "b-c-d-f\tg h\nj k"]
)
def test_user_code_input_is_normalised(raw: str) -> None:
    """DEV-11: upper-case, whitespace and hyphens removed."""
    assert normalise_user_code(raw) == UserCode("BCDFGHJK")


@pytest.mark.parametrize(
    "raw", ["BCDF-GHJ", "BCDF-GHJKL", "ABCD-EFGH", "BCDF-GHJ1", "BCDF_GHJK", "", "BCDF-GHJÄ"]
)
def test_malformed_user_code_input_is_invalid(raw: str) -> None:
    """DEV-11: wrong length or a character outside the alphabet."""
    assert normalise_user_code(raw) == InvalidUserCode()


def test_non_string_user_code_input_is_invalid() -> None:
    assert normalise_user_code(12345678) == InvalidUserCode()
    assert normalise_user_code(None) == InvalidUserCode()


def test_user_code_length_is_configurable_for_normalisation() -> None:
    assert normalise_user_code("bcdf-ghjk-lm", 10) == UserCode("BCDFGHJKLM")
    assert normalise_user_code("bcdf-ghjk", 10) == InvalidUserCode()


async def test_malformed_user_code_never_reaches_the_store(db: Db) -> None:
    """DEV-11: lookup, approve and deny answer InvalidUserCode with no store call."""
    s = counting(db)
    for raw in ["AAAA-AAAA", "BCDF", "BCDF-GHJK-L", 42]:
        assert await look_up_user_code(s, raw) == InvalidUserCode()
        assert await approve_user_code(s, raw, Approval("alice")) == InvalidUserCode()
        assert await deny_user_code(s, raw) == InvalidUserCode()
    assert sum(s.calls.values()) == 0


async def test_typed_user_code_is_normalised_before_the_store_sees_it(db: Db) -> None:
    """DEV-11: the user types the display form in lower case and still hits the stored code."""
    s = counting(db)
    issued = await issue(s)
    typed = f"  {issued.user_code.lower()} "
    found = await look_up_user_code(s, typed, now=T0)
    assert isinstance(found, Found)
    assert found.view.user_code == issued.user_code.replace("-", "")
    assert isinstance(await approve_user_code(s, typed, Approval("alice"), now=T0), Decided)
    assert s.calls["lookup_user_code"] == 1
    assert s.calls["approve"] == 1


# --- issuance and DEV-10 ---


async def test_issue_stores_only_the_digest_and_the_normalised_user_code(db: Db) -> None:
    s = counting(db)
    issued = await issue(s, dpop_jkt="jkt-1")
    assert re.fullmatch(f"[{USER_CODE_ALPHABET}]{{4}}-[{USER_CODE_ALPHABET}]{{4}}",
                        issued.user_code)
    assert issued.expires_at == int(T0) + 600
    assert issued.expires_in == 600
    (row,) = await db.rows(db.tables.device_codes)
    assert row.device_code_hash == digest(issued.device_code)
    assert row.device_code_hash != issued.device_code
    assert row.user_code == issued.user_code.replace("-", "")
    assert row.status == "pending"
    assert row.dpop_jkt == "jkt-1"
    assert list(row.scope) == ["read", "write"]


async def test_user_code_collision_retries_five_times_then_is_server_error(db: Db) -> None:
    """DEV-10: every draw collides with a stored code, so issuance gives up after 5 puts."""
    s = counting(db)
    await s.inner.put(
        NewDeviceCode(digest("existing"), "BBBBBBBB", "cli-0", int(T0) + 600)
    )
    outcome = await issue_device_code(
        s, client_id="cli-1", now=T0, random_bytes=zeros_for_user_codes
    )
    assert outcome == UserCodeUnavailable()
    assert outcome.error == "server_error"
    assert outcome.reason == "user_code_unavailable"
    assert s.calls["put"] == 5
    assert s.put_outcomes == [UserCodeTaken()] * 5
    assert len(await db.rows(db.tables.device_codes)) == 1


async def test_user_code_collision_is_retried_with_a_fresh_code(db: Db) -> None:
    """DEV-10: two colliding draws, then a fresh code is stored."""
    s = counting(db)
    await s.inner.put(
        NewDeviceCode(digest("existing"), "BBBBBBBB", "cli-0", int(T0) + 600)
    )
    user_code_draws = iter([bytes(8), bytes(8)])

    def source(n: int) -> bytes:
        if n == 32:
            return secrets.token_bytes(n)
        return next(user_code_draws, b"")[:n] or bytes([1] * n)  # then CCCCCCCC

    outcome = await issue_device_code(s, client_id="cli-1", now=T0, random_bytes=source)
    assert isinstance(outcome, IssuedDeviceCode)
    assert outcome.user_code == "CCCC-CCCC"
    assert s.put_outcomes == [UserCodeTaken(), UserCodeTaken(), Stored()]
    assert len(await db.rows(db.tables.device_codes)) == 2


# --- DEV-09: redemption precedence ---


async def test_pending_code_is_authorization_pending(db: Db) -> None:
    """DEV-09."""
    s = counting(db)
    issued = await issue(s)
    outcome = await redeem_device_code(s, issued.device_code, "cli-1", None, 5, T0 + 5)
    assert outcome == DeviceRedeemError("authorization_pending")


async def test_denied_code_is_access_denied(db: Db) -> None:
    """DEV-09."""
    s = counting(db)
    issued = await issue(s)
    await deny_user_code(s, issued.user_code, now=T0)
    outcome = await redeem_device_code(s, issued.device_code, "cli-1", None, 5, T0 + 5)
    assert outcome == DeviceRedeemError("access_denied")


async def test_expiry_beats_a_stale_approval(db: Db) -> None:
    """DEV-09: expired_token, and the approved code is not consumed."""
    s = counting(db)
    issued = await issue(s)
    await approve_user_code(s, issued.user_code, Approval("alice"), now=T0)
    outcome = await redeem_device_code(
        s, issued.device_code, "cli-1", None, 5, issued.expires_at
    )
    assert outcome == DeviceRedeemError("expired_token")
    assert s.calls["consume"] == 0
    (row,) = await db.rows(db.tables.device_codes)
    assert row.status == "approved"


async def test_client_mismatch_is_invalid_grant_and_does_not_burn_the_code(db: Db) -> None:
    """DEV-09: the right client can still redeem afterwards."""
    s = counting(db)
    issued = await issue(s)
    await approve_user_code(s, issued.user_code, Approval("alice", ("read",)), now=T0)
    wrong = await redeem_device_code(s, issued.device_code, "cli-2", None, 5, T0 + 5)
    assert wrong == DeviceRedeemError("invalid_grant")
    assert s.calls["consume"] == 0
    right = await redeem_device_code(s, issued.device_code, "cli-1", None, 5, T0 + 10)
    assert isinstance(right, DeviceGrant)


async def test_dpop_prebound_code_needs_the_same_key(db: Db) -> None:
    """DEV-09 (spec §3.3 step 4): a missing or other jkt is invalid_grant."""
    s = counting(db)
    issued = await issue(s, dpop_jkt="jkt-1")
    await approve_user_code(s, issued.user_code, Approval("alice"), now=T0)
    assert await redeem_device_code(
        s, issued.device_code, "cli-1", None, 5, T0 + 5
    ) == DeviceRedeemError("invalid_grant")
    assert await redeem_device_code(
        s, issued.device_code, "cli-1", "jkt-2", 5, T0 + 10
    ) == DeviceRedeemError("invalid_grant")
    grant = await redeem_device_code(s, issued.device_code, "cli-1", "jkt-1", 5, T0 + 15)
    assert isinstance(grant, DeviceGrant)
    assert grant.dpop_jkt == "jkt-1"


async def test_approved_code_yields_the_grant_once(db: Db) -> None:
    """DEV-09: granted scope, resource, claims; then invalid_grant for the consumed code."""
    s = counting(db)
    issued = await issue(s)
    approval = Approval("alice", ("read",), {"acr": "1", "auth_time": int(T0)})
    await approve_user_code(s, issued.user_code, approval, now=T0)
    grant = await redeem_device_code(s, issued.device_code, "cli-1", None, 5, T0 + 5)
    assert grant == DeviceGrant(
        client_id="cli-1",
        subject="alice",
        scope=("read",),
        resource=(),
        dpop_jkt=None,
        claims={"acr": "1", "auth_time": int(T0)},
    )
    again = await redeem_device_code(s, issued.device_code, "cli-1", None, 5, T0 + 10)
    assert again == DeviceRedeemError("invalid_grant")


async def test_polling_too_fast_is_slow_down_even_for_an_expired_code(db: Db) -> None:
    """DEV-09: the poll step comes first in the precedence."""
    s = counting(db)
    issued = await issue(s)
    first = await redeem_device_code(s, issued.device_code, "cli-1", None, 5, T0 + 700)
    assert first == DeviceRedeemError("expired_token")
    fast = await redeem_device_code(s, issued.device_code, "cli-1", None, 5, T0 + 701)
    assert fast == DeviceRedeemError("slow_down")


async def test_unknown_or_non_string_device_code_is_invalid_grant(db: Db) -> None:
    """DEV-09."""
    s = counting(db)
    assert await redeem_device_code(
        s, "not-a-device-code", "cli-1", None, 5, T0
    ) == DeviceRedeemError("invalid_grant")
    assert await redeem_device_code(s, None, "cli-1", None, 5, T0) == DeviceRedeemError(
        "invalid_grant"
    )
