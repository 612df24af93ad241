"""End to end over HTTP: the client credentials grant with Authlib's client, both databases.

Spec: RFC 6749 §4.4, §2.3.1 (client_secret_basic), §5.2 (invalid_client: 401 and
WWW-Authenticate when the client used the Authorization header); RFC 7523 §2.2, §3
(private_key_jwt, jti single use); RFC 9068 §2 (JWT access tokens: typ at+jwt, sub, client_id).
"""

from __future__ import annotations

from typing import Any

import httpx
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.e2e.flows import discover, oauth_client, token_request
from tests.e2e.harness import (
    JWT_CLIENT,
    SPA_CLIENT,
    WEB_CLIENT,
    WEB_SECRET,
    Deployment,
    basic_auth,
    http_client,
)


async def verified_access_token(deployed: Deployment, token: str) -> dict[str, Any]:
    """The access token's claims after checking its signature against the published JWKS."""
    metadata = await discover(deployed)
    async with http_client(deployed.issuer) as http:
        keys = KeySet.import_key_set((await http.get(metadata.jwks_uri)).json())
    decoded = jwt.decode(token, keys, algorithms=["RS256", "ES256", "PS256", "EdDSA"])
    assert decoded.header["typ"] in ("at+jwt", "application/at+jwt")
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": deployed.issuer},
        exp={"essential": True},
        iat={"essential": True},
        jti={"essential": True},
    ).validate(decoded.claims)
    return dict(decoded.claims)


async def test_secret_basic_client_gets_an_access_token(deployed: Deployment) -> None:
    """CC-E2E-01: Authlib, client_secret_basic; no refresh token (RFC 6749 §4.4.3)."""
    metadata = await discover(deployed)
    async with oauth_client(deployed, WEB_CLIENT) as client:
        token = await client.fetch_token(
            metadata.token_endpoint, grant_type="client_credentials", scope="api"
        )
    assert token["token_type"] == "Bearer"
    assert token["scope"] == "api"
    assert "refresh_token" not in token
    assert "id_token" not in token
    claims = await verified_access_token(deployed, token["access_token"])
    assert claims["sub"] == WEB_CLIENT
    assert claims["client_id"] == WEB_CLIENT


async def test_private_key_jwt_client_gets_an_access_token(deployed: Deployment) -> None:
    """CC-E2E-02: Authlib's private_key_jwt assertion (ES256)."""
    metadata = await discover(deployed)
    async with oauth_client(deployed, JWT_CLIENT) as client:
        token = await client.fetch_token(
            metadata.token_endpoint, grant_type="client_credentials", scope="api"
        )
    claims = await verified_access_token(deployed, token["access_token"])
    assert claims["client_id"] == JWT_CLIENT


async def test_token_response_is_not_cached(deployed: Deployment) -> None:
    """CC-E2E-03: RFC 6749 §5.1: Cache-Control no-store on the token response."""
    metadata = await discover(deployed)
    async with http_client(deployed.issuer) as http:
        response = await token_request(
            http,
            metadata.token_endpoint,
            {"grant_type": "client_credentials"},
            headers={"Authorization": basic_auth(WEB_CLIENT, WEB_SECRET)},
        )
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-type"].startswith("application/json")


async def test_wrong_secret_is_invalid_client_with_a_basic_challenge(
    deployed: Deployment,
) -> None:
    """CC-E2E-04: RFC 6749 §5.2: 401 invalid_client with WWW-Authenticate: Basic."""
    metadata = await discover(deployed)
    async with http_client(deployed.issuer) as http:
        response = await token_request(
            http,
            metadata.token_endpoint,
            {"grant_type": "client_credentials"},
            headers={"Authorization": basic_auth(WEB_CLIENT, "wrong")},
        )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].lower().startswith("basic")


async def test_public_client_may_not_use_client_credentials(deployed: Deployment) -> None:
    """CC-E2E-05: RFC 6749 §4.4: confidential clients only (SPA_CLIENT has no such grant)."""
    metadata = await discover(deployed)
    async with http_client(deployed.issuer) as http:
        response = await token_request(
            http,
            metadata.token_endpoint,
            {"grant_type": "client_credentials", "client_id": SPA_CLIENT},
        )
    assert response.status_code == 400
    assert response.json()["error"] == "unauthorized_client"


async def test_replayed_client_assertion_is_refused(deployed: Deployment) -> None:
    """CC-E2E-06: RFC 7523 §3 item 7: a client assertion (its jti) is single use; the exact
    request Authlib sent is sent again."""
    metadata = await discover(deployed)
    seen: list[httpx.Request] = []

    async def remember(request: httpx.Request) -> None:
        seen.append(request)

    async with oauth_client(
        deployed, JWT_CLIENT, event_hooks={"request": [remember]}
    ) as client:
        await client.fetch_token(metadata.token_endpoint, grant_type="client_credentials")
    assert len(seen) == 1
    async with http_client(deployed.issuer) as http:
        replay = await http.post(
            metadata.token_endpoint,
            content=seen[0].content,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    # No Authorization header was used, so RFC 6749 §5.2 allows (and authward sends) 400.
    assert replay.status_code == 400, replay.text
    assert replay.json()["error"] == "invalid_client"
