"""End to end over HTTP: token revocation (RFC 7009) and introspection (RFC 7662) with
Authlib's client, both databases.

Spec: RFC 7009 §2.1-§2.2.1 (200 for revoked and unknown tokens, unsupported_token_type);
RFC 7662 §2.1-§2.3, §4 (who may introspect what); RFC 8707 §2 (a resource server named in
``aud``); authward spec/stores.md §3.2.7 ("RFC 7009 revocation": the whole refresh family).
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.e2e.flows import CodeFlow, bearer, discover, oauth_client, run_code_flow
from tests.e2e.harness import (
    RS_CLIENT,
    SPA_CLIENT,
    SUBJECT,
    WEB_CLIENT,
    WEB_SECRET,
    Deployment,
    basic_auth,
    http_client,
)


async def introspect(
    deployed: Deployment, token: str, *, client_id: str = WEB_CLIENT, hint: str | None = None
) -> dict[str, Any]:
    """Authlib's ``introspect_token`` as ``client_id``; asserts 200 and no-store."""
    metadata = await discover(deployed)
    async with oauth_client(deployed, client_id) as client:
        extra = {"token_type_hint": hint} if hint else {}
        response = await client.introspect_token(
            metadata.introspection_endpoint, token=token, **extra
        )
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    return body


async def revoke(
    deployed: Deployment, token: str, *, client_id: str = WEB_CLIENT, hint: str | None = None
) -> httpx.Response:
    """Authlib's ``revoke_token`` as ``client_id``."""
    metadata = await discover(deployed)
    async with oauth_client(deployed, client_id) as client:
        response: httpx.Response = await client.revoke_token(
            metadata.revocation_endpoint, token=token, token_type_hint=hint
        )
    return response


async def signed_in(deployed: Deployment) -> dict[str, Any]:
    flow: CodeFlow = await run_code_flow(deployed, WEB_CLIENT)
    assert flow.token is not None
    return flow.token


async def test_owner_introspects_its_access_and_refresh_tokens(deployed: Deployment) -> None:
    """INT-E2E-01: RFC 7662 §2.2: active, with client_id, sub, scope, exp, token_type."""
    token = await signed_in(deployed)
    access = await introspect(deployed, token["access_token"], hint="access_token")
    assert access["active"] is True
    assert access["client_id"] == WEB_CLIENT
    assert access["sub"] == SUBJECT
    assert access["iss"] == deployed.issuer
    assert access["token_type"] == "Bearer"
    assert access["scope"] == token["scope"]
    assert "cnf" not in access
    refresh = await introspect(deployed, token["refresh_token"], hint="refresh_token")
    assert refresh["active"] is True
    assert refresh["token_type"] == "refresh_token"
    assert refresh["client_id"] == WEB_CLIENT
    # A wrong hint only changes the lookup order (RFC 7662 §2.1).
    assert (await introspect(deployed, token["access_token"], hint="refresh_token"))["active"]


async def test_unknown_token_is_inactive(deployed: Deployment) -> None:
    """INT-E2E-02: RFC 7662 §2.2: {"active": false} and nothing else."""
    assert await introspect(deployed, "not-a-token") == {"active": False}


async def test_resource_server_sees_only_tokens_addressed_to_it(deployed: Deployment) -> None:
    """INT-E2E-03: RFC 7662 §4: a resource server (a confidential client named in ``aud``
    through an RFC 8707 resource indicator) may introspect that token, not others."""
    metadata = await discover(deployed)
    async with oauth_client(deployed, WEB_CLIENT) as client:
        addressed = await client.fetch_token(
            metadata.token_endpoint, grant_type="client_credentials", resource=RS_CLIENT
        )
        other = await client.fetch_token(
            metadata.token_endpoint, grant_type="client_credentials"
        )
    seen = await introspect(deployed, addressed["access_token"], client_id=RS_CLIENT)
    assert seen["active"] is True
    assert seen["aud"] == RS_CLIENT
    assert await introspect(deployed, other["access_token"], client_id=RS_CLIENT) == {
        "active": False
    }


