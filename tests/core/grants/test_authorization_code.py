"""The authorization-code grant through the token endpoint (spec §3.1; CODE-13, 14, 30-32).

Real SQL stores on the ``db`` fixture (SQLite and PostgreSQL); codes are issued with
``issue_code`` as the authorization endpoint does, and redeemed through ``token.handle``.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from authward.core.grants.refresh_token import rotation_for
from authward.core.id_token import token_hash
from authward.core.jose import SigningAlgorithm, read_unverified_header
from authward.core.refresh_rotation import Issued
from authward.stores.codes import Consumed
from authward.stores.digest import digest
from authward.stores.refresh import RefreshData
from tests.core.endpoints.kit import (
    CONFIDENTIAL_CLIENT_ID,
    CONFIDENTIAL_SECRET,
    OTHER_REDIRECT_URI,
    PUBLIC_CLIENT_ID,
    Kit,
    build,
)
from tests.core.endpoints.token_requests import (
    AUTH_TIME,
    NONCE,
    SUBJECT,
    call,
    code_form,
    code_row,
    dpop_header,
    dpop_key,
    error_of,
    new_code,
    ok,
    redeem,
    verify_signed,
)
from tests.dbkit import T0, Db


async def test_redeemed_code_gives_access_id_and_refresh_tokens(db: Db) -> None:
    kit = build(db)
    kit.claims.by_subject[SUBJECT] = {"email": "alice@example.com"}
    code = await new_code(kit)

    got = await redeem(kit, code)

    assert got["token_type"] == "Bearer"
    assert got["expires_in"] == kit.server.settings.access_token_ttl
    assert got["scope"] == "openid offline_access read"
    access = verify_signed(kit, got["access_token"])
    assert access["sub"] == SUBJECT
    assert access["aud"] == CONFIDENTIAL_CLIENT_ID  # no resource, no configured audience
    assert access["client_id"] == CONFIDENTIAL_CLIENT_ID
    assert "cnf" not in access
    row = await code_row(kit, code)
    assert row.consumed_success is True
    assert row.access_token_jti == access["jti"]
    (refresh,) = await db.rows(db.tables.refresh_tokens)
    assert refresh.token_hash == digest(got["refresh_token"])
    assert refresh.family_id == row.family_id
    assert refresh.generation == 0
    assert refresh.expires_at.timestamp() == int(T0) + kit.server.settings.refresh_token_ttl


async def test_id_token_validates_against_public_jwks_with_nonce_and_at_hash(db: Db) -> None:
    """OIDC Core §3.1.3.6/§3.1.3.7: nonce echoed, at_hash of the access token."""
    kit = build(db)
    kit.claims.by_subject[SUBJECT] = {"email": "alice@example.com"}
    got = await redeem(kit, await new_code(kit))

    claims = verify_signed(kit, got["id_token"])

    assert claims["iss"] == kit.server.issuer
    assert claims["aud"] == CONFIDENTIAL_CLIENT_ID
    assert claims["sub"] == SUBJECT
    assert claims["nonce"] == NONCE
    assert claims["at_hash"] == token_hash(got["access_token"], "RS256")
    assert claims["auth_time"] == AUTH_TIME
    assert claims["acr"] == "urn:acr:pwd"
    assert claims["amr"] == ["pwd"]
    assert claims["sid"] == "sid-1"
    assert claims["email"] == "alice@example.com"


async def test_no_openid_no_id_token_and_no_offline_access_no_refresh_token(db: Db) -> None:
    kit = build(db)
    got = await redeem(kit, await new_code(kit, scope=("read",), nonce=None))
    assert "id_token" not in got
    assert "refresh_token" not in got
    assert await db.rows(db.tables.refresh_tokens) == []


async def test_unfinalised_redemption_replay_is_invalid_grant_not_reuse(db: Db) -> None:
    """CODE-13: the refresh token cannot be issued (family revoked meanwhile): the code stays
    claimed but not finalised, and a replay is a plain invalid_grant (no revocation)."""
    kit = build(db)
    code = await new_code(kit)
    family_id = (await code_row(kit, code)).family_id
    # A family is revoked through its rows: plant one, then revoke (as a racing replay would).
    rotation = rotation_for(kit.server)
    planted = await rotation.issue(RefreshData(subject=SUBJECT), family_id=family_id)
    assert isinstance(planted, Issued)
    await kit.server.stores.refresh_tokens.revoke_family(family_id)

    first = await call(kit, code_form(code))
    assert error_of(first) == (400, "invalid_request")
    assert first.json is not None
    assert first.json["error_description"] == "unable to issue token"
    row = await code_row(kit, code)
    assert row.consumed_at is not None
    assert row.consumed_success is False

    assert error_of(await call(kit, code_form(code))) == (400, "invalid_grant")
    assert "code.reused" not in kit.events.names()
    assert (await code_row(kit, code)).access_token_revoked_at is None


async def test_finalised_code_replay_is_reuse_with_family_and_subject(db: Db) -> None:
    """CODE-14: after finalisation a replay is reuse carrying {family_id, subject}."""
    kit = build(db)
    code = await new_code(kit)
    await redeem(kit, code)
    row = await code_row(kit, code)
    assert row.consumed_success is True

    assert error_of(await call(kit, code_form(code))) == (400, "invalid_grant")

    (event,) = [e for e in kit.events.events if e.name == "code.reused"]
    assert event.data["family_id"] == row.family_id
    again = await kit.server.stores.authorization_codes.take(digest(code))
    assert isinstance(again, Consumed)
    assert (again.meta.family_id, again.meta.subject) == (row.family_id, SUBJECT)


async def test_reused_code_revokes_the_descendant_refresh_family(db: Db) -> None:
    """CODE-30."""
    kit = build(db)
    code = await new_code(kit)
    got = await redeem(kit, code)

    assert error_of(await call(kit, code_form(code))) == (400, "invalid_grant")

    assert all(r.family_revoked for r in await db.rows(db.tables.refresh_tokens))
    refreshed = await call(
        kit, [("grant_type", "refresh_token"), ("refresh_token", got["refresh_token"])]
    )
    assert error_of(refreshed) == (400, "invalid_grant")


async def test_reuse_without_refresh_family_is_still_invalid_grant(db: Db) -> None:
    """CODE-31: no refresh token was ever issued, or its family is already revoked."""
    kit = build(db)
    no_refresh = await new_code(kit, scope=("read",))
    await redeem(kit, no_refresh)
    assert error_of(await call(kit, code_form(no_refresh))) == (400, "invalid_grant")

    revoked = await new_code(kit)
    await redeem(kit, revoked)
    await kit.server.stores.refresh_tokens.revoke_family((await code_row(kit, revoked)).family_id)
    assert error_of(await call(kit, code_form(revoked))) == (400, "invalid_grant")
    assert error_of(await call(kit, code_form(revoked))) == (400, "invalid_grant")


async def test_reused_code_revokes_the_access_token_of_the_first_redemption(db: Db) -> None:
    """CODE-32."""
    kit = build(db)
    code = await new_code(kit)
    jti = str(verify_signed(kit, (await redeem(kit, code))["access_token"])["jti"])
    codes = kit.server.stores.authorization_codes
    assert await codes.access_token_revoked(jti) is False

    assert error_of(await call(kit, code_form(code))) == (400, "invalid_grant")

    assert await codes.access_token_revoked(jti) is True


async def test_wrong_or_missing_verifier_is_invalid_grant_and_spends_the_code(db: Db) -> None:
    """RFC 7636 §4.6; spec §3.1: a missing and a wrong verifier fail alike."""
    kit = build(db)
    for verifier in ("x" * 43, None, "short"):
        code = await new_code(kit)
        assert error_of(await call(kit, code_form(code, verifier=verifier))) == (
            400,
            "invalid_grant",
        )
        assert error_of(await call(kit, code_form(code))) == (400, "invalid_grant")
    assert await db.rows(db.tables.refresh_tokens) == []


async def test_redirect_uri_mismatch_or_absence_is_invalid_grant(db: Db) -> None:
    kit = build(db)
    for redirect_uri in (OTHER_REDIRECT_URI, None):
        code = await new_code(kit)
        response = await call(kit, code_form(code, redirect_uri=redirect_uri))
        assert error_of(response) == (400, "invalid_grant")
        row = await code_row(kit, code)
        assert row.consumed_at is not None
        assert row.consumed_success is False


async def test_expired_code_is_invalid_grant(db: Db) -> None:
    kit = build(db)
    code = await new_code(kit)
    kit.clock.advance(kit.server.settings.authorization_code_ttl)
    assert error_of(await call(kit, code_form(code))) == (400, "invalid_grant")
    assert (await code_row(kit, code)).access_token_jti is None


async def test_code_of_another_client_is_invalid_grant(db: Db) -> None:
    kit = build(db)
    code = await new_code(kit, client_id=PUBLIC_CLIENT_ID)
    assert error_of(await call(kit, code_form(code))) == (400, "invalid_grant")
    # Spent by the wrong client: the rightful one cannot redeem it either.
    assert error_of(await call(kit, code_form(code, public=True), public=True)) == (
        400,
        "invalid_grant",
    )


async def test_unknown_code_is_invalid_grant(db: Db) -> None:
    kit = build(db)
    assert error_of(await call(kit, code_form("no-such-code"))) == (400, "invalid_grant")


async def test_dpop_bound_code_without_proof_is_refused_without_spending_it(db: Db) -> None:
    """Spec §3.1 pre-check: invalid_dpop_proof, and the code stays redeemable."""
    kit = build(db)
    key = dpop_key()
    code = await new_code(kit, dpop_jkt=key.thumbprint())

    assert error_of(await call(kit, code_form(code))) == (400, "invalid_dpop_proof")
    assert (await code_row(kit, code)).consumed_at is None

    got = ok(await call(kit, code_form(code), headers=[dpop_header(kit, key)]))
    assert got["token_type"] == "DPoP"
    assert verify_signed(kit, got["access_token"])["cnf"] == {"jkt": key.thumbprint()}


async def test_dpop_bound_code_with_another_key_is_invalid_grant(db: Db) -> None:
    kit = build(db)
    code = await new_code(kit, dpop_jkt=dpop_key().thumbprint())
    response = await call(kit, code_form(code), headers=[dpop_header(kit, dpop_key(1))])
    assert error_of(response) == (400, "invalid_grant")
    assert (await code_row(kit, code)).consumed_success is False


async def test_unbound_code_with_proof_binds_the_access_token(db: Db) -> None:
    kit = build(db)
    key = dpop_key()
    got = ok(await call(kit, code_form(await new_code(kit)), headers=[dpop_header(kit, key)]))
    assert got["token_type"] == "DPoP"
    assert verify_signed(kit, got["access_token"])["cnf"] == {"jkt": key.thumbprint()}
    # A confidential client's refresh token is bound to its client_id, not the key.
    (refresh,) = await db.rows(db.tables.refresh_tokens)
    assert refresh.cnf is None


async def test_public_client_with_proof_gets_a_dpop_bound_refresh_token(db: Db) -> None:
    kit = build(db)
    key = dpop_key()
    code = await new_code(kit, client_id=PUBLIC_CLIENT_ID)
    got = ok(
        await call(kit, code_form(code, public=True), public=True, headers=[dpop_header(kit, key)])
    )
    assert got["token_type"] == "DPoP"
    (refresh,) = await db.rows(db.tables.refresh_tokens)
    assert refresh.cnf == {"jkt": key.thumbprint()}


async def test_audience_is_resource_then_configured_audience_then_client(db: Db) -> None:
    """RFC 8707 §2.2: a requested resource narrows the code's resources and becomes aud."""
    kit = build(db, access_token_audience="https://api.example")
    plain = await redeem(kit, await new_code(kit))
    assert verify_signed(kit, plain["access_token"])["aud"] == "https://api.example"

    both = ("https://a.example/", "https://b.example/")
    code = await new_code(kit, resource=both)
    narrowed = ok(
        await call(kit, code_form(code, extra=[("resource", "https://b.example/")]))
    )
    assert verify_signed(kit, narrowed["access_token"])["aud"] == "https://b.example/"

    wider = await new_code(kit, resource=both[:1])
    response = await call(kit, code_form(wider, extra=[("resource", "https://c.example/")]))
    assert error_of(response) == (400, "invalid_target")


