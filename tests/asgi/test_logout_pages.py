"""The end-session pages over ASGI: confirmation form, CSRF, cookie deletion, redirect, errors.

Spec: OIDC RP-Initiated Logout 1.0 §2 (the OP asks), §3 (redirect with ``state``), §4 (errors
are shown, not redirected), §7 (logout CSRF); OIDC Back-Channel Logout 1.0 §2.5; RFC 6749
§10.12 (CSRF), §10.13 (no framing); RFC 6265 §5.3 (a cookie is deleted by an expired one).
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from argon2 import PasswordHasher

from authward.asgi import LoginPage, create_app
from authward.asgi.pages import CSRF_COOKIE
from authward.core.clients import Client
from authward.core.config import FeatureSettings, LogoutSettings
from authward.core.defaults import FileUserDirectory, SignedCookieLogin, hash_secret
from authward.core.id_token import mint_id_token
from authward.core.logout import (
    LogoutDispatcher,
    record_logout_session,
    start_backchannel_logout,
)
from authward.stores.logout_sessions import LogoutCriteria
from tests.asgi.forms import only_form, submit
from tests.core.endpoints import kit
from tests.core.logout_receivers import receiver
from tests.dbkit import T0, Db

CHEAP = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
BYE = "https://rp-a.example/bye"
STATE = "st&<7>"


@dataclass
class Site:
    k: kit.Kit
    client: httpx.AsyncClient
    session: SignedCookieLogin
    dispatcher: LogoutDispatcher


def users() -> FileUserDirectory:
    return FileUserDirectory.from_mapping(
        {"users": [{"subject": "u-1", "username": "alice",
                    "password_hash": hash_secret("correct horse", hasher=CHEAP)}]},
        hasher=CHEAP,
    )


def site(db: Db, uris: tuple[str, str], **settings: Any) -> Site:
    k = kit.build(db, logout=LogoutSettings(enabled=True, allow_loopback=True), **settings)
    for client_id, uri in zip(("rp-a", "rp-b"), uris, strict=True):
        k.clients.add(Client(
            client_id, "public", "none", redirect_uris=(kit.REDIRECT_URI,),
            post_logout_redirect_uris=(BYE,) if client_id == "rp-a" else (),
            backchannel_logout_uri=uri, client_name=f"<b>{client_id}</b>",
        ))
    session = SignedCookieLogin(b"s" * 32, issuer=kit.ISSUER, clock=k.clock)
    k.server = dataclasses.replace(
        k.server, policy=dataclasses.replace(k.server.policy, login=session)
    )
    dispatcher = LogoutDispatcher()
    app = create_app(k.server, login_page=LoginPage(users(), session),
                     logout_dispatcher=dispatcher)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=kit.ISSUER)
    return Site(k, client, session, dispatcher)


async def sign_in(s: Site) -> str:
    """Sign alice in through the login form; return the session's sid."""
    page = await s.client.get("/login", params={"return_to": kit.ISSUER + "/"})
    answer = await submit(s.client, only_form(page.text), username="alice",
                          password="correct horse")
    assert answer.status_code == 303
    cookie = s.client.cookies.get(s.session.cookie_name)
    assert cookie is not None
    found = s.session.verify(cookie)
    assert found is not None
    for client_id in ("rp-a", "rp-b"):
        await record_logout_session(s.k.server, s.k.clients.clients[client_id], found.sid,
                                    found.subject, T0)
    return found.sid


def hint(s: Site, sid: str, client_id: str = "rp-a") -> str:
    return mint_id_token(s.k.server.keys.signing_key("RS256"), issuer=kit.ISSUER, subject="u-1",
                         client_id=client_id, lifetime=900, now=T0, sid=sid).token


async def remaining(s: Site, sid: str) -> int:
    return len(await s.k.server.stores.logout_sessions.targets(LogoutCriteria(sid=sid), now=T0))


def logout_url(**params: str) -> str:
    return "/end_session?" + urlencode(params)


async def test_signing_out_through_the_confirmation_page(db: Db) -> None:
    """The whole front channel: prompt, confirm, cookie deleted, redirect with state, and the
    back channel told both relying parties (validated tokens arrive)."""
    async with receiver() as a, receiver() as b:
        s = site(db, (a.url, b.url))
        sid = await sign_in(s)
        page = await s.client.get(logout_url(id_token_hint=hint(s, sid),
                                             post_logout_redirect_uri=BYE, state=STATE),
                                  headers={"Accept": "text/html"})
        assert page.status_code == 200
        assert page.headers["cache-control"] == "no-store"
        assert page.headers["x-frame-options"] == "DENY"
        assert "&lt;b&gt;rp-a&lt;/b&gt;" in page.text  # escaped client name
        form = only_form(page.text)
        assert form.action == kit.ISSUER + "/end_session"
        assert set(form.buttons) == {("decision", "logout"), ("decision", "stay")}
        assert form.hidden()["state"] == STATE
        assert await remaining(s, sid) == 2  # asking ends nothing
        done = await submit(s.client, form, button=("decision", "logout"))
        assert done.status_code == 303
        assert done.headers["location"] == f"{BYE}?{urlencode({'state': STATE})}"
        deleted = [c for c in done.headers.get_list("set-cookie")
                   if c.startswith(s.session.cookie_name + "=")]
        assert len(deleted) == 1
        assert "Max-Age=0" in deleted[0]
        assert "HttpOnly" in deleted[0]
        assert "Secure" in deleted[0]  # an https issuer
        assert "Path=/" in deleted[0]
        assert any(c.startswith(CSRF_COOKIE + '=""') for c in done.headers.get_list("set-cookie"))
        assert s.client.cookies.get(s.session.cookie_name) is None
        assert await remaining(s, sid) == 0
        await s.dispatcher.drain()
        again = await s.client.get(logout_url(id_token_hint=hint(s, sid),
                                              post_logout_redirect_uri=BYE))
        assert again.status_code == 303  # nobody is signed in any more: nothing to confirm
    assert len(a.tokens) == 1
    assert len(b.tokens) == 1


