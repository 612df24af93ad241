"""The device verification pages over ASGI: login redirect, code entry, approve/deny, 429.

Spec: RFC 8628 §3.3, §3.3.1 (prefill, never act on a GET), §5.1 (brute force: 429 with
Retry-After), §5.4; RFC 6749 §10.12 (CSRF double submit), §10.13 (no framing); RFC 6585 §4.
Real SQL stores on SQLite and PostgreSQL; the server is the core test kit's.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from authward.asgi import create_app
from authward.asgi.pages import CSRF_COOKIE
from authward.core.config import DeviceAuthorizationSettings, FeatureSettings
from authward.core.grants.device_code import GRANT_TYPE
from authward.stores.device_codes import Found
from tests.asgi.forms import forms
from tests.core.endpoints.device_kit import DEVICE_CLIENT_ID, DEVICE_SECRET, add_device_clients
from tests.core.endpoints.kit import ISSUER, LOGIN_URL, Kit, build
from tests.dbkit import Db

BASIC = "Basic " + base64.b64encode(f"{DEVICE_CLIENT_ID}:{DEVICE_SECRET}".encode()).decode()


def setup(db: Db, **settings: Any) -> tuple[Kit, httpx.AsyncClient]:
    kit = build(db, **settings)
    add_device_clients(kit)
    app = create_app(kit.server)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER)
    return kit, client


def sign_in(kit: Kit, client: httpx.AsyncClient, subject: str = "alice") -> None:
    _, cookie = kit.login.sign_in(subject, auth_time=kit.clock.now())
    name, _, value = cookie.partition("=")
    client.cookies.set(name, value)


async def start(client: httpx.AsyncClient, scope: str = "openid profile read") -> dict[str, Any]:
    res = await client.post(
        "/device_authorization", data={"scope": scope}, headers={"Authorization": BASIC}
    )
    assert res.status_code == 200, res.text
    body: dict[str, Any] = res.json()
    return body


async def poll(client: httpx.AsyncClient, device_code: str) -> httpx.Response:
    return await client.post(
        "/token",
        data={"grant_type": GRANT_TYPE, "device_code": device_code},
        headers={"Authorization": BASIC},
    )


async def enter(client: httpx.AsyncClient, user_code: str) -> httpx.Response:
    """Open the entry page and submit ``user_code`` with its CSRF token."""
    page = await client.get("/device")
    assert page.status_code == 200, page.text
    (form,) = forms(page.text)
    pairs = form.fields(user_code=user_code)
    return await post_pairs(client, urlsplit(form.action).path, pairs)


async def choose(client: httpx.AsyncClient, page: httpx.Response, decision: str) -> httpx.Response:
    (form,) = forms(page.text)
    pairs = form.submission(button=("decision", decision))
    return await post_pairs(client, urlsplit(form.action).path, pairs)


async def post_pairs(
    client: httpx.AsyncClient, path: str, pairs: list[tuple[str, str]]
) -> httpx.Response:
    """POST ``pairs`` form-encoded, order and repeats kept."""
    return await client.post(
        path,
        content=urlencode(pairs).encode("ascii"),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )


async def status_of(kit: Kit, user_code: str) -> str:
    found = await kit.server.stores.device_codes.lookup_user_code(user_code.replace("-", ""))
    assert isinstance(found, Found)
    return found.view.status


async def test_signed_out_user_is_sent_to_login_keeping_the_user_code(db: Db) -> None:
    _, client = setup(db)
    async with client:
        res = await client.get("/device", params={"user_code": "BCDF-GHJK"})
    assert res.status_code == 303
    location = res.headers["location"]
    assert location.startswith(LOGIN_URL)
    return_to = parse_qs(urlsplit(location).query)["return_to"][0]
    assert return_to == ISSUER + "/device?user_code=BCDF-GHJK"


async def test_verification_uri_complete_prefills_the_form_and_acts_on_nothing(db: Db) -> None:
    """RFC 8628 §3.3.1: the GET only prefills; approval needs an explicit POST."""
    kit, client = setup(db)
    async with client:
        sign_in(kit, client)
        body = await start(client)
        url = urlsplit(body["verification_uri_complete"])
        res = await client.get(url.path + "?" + url.query + "&decision=approve")
    assert res.status_code == 200
    assert res.headers["cache-control"] == "no-store"
    assert res.headers["x-frame-options"] == "DENY"
    assert CSRF_COOKIE in res.cookies
    (form,) = forms(res.text)
    assert dict(form.fields())["user_code"] == body["user_code"]
    assert await status_of(kit, body["user_code"]) == "pending"


async def test_approve_through_the_pages_then_the_device_gets_tokens(db: Db) -> None:
    kit, client = setup(db)
    async with client:
        sign_in(kit, client)
        body = await start(client)
        pending = await poll(client, body["device_code"])
        assert pending.json()["error"] == "authorization_pending"
        confirm = await enter(client, body["user_code"].lower())
        assert confirm.status_code == 200
        assert "Living Room TV" in confirm.text
        assert body["user_code"] in confirm.text
        assert "Your basic profile" in confirm.text
        done = await choose(client, confirm, "approve")
        assert done.status_code == 200
        assert "is now connected" in done.text
        kit.clock.advance(5)
        tokens = await poll(client, body["device_code"])
    assert tokens.status_code == 200, tokens.text
    assert tokens.json()["scope"] == "openid profile read"
    assert "device.approved" in kit.events.names()


async def test_deny_through_the_pages_is_access_denied(db: Db) -> None:
    kit, client = setup(db)
    async with client:
        sign_in(kit, client)
        body = await start(client)
        confirm = await enter(client, body["user_code"])
        done = await choose(client, confirm, "deny")
        assert done.status_code == 200
        assert "You denied access" in done.text
        res = await poll(client, body["device_code"])
    assert res.status_code == 400
    assert res.json()["error"] == "access_denied"


async def test_a_form_without_the_csrf_cookie_is_refused_before_any_lookup(db: Db) -> None:
    kit, client = setup(db, device_authorization=DeviceAuthorizationSettings(
        max_failed_user_codes=1))
    async with client:
        sign_in(kit, client)
        body = await start(client)
        res = await client.post(
            "/device", data={"user_code": body["user_code"], "csrf_token": "forged",
                             "decision": "approve"},
        )
        assert res.status_code == 400
        assert "The form expired" in res.text
        assert await status_of(kit, body["user_code"]) == "pending"
        # Nothing was counted: the one allowed failure is still there.
        wrong = await enter(client, "BBBB-BBBB")
    assert wrong.status_code == 400
    assert "Attempts left: 0" in wrong.text


async def test_wrong_codes_then_429_with_retry_after(db: Db) -> None:
    """RFC 8628 §5.1 / RFC 6585 §4: after the allowed failures the page answers 429."""
    kit, client = setup(db, device_authorization=DeviceAuthorizationSettings(
        max_failed_user_codes=2, failed_user_code_window_seconds=300))
    async with client:
        sign_in(kit, client)
        body = await start(client)
        first = await enter(client, "BBBB-BBBB")
        assert first.status_code == 400
        assert "was not recognised" in first.text
        assert "Attempts left: 1" in first.text
        assert (await enter(client, "CCCC-CCCC")).status_code == 400
        locked = await enter(client, body["user_code"])
        assert locked.status_code == 429
        assert 1 <= int(locked.headers["retry-after"]) <= 300
        assert "Too many attempts" in locked.text
        malformed = await enter(client, "nope")
    assert malformed.status_code == 400
    assert "not a valid code" in malformed.text


async def test_an_unknown_decision_is_refused(db: Db) -> None:
    kit, client = setup(db)
    async with client:
        sign_in(kit, client)
        body = await start(client)
        confirm = await enter(client, body["user_code"])
        (form,) = forms(confirm.text)
        res = await post_pairs(client, "/device", [*form.fields(), ("decision", "maybe")])
    assert res.status_code == 400
    assert await status_of(kit, body["user_code"]) == "pending"


async def test_a_decided_code_cannot_be_decided_again(db: Db) -> None:
    kit, client = setup(db)
    async with client:
        sign_in(kit, client)
        body = await start(client)
        confirm = await enter(client, body["user_code"])
        await choose(client, confirm, "deny")
        again = await enter(client, body["user_code"])
    assert again.status_code == 400
    assert "already used" in again.text


async def test_pages_and_endpoint_are_absent_when_the_feature_is_off(db: Db) -> None:
    kit, client = setup(db, features=FeatureSettings(device_authorization_grant=False))
    async with client:
        sign_in(kit, client)
        page = await client.get("/device")
        endpoint = await client.post("/device_authorization", data={"scope": "openid"})
    assert page.status_code == 404
    assert endpoint.status_code == 404
