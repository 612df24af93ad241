"""The default HTML pages: login (signed cookie, CSRF, no open redirect) and consent.

Spec: RFC 6265 §4.1.2 (HttpOnly, Secure, SameSite); RFC 6749 §10.12, §10.13; RFC 9700 §4.11;
OIDC Core 1.0 §3.1.2.4.
"""

from __future__ import annotations

import html
import re
from urllib.parse import urlencode

import httpx
from argon2 import PasswordHasher
from starlette.applications import Starlette
from starlette.routing import Mount

from authward.asgi import LoginPage, Pages, create_app
from authward.asgi.pages import CSRF_COOKIE
from authward.core.clients import Client
from authward.core.defaults import FileUserDirectory, SignedCookieLogin, hash_secret
from authward.core.endpoints.authorize import ConsentPrompt
from authward.core.http import Request
from tests.core.endpoints import kit
from tests.dbkit import Db

CHEAP = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
RETURN_TO = kit.ISSUER + "/authorize?" + urlencode({"client_id": "web-app", "state": "s&<x>"})


def users() -> FileUserDirectory:
    return FileUserDirectory.from_mapping(
        {
            "users": [
                {
                    "subject": "u-1",
                    "username": "alice",
                    "password_hash": hash_secret("correct horse", hasher=CHEAP),
                }
            ]
        },
        hasher=CHEAP,
    )


def setup(
    db: Db, issuer: str = kit.ISSUER, mount: str | None = None
) -> tuple[httpx.AsyncClient, SignedCookieLogin]:
    k = kit.build(db, issuer=issuer)
    session = SignedCookieLogin(b"s" * 32, issuer=issuer, clock=k.clock)
    app: Starlette = create_app(k.server, login_page=LoginPage(users(), session))
    if mount is not None:
        app = Starlette(routes=[Mount(mount, app=app)])
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=issuer)
    return client, session


