"""End to end over HTTP: the device authorization grant against ``authward serve``, both engines.

Spec: RFC 8628 §3.1-§3.5 (device request, verification page, polling with
authorization_pending, slow_down (+5 s each time), access_denied, expired_token), §5.1 (brute
force of user codes: 429); RFC 6749 §5.2 (exact errors). The device client polls with httpx;
the user's side is a scripted browser through the HTML login and verification pages.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.dbkit import KINDS
from tests.e2e.device_flow import (
    DEVICE_CLIENT,
    GRANT_TYPE,
    PUBLIC_DEVICE_CLIENT,
    device_auth,
    device_client,
    enter_code,
    poll,
    public_device_client,
    sign_in,
    start,
    user_decides,
)
from tests.e2e.flows import DPoPKey
from tests.e2e.harness import (
    SUBJECT,
    WEB_CLIENT,
    WEB_SECRET,
    Deployment,
    basic_auth,
    deployment,
    http_client,
)

#: A short base interval keeps the real-time waits short. Poll stamps are whole seconds, so
#: with 1 s an "immediate" second poll that crosses a second boundary would be accepted; with
#: 2 s it is always too fast.
BASE_INTERVAL = 2


@pytest.fixture(scope="module", params=KINDS)
def device_deployed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, e2e_keys: Path
) -> Iterator[Deployment]:
    kind = str(request.param)
    with deployment(
        kind,
        tmp_path_factory.mktemp(f"e2e-device-{kind}"),
        e2e_keys,
        settings={
            "device_authorization": {
                "code_ttl_seconds": 120,
                "poll_interval_seconds": BASE_INTERVAL,
            }
        },
        extra_clients=[device_client(), public_device_client()],
    ) as running:
        yield running


@pytest.fixture(scope="module", params=KINDS)
def short_lived(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, e2e_keys: Path
) -> Iterator[Deployment]:
    """Codes live 2 s; two wrong user codes per user and window."""
    kind = str(request.param)
    with deployment(
        kind,
        tmp_path_factory.mktemp(f"e2e-device-short-{kind}"),
        e2e_keys,
        settings={
            "device_authorization": {
                "code_ttl_seconds": 2,
                "poll_interval_seconds": BASE_INTERVAL,
                "max_failed_user_codes": 2,
                "failed_user_code_window_seconds": 600,
            }
        },
        extra_clients=[device_client()],
    ) as running:
        yield running


async def test_discovery_lists_the_device_endpoint(device_deployed: Deployment) -> None:
    async with http_client(device_deployed.issuer) as http:
        doc = (await http.get("/.well-known/openid-configuration")).json()
    assert doc["device_authorization_endpoint"] == device_deployed.url("/device_authorization")
    assert GRANT_TYPE in doc["grant_types_supported"]


async def test_a_client_polling_too_fast_sees_slow_down_then_gets_tokens(
    device_deployed: Deployment,
) -> None:
    """DEV-E2E-01: pending, slow_down twice with the interval growing by 5 s each time, the
    user approves through the pages, the client obeys the interval and gets tokens once."""
    issuer = device_deployed.issuer
    async with http_client(issuer) as device, http_client(issuer) as user:
        body = await start(device, "openid profile offline_access api")
        assert body["verification_uri"] == device_deployed.url("/device")
        assert body["interval"] == BASE_INTERVAL
        first = await poll(device, body["device_code"])
        assert (first.status_code, first.json()["error"]) == (400, "authorization_pending")
        intervals = []
        for _ in range(2):  # no waiting at all: too fast
            res = await poll(device, body["device_code"])
            assert (res.status_code, res.json()["error"]) == (400, "slow_down")
            intervals.append(res.json()["interval"])
        assert intervals == [BASE_INTERVAL + 5, BASE_INTERVAL + 10]

        done = await user_decides(user, body["verification_uri_complete"], "approve")
        assert done.status_code == 200, done.text
        assert "E2E Television" in done.text
        assert "is now connected" in done.text

        await asyncio.sleep(intervals[-1] + 0.2)  # the client obeys the interval it was told
        tokens = await poll(device, body["device_code"])
        assert tokens.status_code == 200, tokens.text
        assert tokens.headers["cache-control"] == "no-store"
        issued = tokens.json()
        assert issued["scope"] == "openid profile offline_access api"
        assert issued["token_type"] == "Bearer"
        assert {"access_token", "refresh_token", "id_token"} <= set(issued)

        keys = KeySet.import_key_set((await device.get("/jwks.json")).json())
        claims = jwt.decode(issued["id_token"], keys, algorithms=["RS256"]).claims
        assert claims["sub"] == SUBJECT
        assert claims["aud"] == DEVICE_CLIENT
        assert claims["iss"] == issuer

        await asyncio.sleep(BASE_INTERVAL + 0.2)
        again = await poll(device, body["device_code"])
        assert (again.status_code, again.json()["error"]) == (400, "invalid_grant")

        refreshed = await device.post(
            "/token",
            data={"grant_type": "refresh_token", "refresh_token": issued["refresh_token"]},
            headers=device_auth(),
        )
        assert refreshed.status_code == 200, refreshed.text


async def test_denial_is_access_denied(device_deployed: Deployment) -> None:
    """DEV-E2E-02: the user presses Deny; the device's next poll gets access_denied."""
    issuer = device_deployed.issuer
    async with http_client(issuer) as device, http_client(issuer) as user:
        body = await start(device)
        done = await user_decides(user, body["verification_uri_complete"], "deny")
        assert done.status_code == 200
        assert "You denied access" in done.text
        res = await poll(device, body["device_code"])
    assert (res.status_code, res.json()["error"]) == (400, "access_denied")


