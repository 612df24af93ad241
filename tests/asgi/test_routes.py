"""Every endpoint routed by the ASGI app, and a full code flow driven through its HTML forms.

Spec: RFC 6749 §3.1 (authorization endpoint: GET and POST), §3.2 (token endpoint: POST),
§4.1 (code flow), §4.1.2.1 (direct errors when the redirect URI cannot be trusted); RFC 7636
(PKCE); RFC 9126 §2 (PAR: POST); RFC 7009 §2 and RFC 7662 §2 (POST); OIDC Core 1.0 §5.3.1
(UserInfo: GET and POST), §3.1.2.4 (consent); RFC 8414 §2 (only enabled endpoints listed);
RFC 9110 §15.5.6 (405 with Allow), §12.5.1 (Accept); RFC 9207 §2 (iss).
"""

from __future__ import annotations

import dataclasses
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from argon2 import PasswordHasher

from authward.asgi import LoginPage, create_app
from authward.asgi.app import wants_html
from authward.core.config import FeatureSettings
from authward.core.defaults import FileUserDirectory, SignedCookieLogin, hash_secret
from authward.core.server import AuthorizationServer
from tests.asgi.forms import only_form, submit
from tests.core.endpoints import kit
from tests.dbkit import Db

CHEAP = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)

#: (path, methods the route answers), every endpoint with all features on.
ROUTES = [
    ("/.well-known/openid-configuration", {"GET", "HEAD"}),
    ("/.well-known/oauth-authorization-server", {"GET", "HEAD"}),
    ("/jwks.json", {"GET", "HEAD"}),
    ("/authorize", {"GET", "HEAD", "POST"}),
    ("/token", {"POST"}),
    ("/par", {"POST"}),
    ("/revoke", {"POST"}),
    ("/introspect", {"POST"}),
    ("/userinfo", {"GET", "HEAD", "POST"}),
]


def client_for(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=kit.ISSUER)


def allow(response: httpx.Response) -> set[str]:
    return set(response.headers["allow"].replace(" ", "").split(","))


@pytest.mark.parametrize(("path", "methods"), ROUTES)
async def test_each_endpoint_answers_its_methods_and_405s_the_others(
    db: Db, path: str, methods: set[str]
) -> None:
    """Every route exists (no 404 for its methods); any other method is 405 with Allow."""
    k = kit.build(db)
    async with client_for(create_app(k.server)) as client:
        for method in sorted(methods - {"HEAD"}):
            response = await client.request(method, path)
            assert response.status_code not in (404, 405), (method, response.text)
        for method in sorted({"GET", "POST", "PUT", "DELETE"} - methods):
            refused = await client.request(method, path)
            assert refused.status_code == 405, (method, path)
            assert allow(refused) == methods
            assert refused.json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    ("feature", "path", "metadata_key"),
    [
        ("pushed_authorization_requests", "/par", "pushed_authorization_request_endpoint"),
        ("revocation", "/revoke", "revocation_endpoint"),
        ("introspection", "/introspect", "introspection_endpoint"),
        ("userinfo", "/userinfo", "userinfo_endpoint"),
    ],
)
async def test_a_disabled_feature_is_neither_routed_nor_listed(
    db: Db, feature: str, path: str, metadata_key: str
) -> None:
    """RFC 8414 §2: discovery lists only what is served, and what is off is not served."""
    on = kit.build(db)
    off = kit.build(db, features=FeatureSettings(**{feature: False}))
    async with client_for(create_app(on.server)) as client:
        listed = (await client.get("/.well-known/openid-configuration")).json()
        served = await client.post(path)
    async with client_for(create_app(off.server)) as client:
        unlisted = (await client.get("/.well-known/openid-configuration")).json()
        missing = await client.post(path)
    assert listed[metadata_key] == kit.ISSUER + path
    assert served.status_code != 404
    assert metadata_key not in unlisted
    assert missing.status_code == 404


async def test_token_errors_stay_json_even_for_a_browser(db: Db) -> None:
    """RFC 6749 §5.2: the token endpoint always answers JSON with no-store."""
    k = kit.build(db)
    async with client_for(create_app(k.server)) as client:
        response = await client.post(
            "/token", data={"grant_type": "password"}, headers={"Accept": "text/html"}
        )
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    assert response.json()["error"] in ("unsupported_grant_type", "invalid_client")


async def test_untrusted_client_is_an_html_page_for_browsers_and_json_otherwise(db: Db) -> None:
    """RFC 6749 §4.1.2.1: no redirect to an unverified client; the same status and error code
    reach a browser as a page (escaped) and an API caller as JSON."""
    k = kit.build(db)
    params = {
        "response_type": "code",
        "client_id": "<no-such-client>",
        "redirect_uri": kit.REDIRECT_URI,
        "code_challenge": kit.CODE_CHALLENGE,
        "code_challenge_method": "S256",
    }
    async with client_for(create_app(k.server)) as client:
        page = await client.get(
            "/authorize", params=params,
            headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"},
        )
        api = await client.get("/authorize", params=params)
    assert "location" not in page.headers
    assert "location" not in api.headers
    assert api.headers["content-type"] == "application/json"
    code = api.json()["error"]
    assert page.status_code == api.status_code >= 400
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["x-frame-options"] == "DENY"
    assert f"error: {code}" in page.text
    assert "<no-such-client>" not in page.text


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, False),
        ("*/*", False),
        ("application/json", False),
        ("text/html", True),
        ("text/html;q=0", False),
        ("application/json, text/*;q=0.5", True),
        ("TEXT/HTML; q=0.9", True),
        ("text/html;q=bad", False),
    ],
)
def test_wants_html_reads_the_accept_header(accept: str | None, expected: bool) -> None:
    """RFC 9110 §12.5.1: a media range with q=0 is not acceptable."""
    assert wants_html(accept) is expected


