"""The device authorization endpoint.

RFC 8628 §3.1 (POST, client authentication, scope), §3.2 (response members, no-store), §6.1
(user code alphabet); RFC 8707 §2 (resource); RFC 9449 §10 (dpop_jkt) and §5 (a proof binds the
code); authward spec/stores.md §3.3 (public clients present a DPoP proof). Real SQL stores on
SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa

from authward.core.clients import Client
from authward.core.config import DeviceAuthorizationSettings, FeatureSettings
from authward.core.device_codes import USER_CODE_ALPHABET
from authward.core.endpoints import device_authorization
from authward.core.grants.device_code import GRANT_TYPE
from authward.core.http import Request
from authward.core.jose import generate_signing_key, jwk_thumbprint
from authward.stores.digest import digest
from tests.core import dpop_proofs
from tests.core.endpoints.device_kit import (
    DEVICE_CLIENT_ID,
    DEVICE_URL,
    NO_DEVICE_CLIENT_ID,
    NO_DEVICE_SECRET,
    PUBLIC_DEVICE_CLIENT_ID,
    add_device_clients,
    device_auth,
    error_of,
    start,
    started,
)
from tests.core.endpoints.kit import ISSUER, Kit, build, post
from tests.core.endpoints.token_requests import basic
from tests.dbkit import Db

DPOP_KEY = generate_signing_key("ES256")
OTHER_KEY = generate_signing_key("ES256")


def kit_for(db: Db, **settings: Any) -> Kit:
    kit = build(db, **settings)
    add_device_clients(kit)
    return kit


async def device_rows(kit: Kit) -> list[dict[str, object]]:
    table = kit.server.stores.device_codes._t  # type: ignore[attr-defined]
    async with kit.db.engine.connect() as conn:
        return [dict(r._mapping) for r in (await conn.execute(sa.select(table))).all()]


def proof_header(kit: Kit, key: object = DPOP_KEY) -> tuple[str, str]:
    return ("DPoP", dpop_proofs.proof(key, htu=DEVICE_URL, iat=kit.clock.now()))  # type: ignore[arg-type]


def jkt(key: object) -> str:
    return jwk_thumbprint(key.public_jwk())  # type: ignore[attr-defined]


async def test_response_has_every_rfc8628_member_and_is_not_stored(db: Db) -> None:
    """RFC 8628 §3.2: device_code, user_code, verification_uri(_complete), expires_in,
    interval; Cache-Control: no-store."""
    kit = kit_for(db)
    res = await start(kit)
    assert res.status == 200
    assert res.headers.get("cache-control") == "no-store"
    body = res.json
    assert body is not None
    assert set(body) == {
        "device_code", "user_code", "verification_uri", "verification_uri_complete",
        "expires_in", "interval",
    }
    user_code = body["user_code"]
    assert isinstance(user_code, str)
    assert re.fullmatch(f"[{USER_CODE_ALPHABET}]{{4}}-[{USER_CODE_ALPHABET}]{{4}}", user_code)
    assert body["verification_uri"] == ISSUER + "/device"
    assert body["verification_uri_complete"] == (
        ISSUER + "/device?user_code=" + user_code
    )
    assert body["expires_in"] == 600
    assert body["interval"] == 5


async def test_only_the_digest_of_the_device_code_is_stored(db: Db) -> None:
    """spec §3.3: the device code is a secret stored as a hash; the user code normalised."""
    kit = kit_for(db)
    body = await started(kit)
    rows = await device_rows(kit)
    assert len(rows) == 1
    row = rows[0]
    assert row["device_code_hash"] == digest(str(body["device_code"]))
    assert row["user_code"] == str(body["user_code"]).replace("-", "")
    assert row["client_id"] == DEVICE_CLIENT_ID
    assert row["status"] == "pending"
    assert str(body["device_code"]) not in str(row)


async def test_settings_drive_ttl_interval_and_code_length(db: Db) -> None:
    kit = kit_for(
        db,
        device_authorization=DeviceAuthorizationSettings(
            code_ttl_seconds=120, poll_interval_seconds=7, user_code_length=12
        ),
    )
    body = await started(kit)
    assert body["expires_in"] == 120
    assert body["interval"] == 7
    assert len(str(body["user_code"])) == 14  # three groups of four, two hyphens


async def test_scope_is_narrowed_by_the_client_registration(db: Db) -> None:
    """RFC 6749 §3.3: the scope policy narrows; the stored scope is what may be granted."""
    kit = kit_for(db)
    await started(kit, form=(("scope", "openid read admin"),))
    rows = await device_rows(kit)
    assert list(rows[0]["scope"]) == ["openid", "read"]  # type: ignore[call-overload]


async def test_nothing_grantable_is_invalid_scope(db: Db) -> None:
    kit = kit_for(db)
    res = await start(kit, form=(("scope", "admin"),))
    assert (res.status, error_of(res)) == (400, "invalid_scope")
    assert await device_rows(kit) == []


async def test_malformed_scope_is_invalid_scope(db: Db) -> None:
    kit = kit_for(db)
    res = await start(kit, form=(("scope", "openid  read"),))
    assert (res.status, error_of(res)) == (400, "invalid_scope")


async def test_resources_are_stored_and_checked(db: Db) -> None:
    """RFC 8707 §2: absolute URIs without fragment, may repeat; others invalid_target."""
    kit = kit_for(db)
    await started(
        kit,
        form=(("resource", "https://api.example/"), ("resource", "https://other.example/")),
    )
    rows = await device_rows(kit)
    assert list(rows[0]["resource"]) == [  # type: ignore[call-overload]
        "https://api.example/", "https://other.example/",
    ]
    for bad in ("relative/path", "https://api.example/#frag", "https://x.example/" + "a" * 300):
        res = await start(kit, form=(("resource", bad),))
        assert (res.status, error_of(res)) == (400, "invalid_target"), bad
    assert len(await device_rows(kit)) == 1


async def test_client_without_the_device_grant_is_unauthorized_client(db: Db) -> None:
    kit = kit_for(db)
    res = await start(kit, headers=(basic(NO_DEVICE_CLIENT_ID, NO_DEVICE_SECRET),))
    assert (res.status, error_of(res)) == (400, "unauthorized_client")
    assert await device_rows(kit) == []


async def test_wrong_secret_is_invalid_client_with_a_basic_challenge(db: Db) -> None:
    kit = kit_for(db)
    res = await start(kit, headers=(basic(DEVICE_CLIENT_ID, "wrong"),))
    assert (res.status, error_of(res)) == (401, "invalid_client")
    assert (res.headers.get("www-authenticate") or "").startswith("Basic")
    events = [e for e in kit.events.events if e.name == "device.authorization_refused"]
    assert events
    assert events[-1].data["error"] == "invalid_client"


async def test_public_client_without_a_dpop_proof_gets_an_unbound_code(db: Db) -> None:
    """RFC 8628 §3.1 and RFC 9449 ask no proof here (openid-client cannot send one): the
    code is issued unbound."""
    kit = kit_for(db)
    res = await start(
        kit, form=(("client_id", PUBLIC_DEVICE_CLIENT_ID),), headers=()
    )
    assert res.status == 200, res.json
    rows = await device_rows(kit)
    assert [row["dpop_jkt"] for row in rows] == [None]


async def test_the_setting_requires_a_proof_from_public_clients(db: Db) -> None:
    kit = kit_for(
        db, device_authorization=DeviceAuthorizationSettings(require_dpop_for_public_clients=True)
    )
    res = await start(
        kit, form=(("client_id", PUBLIC_DEVICE_CLIENT_ID),), headers=()
    )
    assert (res.status, error_of(res)) == (400, "invalid_request")
    assert await device_rows(kit) == []
    res = await start(kit, form=(("client_id", PUBLIC_DEVICE_CLIENT_ID),),
                      headers=(proof_header(kit),))
    assert res.status == 200, res.json


async def test_a_client_registered_for_bound_tokens_must_send_a_proof(db: Db) -> None:
    """RFC 9449 §5.2: ``dpop_bound_access_tokens`` means every token request needs a proof."""
    kit = kit_for(db)
    kit.clients.add(
        Client("bound-cli", "public", "none", grant_types=(GRANT_TYPE,),
               dpop_bound_access_tokens=True)
    )
    res = await start(kit, form=(("client_id", "bound-cli"),), headers=())
    assert (res.status, error_of(res)) == (400, "invalid_request")
    assert await device_rows(kit) == []


async def test_public_client_with_a_proof_binds_the_code_to_its_key(db: Db) -> None:
    """RFC 9449 §10 / spec §3.3: the proof key is pre-bound (dpop_jkt) to the device code."""
    kit = kit_for(db)
    res = await start(
        kit, form=(("client_id", PUBLIC_DEVICE_CLIENT_ID),), headers=(proof_header(kit),)
    )
    assert res.status == 200, res.json
    rows = await device_rows(kit)
    assert rows[0]["dpop_jkt"] == jkt(DPOP_KEY)


async def test_dpop_jkt_alone_binds_a_confidential_clients_code(db: Db) -> None:
    kit = kit_for(db)
    await started(kit, form=(("dpop_jkt", jkt(DPOP_KEY)),))
    assert (await device_rows(kit))[0]["dpop_jkt"] == jkt(DPOP_KEY)


async def test_dpop_jkt_differing_from_the_proof_is_invalid_request(db: Db) -> None:
    kit = kit_for(db)
    res = await start(
        kit,
        form=(("dpop_jkt", jkt(OTHER_KEY)),),
        headers=(device_auth(), proof_header(kit)),
    )
    assert (res.status, error_of(res)) == (400, "invalid_request")
    assert await device_rows(kit) == []


async def test_refusal_event_names_the_authenticated_client(db: Db) -> None:
    kit = kit_for(db)
    await start(kit, form=(("scope", "admin"),))
    event = [e for e in kit.events.events if e.name == "device.authorization_refused"][-1]
    assert event.data == {"client_id": DEVICE_CLIENT_ID, "error": "invalid_scope"}


async def test_malformed_dpop_jkt_is_invalid_request(db: Db) -> None:
    kit = kit_for(db)
    res = await start(kit, form=(("dpop_jkt", "not-a-thumbprint"),))
    assert (res.status, error_of(res)) == (400, "invalid_request")


async def test_a_bad_dpop_proof_is_invalid_dpop_proof(db: Db) -> None:
    kit = kit_for(db)
    res = await start(kit, headers=(device_auth(), ("DPoP", "not.a.proof")))
    assert (res.status, error_of(res)) == (400, "invalid_dpop_proof")
    assert await device_rows(kit) == []


async def test_bad_requests_get_exact_errors_and_write_nothing(db: Db) -> None:
    """RFC 6749 §5.2: wrong method, content type, repeated or over-long parameters."""
    kit = kit_for(db)
    get = Request.build("GET", DEVICE_URL)
    res = await device_authorization.handle(kit.server, get)
    assert res.status == 405
    assert res.headers.get("allow") == "POST"
    as_json = Request.build(
        "POST", DEVICE_URL, headers=(device_auth(), ("Content-Type", "application/json"))
    )
    res = await device_authorization.handle(kit.server, as_json)
    assert (res.status, error_of(res)) == (400, "invalid_request")
    res = await start(kit, form=(("scope", "openid"), ("scope", "read")))
    assert (res.status, error_of(res)) == (400, "invalid_request")
    res = await start(kit, form=(("scope", "a" * 5000),))
    assert (res.status, error_of(res)) == (400, "invalid_request")
    assert await device_rows(kit) == []


async def test_disabled_feature_refuses(db: Db) -> None:
    kit = kit_for(db, features=FeatureSettings(device_authorization_grant=False))
    res = await start(kit)
    assert (res.status, error_of(res)) == (400, "invalid_request")


async def test_issued_event_names_client_and_scope_but_no_code(db: Db) -> None:
    kit = kit_for(db)
    body = await started(kit)
    event = [e for e in kit.events.events if e.name == "device.authorization_issued"][-1]
    assert event.data["client_id"] == DEVICE_CLIENT_ID
    assert event.data["scope"] == "openid offline_access read"
    text = repr(event.data)
    assert str(body["device_code"]) not in text
    assert str(body["user_code"]) not in text
    assert str(body["user_code"]).replace("-", "") not in text


async def test_each_request_gets_distinct_codes(db: Db) -> None:
    kit = kit_for(db)
    first, second = await started(kit), await started(kit)
    assert first["device_code"] != second["device_code"]
    assert first["user_code"] != second["user_code"]


async def test_post_helper_sends_the_form_content_type() -> None:
    """Guard for the helpers themselves: a POST carries the form content type."""
    request = post(DEVICE_URL, [("a", "b")])
    assert request.headers.get("content-type") == "application/x-www-form-urlencoded"
