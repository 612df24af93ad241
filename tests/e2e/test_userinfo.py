"""End to end over HTTP: the UserInfo endpoint with Authlib's client (Bearer), both databases.

Spec: OIDC Core 1.0 §5.3.1-§5.3.3 (GET and POST, ``sub`` always), §5.4 (claims per scope);
RFC 6750 §2.1 (Authorization header), §3 and §3.1 (challenges: invalid_request,
invalid_token, insufficient_scope).
"""

from __future__ import annotations

from tests.e2e.flows import bearer, discover, oauth_client, run_code_flow
from tests.e2e.harness import (
    SPA_CLIENT,
    SUBJECT,
    USER_CLAIMS,
    WEB_CLIENT,
    Deployment,
    http_client,
)


async def test_claims_follow_the_granted_scopes(deployed: Deployment) -> None:
    """UI-E2E-01: Authlib's client calls UserInfo with the token: sub, profile and email."""
    flow = await run_code_flow(deployed, WEB_CLIENT, scope="openid profile email")
    metadata = await discover(deployed)
    async with oauth_client(deployed, WEB_CLIENT, token=flow.token) as client:
        response = await client.get(metadata.userinfo_endpoint)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"sub": SUBJECT, **USER_CLAIMS}


async def test_openid_alone_releases_only_sub(deployed: Deployment) -> None:
    """UI-E2E-02: OIDC Core §5.4: no profile or email scope, no such claims; POST works too."""
    flow = await run_code_flow(deployed, SPA_CLIENT, scope="openid")
    assert flow.token is not None
    metadata = await discover(deployed)
    async with http_client(deployed.issuer) as http:
        response = await http.post(
            metadata.userinfo_endpoint, headers=bearer(flow.token["access_token"])
        )
    assert response.status_code == 200, response.text
    assert response.json() == {"sub": SUBJECT}


async def test_no_token_gets_a_bare_challenge(deployed: Deployment) -> None:
    """UI-E2E-03: RFC 6750 §3.1: no credentials: 401 with a challenge and no error code."""
    metadata = await discover(deployed)
    async with http_client(deployed.issuer) as http:
        response = await http.get(metadata.userinfo_endpoint)
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer") or "Bearer" in challenge
    assert "error=" not in challenge


async def test_forged_token_is_invalid_token(deployed: Deployment) -> None:
    """UI-E2E-04: RFC 6750 §3.1: 401 invalid_token in the Bearer challenge."""
    metadata = await discover(deployed)
    async with http_client(deployed.issuer) as http:
        response = await http.get(metadata.userinfo_endpoint, headers=bearer("e30.e30.sig"))
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_token_without_openid_is_insufficient_scope(deployed: Deployment) -> None:
    """UI-E2E-05: RFC 6750 §3.1: a client_credentials token (no openid): 403."""
    metadata = await discover(deployed)
    async with oauth_client(deployed, WEB_CLIENT) as client:
        token = await client.fetch_token(
            metadata.token_endpoint, grant_type="client_credentials", scope="api"
        )
    async with http_client(deployed.issuer) as http:
        response = await http.get(
            metadata.userinfo_endpoint, headers=bearer(token["access_token"])
        )
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


async def test_token_in_the_query_is_refused(deployed: Deployment) -> None:
    """UI-E2E-06: RFC 6750 §2.3 is not supported: a query token is invalid_request (400)."""
    flow = await run_code_flow(deployed, SPA_CLIENT, scope="openid")
    assert flow.token is not None
    metadata = await discover(deployed)
    async with http_client(deployed.issuer) as http:
        response = await http.get(
            metadata.userinfo_endpoint, params={"access_token": flow.token["access_token"]}
        )
    assert response.status_code == 400
    assert 'error="invalid_request"' in response.headers["www-authenticate"]
