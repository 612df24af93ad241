"""The device_code grant at the token endpoint.

RFC 8628 §3.4 (the token request), §3.5 (authorization_pending, slow_down with an interval
growing by 5 s, access_denied, expired_token); RFC 9449 §5 (DPoP); RFC 8707 §2.2; OIDC Core
§3.1.3.3; authward spec/stores.md §3.3 (redeem precedence, single use, fresh refresh family).
Real SQL stores on SQLite and PostgreSQL; the clock is frozen and moved by hand.
"""

from __future__ import annotations

import asyncio
from typing import Any

from authward.core.clients import Client
from authward.core.config import FeatureSettings, LogoutSettings
from authward.core.endpoints.device_verification import DeviceApproved, DeviceDenied, decide
from authward.core.grants.device_code import GRANT_TYPE
from authward.core.jose import generate_signing_key, jwk_thumbprint
from authward.core.policy import Authentication
from authward.stores.digest import digest
from authward.stores.refresh import Found as RefreshFound
from tests.core import dpop_proofs
from tests.core.endpoints.device_kit import (
    DEVICE_CLIENT_ID,
    DEVICE_URL,
    NO_DEVICE_CLIENT_ID,
    NO_DEVICE_SECRET,
    PUBLIC_DEVICE_CLIENT_ID,
    add_device_clients,
    error_of,
    poll,
    started,
)
from tests.core.endpoints.kit import TOKEN_URL, Kit, build
from tests.core.endpoints.token_requests import basic, verify_signed
from tests.dbkit import Db

ALICE = Authentication(subject="alice", auth_time=1_767_225_000, sid="sid-a", amr=("pwd",))
DPOP_KEY = generate_signing_key("ES256")
OTHER_KEY = generate_signing_key("ES256")
OTHER_DEVICE_CLIENT = "other-tv"
OTHER_DEVICE_SECRET = "other-tv-secret"


def kit_for(db: Db, **settings: Any) -> Kit:
    kit = build(db, **settings)
    add_device_clients(kit)
    kit.clients.add(
        Client(OTHER_DEVICE_CLIENT, "confidential", "client_secret_basic",
               grant_types=(GRANT_TYPE,)),
        OTHER_DEVICE_SECRET,
    )
    return kit


async def begin(kit: Kit, scope: str = "openid offline_access read", **kw: Any) -> tuple[str, str]:
    """Start a flow; return (device_code, user_code)."""
    form = [("scope", scope), *kw.pop("form", ())]
    body = await started(kit, form=form, **kw)
    return str(body["device_code"]), str(body["user_code"])


def body_of(res: Any) -> dict[str, Any]:
    assert res.json is not None
    return dict(res.json)


async def test_pending_code_is_authorization_pending(db: Db) -> None:
    kit = kit_for(db)
    device_code, _ = await begin(kit)
    res = await poll(kit, device_code)
    assert (res.status, error_of(res)) == (400, "authorization_pending")
    assert res.headers.get("cache-control") == "no-store"


async def test_slow_down_grows_the_interval_by_five_seconds_each_time(db: Db) -> None:
    """RFC 8628 §3.5: each slow_down adds 5 s; the body tells the client the new interval, and
    polling again sooner than it is another slow_down (state in the tables, not memory)."""
    kit = kit_for(db)
    device_code, _ = await begin(kit)
    assert error_of(await poll(kit, device_code)) == "authorization_pending"
    kit.clock.advance(1)
    res = await poll(kit, device_code)
    assert (res.status, error_of(res)) == (400, "slow_down")
    assert body_of(res)["interval"] == 10
    kit.clock.advance(1)
    res = await poll(kit, device_code)
    assert error_of(res) == "slow_down"
    assert body_of(res)["interval"] == 15
    kit.clock.advance(14)  # 14 s after the last slow_down: still too fast for 15
    res = await poll(kit, device_code)
    assert error_of(res) == "slow_down"
    assert body_of(res)["interval"] == 20
    kit.clock.advance(20)  # the client obeys the new interval
    assert error_of(await poll(kit, device_code)) == "authorization_pending"


async def test_a_poll_exactly_one_interval_later_is_accepted(db: Db) -> None:
    kit = kit_for(db)
    device_code, _ = await begin(kit)
    await poll(kit, device_code)
    kit.clock.advance(5)
    assert error_of(await poll(kit, device_code)) == "authorization_pending"


