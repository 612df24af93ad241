"""The device authorization grant over HTTP: a device client and a scripted user's browser.

Spec: RFC 8628 §3.1-§3.5 (device request, user interaction, polling); HTML Living Standard
§4.10 (form submission). Forms are read with ``tests.asgi.forms``; cookies persist in the
``httpx.AsyncClient`` like a browser's cookie jar. The number of browser steps is bounded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urljoin, urlsplit

import httpx

from authward.core.defaults import hash_secret
from tests.asgi.forms import forms
from tests.e2e.browser import FlowError, post_form
from tests.e2e.harness import CHEAP_HASHER, PASSWORD, USERNAME, basic_auth

GRANT_TYPE: Final = "urn:ietf:params:oauth:grant-type:device_code"
DEVICE_CLIENT: Final = "e2e-tv"
DEVICE_SECRET: Final = "e2e-tv-secret-0123456789"
PUBLIC_DEVICE_CLIENT: Final = "e2e-cli"
MAX_STEPS: Final = 12


def device_client() -> Mapping[str, object]:
    """The ``[[clients]]`` table of the confidential device client."""
    return {
        "client_id": DEVICE_CLIENT,
        "client_type": "confidential",
        "token_endpoint_auth_method": "client_secret_basic",
        "client_secret_hash": hash_secret(DEVICE_SECRET, hasher=CHEAP_HASHER),
        "grant_types": [GRANT_TYPE, "refresh_token"],
        "scope": "openid profile offline_access api",
        "client_name": "E2E Television",
    }


def public_device_client() -> Mapping[str, object]:
    """The ``[[clients]]`` table of a public device client (it must use DPoP)."""
    return {
        "client_id": PUBLIC_DEVICE_CLIENT,
        "client_type": "public",
        "token_endpoint_auth_method": "none",
        "grant_types": [GRANT_TYPE],
        "scope": "openid api",
        "client_name": "E2E Command Line",
    }


def device_auth() -> dict[str, str]:
    return {"Authorization": basic_auth(DEVICE_CLIENT, DEVICE_SECRET)}


async def start(http: httpx.AsyncClient, scope: str = "openid profile offline_access") -> dict[
    str, Any
]:
    """The device authorization request (RFC 8628 §3.1); returns the 200 body."""
    response = await http.post(
        "/device_authorization", data={"scope": scope}, headers=device_auth()
    )
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    return body


async def poll(http: httpx.AsyncClient, device_code: str) -> httpx.Response:
    """One token request with the device code (RFC 8628 §3.4)."""
    return await http.post(
        "/token",
        data={"grant_type": GRANT_TYPE, "device_code": device_code},
        headers=device_auth(),
    )


async def user_decides(
    http: httpx.AsyncClient,
    url: str,
    decision: str,
    *,
    username: str = USERNAME,
    password: str = PASSWORD,
) -> httpx.Response:
    """Open ``url`` (``verification_uri_complete``) as the user: sign in when asked, submit
    the prefilled code, press ``decision`` on the confirmation page; returns the last page."""
    response = await http.get(url)
    visited = [url]
    for _ in range(MAX_STEPS):
        if response.is_redirect:
            location = urljoin(str(response.url), response.headers["location"])
            visited.append(location)
            response = await http.get(location)
            continue
        if response.status_code != 200:
            return response
        page_forms = forms(response.text)
        if not page_forms:
            return response
        form = page_forms[0]
        target = urljoin(str(response.url), form.action)
        names = form.field_names()
        if "password" in names:
            visited.append("login")
            pairs = form.fields(username=username, password=password)
        elif form.buttons:
            visited.append(f"confirm: {decision}")
            pairs = form.submission(button=("decision", decision))
        elif "user_code" in names:
            visited.append("enter code")
            pairs = form.fields()
        else:
            raise FlowError(f"unexpected form at {response.url}: {response.text[:2000]}")
        response = await post_form(http, target, pairs)
    raise FlowError(f"no final page after {MAX_STEPS} steps: {visited}")


async def enter_code(http: httpx.AsyncClient, user_code: str) -> httpx.Response:
    """As a signed-in user, open the entry page and submit ``user_code``."""
    page = await http.get("/device")
    assert page.status_code == 200, page.text
    (form,) = forms(page.text)
    target = urljoin(str(page.url), form.action)
    return await post_form(http, target, form.fields(user_code=user_code))


async def sign_in(http: httpx.AsyncClient) -> None:
    """Sign the user in through the login page reached from ``/device``."""
    response = await http.get("/device")
    assert response.status_code == 303, response.text
    login = await http.get(response.headers["location"])
    (form,) = forms(login.text)
    target = urljoin(str(login.url), form.action)
    done = await post_form(http, target, form.fields(username=USERNAME, password=PASSWORD))
    assert done.status_code == 303, done.text
    assert urlsplit(done.headers["location"]).path.endswith("/device")
