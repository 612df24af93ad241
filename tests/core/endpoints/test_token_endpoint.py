"""The token endpoint's own checks: request shape, client, grant dispatch, DPoP, headers.

RFC 6749 §3.2, §5.1, §5.2; RFC 9449 §5, §8; spec §3.5 (NON-17), §3.6 (REP-12). Real SQL stores
on the ``db`` fixture (SQLite and PostgreSQL); ``handle`` is called with ``Request`` values.
"""

from __future__ import annotations

import pytest

from authward.core.config import FeatureSettings
from authward.core.endpoints import token
from authward.core.http import Request
from tests.core import dpop_proofs
from tests.core.endpoints.kit import PUBLIC_CLIENT_ID, TOKEN_URL, build
from tests.core.endpoints.token_requests import (
    basic,
    body,
    call,
    code_form,
    dpop_header,
    dpop_key,
    error_of,
    new_code,
    ok,
    row_counts,
)
from tests.dbkit import Db

CC = [("grant_type", "client_credentials"), ("scope", "read")]


async def test_success_is_no_store_and_no_cache(db: Db) -> None:
    """RFC 6749 §5.1."""
    kit = build(db)
    response = await call(kit, CC)
    ok(response)
    assert response.headers.get("Cache-Control") == "no-store"
    assert response.headers.get("Pragma") == "no-cache"
    assert set(body(response)) == {"access_token", "token_type", "expires_in", "scope"}


@pytest.mark.parametrize(
    ("method", "headers", "form", "description"),
    [
        ("GET", (), CC, "the token endpoint accepts POST only"),
        ("POST", (("Content-Type", "application/json"),), CC,
         "the request body must be application/x-www-form-urlencoded"),
        ("POST", (), CC, "the request body must be application/x-www-form-urlencoded"),
        ("POST", (("Content-Type", "application/x-www-form-urlencoded"),), CC[1:],
         "grant_type is required"),
        ("POST", (("Content-Type", "application/x-www-form-urlencoded"),),
         [("grant_type", ""), ("scope", "read")], "grant_type is required"),
        ("POST", (("Content-Type", "application/x-www-form-urlencoded; charset=UTF-8"),),
         [*CC, ("scope", "write")], "scope must not be repeated"),
        ("POST", (("Content-Type", "application/x-www-form-urlencoded"),),
         [*CC, ("grant_type", "client_credentials")], "grant_type must not be repeated"),
    ],
)
async def test_malformed_request_is_invalid_request_and_writes_nothing(
    db: Db,
    method: str,
    headers: tuple[tuple[str, str], ...],
    form: list[tuple[str, str]],
    description: str,
) -> None:
    """RFC 6749 §3.2: POST, form-encoded, no repeated parameter, grant_type required."""
    kit = build(db)
    request = Request.build(
        method, TOKEN_URL, headers=(*headers, basic(), dpop_header(kit, dpop_key())), form=form
    )
    response = await token.handle(kit.server, request)
    assert error_of(response) == (400, "invalid_request")
    assert body(response)["error_description"] == description
    assert response.headers.get("Cache-Control") == "no-store"
    assert set((await row_counts(kit)).values()) == {0}


async def test_unknown_grant_type_is_unsupported_grant_type(db: Db) -> None:
    kit = build(db)
    for grant_type in ("password", "urn:ietf:params:oauth:grant-type:jwt-bearer", "implicit"):
        response = await call(kit, [("grant_type", grant_type)])
        assert error_of(response) == (400, "unsupported_grant_type")
    assert set((await row_counts(kit)).values()) == {0}
    # The device grant (RFC 8628) is unsupported only while its feature is off.
    off = build(db, features=FeatureSettings(device_authorization_grant=False))
    device = [("grant_type", "urn:ietf:params:oauth:grant-type:device_code")]
    assert error_of(await call(off, device)) == (400, "unsupported_grant_type")


async def test_grant_type_not_registered_for_the_client_is_unauthorized_client(db: Db) -> None:
    kit = build(db)
    response = await call(kit, [*CC, ("client_id", PUBLIC_CLIENT_ID)], public=True)
    assert error_of(response) == (400, "unauthorized_client")