def hidden(page: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert match is not None, name
    return html.unescape(match.group(1))


async def sign_in(
    client: httpx.AsyncClient, *, return_to: str, username: str = "alice",
    password: str = "correct horse",
) -> httpx.Response:
    form_page = await client.get("login", params={"return_to": return_to})
    return await client.post(
        "login",
        data={
            "username": username,
            "password": password,
            "return_to": hidden(form_page.text, "return_to"),
            "csrf_token": hidden(form_page.text, "csrf_token"),
        },
    )


async def test_login_form_is_accessible_html_with_the_return_to(db: Db) -> None:
    """Labels, lang, hidden return_to; never cached or framed (RFC 6749 §10.13)."""
    client, _ = setup(db)
    async with client:
        response = await client.get("/login", params={"return_to": RETURN_TO})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    page = response.text
    assert '<html lang="en">' in page
    assert '<label for="username">' in page
    assert '<label for="password">' in page
    assert "<script" not in page
    assert hidden(page, "return_to") == RETURN_TO
    assert "&lt;x&gt;" in page or "%3Cx%3E" in page
    assert CSRF_COOKIE in response.cookies


async def test_right_password_sets_a_verifiable_cookie_and_returns(db: Db) -> None:
    """303 to return_to; the session cookie is HttpOnly, SameSite=Lax, Secure on https."""
    client, session = setup(db)
    async with client:
        response = await sign_in(client, return_to=RETURN_TO)
    assert response.status_code == 303
    assert response.headers["location"] == RETURN_TO
    set_cookie = next(
        v for v in response.headers.get_list("set-cookie") if v.startswith("authward_login=")
    )
    lowered = set_cookie.lower()
    assert "httponly" in lowered
    assert "samesite=lax" in lowered
    assert "secure" in lowered
    value = set_cookie.split(";")[0].split("=", 1)[1]
    request = Request.build("GET", RETURN_TO, headers=[("Cookie", f"authward_login={value}")])
    found = await session.authenticated(request)
    assert found is not None
    assert found.subject == "u-1"
    assert found.amr == ("pwd",)


async def test_cookie_is_not_secure_on_a_local_http_issuer(db: Db) -> None:
    client, _ = setup(db, issuer="http://localhost/auth", mount="/auth")
    async with client:
        response = await sign_in(client, return_to="http://localhost/auth/authorize")
    assert response.status_code == 303
    assert response.headers["location"] == "http://localhost/auth/authorize"
    set_cookie = next(
        v for v in response.headers.get_list("set-cookie") if v.startswith("authward_login=")
    )
    assert "secure" not in set_cookie.lower()
    assert "path=/auth" in set_cookie.lower()


async def test_wrong_password_and_unknown_user_read_the_same(db: Db) -> None:
    """No user enumeration: one generic message, no session cookie, status 200."""
    client, _ = setup(db)
    async with client:
        wrong = await sign_in(client, return_to=RETURN_TO, password="nope")
        unknown = await sign_in(client, return_to=RETURN_TO, username="mallory")
    for response in (wrong, unknown):
        assert response.status_code == 200
        assert "The username or password is not correct." in response.text
        assert not any(
            v.startswith("authward_login=") for v in response.headers.get_list("set-cookie")
        )
        assert "correct horse" not in response.text


async def test_open_redirect_through_return_to_is_refused(db: Db) -> None:
    """RFC 9700 §4.11: an off-issuer return_to lands on the issuer root instead."""
    client, _ = setup(db)
    async with client:
        for target in ("https://evil.example/steal", "//evil.example/x", "/relative"):
            form_page = await client.get("/login", params={"return_to": target})
            response = await client.post(
                "/login",
                data={
                    "username": "alice",
                    "password": "correct horse",
                    "return_to": target,
                    "csrf_token": hidden(form_page.text, "csrf_token"),
                },
            )
            assert response.status_code == 303
            assert response.headers["location"] == kit.ISSUER + "/"


async def test_login_post_without_the_csrf_cookie_is_refused(db: Db) -> None:
    """RFC 6749 §10.12: a cross-site login post lacks the double-submit cookie."""
    client, _ = setup(db)
    async with client:
        response = await client.post(
            "/login",
            data={"username": "alice", "password": "correct horse", "csrf_token": "forged",
                  "return_to": RETURN_TO},
        )
    assert response.status_code == 400
    assert not any(
        v.startswith("authward_login=") for v in response.headers.get_list("set-cookie")
    )


async def test_unreadable_login_body_is_an_error_page_not_a_500(db: Db) -> None:
    client, _ = setup(db)
    async with client:
        response = await client.post(
            "/login", content=b"username=%ff",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")


async def test_consent_page_escapes_the_client_and_posts_back(db: Db) -> None:
    """OIDC Core §3.1.2.4: who asks, for what; the form resubmits the request."""
    k = kit.build(db)
    client = Client(
        "evil-app", "public", "none", redirect_uris=(kit.REDIRECT_URI,),
        client_name='<script>alert("x")</script>',
    )
    prompt = ConsentPrompt(
        client=client,
        scopes=("openid", "email", "weird<b>scope"),
        subject="u-1",
        consent_token="ct-123",
        form_fields=(("client_id", "evil-app"), ("state", '"><script>x</script>')),
        action=k.server.url(k.server.paths.authorization),
    )
    response = Pages(k.server).render_consent(prompt)
    page = bytes(response.body).decode()
    assert response.status_code == 200
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-store"
    assert "<script>" not in page
    assert "&lt;script&gt;alert(" in page
    assert "weird&lt;b&gt;scope" in page
    assert "Your email address" in page
    assert f'action="{kit.ISSUER}/authorize"' in page
    assert hidden(page, "state") == '"><script>x</script>'
    assert hidden(page, "client_id") == "evil-app"
    assert hidden(page, "consent_token") == "ct-123"
    assert 'name="decision" value="approve"' in page
    assert 'name="decision" value="deny"' in page
    assert '<html lang="en">' in page


async def test_error_page_escapes_its_message(db: Db) -> None:
    k = kit.build(db)
    response = Pages(k.server).render_error("Oops", "<b>bad</b>", status=400)
    page = bytes(response.body).decode()
    assert response.status_code == 400
    assert "&lt;b&gt;bad&lt;/b&gt;" in page
