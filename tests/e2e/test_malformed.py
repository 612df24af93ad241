"""Malformed input over HTTP, for every endpoint: the exact OAuth error and status, never a
500, the challenges RFC 6749 §5.2 / RFC 6750 §3 require, and no row left behind in any of the
nine tables (counted with SQLAlchemy on the same database before and after each request).

Spec: RFC 6749 §3.1 and §3.2 (repeated parameters, POST and form bodies), §4.1.2.1 (errors by
redirect only to a trusted redirect URI, with ``state``), §5.2 (token errors; ``invalid_client``
401 + ``WWW-Authenticate`` after Basic); RFC 7636 §4.4.1 (S256 only); RFC 9126 §2.1-§2.3 (PAR);
RFC 7009 §2.1-§2.2.1; RFC 7662 §2.1-§2.3; RFC 6750 §2.1, §3, §3.1; RFC 9449 §4.3, §7.1;
RFC 9207 (``iss`` on error redirects); RFC 9110 §15.5.6 (405 + ``Allow``), §15.5.14 (413).

``invalid_client`` is 401 with a ``Basic`` challenge when the client tried the Authorization
header, and 400 otherwise (RFC 6749 §5.2 makes 401 mandatory only in the first case).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest

from tests.asgi.forms import Form
from tests.asgi.forms import forms as forms_of
from tests.e2e.browser import post_form
from tests.e2e.flows import b64url
from tests.e2e.harness import (
    JWT_CLIENT,
    PAR_CLIENT,
    PASSWORD,
    REDIRECT_URI,
    SPA_CLIENT,
    USERNAME,
    WEB_CLIENT,
    WEB_SECRET,
    Deployment,
    basic_auth,
    http_client,
)

FORM: Final = "application/x-www-form-urlencoded"
CHALLENGE: Final = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGlSYDrSBs"  # RFC 7636 App. B
BIG: Final = "x" * 70_000
LONG: Final = "y" * 5_000
WEB: Final = {"Authorization": basic_auth(WEB_CLIENT, WEB_SECRET)}
JSON_ACCEPT: Final = {"Accept": "application/json"}


def jws(header: bytes, payload: bytes) -> str:
    """A compact JWS with the given raw (possibly malformed) segments and a junk signature."""
    return f"{b64url(header)}.{b64url(payload)}.{b64url(b'sig')}"


BAD_JSON_JWT: Final = jws(b'{"alg":"ES256",', b'{"iss":')


@dataclass(frozen=True)
class Case:
    """One malformed request and the exact answer it must get."""

    id: str
    method: str
    path: str
    status: int
    error: str | None = None
    form: list[tuple[str, str]] | None = None
    query: list[tuple[str, str]] | None = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    #: The error must arrive by redirect to REDIRECT_URI (with state and iss) instead of JSON.
    by_redirect: bool = False
    #: A substring the WWW-Authenticate header must contain.
    challenge: str | None = None
    #: The Allow header's methods (405).
    allow: frozenset[str] | None = None
    #: The exact JSON body (when ``error`` is None and the answer is JSON).
    body: object = None


def authorize_query(**changes: str | None) -> list[tuple[str, str]]:
    """A valid authorization request for the public client, with ``changes`` (None drops)."""
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": SPA_CLIENT,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid",
        "state": "st-1",
        "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
    }
    params.update(changes)
    return [(k, v) for k, v in params.items() if v is not None]


def par_form(**changes: str | None) -> list[tuple[str, str]]:
    return [pair for pair in authorize_query(client_id=WEB_CLIENT, **changes)]


def cc(**extra: str) -> list[tuple[str, str]]:
    return [("grant_type", "client_credentials"), *extra.items()]


POST_ONLY: Final = frozenset({"POST"})
GET_ONLY: Final = frozenset({"GET", "HEAD"})

TOKEN_CASES: Final = [
    Case("token-get", "GET", "/token", 405, "invalid_request", allow=POST_ONLY),
    Case("token-put", "PUT", "/token", 405, "invalid_request", allow=POST_ONLY),
    Case("token-no-body", "POST", "/token", 400, "invalid_request", headers=WEB),
    Case("token-json-body", "POST", "/token", 400, "invalid_request", headers={
        **WEB, "Content-Type": "application/json"},
        content=b'{"grant_type": "client_credentials"}'),
    Case("token-bad-json-body", "POST", "/token", 400, "invalid_request", headers={
        **WEB, "Content-Type": "application/json"}, content=b'{"grant_type": '),
    Case("token-text-body", "POST", "/token", 400, "invalid_request", headers={
        **WEB, "Content-Type": "text/plain"}, content=b"grant_type=client_credentials"),
    Case("token-missing-grant-type", "POST", "/token", 400, "invalid_request",
         form=[("scope", "api")], headers=WEB),
    Case("token-empty-grant-type", "POST", "/token", 400, "invalid_request",
         form=[("grant_type", "")], headers=WEB),
    Case("token-duplicate-grant-type", "POST", "/token", 400, "invalid_request",
         form=[("grant_type", "client_credentials"), ("grant_type", "client_credentials")],
         headers=WEB),
    Case("token-unknown-grant-type", "POST", "/token", 400, "unsupported_grant_type",
         form=[("grant_type", "password"), ("username", "a"), ("password", "b")],
         headers=WEB),
    Case("token-oversized-grant-type", "POST", "/token", 400, "unsupported_grant_type",
         form=[("grant_type", LONG)], headers=WEB),
    Case("token-code-missing", "POST", "/token", 400, "invalid_request",
         form=[("grant_type", "authorization_code"), ("redirect_uri", REDIRECT_URI),
               ("code_verifier", "v" * 43)], headers=WEB),
    Case("token-code-duplicated", "POST", "/token", 400, "invalid_request",
         form=[("grant_type", "authorization_code"), ("code", "a"), ("code", "b"),
               ("redirect_uri", REDIRECT_URI), ("code_verifier", "v" * 43)], headers=WEB),
    Case("token-code-unknown", "POST", "/token", 400, "invalid_grant",
         form=[("grant_type", "authorization_code"), ("code", "nope"),
               ("redirect_uri", REDIRECT_URI), ("code_verifier", "v" * 43)], headers=WEB),
    Case("token-code-oversized", "POST", "/token", 400, "invalid_grant",
         form=[("grant_type", "authorization_code"), ("code", LONG),
               ("redirect_uri", REDIRECT_URI), ("code_verifier", "v" * 43)], headers=WEB),
    Case("token-refresh-missing", "POST", "/token", 400, "invalid_request",
         form=[("grant_type", "refresh_token")], headers=WEB),
    Case("token-refresh-unknown", "POST", "/token", 400, "invalid_grant",
         form=[("grant_type", "refresh_token"), ("refresh_token", "nope")], headers=WEB),
    Case("token-refresh-oversized", "POST", "/token", 400, "invalid_grant",
         form=[("grant_type", "refresh_token"), ("refresh_token", LONG)], headers=WEB),
    Case("token-bad-scope-syntax", "POST", "/token", 400, "invalid_scope",
         form=cc(scope='api "quoted"'), headers=WEB),
    Case("token-basic-bad-base64", "POST", "/token", 401, "invalid_client",
         form=cc(), headers={"Authorization": "Basic !!!not-base64!!!"}, challenge="Basic"),
    Case("token-basic-not-utf8", "POST", "/token", 401, "invalid_client", form=cc(),
         headers={"Authorization": "Basic " + base64.b64encode(b"\xff\xfe:x").decode()},
         challenge="Basic"),
    Case("token-basic-no-colon", "POST", "/token", 401, "invalid_client", form=cc(),
         headers={"Authorization": "Basic " + base64.b64encode(b"e2e-web").decode()},
         challenge="Basic"),
    Case("token-basic-wrong-secret", "POST", "/token", 401, "invalid_client", form=cc(),
         headers={"Authorization": basic_auth(WEB_CLIENT, "wrong")}, challenge="Basic"),
    Case("token-basic-unknown-client", "POST", "/token", 401, "invalid_client", form=cc(),
         headers={"Authorization": basic_auth("nobody", "x")}, challenge="Basic"),
    Case("token-two-auth-methods", "POST", "/token", 400, "invalid_request",
         form=cc(client_id=WEB_CLIENT, client_secret=WEB_SECRET), headers=WEB),
    Case("token-duplicated-client-id", "POST", "/token", 400, "invalid_request",
         form=[("grant_type", "client_credentials"), ("client_id", WEB_CLIENT),
               ("client_id", WEB_CLIENT), ("client_secret", WEB_SECRET)]),
    Case("token-no-client", "POST", "/token", 400, "invalid_client", form=cc()),
    Case("token-assertion-not-a-jwt", "POST", "/token", 400, "invalid_client", form=cc(
        client_id=JWT_CLIENT,
        client_assertion_type="urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        client_assertion="not-a-jwt")),
    Case("token-assertion-bad-json", "POST", "/token", 400, "invalid_client", form=cc(
        client_id=JWT_CLIENT,
        client_assertion_type="urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        client_assertion=BAD_JSON_JWT)),
    Case("token-assertion-wrong-type", "POST", "/token", 400, "invalid_client", form=cc(
        client_id=JWT_CLIENT, client_assertion_type="urn:example:other",
        client_assertion=BAD_JSON_JWT)),
    Case("token-dpop-garbage", "POST", "/token", 400, "invalid_dpop_proof", form=cc(),
         headers={**WEB, "DPoP": "garbage"}),
    Case("token-dpop-bad-json", "POST", "/token", 400, "invalid_dpop_proof", form=cc(),
         headers={**WEB, "DPoP": BAD_JSON_JWT}),
    Case("token-dpop-unsigned", "POST", "/token", 400, "invalid_dpop_proof", form=cc(),
         headers={**WEB, "DPoP": jws(b'{"typ":"dpop+jwt","alg":"none"}', b"{}")}),
    Case("token-relative-resource", "POST", "/token", 400, "invalid_target",
         form=cc(resource="/relative"), headers=WEB),
    Case("token-oversized-client-id", "POST", "/token", 400, "invalid_client",
         form=cc(client_id=LONG, client_secret="x")),
    Case("token-non-ascii-basic", "POST", "/token", 401, "invalid_client", form=cc(),
         headers={"Authorization": "Basic " + base64.b64encode(
             "é%C3:x".encode()).decode()}, challenge="Basic"),
    Case("token-short-verifier", "POST", "/token", 400, "invalid_grant",
         form=[("grant_type", "authorization_code"), ("code", "nope"),
               ("redirect_uri", REDIRECT_URI), ("code_verifier", "short")], headers=WEB),
    Case("token-body-too-large", "POST", "/token", 413, "invalid_request",
         form=cc(padding=BIG), headers=WEB),
    Case("token-body-not-utf8", "POST", "/token", 400, "invalid_request",
         content=b"grant_type=client_credentials&x=%FF%FE", headers={
             **WEB, "Content-Type": FORM}),
    Case("token-body-not-form-syntax", "POST", "/token", 400, "invalid_request",
         content=b"grant_type", headers={**WEB, "Content-Type": FORM}),
]

PAR_CASES: Final = [
    Case("par-get", "GET", "/par", 405, "invalid_request", allow=POST_ONLY),
    Case("par-no-client", "POST", "/par", 400, "invalid_client", form=par_form()),
    Case("par-bad-basic", "POST", "/par", 401, "invalid_client", form=par_form(),
         headers={"Authorization": "Basic %%%"}, challenge="Basic"),
    Case("par-json-body", "POST", "/par", 400, "invalid_request",
         content=json.dumps(dict(par_form())).encode(),
         headers={"Content-Type": "application/json"}),
    Case("par-missing-response-type", "POST", "/par", 400, "invalid_request",
         form=par_form(response_type=None), headers=WEB),
    Case("par-response-type-token", "POST", "/par", 400, "unsupported_response_type",
         form=par_form(response_type="token"), headers=WEB),
    Case("par-missing-challenge", "POST", "/par", 400, "invalid_request",
         form=par_form(code_challenge=None), headers=WEB),
    Case("par-plain-challenge", "POST", "/par", 400, "invalid_request",
         form=par_form(code_challenge_method="plain"), headers=WEB),
    Case("par-short-challenge", "POST", "/par", 400, "invalid_request",
         form=par_form(code_challenge="abc"), headers=WEB),
    Case("par-unregistered-redirect", "POST", "/par", 400, "invalid_request",
         form=par_form(redirect_uri="https://evil.example/cb"), headers=WEB),
    Case("par-request-uri-inside", "POST", "/par", 400, "invalid_request",
         form=[*par_form(), ("request_uri", "urn:ietf:params:oauth:request_uri:x")],
         headers=WEB),
    Case("par-duplicated-scope", "POST", "/par", 400, "invalid_request",
         form=[*par_form(scope=None), ("scope", "openid"), ("scope", "openid")],
         headers=WEB),
    Case("par-max-age-not-a-number", "POST", "/par", 400, "invalid_request",
         form=par_form(max_age="soon"), headers=WEB),
    Case("par-prompt-unknown", "POST", "/par", 400, "invalid_request",
         form=par_form(prompt="sometimes"), headers=WEB),
    Case("par-oversized-state", "POST", "/par", 400, "invalid_request",
         form=par_form(state=LONG), headers=WEB),
    Case("par-body-too-large", "POST", "/par", 413, "invalid_request",
         form=par_form(state=BIG), headers=WEB),
]

AUTHORIZE_CASES: Final = [
    Case("authorize-put", "PUT", "/authorize", 405, "invalid_request",
         allow=frozenset({"GET", "HEAD", "POST"})),
    Case("authorize-no-client-id", "GET", "/authorize", 400, "invalid_request",
         query=authorize_query(client_id=None), headers=JSON_ACCEPT),
    Case("authorize-unknown-client", "GET", "/authorize", 400, "invalid_client",
         query=authorize_query(client_id="nobody"), headers=JSON_ACCEPT),
    Case("authorize-duplicated-client-id", "GET", "/authorize", 400, "invalid_request",
         query=[*authorize_query(), ("client_id", SPA_CLIENT)], headers=JSON_ACCEPT),
    Case("authorize-unregistered-redirect", "GET", "/authorize", 400, "invalid_request",
         query=authorize_query(redirect_uri="https://evil.example/cb"), headers=JSON_ACCEPT),
    Case("authorize-duplicated-redirect", "GET", "/authorize", 400, "invalid_request",
         query=[*authorize_query(), ("redirect_uri", REDIRECT_URI)], headers=JSON_ACCEPT),
    Case("authorize-unknown-request-uri", "GET", "/authorize", 400, "invalid_request_uri",
         query=[("client_id", PAR_CLIENT),
                ("request_uri", "urn:ietf:params:oauth:request_uri:nope")],
         headers=JSON_ACCEPT),
    Case("authorize-query-not-utf8", "GET", "/authorize?client_id=%FF", 400,
         "invalid_request", headers=JSON_ACCEPT),
    Case("authorize-missing-challenge", "GET", "/authorize", 302, "invalid_request",
         query=authorize_query(code_challenge=None), by_redirect=True),
    Case("authorize-plain-challenge", "GET", "/authorize", 302, "invalid_request",
         query=authorize_query(code_challenge_method="plain"), by_redirect=True),
    Case("authorize-missing-response-type", "GET", "/authorize", 302, "invalid_request",
         query=authorize_query(response_type=None), by_redirect=True),
    Case("authorize-response-type-token", "GET", "/authorize", 302,
         "unsupported_response_type", query=authorize_query(response_type="token"),
         by_redirect=True),
    Case("authorize-response-mode-fragment", "GET", "/authorize", 302, "invalid_request",
         query=authorize_query(response_mode="fragment"), by_redirect=True),
    Case("authorize-max-age-negative", "GET", "/authorize", 302, "invalid_request",
         query=authorize_query(max_age="-1"), by_redirect=True),
    Case("authorize-max-age-not-a-number", "GET", "/authorize", 302, "invalid_request",
         query=authorize_query(max_age="1e3"), by_redirect=True),
    Case("authorize-prompt-none-and-login", "GET", "/authorize", 302, "invalid_request",
         query=authorize_query(prompt="none login"), by_redirect=True),
    Case("authorize-duplicated-scope", "GET", "/authorize", 302, "invalid_request",
         query=[*authorize_query(), ("scope", "openid")], by_redirect=True),
    Case("authorize-request-object", "GET", "/authorize", 302, "request_not_supported",
         query=authorize_query(request="e30.e30."), by_redirect=True),
    Case("authorize-relative-resource", "GET", "/authorize", 302, "invalid_target",
         query=authorize_query(resource="/relative"), by_redirect=True),
    Case("authorize-oversized-nonce", "GET", "/authorize", 302, "invalid_request",
         query=authorize_query(nonce=LONG), by_redirect=True),
    Case("authorize-par-only-client-front-channel", "GET", "/authorize", 302,
         "invalid_request", query=authorize_query(client_id=PAR_CLIENT), by_redirect=True),
    Case("authorize-bad-dpop-jkt", "GET", "/authorize", 302, "invalid_request",
         query=authorize_query(dpop_jkt="not a thumbprint"), by_redirect=True),
    Case("authorize-unknown-client-with-par-uri", "GET", "/authorize", 400, "invalid_request_uri",
         query=[("client_id", "nobody"),
                ("request_uri", "urn:ietf:params:oauth:request_uri:nope")],
         headers=JSON_ACCEPT),
    Case("authorize-post-json", "POST", "/authorize", 400, "invalid_request",
         content=json.dumps(dict(authorize_query())).encode(),
         headers={"Content-Type": "application/json", **JSON_ACCEPT}),
    Case("authorize-post-too-large", "POST", "/authorize", 413, "invalid_request",
         form=authorize_query(state=BIG), headers=JSON_ACCEPT),
]

REVOCATION_CASES: Final = [
    Case("revoke-get", "GET", "/revoke", 405, "invalid_request", allow=POST_ONLY),
    Case("revoke-no-client", "POST", "/revoke", 400, "invalid_client",
         form=[("token", "abc")]),
    Case("revoke-bad-basic", "POST", "/revoke", 401, "invalid_client",
         form=[("token", "abc")], headers={"Authorization": "Basic ====="}, challenge="Basic"),
    Case("revoke-missing-token", "POST", "/revoke", 400, "invalid_request", form=[],
         content=b"", headers={**WEB, "Content-Type": FORM}),
    Case("revoke-duplicated-token", "POST", "/revoke", 400, "invalid_request",
         form=[("token", "a"), ("token", "b")], headers=WEB),
    Case("revoke-json-body", "POST", "/revoke", 400, "invalid_request",
         content=b'{"token": "abc"}', headers={**WEB, "Content-Type": "application/json"}),
    Case("revoke-oversized-token", "POST", "/revoke", 200, form=[("token", LONG)],
         headers=WEB),
    Case("revoke-unknown-hint", "POST", "/revoke", 200,
         form=[("token", "abc"), ("token_type_hint", "id_token")], headers=WEB),
    Case("revoke-body-too-large", "POST", "/revoke", 413, "invalid_request",
         form=[("token", BIG)], headers=WEB),
]

INTROSPECTION_CASES: Final = [
    Case("introspect-get", "GET", "/introspect", 405, "invalid_request", allow=POST_ONLY),
    Case("introspect-no-client", "POST", "/introspect", 400, "invalid_client",
         form=[("token", "abc")]),
    Case("introspect-bad-basic", "POST", "/introspect", 401, "invalid_client",
         form=[("token", "abc")], headers={"Authorization": "Basic a"}, challenge="Basic"),
    Case("introspect-missing-token", "POST", "/introspect", 400, "invalid_request",
         form=[("token_type_hint", "access_token")], headers=WEB),
    Case("introspect-duplicated-token", "POST", "/introspect", 400, "invalid_request",
         form=[("token", "a"), ("token", "b")], headers=WEB),
    Case("introspect-duplicated-hint", "POST", "/introspect", 400, "invalid_request",
         form=[("token", "a"), ("token_type_hint", "access_token"),
               ("token_type_hint", "refresh_token")], headers=WEB),
    Case("introspect-json-body", "POST", "/introspect", 400, "invalid_request",
         content=b'{"token": "abc"}', headers={**WEB, "Content-Type": "application/json"}),
    Case("introspect-oversized-token", "POST", "/introspect", 200, form=[("token", LONG)],
         headers=WEB, body={"active": False}),
    Case("introspect-garbage-jwt", "POST", "/introspect", 200,
         form=[("token", BAD_JSON_JWT)], headers=WEB, body={"active": False}),
    Case("introspect-public-client", "POST", "/introspect", 400, "invalid_client",
         form=[("token", "abc"), ("client_id", SPA_CLIENT)]),
]

USERINFO_CASES: Final = [
    Case("userinfo-put", "PUT", "/userinfo", 405, "invalid_request",
         allow=frozenset({"GET", "HEAD", "POST"})),
    Case("userinfo-no-token", "GET", "/userinfo", 401, challenge="Bearer"),
    Case("userinfo-empty-bearer", "GET", "/userinfo", 400, challenge='error="invalid_request"',
         headers={"Authorization": "Bearer"}),
    Case("userinfo-token-in-query", "GET", "/userinfo", 400,
         challenge='error="invalid_request"', query=[("access_token", "abc")]),
    Case("userinfo-token-in-body", "POST", "/userinfo", 400,
         challenge='error="invalid_request"', form=[("access_token", "abc")]),
    Case("userinfo-garbage-token", "GET", "/userinfo", 401,
         challenge='error="invalid_token"', headers={"Authorization": "Bearer abc.def.ghi"}),
    Case("userinfo-bad-json-token", "GET", "/userinfo", 401,
         challenge='error="invalid_token"', headers={"Authorization": f"Bearer {BAD_JSON_JWT}"}),
    Case("userinfo-dpop-without-proof", "GET", "/userinfo", 401,
         challenge="DPoP", headers={"Authorization": "DPoP abc"}),
    Case("userinfo-basic-scheme", "GET", "/userinfo", 401, challenge="Bearer",
         headers={"Authorization": basic_auth(WEB_CLIENT, WEB_SECRET)}),
]

METADATA_CASES: Final = [
    Case("jwks-post", "POST", "/jwks.json", 405, "invalid_request", allow=GET_ONLY),
    Case("discovery-post", "POST", "/.well-known/openid-configuration", 405,
         "invalid_request", allow=GET_ONLY),
    Case("as-metadata-delete", "DELETE", "/.well-known/oauth-authorization-server", 405,
         "invalid_request", allow=GET_ONLY),
    Case("unknown-path", "GET", "/no-such-endpoint", 404, "invalid_request"),
]

CASES: Final = [
    *TOKEN_CASES,
    *PAR_CASES,
    *AUTHORIZE_CASES,
    *REVOCATION_CASES,
    *INTROSPECTION_CASES,
    *USERINFO_CASES,
    *METADATA_CASES,
]


async def send(http: httpx.AsyncClient, case: Case) -> httpx.Response:
    headers = dict(case.headers)
    content = case.content
    if case.form is not None and content is None:
        content = urlencode(case.form).encode("ascii")
        headers.setdefault("Content-Type", FORM)
    url = case.path
    if case.query is not None:
        url += "?" + urlencode(case.query)
    return await http.request(case.method, url, content=content, headers=headers)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
async def test_malformed_request_gets_the_exact_error_and_writes_nothing(
    deployed: Deployment, case: Case
) -> None:
    """MAL-E2E: see the module docstring; ``case.id`` names the endpoint and the fault."""
    before = await deployed.database.row_counts()
    async with http_client(deployed.issuer) as http:
        response = await send(http, case)
    after = await deployed.database.row_counts()
    shown = f"{case.id}: {response.status_code} {dict(response.headers)} {response.text[:500]}"
    assert response.status_code == case.status, shown
    if case.by_redirect:
        location = response.headers["location"]
        assert location.startswith(REDIRECT_URI + "?"), shown
        params = dict(parse_qsl(urlsplit(location).query))
        assert params["error"] == case.error, shown
        assert params["iss"] == deployed.issuer, shown
        if any(name == "state" for name, _ in case.query or ()):
            assert params.get("state") == dict(case.query or ()).get("state"), shown
    elif case.error is not None:
        assert response.headers["content-type"].startswith("application/json"), shown
        assert response.json()["error"] == case.error, shown
    elif case.body is not None:
        assert response.json() == case.body, shown
    if case.path in ("/token", "/par", "/revoke", "/introspect") and case.status != 405:
        assert response.headers.get("cache-control") == "no-store", shown
    if case.challenge is not None:
        assert case.challenge in response.headers.get("www-authenticate", ""), shown
    if case.status == 401:
        # RFC 6749 §5.2 / RFC 6750 §3: every 401 carries a challenge.
        assert "www-authenticate" in response.headers, shown
    if case.allow is not None:
        allowed = {m.strip() for m in response.headers["allow"].split(",")}
        assert allowed == case.allow, shown
    assert after == before, f"{case.id}: rows changed: {before} -> {after}"


async def test_authorize_error_page_for_browsers_is_html(deployed: Deployment) -> None:
    """MAL-E2E-HTML: an untrusted client seen by a browser gets the HTML error page with the
    same status (no redirect, no 500)."""
    async with http_client(deployed.issuer) as http:
        response = await http.get(
            "/authorize?" + urlencode(authorize_query(client_id="nobody")),
            headers={"Accept": "text/html"},
        )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")
    assert "location" not in response.headers


async def test_login_form_without_csrf_is_refused_without_a_session(
    deployed: Deployment,
) -> None:
    """MAL-E2E-LOGIN: RFC 6749 §10.12: a login POST without the CSRF pair is 400 and sets no
    session cookie; an oversized one is 413."""
    async with http_client(deployed.issuer) as http:
        forged = await http.post(
            "/login", data={"username": "alice", "password": "x", "return_to": "/"}
        )
        huge = await http.post("/login", data={"username": BIG})
    assert forged.status_code == 400
    assert "authward_login=" not in forged.headers.get("set-cookie", "")
    assert huge.status_code == 413


async def consent_page(http: httpx.AsyncClient) -> Form:
    """Sign alice in through the login form and return the consent form of a fresh request."""
    response = await http.get("/authorize?" + urlencode(authorize_query()))
    for _ in range(6):
        if response.is_redirect:
            response = await http.get(response.headers["location"])
            continue
        assert response.status_code == 200, response.text
        form = forms_of(response.text)[0]
        if "consent_token" in form.field_names():
            return form
        response = await post_form(
            http, form.action, form.fields(username=USERNAME, password=PASSWORD)
        )
    raise AssertionError("no consent page")


async def test_forged_and_replayed_consent_tokens_are_access_denied(
    deployed: Deployment,
) -> None:
    """MAL-E2E-CONSENT: spec §3.9: a forged consent_token and a replayed one are both
    access_denied by redirect (with state and iss) and change no row; the genuine one, once,
    gives a code."""
    async with http_client(deployed.issuer) as http:
        form = await consent_page(http)
        before = await deployed.database.row_counts()
        forged = await post_form(
            http, form.action, [*form.fields(consent_token="forged"), ("decision", "approve")]
        )
        assert await deployed.database.row_counts() == before
        genuine = await post_form(http, form.action, [*form.fields(), ("decision", "approve")])
        replayed = await post_form(http, form.action, [*form.fields(), ("decision", "approve")])
    for response, expected in ((forged, "access_denied"), (replayed, "access_denied")):
        assert response.status_code in (302, 303), response.text
        params = dict(parse_qsl(urlsplit(response.headers["location"]).query))
        assert params["error"] == expected
        assert params["state"] == "st-1"
        assert params["iss"] == deployed.issuer
    assert "code" in dict(parse_qsl(urlsplit(genuine.headers["location"]).query))
