"""RFC 7009 revocation: refresh families revoked, no oracle, client binding, errors.

Runs on SQLite and PostgreSQL (the ``db`` fixture) with the real stores.
"""

from __future__ import annotations

from authward.core.endpoints.revocation import handle
from authward.core.http import Response
from authward.core.refresh_rotation import RotationDenied, RotationGranted
from authward.stores.digest import digest
from authward.stores.refresh import Found, Missing
from tests.core.endpoints.issued import (
    OTHER_CLIENT_ID,
    OTHER_SECRET,
    REVOKE_URL,
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
    PUBLIC_CLIENT_ID,
    build,
    get,
    post,
)
from tests.dbkit import Db


def _no_store_empty(response: Response) -> None:
    assert response.status == 200
    assert response.json is None
    assert response.headers.get("Cache-Control") == "no-store"


async def test_revoking_a_refresh_token_revokes_its_family_and_rotation_then_fails(
    db: Db,
) -> None:
    """RFC 7009 §2.1, spec §3.2.7: the whole family goes, including the code's access token."""
    kit = build(db)
    family = await code_family(kit)
    rotation = refresh_rotation(kit)
    rotated = await rotation.rotate(family.refresh, client_id=CONFIDENTIAL_CLIENT_ID)
    assert isinstance(rotated, RotationGranted)

    response = await handle(
        kit.server,
        form_post(REVOKE_URL, [("token", rotated.token), ("token_type_hint", "refresh_token")]),
    )

    _no_store_empty(response)
    store = kit.server.stores.refresh_tokens
    assert isinstance(await store.get(digest(rotated.token)), Missing)
    again = await rotation.rotate(rotated.token, client_id=CONFIDENTIAL_CLIENT_ID)
    assert isinstance(again, RotationDenied)
    codes = kit.server.stores.authorization_codes
    assert await codes.access_token_revoked(family.access.jti)
    assert "token.revoked" in kit.events.names()


async def test_refresh_token_is_found_without_a_hint_and_with_the_wrong_hint(db: Db) -> None:
    """RFC 7009 §2.1: the hint only orders the lookup; a wrong or unknown hint still revokes."""
    kit = build(db)
    store = kit.server.stores.refresh_tokens
    for hint in ((), (("token_type_hint", "access_token"),), (("token_type_hint", "id_token"),)):
        issued = await issue_refresh(kit)
        response = await handle(
            kit.server, form_post(REVOKE_URL, [("token", issued.token), *hint])
        )
        _no_store_empty(response)
        assert isinstance(await store.get(digest(issued.token)), Missing)


async def test_unknown_token_answers_200(db: Db) -> None:
    """RFC 7009 §2.2: invalid tokens do not cause an error (no existence oracle)."""
    kit = build(db)
    for token in ("no-such-token", "a.b.c", "x" * 10_000):
        response = await handle(kit.server, form_post(REVOKE_URL, [("token", token)]))
        _no_store_empty(response)


async def test_other_clients_refresh_token_answers_200_but_stays_live(db: Db) -> None:
    """Spec §3.2.7: a client mismatch is ok without revoking."""
    kit = build(db)
    add_clients(kit)
    issued = await issue_refresh(kit)

    response = await handle(
        kit.server,
        form_post(
            REVOKE_URL, [("token", issued.token)], client_id=OTHER_CLIENT_ID, secret=OTHER_SECRET
        ),
    )

    _no_store_empty(response)
    assert isinstance(await kit.server.stores.refresh_tokens.get(digest(issued.token)), Found)
    rotated = await refresh_rotation(kit).rotate(issued.token, client_id=CONFIDENTIAL_CLIENT_ID)
    assert isinstance(rotated, RotationGranted)


async def test_public_client_revokes_its_own_refresh_token_with_its_client_id(db: Db) -> None:
    """RFC 7009 §5: a public client identifies itself by client_id."""
    kit = build(db)
    issued = await issue_refresh(kit, client_id=PUBLIC_CLIENT_ID)

    response = await handle(
        kit.server, post(REVOKE_URL, [("token", issued.token), ("client_id", PUBLIC_CLIENT_ID)])
    )

    _no_store_empty(response)
    assert isinstance(await kit.server.stores.refresh_tokens.get(digest(issued.token)), Missing)