async def test_approved_code_yields_tokens_once(db: Db) -> None:
    """spec §3.3: approval then single-use consume; the second redemption is invalid_grant."""
    kit = kit_for(db)
    kit.claims.by_subject["alice"] = {"name": "Alice"}
    device_code, user_code = await begin(kit)
    assert isinstance(await decide(kit.server, ALICE, user_code, "approve"), DeviceApproved)
    res = await poll(kit, device_code)
    assert res.status == 200, res.json
    body = body_of(res)
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "openid offline_access read"
    assert "refresh_token" in body
    access = verify_signed(kit, body["access_token"])
    assert access["sub"] == "alice"
    assert access["client_id"] == DEVICE_CLIENT_ID
    id_token = verify_signed(kit, body["id_token"])
    assert id_token["sub"] == "alice"
    assert id_token["aud"] == DEVICE_CLIENT_ID
    assert id_token["auth_time"] == ALICE.auth_time
    assert id_token["sid"] == "sid-a"
    assert id_token["name"] == "Alice"
    assert "nonce" not in id_token
    refresh = await kit.server.stores.refresh_tokens.get(digest(body["refresh_token"]))
    assert isinstance(refresh, RefreshFound)
    assert refresh.entry.generation == 0
    kit.clock.advance(5)
    again = await poll(kit, device_code)
    assert (again.status, error_of(again)) == (400, "invalid_grant")
    assert [e.name for e in kit.events.events].count("token.issued") == 1


async def test_no_refresh_token_without_offline_access(db: Db) -> None:
    kit = kit_for(db)
    device_code, user_code = await begin(kit, scope="read")
    await decide(kit.server, ALICE, user_code, "approve")
    body = body_of(await poll(kit, device_code))
    assert "refresh_token" not in body
    assert "id_token" not in body
    assert body["scope"] == "read"


async def test_host_narrowed_scope_is_what_the_token_gets(db: Db) -> None:
    """spec §3.3 "Verification page": the granted scope is the host-narrowed scope."""
    kit = kit_for(db)
    device_code, user_code = await begin(kit)
    kit.scopes.refused.add("offline_access")
    await decide(kit.server, ALICE, user_code, "approve")
    body = body_of(await poll(kit, device_code))
    assert body["scope"] == "openid read"
    assert "refresh_token" not in body


async def test_denied_code_is_access_denied(db: Db) -> None:
    kit = kit_for(db)
    device_code, user_code = await begin(kit)
    assert isinstance(await decide(kit.server, ALICE, user_code, "deny"), DeviceDenied)
    res = await poll(kit, device_code)
    assert (res.status, error_of(res)) == (400, "access_denied")


async def test_expired_code_is_expired_token_even_when_approved(db: Db) -> None:
    """spec §3.3: expiry beats a stale approval."""
    kit = kit_for(db)
    device_code, user_code = await begin(kit)
    await decide(kit.server, ALICE, user_code, "approve")
    kit.clock.advance(600)
    res = await poll(kit, device_code)
    assert (res.status, error_of(res)) == (400, "expired_token")
    kit.clock.advance(5)
    assert error_of(await poll(kit, device_code)) == "expired_token"


async def test_another_clients_poll_is_invalid_grant_and_does_not_burn_the_code(db: Db) -> None:
    kit = kit_for(db)
    device_code, user_code = await begin(kit)
    await decide(kit.server, ALICE, user_code, "approve")
    res = await poll(kit, device_code, headers=(basic(OTHER_DEVICE_CLIENT, OTHER_DEVICE_SECRET),))
    assert (res.status, error_of(res)) == (400, "invalid_grant")
    kit.clock.advance(5)
    assert (await poll(kit, device_code)).status == 200


async def test_unknown_or_missing_device_code(db: Db) -> None:
    kit = kit_for(db)
    res = await poll(kit, "no-such-code")
    assert (res.status, error_of(res)) == (400, "invalid_grant")
    res = await poll(kit, "")
    assert (res.status, error_of(res)) == (400, "invalid_request")


async def test_client_without_the_grant_is_unauthorized_client(db: Db) -> None:
    kit = kit_for(db)
    device_code, _ = await begin(kit)
    res = await poll(kit, device_code, headers=(basic(NO_DEVICE_CLIENT_ID, NO_DEVICE_SECRET),))
    assert (res.status, error_of(res)) == (400, "unauthorized_client")


async def test_disabled_grant_is_unsupported_grant_type(db: Db) -> None:
    kit = kit_for(db, features=FeatureSettings(device_authorization_grant=False))
    res = await poll(kit, "anything")
    assert (res.status, error_of(res)) == (400, "unsupported_grant_type")


def token_proof(kit: Kit, key: Any) -> tuple[str, str]:
    return ("DPoP", dpop_proofs.proof(key, htu=TOKEN_URL, iat=kit.clock.now()))