async def test_concurrent_redemptions_of_one_code_issue_exactly_one_token_set(db: Db) -> None:
    """CODE-10 through the endpoint: one winner; every loser gets invalid_grant."""
    kit = build(db)
    code = await new_code(kit)

    responses = await asyncio.gather(*(call(kit, code_form(code)) for _ in range(10)))

    assert sorted(r.status for r in responses) == [200] + [400] * 9
    assert {error_of(r) for r in responses if r.status != 200} == {(400, "invalid_grant")}
    assert len(await db.rows(db.tables.refresh_tokens)) == 1
    assert (await code_row(kit, code)).consumed_success is True


async def test_access_tokens_are_es256_and_id_tokens_rs256_by_default(db: Db) -> None:
    """ARCHITECTURE "defaults interoperate": ES256 access tokens, RS256 ID tokens."""
    kit = build(db)
    got = await redeem(kit, await new_code(kit))
    assert read_unverified_header(got["access_token"])["alg"] == "ES256"
    assert read_unverified_header(got["id_token"])["alg"] == "RS256"


async def test_id_token_uses_the_clients_registered_signing_alg(db: Db) -> None:
    """OIDC Registration §2 ``id_token_signed_response_alg``; at_hash follows its hash."""
    kit = await with_id_token_alg(build(db), "ES256")
    got = await redeem(kit, await new_code(kit))
    assert read_unverified_header(got["id_token"])["alg"] == "ES256"
    claims = verify_signed(kit, got["id_token"])
    assert claims["at_hash"] == token_hash(got["access_token"], "ES256")


async def test_id_token_alg_the_server_has_no_key_for_is_invalid_client(db: Db) -> None:
    kit = await with_id_token_alg(build(db), "PS256")
    status, error = error_of(await call(kit, code_form(await new_code(kit))))
    assert error == "invalid_client"
    assert status in (400, 401)


async def with_id_token_alg(kit: Kit, alg: SigningAlgorithm) -> Kit:
    """``kit`` with the confidential client registering ``id_token_signed_response_alg``."""
    client = await kit.clients.get_client(CONFIDENTIAL_CLIENT_ID)
    assert client is not None
    kit.clients.add(replace(client, id_token_signed_response_alg=alg), CONFIDENTIAL_SECRET)
    return kit