async def test_failed_basic_authentication_is_401_with_a_basic_challenge(db: Db) -> None:
    """RFC 6749 §5.2."""
    kit = build(db)
    code = await new_code(kit)
    response = await call(kit, code_form(code), auth=basic(secret="wrong"))
    assert error_of(response) == (401, "invalid_client")
    assert (response.headers.get("WWW-Authenticate") or "").startswith("Basic ")
    assert response.headers.get("Cache-Control") == "no-store"
    # Client authentication failed before the grant: the code was not spent.
    ok(await call(kit, code_form(code)))


async def test_first_dpop_request_without_nonce_gets_use_dpop_nonce_then_succeeds(
    db: Db,
) -> None:
    """NON-17: use_dpop_nonce + DPoP-Nonce header + persisted nonce; the retry succeeds; a
    stale nonce gets a fresh header."""
    kit = build(db, dpop_nonce_required=True, dpop_nonce_ttl=300)
    key = dpop_key()

    first = await call(kit, CC, headers=[dpop_header(kit, key)])
    assert error_of(first) == (400, "use_dpop_nonce")
    nonce = first.headers.get("DPoP-Nonce")
    assert nonce
    assert [r.nonce for r in await db.rows(db.tables.dpop_nonces)] == [nonce]
    assert await db.rows(db.tables.dpop_replays) == []  # a refused proof never burns its jti

    retry = ok(await call(kit, CC, headers=[dpop_header(kit, key, nonce=nonce)]))
    assert retry["token_type"] == "DPoP"

    kit.clock.advance(301)
    stale = await call(kit, CC, headers=[dpop_header(kit, key, nonce=nonce)])
    assert error_of(stale) == (400, "use_dpop_nonce")
    fresh = stale.headers.get("DPoP-Nonce")
    assert fresh
    assert fresh != nonce
    invalid = await call(kit, CC, headers=[dpop_header(kit, key, nonce="made-up")])
    assert error_of(invalid) == (400, "use_dpop_nonce")
    assert invalid.headers.get("DPoP-Nonce") not in (None, nonce, fresh)


async def test_second_presentation_of_the_same_proof_is_invalid_dpop_proof(db: Db) -> None:
    """REP-12: exactly one replay row; the replay is refused."""
    kit = build(db)
    header = dpop_header(kit, dpop_key())
    ok(await call(kit, CC, headers=[header]))

    again = await call(kit, CC, headers=[header])

    assert error_of(again) == (400, "invalid_dpop_proof")
    assert len(await db.rows(db.tables.dpop_replays)) == 1


async def test_invalid_proof_is_refused_before_client_authentication(db: Db) -> None:
    kit = build(db)
    wrong_htu = dpop_header(kit, dpop_key(), htu="https://elsewhere.example/token")
    response = await call(kit, CC, headers=[wrong_htu], auth=basic(secret="wrong"))
    assert error_of(response) == (400, "invalid_dpop_proof")
    unsigned = dpop_proofs.unsigned(
        {"typ": "dpop+jwt", "alg": "none"},
        dpop_proofs.claims_for(iat=int(kit.clock.now()), htu=TOKEN_URL),
    )
    response = await call(kit, CC, headers=[("DPoP", unsigned)])
    assert error_of(response) == (400, "invalid_dpop_proof")
    assert await db.rows(db.tables.dpop_replays) == []


async def test_events_name_the_outcome_and_never_carry_a_secret(db: Db) -> None:
    kit = build(db)
    code = await new_code(kit)
    got = ok(await call(kit, code_form(code)))
    await call(kit, code_form(code))
    names = kit.events.names()
    assert names == ["token.issued", "code.reused", "token.refused"]
    secrets = {code, got["access_token"], got["refresh_token"], got["id_token"]}
    for event in kit.events.events:
        for value in event.data.values():
            assert not any(isinstance(value, str) and s in value for s in secrets)
    assert kit.events.events[0].data["jti"]
    assert kit.events.events[2].data["error"] == "invalid_grant"
