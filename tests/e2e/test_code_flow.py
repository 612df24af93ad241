"""End to end over HTTP: the authorization code flow with PKCE, login and consent, driven by
Authlib's client against ``authward serve`` on SQLite and PostgreSQL.

Spec: RFC 6749 §4.1; RFC 7636 §4 (S256); RFC 9126 (PAR); RFC 9207 (``iss``); OIDC Core 1.0
§3.1.2 (login, consent), §3.1.3.7 (ID token validation), §3.1.3.6 (``at_hash``).
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from tests.e2e.flows import (
    CodeFlow,
    authorize_url,
    browser,
    discover,
    oauth_client,
    run_code_flow,
    token_request,
    validate_id_token,
)
from tests.e2e.harness import (
    JWT_CLIENT,
    PAR_CLIENT,
    REDIRECT_URI,
    SPA_CLIENT,
    SUBJECT,
    WEB_CLIENT,
    WEB_SECRET,
    Deployment,
    basic_auth,
    http_client,
)


async def test_confidential_client_gets_tokens_through_login_and_consent(
    deployed: Deployment,
) -> None:
    """CODE-E2E-01: client_secret_basic client, S256 PKCE, login form, consent form."""
    flow = await run_code_flow(deployed, WEB_CLIENT)
    token = flow.token
    assert token is not None
    assert token["token_type"] == "Bearer"
    assert token["scope"].split() == ["openid", "profile", "email", "offline_access"]
    assert token["refresh_token"]
    claims = await validate_id_token(
        deployed, token["id_token"], client_id=WEB_CLIENT, nonce=flow.nonce,
        access_token=token["access_token"],
    )
    assert claims["sub"] == SUBJECT


async def test_public_client_gets_tokens_with_pkce_only(deployed: Deployment) -> None:
    """CODE-E2E-02: a public client (token_endpoint_auth_method none) proves possession of
    the code with its S256 verifier alone."""
    flow = await run_code_flow(deployed, SPA_CLIENT, scope="openid email")
    token = flow.token
    assert token is not None
    assert "refresh_token" not in token
    claims = await validate_id_token(
        deployed, token["id_token"], client_id=SPA_CLIENT, nonce=flow.nonce,
        access_token=token["access_token"],
    )
    assert claims["sub"] == SUBJECT


async def test_private_key_jwt_client_gets_tokens(deployed: Deployment) -> None:
    """CODE-E2E-03: Authlib's PrivateKeyJWT assertion (ES256, aud = token endpoint)."""
    flow = await run_code_flow(deployed, JWT_CLIENT, scope="openid api")
    token = flow.token
    assert token is not None
    assert token["scope"] == "openid api"
    await validate_id_token(
        deployed, token["id_token"], client_id=JWT_CLIENT, nonce=flow.nonce,
        access_token=token["access_token"],
    )


async def test_pushed_request_is_redeemed_through_login_and_consent(
    deployed: Deployment,
) -> None:
    """PAR-E2E-01: RFC 9126: push with client_secret_basic, then authorize with client_id +
    request_uri only; the code and ID token follow as usual."""
    flow = await run_code_flow(deployed, WEB_CLIENT, scope="openid profile", pushed=True)
    token = flow.token
    assert token is not None
    await validate_id_token(
        deployed, token["id_token"], client_id=WEB_CLIENT, nonce=flow.nonce,
        access_token=token["access_token"],
    )


async def test_par_only_client_succeeds_with_par(deployed: Deployment) -> None:
    """PAR-E2E-02: a client registered with require_pushed_authorization_requests."""
    flow = await run_code_flow(deployed, PAR_CLIENT, scope="openid", pushed=True)
    assert flow.token is not None
    assert flow.token["scope"] == "openid"


async def test_par_only_client_is_refused_without_par(deployed: Deployment) -> None:
    """PAR-E2E-03: RFC 9126 §5: the front-channel request of a PAR-only client is refused
    by redirect with invalid_request, state and iss; nobody is asked to sign in."""
    metadata = await discover(deployed)
    flow = CodeFlow(oauth_client(deployed, PAR_CLIENT, scope="openid"))
    url = await authorize_url(flow, metadata, "openid")
    async with http_client(deployed.issuer) as http:
        response = await http.get(url)
    assert response.status_code in (302, 303)
    params = dict(parse_qsl(urlsplit(response.headers["location"]).query))
    assert params["error"] == "invalid_request"
    assert params["state"] == flow.state
    assert params["iss"] == deployed.issuer