async def test_a_public_clients_proof_binds_the_device_code_to_its_key(
    device_deployed: Deployment,
) -> None:
    """DEV-E2E-06: RFC 9449 §10: a public device client that sends a DPoP proof has its key
    bound to the code (one that sends none gets an unbound code); polls without the key or
    with another key are invalid_grant; the right key gets a DPoP-bound token; a replayed
    proof is invalid_dpop_proof."""
    issuer = device_deployed.issuer
    key, other = DPoPKey(), DPoPKey()
    device_url = device_deployed.url("/device_authorization")
    token_url = device_deployed.url("/token")
    form = {"client_id": PUBLIC_DEVICE_CLIENT, "scope": "openid api"}
    async with http_client(issuer) as device, http_client(issuer) as user:
        bare = await device.post("/device_authorization", data=form)
        assert bare.status_code == 200, bare.text
        proof = key.proof("POST", device_url)
        started = await device.post("/device_authorization", data=form, headers={"DPoP": proof})
        assert started.status_code == 200, started.text
        replayed = await device.post("/device_authorization", data=form, headers={"DPoP": proof})
        assert (replayed.status_code, replayed.json()["error"]) == (400, "invalid_dpop_proof")
        body = started.json()
        done = await user_decides(user, body["verification_uri_complete"], "approve")
        assert "is now connected" in done.text
        poll_form = {
            "grant_type": GRANT_TYPE, "device_code": body["device_code"],
            "client_id": PUBLIC_DEVICE_CLIENT,
        }
        for headers in ({}, {"DPoP": other.proof("POST", token_url)}):
            res = await device.post("/token", data=poll_form, headers=headers)
            assert (res.status_code, res.json()["error"]) == (400, "invalid_grant")
            await asyncio.sleep(BASE_INTERVAL + 0.2)
        res = await device.post(
            "/token", data=poll_form, headers={"DPoP": key.proof("POST", token_url)}
        )
    assert res.status_code == 200, res.text
    assert res.json()["token_type"] == "DPoP"


