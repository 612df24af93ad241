"""The ``authward serve`` demo turns on every flow: a device flow, a sign-out with back-channel
logout to the demo relying party, and CIMD in discovery, all over real HTTP without writing any
configuration; its logs carry the audit events and never a query string.

Spec: RFC 8628 §3 (device flow, ``slow_down``); OIDC RP-Initiated Logout 1.0 §2-§3 and
Back-Channel Logout 1.0 §2.4-§2.6 (the demo receiver validates what it gets);
draft-ietf-oauth-client-id-metadata-document (discovery flag).
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx

from tests.asgi.forms import only_form, submit
from tests.cli.test_serve_command import HTTP_TIMEOUT, printed, query, serve
from tests.e2e.device_flow import user_decides

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def claims_of(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    padded = payload + "=" * (-len(payload) % 4)
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(padded))
    return decoded


async def sign_in_and_get_tokens(
    browser: httpx.AsyncClient, base: str, authorize_url: str, verifier: str, password: str
) -> dict[str, str]:
    html = {"Accept": "text/html"}
    start = await browser.get(authorize_url, headers=html)
    login = only_form((await browser.get(start.headers["location"], headers=html)).text)
    signed_in = await submit(browser, login, username="demo", password=password)
    consent = await browser.get(signed_in.headers["location"], headers=html)
    approved = await submit(browser, only_form(consent.text), button=("decision", "approve"))
    code = query(approved.headers["location"])["code"]
    tokens = await browser.post("/token", data={
        "grant_type": "authorization_code", "client_id": "demo-public",
        "redirect_uri": base + "/demo/callback", "code_verifier": verifier, "code": code,
    })
    assert tokens.status_code == 200, tokens.text
    return dict(tokens.json())


async def test_the_demo_serves_device_flow_logout_and_cimd(tmp_path: Path) -> None:
    with serve(tmp_path, 1) as running:
        output = running.output()
        base = running.base
        secret = printed(output, "client secret")
        password = printed(output, "password")
        verifier = printed(output, "code verifier")
        found = re.search(rf"^\s+({re.escape(base)}/authorize\?\S+)$", output, re.MULTILINE)
        assert found is not None, output
        end_session_hint = re.search(rf"^\s+({re.escape(base)}/end_session\?\S+)$", output,
                                     re.MULTILINE)
        assert end_session_hint is not None, output
        assert f"curl -s -u demo-confidential:CLIENT_SECRET {base}/device_authorization" in output

        async with httpx.AsyncClient(base_url=base, timeout=HTTP_TIMEOUT) as browser:
            meta = (await browser.get("/.well-known/openid-configuration")).json()
            assert meta["device_authorization_endpoint"] == base + "/device_authorization"
            assert meta["end_session_endpoint"] == base + "/end_session"
            assert meta["backchannel_logout_supported"] is True
            assert meta["client_id_metadata_document_supported"] is True

            # Sign in through the printed URL, then sign out through the printed end-session
            # URL with the ID token: the demo receiver gets and validates a logout token.
            tokens = await sign_in_and_get_tokens(
                browser, base, found.group(1), verifier, password
            )
            sid = claims_of(tokens["id_token"])["sid"]
            logout_url = end_session_hint.group(1).replace("ID_TOKEN", tokens["id_token"])
            confirm = await browser.get(logout_url, headers={"Accept": "text/html"})
            assert confirm.status_code == 200, confirm.text
            form = only_form(confirm.text)
            done = await submit(browser, form, button=("decision", "logout"))
            assert done.status_code == 303, done.text
            location = done.headers["location"]
            assert location.startswith(base + "/demo/signed-out?")
            assert dict(parse_qsl(urlsplit(location).query)) == {"state": "bye"}
            received = ""
            for _ in range(100):
                received = (await browser.get("/demo/backchannel-logout")).text
                if str(sid) in received:
                    break
                await asyncio.sleep(0.1)
            assert str(sid) in received, received
            assert "demo-public" in received

            # The device flow with the confidential demo client, approved in the browser.
            device = await browser.post("/device_authorization", data={"scope": "openid"},
                                        auth=("demo-confidential", secret))
            assert device.status_code == 200, device.text
            started = device.json()
            pending = await browser.post("/token", auth=("demo-confidential", secret), data={
                "grant_type": DEVICE_GRANT, "device_code": started["device_code"]})
            assert pending.json()["error"] == "authorization_pending"
            too_fast = await browser.post("/token", auth=("demo-confidential", secret), data={
                "grant_type": DEVICE_GRANT, "device_code": started["device_code"]})
            assert too_fast.json()["error"] == "slow_down"
            assert too_fast.json()["interval"] == started["interval"] + 5
            decided = await user_decides(browser, started["verification_uri_complete"],
                                         "approve", username="demo", password=password)
            assert decided.status_code == 200, decided.text
            await asyncio.sleep(too_fast.json()["interval"] + 0.2)
            issued = await browser.post("/token", auth=("demo-confidential", secret), data={
                "grant_type": DEVICE_GRANT, "device_code": started["device_code"]})
            assert issued.status_code == 200, issued.text
            assert claims_of(issued.json()["id_token"])["sub"] == "demo-user"
        assert running.stop() == 0, running.diagnostics()

    # stdout: the banner (which prints the secret and password once, by design), then
    # uvicorn's access log.
    access_log = running.output().split("Listening on", 1)[1]
    events = running.stderr.read_text(encoding="utf-8")
    assert "token.issued" in events
    assert "logout.delivered" in events
    assert "device.approved" in events
    # Query strings (the authorization code, the ID token hint, the user code) never reach
    # the logs: uvicorn's access lines keep only the path.
    assert "/end_session?[redacted]" in access_log
    for value in (tokens["id_token"], started["user_code"], started["device_code"], secret,
                  password):
        assert value not in access_log
        assert value not in events
