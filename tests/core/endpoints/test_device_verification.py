"""The device verification step (transport-free) and its brute-force limit.

RFC 8628 §3.3 (enter code, see client and scopes, decide), §5.1 (brute force of user codes);
authward spec/stores.md §3.3 ("Verification page"), §7 item 8 (decisions check expiry). The
limit lives in the shared replay table: a second server on its own engine sees the same budget.
Real SQL stores on SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import Any

from authward.core.config import DeviceAuthorizationSettings
from authward.core.endpoints.device_verification import (
    CodeRefused,
    DeviceApproved,
    DeviceDenied,
    DevicePrompt,
    TooManyAttempts,
    decide,
    look_up,
)
from authward.core.policy import Authentication
from authward.stores.device_codes import Found
from tests.core.endpoints.device_kit import DEVICE_CLIENT_ID, add_device_clients, started
from tests.core.endpoints.kit import Kit, build
from tests.dbkit import Db

ALICE = Authentication(
    subject="alice", auth_time=1_767_225_000, sid="sid-a", acr="urn:acr:pwd", amr=("pwd",)
)
BOB = Authentication(subject="bob", auth_time=1_767_225_000, sid="sid-b")
WRONG = "BBBB-BBBB"


def kit_for(db: Db, **settings: Any) -> Kit:
    kit = build(db, **settings)
    add_device_clients(kit)
    return kit


def limited(db: Db, failures: int = 3, window: int = 60) -> Kit:
    return kit_for(
        db,
        device_authorization=DeviceAuthorizationSettings(
            max_failed_user_codes=failures, failed_user_code_window_seconds=window
        ),
    )


async def new_user_code(kit: Kit, scope: str = "openid profile read") -> str:
    return str((await started(kit, form=(("scope", scope),)))["user_code"])


async def test_look_up_shows_client_and_host_narrowed_scopes(db: Db) -> None:
    kit = kit_for(db)
    user_code = await new_user_code(kit)
    kit.scopes.refused.add("profile")
    found = await look_up(kit.server, ALICE, user_code.lower().replace("-", " "))
    assert isinstance(found, DevicePrompt)
    assert found.client.client_id == DEVICE_CLIENT_ID
    assert found.scopes == ("openid", "read")
    assert found.user_code == user_code


async def test_malformed_input_is_refused_without_counting(db: Db) -> None:
    """spec §3.3: normalisation rejects bad input before any store call (not a failure)."""
    kit = limited(db, failures=1)
    for raw in ("", "AAAA-AAAA", "BCDF", "BCDF-GHJK-L", 42):
        found = await look_up(kit.server, ALICE, raw)
        assert found == CodeRefused("malformed")
    user_code = await new_user_code(kit)
    assert isinstance(await look_up(kit.server, ALICE, user_code), DevicePrompt)


async def test_unknown_codes_count_down_then_lock_even_the_right_code(db: Db) -> None:
    """RFC 8628 §5.1: after N unknown codes in the window, right and wrong codes alike get
    TooManyAttempts (guessing learns nothing) until the window ends."""
    kit = limited(db, failures=3, window=60)
    user_code = await new_user_code(kit)
    assert await look_up(kit.server, ALICE, WRONG) == CodeRefused("unknown", attempts_left=2)
    assert await look_up(kit.server, ALICE, WRONG) == CodeRefused("unknown", attempts_left=1)
    assert await look_up(kit.server, ALICE, WRONG) == CodeRefused("unknown", attempts_left=0)
    locked = await look_up(kit.server, ALICE, user_code)
    assert isinstance(locked, TooManyAttempts)
    assert 1 <= locked.retry_after <= 60
    assert isinstance(await look_up(kit.server, ALICE, WRONG), TooManyAttempts)
    assert isinstance(await decide(kit.server, ALICE, user_code, "approve"), TooManyAttempts)
    view = await kit.server.stores.device_codes.lookup_user_code(user_code.replace("-", ""))
    assert isinstance(view, Found)
    assert view.view.status == "pending"
    assert "device.user_code_locked" in kit.events.names()
    # Another user has their own budget.
    assert isinstance(await look_up(kit.server, BOB, user_code), DevicePrompt)
    # The next window starts afresh.
    kit.clock.advance(locked.retry_after)
    assert isinstance(await look_up(kit.server, ALICE, user_code), DevicePrompt)


async def test_right_codes_do_not_use_the_failure_budget(db: Db) -> None:
    kit = limited(db, failures=2)
    for _ in range(4):
        user_code = await new_user_code(kit)
        assert isinstance(await look_up(kit.server, ALICE, user_code), DevicePrompt)
        assert isinstance(await decide(kit.server, ALICE, user_code, "approve"), DeviceApproved)
    assert await look_up(kit.server, ALICE, WRONG) == CodeRefused("unknown", attempts_left=1)


async def test_guessing_by_posting_decisions_is_counted_too(db: Db) -> None:
    kit = limited(db, failures=2)
    assert await decide(kit.server, ALICE, WRONG, "approve") == CodeRefused(
        "unknown", attempts_left=1
    )
    assert await decide(kit.server, ALICE, WRONG, "deny") == CodeRefused(
        "unknown", attempts_left=0
    )
    assert isinstance(await decide(kit.server, ALICE, WRONG, "approve"), TooManyAttempts)


async def test_the_budget_is_shared_by_every_node(db: Db) -> None:
    """No process memory: a second server on its own engine sees the same failures."""
    kit = limited(db, failures=2)
    other_engine = db.new_engine()
    try:
        node_b = kit.sibling(other_engine)
        user_code = await new_user_code(kit)
        await look_up(kit.server, ALICE, WRONG)
        await look_up(node_b.server, ALICE, WRONG)
        assert isinstance(await look_up(kit.server, ALICE, user_code), TooManyAttempts)
        assert isinstance(await look_up(node_b.server, ALICE, user_code), TooManyAttempts)
    finally:
        await other_engine.dispose()


async def test_approve_binds_subject_scope_and_sign_in_facts(db: Db) -> None:
    kit = kit_for(db)
    user_code = await new_user_code(kit)
    outcome = await decide(kit.server, ALICE, user_code, "approve")
    assert outcome == DeviceApproved(outcome.client, ("openid", "profile", "read"))  # type: ignore[union-attr]
    event = [e for e in kit.events.events if e.name == "device.approved"][-1]
    assert event.data == {
        "client_id": DEVICE_CLIENT_ID, "subject": "alice", "scope": "openid profile read"
    }
    assert user_code.replace("-", "") not in repr(kit.events.events)


async def test_deny_then_any_decision_is_already_decided(db: Db) -> None:
    kit = kit_for(db)
    user_code = await new_user_code(kit)
    assert isinstance(await decide(kit.server, ALICE, user_code, "deny"), DeviceDenied)
    assert "device.denied" in kit.events.names()
    assert await decide(kit.server, ALICE, user_code, "approve") == CodeRefused("decided")
    assert await look_up(kit.server, ALICE, user_code) == CodeRefused("decided")


async def test_expired_code_cannot_be_shown_or_approved(db: Db) -> None:
    """spec §7 item 8: decisions check expiry."""
    kit = kit_for(db)
    user_code = await new_user_code(kit)
    kit.clock.advance(600)
    assert await look_up(kit.server, ALICE, user_code) == CodeRefused("expired")
    assert await decide(kit.server, ALICE, user_code, "approve") == CodeRefused("expired")
