"""RFC 7662 introspection: active and inactive answers for each token kind, and who may ask.

Runs on SQLite and PostgreSQL (the ``db`` fixture) with the real stores.
"""

from __future__ import annotations

from authward.core.endpoints.introspection import handle
from authward.core.http import Response
from authward.core.refresh_rotation import RotationGranted
from authward.core.secrets import new_secret
from tests.core.endpoints.issued import (
    INTROSPECT_URL,
    OTHER_CLIENT_ID,
    OTHER_SECRET,
    RS_CLIENT_ID,
    RS_SECRET,
    SUBJECT,
    add_clients,
    code_family,
    error_of,
    form_post,
    issue_refresh,
    mint,
    refresh_rotation,
)
from tests.core.endpoints.kit import (
    CONFIDENTIAL_CLIENT_ID,
    ISSUER,
    PUBLIC_CLIENT_ID,
    build,
    post,
)
from tests.dbkit import Db

INACTIVE = {"active": False}


def _body(response: Response) -> dict[str, object]:
    assert response.status == 200
    assert response.headers.get("Cache-Control") == "no-store"
    assert response.json is not None
    return dict(response.json)


async def test_active_bearer_access_token_reports_its_claims(db: Db) -> None:
    """RFC 7662 §2.2."""
    kit = build(db)
    access = mint(kit, scopes=("openid", "profile"))

    body = _body(await handle(kit.server, form_post(INTROSPECT_URL, [("token", access.token)])))

    assert body == {
        "active": True,
        "scope": "openid profile",
        "client_id": CONFIDENTIAL_CLIENT_ID,
        "sub": SUBJECT,
        "exp": access.exp,
        "iat": access.claims["iat"],
        "iss": ISSUER,
        "aud": CONFIDENTIAL_CLIENT_ID,
        "jti": access.jti,
        "token_type": "Bearer",
    }


async def test_dpop_bound_access_token_reports_cnf_jkt(db: Db) -> None:
    """RFC 9449 §6.1: the confirmation is reported with token_type DPoP."""
    kit = build(db)
    jkt = new_secret()
    access = mint(kit, dpop_jkt=jkt)

    body = _body(
        await handle(
            kit.server,
            form_post(
                INTROSPECT_URL, [("token", access.token), ("token_type_hint", "access_token")]
            ),
        )
    )

    assert body["active"] is True
    assert body["token_type"] == "DPoP"
    assert body["cnf"] == {"jkt": jkt}


async def test_expired_revoked_foreign_and_garbage_access_tokens_are_inactive(db: Db) -> None:
    kit = build(db)
    expired = mint(kit, now=kit.clock.now() - 3600, lifetime=60)
    family = await code_family(kit)
    await kit.server.stores.authorization_codes.revoke_family_access_tokens(family.family_id)
    other_issuer = mint(kit)
    tampered = other_issuer.token[:-4] + ("AAAA" if not other_issuer.token.endswith("AAAA")
                                          else "BBBB")

    for token in (expired.token, family.access.token, tampered, "a.b.c", "garbage"):
        body = _body(
            await handle(
                kit.server,
                form_post(INTROSPECT_URL, [("token", token), ("token_type_hint", "access_token")]),
            )
        )
        assert body == INACTIVE


async def test_code_access_token_is_active_until_its_family_is_revoked(db: Db) -> None:
    """Spec §3.1: the revoked jti is read from the code row."""
    kit = build(db)
    family = await code_family(kit)
    request = form_post(INTROSPECT_URL, [("token", family.access.token)])
    assert _body(await handle(kit.server, request))["active"] is True

    await kit.server.stores.authorization_codes.revoke_family_access_tokens(family.family_id)

    assert _body(await handle(kit.server, request)) == INACTIVE


async def test_active_refresh_token_reports_its_grant(db: Db) -> None:
    kit = build(db)
    issued = await issue_refresh(kit, scopes=("openid", "offline_access"))

    body = _body(
        await handle(
            kit.server,
            form_post(
                INTROSPECT_URL, [("token", issued.token), ("token_type_hint", "refresh_token")]
            ),
        )
    )

    assert body == {
        "active": True,
        "scope": "openid offline_access",
        "client_id": CONFIDENTIAL_CLIENT_ID,
        "sub": SUBJECT,
        "exp": issued.entry.expires_at,
        "token_type": "refresh_token",
    }