async def test_malformed_requests_get_exact_errors(device_deployed: Deployment) -> None:
    """DEV-E2E-03: RFC 6749 §5.2 / RFC 8628 §3.5: exact error, status and no-store; nothing
    is written to the device code table."""
    database = device_deployed.database
    before = (await database.row_counts())
    async with http_client(device_deployed.issuer) as http:
        res = await http.get("/device_authorization")
        assert res.status_code == 405
        cases = [
            (await http.post("/device_authorization", data={"scope": "openid"}),
             400, "invalid_client"),
            (await http.post("/device_authorization", json={"scope": "openid"},
                             headers=device_auth()),
             400, "invalid_request"),
            (await http.post("/device_authorization", content=b"scope=openid&scope=api",
                             headers={**device_auth(),
                                      "Content-Type": "application/x-www-form-urlencoded"}),
             400, "invalid_request"),
            (await http.post("/device_authorization", data={"scope": "admin"},
                             headers=device_auth()),
             400, "invalid_scope"),
            (await http.post("/device_authorization", data={"resource": "not a uri#x"},
                             headers=device_auth()),
             400, "invalid_target"),
            (await http.post("/device_authorization", data={"scope": "openid"},
                             headers={"Authorization": basic_auth(WEB_CLIENT, WEB_SECRET)}),
             400, "unauthorized_client"),
            (await http.post("/token", data={"grant_type": GRANT_TYPE}, headers=device_auth()),
             400, "invalid_request"),
            (await http.post("/token", data={"grant_type": GRANT_TYPE, "device_code": "nope"},
                             headers=device_auth()),
             400, "invalid_grant"),
            (await http.post("/token", data={"grant_type": GRANT_TYPE, "device_code": "nope"},
                             headers={"Authorization": basic_auth(WEB_CLIENT, WEB_SECRET)}),
             400, "unauthorized_client"),
        ]
        for response, status, error in cases:
            assert (response.status_code, response.json()["error"]) == (status, error), (
                response.request.url, response.text
            )
            assert response.headers["cache-control"] == "no-store"
        bad_secret = await http.post(
            "/device_authorization", data={"scope": "openid"},
            headers={"Authorization": basic_auth(DEVICE_CLIENT, "wrong")},
        )
        assert (bad_secret.status_code, bad_secret.json()["error"]) == (401, "invalid_client")
        assert bad_secret.headers["www-authenticate"].startswith("Basic")
    after = await database.row_counts()
    assert after == before


async def test_an_expired_code_is_expired_token(short_lived: Deployment) -> None:
    """DEV-E2E-04: past expires_in the poll is expired_token and the page refuses the code."""
    issuer = short_lived.issuer
    async with http_client(issuer) as device, http_client(issuer) as user:
        body = await start(device)
        assert body["expires_in"] == 2
        await asyncio.sleep(2.5)
        res = await poll(device, body["device_code"])
        assert (res.status_code, res.json()["error"]) == (400, "expired_token")
        page = await user_decides(user, body["verification_uri_complete"], "approve")
    assert page.status_code == 400
    assert "has expired" in page.text


async def test_wrong_user_codes_lock_the_page(short_lived: Deployment) -> None:
    """DEV-E2E-05: RFC 8628 §5.1: two unknown codes, then even the right code gets 429 with
    Retry-After, and the device stays pending. (Runs last on this deployment: it locks the
    user for the window.)"""
    issuer = short_lived.issuer
    async with http_client(issuer) as device, http_client(issuer) as user:
        body = await start(device)
        await sign_in(user)
        first = await enter_code(user, "BBBB-BBBB")
        assert first.status_code == 400
        assert "Attempts left: 1" in first.text
        second = await enter_code(user, "CCCC-CCCC")
        assert second.status_code == 400
        assert "Attempts left: 0" in second.text
        locked = await enter_code(user, body["user_code"])
        assert locked.status_code == 429
        assert 1 <= int(locked.headers["retry-after"]) <= 600
        res = await poll(device, body["device_code"])
    assert (res.status_code, res.json()["error"]) == (400, "authorization_pending")