async def test_code_is_single_use_and_reuse_revokes_its_tokens(deployed: Deployment) -> None:
    """CODE-E2E-04: RFC 6749 §4.1.2 / §10.5: a second redemption is invalid_grant and the
    refresh token issued for the first is revoked."""
    flow = await run_code_flow(deployed, WEB_CLIENT)
    assert flow.token is not None
    assert flow.arrival is not None
    metadata = await discover(deployed)
    form = {
        "grant_type": "authorization_code",
        "code": flow.arrival.params["code"],
        "redirect_uri": REDIRECT_URI,
        "code_verifier": flow.verifier,
    }
    auth = {"Authorization": basic_auth(WEB_CLIENT, WEB_SECRET)}
    async with http_client(deployed.issuer) as http:
        again = await token_request(http, metadata.token_endpoint, form, headers=auth)
        refreshed = await token_request(
            http,
            metadata.token_endpoint,
            {"grant_type": "refresh_token", "refresh_token": flow.token["refresh_token"]},
            headers=auth,
        )
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    assert again.headers["cache-control"] == "no-store"
    assert refreshed.status_code == 400
    assert refreshed.json()["error"] == "invalid_grant"


async def test_wrong_verifier_is_refused(deployed: Deployment) -> None:
    """CODE-E2E-05: RFC 7636 §4.6: a verifier that does not hash to the challenge."""
    metadata = await discover(deployed)
    flow = CodeFlow(oauth_client(deployed, SPA_CLIENT, scope="openid"))
    url = await authorize_url(flow, metadata, "openid")
    async with http_client(deployed.issuer) as http:
        arrival = await browser(http).authorize(url, redirect_uri=REDIRECT_URI)
        refused = await token_request(
            http,
            metadata.token_endpoint,
            {
                "grant_type": "authorization_code",
                "code": arrival.params["code"],
                "redirect_uri": REDIRECT_URI,
                "code_verifier": "x" * 43,
                "client_id": SPA_CLIENT,
            },
        )
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"


async def test_denied_consent_returns_access_denied(deployed: Deployment) -> None:
    """CODE-E2E-06: RFC 6749 §4.1.2.1: the end-user presses Deny."""
    metadata = await discover(deployed)
    flow = CodeFlow(oauth_client(deployed, WEB_CLIENT, scope="openid"))
    url = await authorize_url(flow, metadata, "openid")
    async with http_client(deployed.issuer) as http:
        arrival = await browser(http).authorize(url, redirect_uri=REDIRECT_URI, decision="deny")
    assert arrival.params["error"] == "access_denied"
    assert arrival.params["state"] == flow.state
    assert arrival.params["iss"] == deployed.issuer
    assert "code" not in arrival.params


async def test_signed_in_user_is_not_asked_to_log_in_again(deployed: Deployment) -> None:
    """CODE-E2E-07: the login cookie carries the session to the next request; consent is
    asked again (the default policy remembers nothing)."""
    async with http_client(deployed.issuer) as http:
        first = await run_code_flow(deployed, SPA_CLIENT, scope="openid", http=http)
        metadata = await discover(deployed)
        flow = CodeFlow(oauth_client(deployed, SPA_CLIENT, scope="openid"))
        user = browser(http)
        arrival = await user.authorize(
            await authorize_url(flow, metadata, "openid"), redirect_uri=REDIRECT_URI
        )
    assert first.token is not None
    assert "code" in arrival.params
    assert user.logins == 0
    assert user.consents == 1


async def test_prompt_none_without_session_is_login_required(deployed: Deployment) -> None:
    """CODE-E2E-08: OIDC Core §3.1.2.6: prompt=none and nobody signed in."""
    metadata = await discover(deployed)
    flow = CodeFlow(oauth_client(deployed, SPA_CLIENT, scope="openid"))
    url = await authorize_url(flow, metadata, "openid", prompt="none")
    async with http_client(deployed.issuer) as http:
        arrival = await browser(http).authorize(url, redirect_uri=REDIRECT_URI)
    assert arrival.params["error"] == "login_required"
    assert arrival.params["iss"] == deployed.issuer


async def test_both_metadata_documents_agree_and_every_advertised_endpoint_is_served(
    deployed: Deployment,
) -> None:
    """DISC-E2E-01: RFC 8414 §3 and OIDC Discovery §4: the same document at both well-known
    URIs, issuer = the configured one, S256 only, and no advertised URL is a 404."""
    async with http_client(deployed.issuer) as http:
        oidc = await http.get("/.well-known/openid-configuration")
        oauth = await http.get("/.well-known/oauth-authorization-server")
        doc = oidc.json()
        assert oauth.json() == doc
        assert doc["issuer"] == deployed.issuer
        assert doc["code_challenge_methods_supported"] == ["S256"]
        assert doc["authorization_response_iss_parameter_supported"] is True
        for name, value in doc.items():
            if name.endswith(("_endpoint", "_uri")) and isinstance(value, str):
                assert value.startswith(deployed.issuer + "/"), name
                answer = await http.request("OPTIONS", value)
                assert answer.status_code != 404, name