async def test_missing_token_is_invalid_request(db: Db) -> None:
    kit = build(db)
    for form in ([], [("token", "")], [("token_type_hint", "refresh_token")]):
        response = await handle(kit.server, form_post(REVOKE_URL, form))
        assert response.status == 400
        assert error_of(response) == "invalid_request"
        assert response.headers.get("Cache-Control") == "no-store"


async def test_repeated_token_is_invalid_request_and_revokes_nothing(db: Db) -> None:
    """RFC 6749 §3.2: no parameter may appear twice."""
    kit = build(db)
    issued = await issue_refresh(kit)
    response = await handle(
        kit.server, form_post(REVOKE_URL, [("token", issued.token), ("token", issued.token)])
    )
    assert response.status == 400
    assert error_of(response) == "invalid_request"
    assert isinstance(await kit.server.stores.refresh_tokens.get(digest(issued.token)), Found)


async def test_unauthenticated_request_is_refused_and_revokes_nothing(db: Db) -> None:
    """RFC 7009 §2.1: the server first validates the client credentials."""
    kit = build(db)
    issued = await issue_refresh(kit)
    store = kit.server.stores.refresh_tokens

    wrong_secret = await handle(
        kit.server, form_post(REVOKE_URL, [("token", issued.token)], secret="wrong")
    )
    assert wrong_secret.status == 401
    assert error_of(wrong_secret) == "invalid_client"
    assert (wrong_secret.headers.get("WWW-Authenticate") or "").startswith("Basic")

    no_credentials = await handle(kit.server, post(REVOKE_URL, [("token", issued.token)]))
    assert no_credentials.status in (400, 401)
    assert error_of(no_credentials) == "invalid_client"
    assert isinstance(await store.get(digest(issued.token)), Found)


async def test_get_is_invalid_request(db: Db) -> None:
    kit = build(db)
    response = await handle(kit.server, get(REVOKE_URL, {"token": "x"}))
    assert response.status == 400
    assert error_of(response) == "invalid_request"


async def test_own_code_access_token_is_revoked_and_refused_afterwards(db: Db) -> None:
    """RFC 7009 §2.1, spec §3.1: the jti recorded on the code row is marked revoked."""
    kit = build(db)
    family = await code_family(kit)
    codes = kit.server.stores.authorization_codes

    response = await handle(
        kit.server,
        form_post(REVOKE_URL, [("token", family.access.token),
                               ("token_type_hint", "access_token")]),
    )

    _no_store_empty(response)
    assert await codes.access_token_revoked(family.access.jti)
    assert isinstance(
        await kit.server.stores.refresh_tokens.get(digest(family.refresh)), Found
    )


async def test_own_access_token_without_a_row_is_unsupported_token_type(db: Db) -> None:
    """RFC 7009 §2.2.1: client_credentials / rotation tokens have no row to revoke."""
    kit = build(db)
    access = mint(kit)
    for hint in ((), (("token_type_hint", "access_token"),)):
        response = await handle(
            kit.server, form_post(REVOKE_URL, [("token", access.token), *hint])
        )
        assert response.status == 400
        assert error_of(response) == "unsupported_token_type"
        assert response.headers.get("Cache-Control") == "no-store"


async def test_access_token_of_another_client_expired_or_revoked_answers_200(db: Db) -> None:
    """RFC 7009 §2.2: nothing to revoke is success, and no oracle for other clients."""
    kit = build(db)
    add_clients(kit)
    others = mint(kit, client_id=OTHER_CLIENT_ID)
    expired = mint(kit, now=kit.clock.now() - 3600, lifetime=60)
    family = await code_family(kit)
    await kit.server.stores.authorization_codes.revoke_family_access_tokens(family.family_id)

    for token in (others.token, expired.token, family.access.token):
        response = await handle(
            kit.server,
            form_post(REVOKE_URL, [("token", token), ("token_type_hint", "access_token")]),
        )
        _no_store_empty(response)