async def test_public_client_flow_is_dpop_bound_end_to_end(db: Db) -> None:
    """RFC 9449 §5 / spec §3.3: the key pre-bound at the device endpoint must poll; a missing
    or foreign proof is invalid_grant and leaves the code usable; the token is DPoP."""
    kit = kit_for(db)
    device_proof = ("DPoP", dpop_proofs.proof(DPOP_KEY, htu=DEVICE_URL, iat=kit.clock.now()))
    device_code, user_code = await begin(
        kit, form=(("client_id", PUBLIC_DEVICE_CLIENT_ID),), headers=(device_proof,)
    )
    await decide(kit.server, ALICE, user_code, "approve")
    public = (("client_id", PUBLIC_DEVICE_CLIENT_ID),)
    res = await poll(kit, device_code, headers=(), extra=public)
    assert (res.status, error_of(res)) == (400, "invalid_grant")
    kit.clock.advance(5)
    res = await poll(kit, device_code, headers=(token_proof(kit, OTHER_KEY),), extra=public)
    assert (res.status, error_of(res)) == (400, "invalid_grant")
    kit.clock.advance(5)
    res = await poll(kit, device_code, headers=(token_proof(kit, DPOP_KEY),), extra=public)
    assert res.status == 200, res.json
    body = body_of(res)
    assert body["token_type"] == "DPoP"
    access = verify_signed(kit, body["access_token"])
    assert access["cnf"] == {"jkt": jwk_thumbprint(DPOP_KEY.public_jwk())}


async def test_resource_narrowing_and_refusal(db: Db) -> None:
    """RFC 8707 §2.2: the token request may narrow to granted resources, not add one."""
    kit = kit_for(db)
    resources = (("resource", "https://a.example/"), ("resource", "https://b.example/"))
    device_code, user_code = await begin(kit, scope="read", form=resources)
    await decide(kit.server, ALICE, user_code, "approve")
    res = await poll(kit, device_code, extra=(("resource", "https://c.example/"),))
    assert (res.status, error_of(res)) == (400, "invalid_target")
    # invalid_target is checked after the single-use consume: the code is spent.
    kit.clock.advance(5)
    assert error_of(await poll(kit, device_code)) == "invalid_grant"

    device_code, user_code = await begin(kit, scope="read", form=resources)
    await decide(kit.server, ALICE, user_code, "approve")
    body = body_of(await poll(kit, device_code, extra=(("resource", "https://b.example/"),)))
    access = verify_signed(kit, body["access_token"])
    assert access["aud"] == "https://b.example/"


async def test_concurrent_polls_of_an_approved_code_mint_once(db: Db) -> None:
    """spec §3.3: one accepted poll per interval and one consume: exactly one success."""
    kit = kit_for(db)
    device_code, user_code = await begin(kit)
    await decide(kit.server, ALICE, user_code, "approve")
    results = await asyncio.gather(*(poll(kit, device_code) for _ in range(8)))
    assert sorted(r.status for r in results).count(200) == 1
    assert {error_of(r) for r in results if r.status != 200} <= {"slow_down", "invalid_grant"}


async def test_device_id_token_records_the_approving_session_for_back_channel_logout(
    db: Db,
) -> None:
    """Back-Channel Logout 1.0 §2.2, spec §3.4: the device's ID token carries the approving
    browser session's sid, so that (sid, client) is recorded; a client without a
    backchannel_logout_uri, or logout switched off, records nothing."""
    kit = kit_for(db, logout=LogoutSettings(enabled=True))
    kit.clients.add(
        Client(
            "tv-logout", "confidential", "client_secret_basic",
            grant_types=(GRANT_TYPE,), scope=("openid",),
            backchannel_logout_uri="https://tv.example/backchannel",
        ),
        "tv-logout-secret",
    )
    body = await started(kit, form=[("scope", "openid")],
                         headers=(basic("tv-logout", "tv-logout-secret"),))
    assert isinstance(await decide(kit.server, ALICE, str(body["user_code"]), "approve"),
                      DeviceApproved)
    res = await poll(kit, str(body["device_code"]),
                     headers=(basic("tv-logout", "tv-logout-secret"),))
    assert res.status == 200, res.json
    (row,) = await db.rows(db.tables.logout_sessions)
    assert (row._mapping["sid"], row._mapping["client_id"], row._mapping["subject"]) == (
        "sid-a", "tv-logout", "alice"
    )
    assert row._mapping["backchannel_logout_uri"] == "https://tv.example/backchannel"
    # The standard device client registered no back-channel URI: nothing more is recorded.
    device_code, user_code = await begin(kit, scope="openid")
    assert isinstance(await decide(kit.server, ALICE, user_code, "approve"), DeviceApproved)
    assert (await poll(kit, device_code)).status == 200
    assert len(await db.rows(db.tables.logout_sessions)) == 1
