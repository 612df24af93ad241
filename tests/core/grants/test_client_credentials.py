"""The client-credentials grant through the token endpoint (RFC 6749 §4.4).

Real SQL stores on the ``db`` fixture (SQLite and PostgreSQL).
"""

from __future__ import annotations

from authward.core.clients import Client
from authward.core.config import FeatureSettings
from tests.core.endpoints.kit import CONFIDENTIAL_CLIENT_ID, build
from tests.core.endpoints.token_requests import (
    call,
    dpop_header,
    dpop_key,
    error_of,
    ok,
    row_counts,
    verify_signed,
)
from tests.dbkit import Db

FORM = [("grant_type", "client_credentials"), ("scope", "read write")]


async def test_confidential_client_gets_a_bearer_token_for_itself(db: Db) -> None:
    kit = build(db)
    got = ok(await call(kit, FORM))
    assert got["token_type"] == "Bearer"
    assert got["scope"] == "read write"
    assert "refresh_token" not in got
    assert "id_token" not in got
    claims = verify_signed(kit, got["access_token"])
    assert claims["sub"] == CONFIDENTIAL_CLIENT_ID
    assert claims["client_id"] == CONFIDENTIAL_CLIENT_ID
    assert set((await row_counts(kit)).values()) == {0}  # nothing stored for this grant


async def test_proof_binds_the_token(db: Db) -> None:
    kit = build(db)
    got = ok(await call(kit, FORM, headers=[dpop_header(kit, dpop_key())]))
    assert got["token_type"] == "DPoP"
    assert verify_signed(kit, got["access_token"])["cnf"] == {"jkt": dpop_key().thumbprint()}


async def test_scope_is_narrowed_by_policy_and_nothing_grantable_is_invalid_scope(
    db: Db,
) -> None:
    kit = build(db)
    kit.scopes.refused.add("write")
    assert ok(await call(kit, FORM))["scope"] == "read"
    kit.scopes.refused.add("read")
    assert error_of(await call(kit, FORM)) == (400, "invalid_scope")
    # No scope requested and none registered: nothing grantable.
    assert error_of(await call(kit, FORM[:1])) == (400, "invalid_scope")


async def test_registered_scope_is_the_default(db: Db) -> None:
    kit = build(db)
    kit.clients.add(
        Client(
            "svc", "confidential", "client_secret_post",
            grant_types=("client_credentials",), scope=("jobs",),
        ),
        "svc-secret",
    )
    form = [*FORM[:1], ("client_id", "svc"), ("client_secret", "svc-secret")]
    assert ok(await call(kit, form, public=True))["scope"] == "jobs"


async def test_public_client_is_unauthorized_client(db: Db) -> None:
    kit = build(db)
    kit.clients.add(Client("pub-cc", "public", "none", grant_types=("client_credentials",)))
    response = await call(kit, [*FORM, ("client_id", "pub-cc")], public=True)
    assert error_of(response) == (400, "unauthorized_client")


async def test_disabled_grant_is_unsupported_grant_type(db: Db) -> None:
    kit = build(db, features=FeatureSettings(client_credentials_grant=False))
    assert error_of(await call(kit, FORM)) == (400, "unsupported_grant_type")


async def test_a_urn_resource_is_an_audience_and_a_relative_one_is_invalid_target(
    db: Db,
) -> None:
    """RFC 8707 §2 with RFC 3986 §4.3: ``urn:example:api`` is an absolute URI; the token
    endpoint parses ``resource`` as /authorize does."""
    kit = build(db)
    got = ok(await call(kit, [*FORM, ("resource", "urn:example:api")]))
    assert verify_signed(kit, got["access_token"])["aud"] == "urn:example:api"
    assert error_of(await call(kit, [*FORM, ("resource", "api/v1")])) == (400, "invalid_target")