async def test_a_forged_confirmation_ends_nothing(db: Db) -> None:
    """Logout CSRF: a cross-site POST with decision=logout but no matching CSRF token is a 400
    page; the session and its logout rows survive."""
    s = site(db, ("https://rp-a.example/bc", "https://rp-b.example/bc"))
    sid = await sign_in(s)
    page = await s.client.get(logout_url(client_id="rp-a", post_logout_redirect_uri=BYE))
    form = only_form(page.text)
    forged = await submit(s.client, form, button=("decision", "logout"), csrf_token="forged")
    assert forged.status_code == 400
    assert "location" not in forged.headers
    assert "expired or did not come from this page" in forged.text
    s.client.cookies.delete(CSRF_COOKIE)
    no_cookie = await submit(s.client, form, button=("decision", "logout"))
    assert no_cookie.status_code == 400
    assert s.client.cookies.get(s.session.cookie_name) is not None
    assert await remaining(s, sid) == 2
    assert s.dispatcher.pending == 0


async def test_staying_signed_in_keeps_the_session(db: Db) -> None:
    s = site(db, ("https://rp-a.example/bc", "https://rp-b.example/bc"))
    sid = await sign_in(s)
    page = await s.client.get(logout_url(client_id="rp-a", post_logout_redirect_uri=BYE))
    stayed = await submit(s.client, only_form(page.text), button=("decision", "stay"))
    assert stayed.status_code == 200
    assert "You are still signed in" in stayed.text
    assert s.client.cookies.get(s.session.cookie_name) is not None
    assert await remaining(s, sid) == 2


async def test_refusals_are_error_pages_never_redirects(db: Db) -> None:
    s = site(db, ("https://rp-a.example/bc", "https://rp-b.example/bc"))
    sid = await sign_in(s)
    for url in (
        logout_url(id_token_hint=hint(s, sid), post_logout_redirect_uri="https://evil.example/"),
        logout_url(id_token_hint=hint(s, sid), client_id="rp-b"),
        logout_url(id_token_hint="not-a-token"),
        logout_url(post_logout_redirect_uri=BYE),
    ):
        refused = await s.client.get(url)
        assert refused.status_code == 400, url
        assert "location" not in refused.headers
        assert refused.headers["content-type"].startswith("text/html")
        assert "invalid_request" in refused.text
    assert await remaining(s, sid) == 2


async def test_without_a_redirect_uri_the_signed_out_page_is_shown(db: Db) -> None:
    s = site(db, ("https://rp-a.example/bc", "https://rp-b.example/bc"))
    await sign_in(s)
    page = await s.client.get("/end_session")
    done = await submit(s.client, only_form(page.text), button=("decision", "logout"))
    assert done.status_code == 200
    assert "You are signed out" in done.text
    assert s.client.cookies.get(s.session.cookie_name) is None


async def test_head_is_answered_like_get(db: Db) -> None:
    s = site(db, ("https://rp-a.example/bc", "https://rp-b.example/bc"))
    assert (await s.client.head("/end_session")).status_code == 200
    assert (await s.client.put("/end_session")).status_code == 405


async def test_end_session_is_not_routed_when_the_feature_is_off(db: Db) -> None:
    s = site(db, ("https://rp-a.example/bc", "https://rp-b.example/bc"),
             features=FeatureSettings(end_session=False))
    assert (await s.client.get("/end_session")).status_code == 404
    metadata = (await s.client.get("/.well-known/openid-configuration")).json()
    assert "end_session_endpoint" not in metadata


async def test_pending_deliveries_finish_when_the_app_shuts_down(db: Db) -> None:
    """The dispatcher is a lifespan resource: shutdown waits for a delivery in flight."""
    async with receiver(held=True) as slow:
        k = kit.build(db, logout=LogoutSettings(enabled=True, allow_loopback=True))
        client = Client("rp-a", "public", "none", redirect_uris=(kit.REDIRECT_URI,),
                        backchannel_logout_uri=slow.url)
        k.clients.add(client)
        await record_logout_session(k.server, client, "sid-1", "u-1", T0)
        dispatcher = LogoutDispatcher()
        app = create_app(k.server, logout_dispatcher=dispatcher)

        async def run_app() -> None:
            async with app.router.lifespan_context(app):
                await start_backchannel_logout(k.server, dispatcher, sid="sid-1",
                                               subject="u-1")
                await slow.arrived.wait()

        shutdown = asyncio.create_task(run_app())
        await slow.arrived.wait()
        await asyncio.sleep(0.05)
        assert not shutdown.done()  # still waiting for the held delivery
        assert dispatcher.pending == 1
        slow.release()
        await shutdown
    assert dispatcher.pending == 0
    assert len(slow.tokens) == 1