# --- the full code flow through the HTML forms ------------------------------------------------


def with_default_login(k: kit.Kit) -> tuple[AuthorizationServer, LoginPage]:
    """``k``'s server with the default signed-cookie login and a TOML user directory."""
    users = FileUserDirectory.from_mapping(
        {
            "users": [
                {
                    "subject": "u-42",
                    "username": "alice",
                    "password_hash": hash_secret("correct horse", hasher=CHEAP),
                    "claims": {"name": "Alice Example"},
                }
            ]
        },
        hasher=CHEAP,
    )
    session = SignedCookieLogin(b"k" * 32, issuer=kit.ISSUER, clock=k.clock)
    policy = dataclasses.replace(k.server.policy, login=session, claims=users)
    return dataclasses.replace(k.server, policy=policy), LoginPage(users, session)


def query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


async def test_code_flow_through_login_and_consent_pages_to_userinfo(db: Db) -> None:
    """RFC 6749 §4.1 + RFC 7636 + OIDC Core §3.1 and §5.3, driven like a browser: authorize ->
    login page -> sign in -> consent page -> approve -> code (state, iss) -> token -> UserInfo."""
    k = kit.build(db)
    server, login_page = with_default_login(k)
    app = create_app(server, login_page=login_page)
    browser_headers = {"Accept": "text/html"}
    async with client_for(app) as browser:
        start = await browser.get(
            "/authorize",
            params={
                "response_type": "code",
                "client_id": kit.PUBLIC_CLIENT_ID,
                "redirect_uri": kit.REDIRECT_URI,
                "scope": "openid profile",
                "state": "st-1",
                "nonce": "n-1",
                "code_challenge": kit.CODE_CHALLENGE,
                "code_challenge_method": "S256",
            },
            headers=browser_headers,
        )
        assert start.status_code == 302, start.text
        login_url = start.headers["location"]
        assert login_url.startswith(kit.ISSUER + "/login?")

        login_page_response = await browser.get(login_url, headers=browser_headers)
        login_form = only_form(login_page_response.text)
        assert login_form.method == "POST"
        signed_in = await submit(browser, login_form, username="alice", password="correct horse")
        assert signed_in.status_code == 303, signed_in.text
        resume = signed_in.headers["location"]
        assert resume.startswith(kit.ISSUER + "/authorize?")

        consent_page = await browser.get(resume, headers=browser_headers)
        assert consent_page.status_code == 200, consent_page.text
        assert "Public App" in consent_page.text
        consent_form = only_form(consent_page.text)
        assert consent_form.action == kit.ISSUER + "/authorize"
        assert "consent_token" in consent_form.hidden()
        approved = await submit(
            browser, consent_form, button=("decision", "approve"), headers=browser_headers
        )
        assert approved.status_code == 302, approved.text
        callback = approved.headers["location"]
        assert callback.startswith(kit.REDIRECT_URI + "?")
        response_params = query(callback)
        assert response_params["state"] == "st-1"
        assert response_params["iss"] == kit.ISSUER

        # The same consent form cannot be used twice (single-use grant, spec §3.9).
        replayed = await submit(browser, consent_form, button=("decision", "approve"))
        assert query(replayed.headers["location"])["error"] == "access_denied"

        tokens = await browser.post(
            "/token",
            data={
                "grant_type": "authorization_code",
                "code": response_params["code"],
                "redirect_uri": kit.REDIRECT_URI,
                "client_id": kit.PUBLIC_CLIENT_ID,
                "code_verifier": kit.CODE_VERIFIER,
            },
        )
        assert tokens.status_code == 200, tokens.text
        assert tokens.headers["cache-control"] == "no-store"
        body = tokens.json()
        assert "id_token" in body

        for method in ("GET", "POST"):
            userinfo = await browser.request(
                method, "/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"}
            )
            assert userinfo.status_code == 200, userinfo.text
            assert userinfo.json() == {"sub": "u-42", "name": "Alice Example"}


async def test_denying_consent_redirects_access_denied_with_state_and_iss(db: Db) -> None:
    """OIDC Core §3.1.2.6: the end-user's refusal is access_denied, by redirect."""
    k = kit.build(db)
    server, login_page = with_default_login(k)
    async with client_for(create_app(server, login_page=login_page)) as browser:
        start = await browser.get(
            "/authorize",
            params={
                "response_type": "code",
                "client_id": kit.PUBLIC_CLIENT_ID,
                "redirect_uri": kit.REDIRECT_URI,
                "scope": "openid",
                "state": "st-2",
                "code_challenge": kit.CODE_CHALLENGE,
                "code_challenge_method": "S256",
            },
        )
        login_form = only_form((await browser.get(start.headers["location"])).text)
        signed_in = await submit(browser, login_form, username="alice", password="correct horse")
        consent_form = only_form((await browser.get(signed_in.headers["location"])).text)
        denied = await submit(browser, consent_form, button=("decision", "deny"))
    assert denied.status_code == 302
    params = query(denied.headers["location"])
    assert params == {
        "error": "access_denied",
        "error_description": params.get("error_description", ""),
        "state": "st-2",
        "iss": kit.ISSUER,
    }
