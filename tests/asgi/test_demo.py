"""The demo relying-party pages: callback, signed-out and the back-channel logout receiver."""

from __future__ import annotations

from collections.abc import Mapping

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import BaseRoute

from authward.asgi import create_app
from authward.asgi.demo import (
    BACKCHANNEL_LOGOUT_EVENT,
    DEMO_BACKCHANNEL_LOGOUT_PATH,
    DEMO_SIGNED_OUT_PATH,
    demo_routes,
)
from authward.core.jose import sign_jwt
from authward.core.keys import KeySet
from tests.core.endpoints import kit
from tests.dbkit import Db


def setup(db: Db) -> tuple[httpx.AsyncClient, kit.Kit]:
    k = kit.build(db)
    routes: list[BaseRoute] = list(demo_routes(k.server))
    app: Starlette = create_app(k.server, extra_routes=routes)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=kit.ISSUER)
    return client, k


def claims(k: kit.Kit, **changes: object) -> dict[str, object]:
    now = int(k.clock.now())
    base: dict[str, object] = {
        "iss": kit.ISSUER,
        "aud": "demo-public",
        "iat": now,
        "exp": now + 120,
        "jti": "j-1",
        "sid": "s-1",
        "sub": "demo-user",
        "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
    }
    base.update(changes)
    return {name: value for name, value in base.items() if value is not None}


def token(k: kit.Kit, body: Mapping[str, object], *, typ: str = "logout+jwt",
          keys: KeySet | None = None) -> str:
    key = (keys or k.server.keys).signing_key("ES256")
    return sign_jwt(key, body, header={"typ": typ})


async def deliver(client: httpx.AsyncClient, value: str) -> httpx.Response:
    return await client.post(DEMO_BACKCHANNEL_LOGOUT_PATH, data={"logout_token": value})


async def test_a_valid_logout_token_is_accepted_and_listed(db: Db) -> None:
    client, k = setup(db)
    async with client:
        accepted = await deliver(client, token(k, claims(k)))
        listed = await client.get(DEMO_BACKCHANNEL_LOGOUT_PATH)
    assert accepted.status_code == 200
    assert accepted.headers["cache-control"] == "no-store"
    assert listed.status_code == 200
    assert "s-1" in listed.text
    assert "demo-user" in listed.text


@pytest.mark.parametrize(
    ("changes", "typ"),
    [
        ({"nonce": "n"}, "logout+jwt"),
        ({"aud": "someone-else"}, "logout+jwt"),
        ({"iss": "https://elsewhere.example"}, "logout+jwt"),
        ({"events": {"other": {}}}, "logout+jwt"),
        ({"sid": None, "sub": None}, "logout+jwt"),
        ({"jti": None}, "logout+jwt"),
        ({}, "JWT"),
    ],
)
async def test_a_bad_logout_token_is_refused_with_400(
    db: Db, changes: dict[str, object], typ: str
) -> None:
    client, k = setup(db)
    async with client:
        refused = await deliver(client, token(k, claims(k, **changes), typ=typ))
        listed = await client.get(DEMO_BACKCHANNEL_LOGOUT_PATH)
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_request"
    assert "No logout token has been received yet" in listed.text


async def test_expired_or_foreign_signed_tokens_and_missing_parameter_are_refused(db: Db) -> None:
    client, k = setup(db)
    now = int(k.clock.now())
    foreign = KeySet.generate(("ES256",), now=now)
    async with client:
        expired = await deliver(client, token(k, claims(k, iat=now - 600, exp=now - 300)))
        forged = await deliver(client, token(k, claims(k), keys=foreign))
        missing = await client.post(DEMO_BACKCHANNEL_LOGOUT_PATH, data={"other": "x"})
        not_a_form = await client.post(
            DEMO_BACKCHANNEL_LOGOUT_PATH, content=b"{}", headers={"content-type": "text/plain"}
        )
    assert [r.status_code for r in (expired, forged, missing, not_a_form)] == [400] * 4


async def test_signed_out_page_shows_the_state_escaped(db: Db) -> None:
    client, _ = setup(db)
    async with client:
        page = await client.get(DEMO_SIGNED_OUT_PATH, params={"state": "<b>x</b>"})
    assert page.status_code == 200
    assert "&lt;b&gt;x&lt;/b&gt;" in page.text
    assert "<b>x</b>" not in page.text
    assert page.headers["x-frame-options"] == "DENY"