async def test_public_client_may_not_introspect(deployed: Deployment) -> None:
    """INT-E2E-04: only confidential clients introspect: invalid_client."""
    token = await signed_in(deployed)
    metadata = await discover(deployed)
    async with http_client(deployed.issuer) as http:
        response = await http.post(
            metadata.introspection_endpoint,
            data={"token": token["access_token"], "client_id": SPA_CLIENT},
        )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_client"


async def test_introspection_without_credentials_is_401(deployed: Deployment) -> None:
    """INT-E2E-05: RFC 7662 §2.1: the caller must authenticate; wrong Basic credentials are
    401 invalid_client with a Basic challenge (RFC 6749 §5.2)."""
    metadata = await discover(deployed)
    async with http_client(deployed.issuer) as http:
        response = await http.post(
            metadata.introspection_endpoint,
            data={"token": "x"},
            headers={"Authorization": basic_auth(WEB_CLIENT, WEB_SECRET + "x")},
        )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].lower().startswith("basic")


async def test_revoking_the_refresh_token_revokes_its_family_and_access_token(
    deployed: Deployment,
) -> None:
    """REV-E2E-01: RFC 7009 §2.1 and spec §3.2.7: 200; the refresh token, its family and the
    code's access token are inactive; a refresh is invalid_grant; UserInfo refuses."""
    token = await signed_in(deployed)
    response = await revoke(deployed, token["refresh_token"], hint="refresh_token")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert (await introspect(deployed, token["refresh_token"]))["active"] is False
    assert (await introspect(deployed, token["access_token"]))["active"] is False
    metadata = await discover(deployed)
    async with http_client(deployed.issuer) as http:
        refreshed = await http.post(
            metadata.token_endpoint,
            data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
            headers={"Authorization": basic_auth(WEB_CLIENT, WEB_SECRET)},
        )
        userinfo = await http.get(
            metadata.userinfo_endpoint, headers=bearer(token["access_token"])
        )
    assert refreshed.status_code == 400
    assert refreshed.json()["error"] == "invalid_grant"
    assert userinfo.status_code == 401
    assert 'error="invalid_token"' in userinfo.headers["www-authenticate"]


async def test_revoking_a_code_access_token_deactivates_only_it(deployed: Deployment) -> None:
    """REV-E2E-02: an access token minted from a code can be revoked one by one; its refresh
    token keeps working."""
    token = await signed_in(deployed)
    response = await revoke(deployed, token["access_token"], hint="access_token")
    assert response.status_code == 200, response.text
    assert (await introspect(deployed, token["access_token"]))["active"] is False
    assert (await introspect(deployed, token["refresh_token"]))["active"] is True


async def test_revoking_an_access_token_without_a_row_is_unsupported(
    deployed: Deployment,
) -> None:
    """REV-E2E-03: RFC 7009 §2.2.1: a client_credentials access token cannot be revoked on
    its own: 400 unsupported_token_type, and it stays active."""
    metadata = await discover(deployed)
    async with oauth_client(deployed, WEB_CLIENT) as client:
        token = await client.fetch_token(metadata.token_endpoint, grant_type="client_credentials")
    response = await revoke(deployed, token["access_token"])
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_token_type"
    assert (await introspect(deployed, token["access_token"]))["active"] is True


async def test_revoking_unknown_or_foreign_tokens_is_200_and_changes_nothing(
    deployed: Deployment,
) -> None:
    """REV-E2E-04: RFC 7009 §2.2: invalid tokens are 200; another client's token is not
    revoked (no oracle)."""
    token = await signed_in(deployed)
    assert (await revoke(deployed, "no-such-token")).status_code == 200
    foreign = await revoke(deployed, token["refresh_token"], client_id=RS_CLIENT)
    assert foreign.status_code == 200
    assert (await introspect(deployed, token["refresh_token"]))["active"] is True