async def test_consumed_expired_and_revoked_refresh_tokens_are_inactive(db: Db) -> None:
    kit = build(db)
    consumed = await issue_refresh(kit)
    rotated = await refresh_rotation(kit).rotate(consumed.token, client_id=CONFIDENTIAL_CLIENT_ID)
    assert isinstance(rotated, RotationGranted)
    expired = await issue_refresh(kit, ttl=10)
    revoked = await issue_refresh(kit)
    await kit.server.stores.refresh_tokens.revoke_family(revoked.entry.family_id)
    kit.clock.advance(10)

    for token in (consumed.token, expired.token, revoked.token):
        body = _body(await handle(kit.server, form_post(INTROSPECT_URL, [("token", token)])))
        assert body == INACTIVE
    successor = _body(
        await handle(kit.server, form_post(INTROSPECT_URL, [("token", rotated.token)]))
    )
    assert successor["active"] is True


async def test_other_clients_tokens_are_inactive_to_the_caller(db: Db) -> None:
    """RFC 7662 §4: a client sees only its own tokens (no oracle for others)."""
    kit = build(db)
    add_clients(kit)
    access = mint(kit)
    refresh = await issue_refresh(kit)

    for token in (access.token, refresh.token):
        body = _body(
            await handle(
                kit.server,
                form_post(
                    INTROSPECT_URL, [("token", token)],
                    client_id=OTHER_CLIENT_ID, secret=OTHER_SECRET,
                ),
            )
        )
        assert body == INACTIVE


async def test_resource_server_in_the_audience_sees_the_access_token_only(db: Db) -> None:
    """RFC 7662 §4: the resource named in ``aud`` may introspect; refresh tokens stay private."""
    kit = build(db)
    add_clients(kit)
    access = mint(kit, resources=(RS_CLIENT_ID,))
    refresh = await issue_refresh(kit)

    seen = _body(
        await handle(
            kit.server,
            form_post(
                INTROSPECT_URL, [("token", access.token)], client_id=RS_CLIENT_ID, secret=RS_SECRET
            ),
        )
    )
    hidden = _body(
        await handle(
            kit.server,
            form_post(
                INTROSPECT_URL, [("token", refresh.token)], client_id=RS_CLIENT_ID,
                secret=RS_SECRET,
            ),
        )
    )

    assert seen["active"] is True
    assert seen["aud"] == RS_CLIENT_ID
    assert seen["client_id"] == CONFIDENTIAL_CLIENT_ID
    assert hidden == INACTIVE


async def test_public_client_is_refused(db: Db) -> None:
    """Only authenticated (confidential) clients may introspect."""
    kit = build(db)
    issued = await issue_refresh(kit, client_id=PUBLIC_CLIENT_ID)
    response = await handle(
        kit.server,
        post(INTROSPECT_URL, [("token", issued.token), ("client_id", PUBLIC_CLIENT_ID)]),
    )
    assert response.status in (400, 401)
    assert error_of(response) == "invalid_client"
    assert response.headers.get("Cache-Control") == "no-store"


async def test_unauthenticated_request_is_refused(db: Db) -> None:
    kit = build(db)
    access = mint(kit)
    wrong = await handle(
        kit.server, form_post(INTROSPECT_URL, [("token", access.token)], secret="nope")
    )
    assert wrong.status == 401
    assert error_of(wrong) == "invalid_client"
    anonymous = await handle(kit.server, post(INTROSPECT_URL, [("token", access.token)]))
    assert error_of(anonymous) == "invalid_client"


async def test_missing_or_repeated_token_is_invalid_request(db: Db) -> None:
    kit = build(db)
    for form in ([], [("token", "")], [("token", "a"), ("token", "b")]):
        response = await handle(kit.server, form_post(INTROSPECT_URL, form))
        assert response.status == 400
        assert error_of(response) == "invalid_request"
        assert response.headers.get("Cache-Control") == "no-store"


async def test_unknown_hint_is_ignored(db: Db) -> None:
    """RFC 7662 §2.1: the hint is only a hint."""
    kit = build(db)
    issued = await issue_refresh(kit)
    access = mint(kit)
    for token in (issued.token, access.token):
        body = _body(
            await handle(
                kit.server,
                form_post(INTROSPECT_URL, [("token", token), ("token_type_hint", "weird")]),
            )
        )
        assert body["active"] is True
