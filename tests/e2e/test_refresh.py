"""End to end over HTTP: refresh token rotation with Authlib's client, on both databases.

Spec: RFC 6749 §6, §10.4; RFC 9700 §4.14.2 (rotation, reuse detection); authward
spec/stores.md §3.2.7 (rotation: the retry grace window, reuse revokes the family), RT-12,
RT-31.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.dbkit import KINDS
from tests.e2e.flows import discover, oauth_client, run_code_flow, token_request
from tests.e2e.harness import (
    WEB_CLIENT,
    WEB_SECRET,
    Deployment,
    basic_auth,
    deployment,
    http_client,
)


@pytest.fixture(scope="module", params=KINDS)
def graced(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, e2e_keys: Path
) -> Iterator[Deployment]:
    """A node that opens a 60 s retry window (``refresh_token_rotation_grace_seconds = 60``,
    with the successor key the standard configuration carries)."""
    kind = str(request.param)
    with deployment(
        kind,
        tmp_path_factory.mktemp(f"e2e-graced-{kind}"),
        e2e_keys,
        settings={"refresh_token_rotation_grace_seconds": 60},
    ) as running:
        yield running


async def refresh_raw(
    deployed: Deployment, http: httpx.AsyncClient, refresh_token: str
) -> httpx.Response:
    metadata = await discover(deployed)
    return await token_request(
        http,
        metadata.token_endpoint,
        {"grant_type": "refresh_token", "refresh_token": refresh_token},
        headers={"Authorization": basic_auth(WEB_CLIENT, WEB_SECRET)},
    )


async def rotate_with_authlib(deployed: Deployment, refresh_token: str) -> dict[str, Any]:
    metadata = await discover(deployed)
    client = oauth_client(deployed, WEB_CLIENT)
    async with client:
        token = await client.refresh_token(metadata.token_endpoint, refresh_token=refresh_token)
    return dict(token)


def assert_invalid_grant(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_grant"
    assert response.headers["cache-control"] == "no-store"


async def test_rotation_issues_a_new_refresh_token_with_the_same_grant(
    deployed: Deployment,
) -> None:
    """RT-E2E-01: Authlib refreshes; a new refresh token and access token come back with the
    originally granted scope."""
    flow = await run_code_flow(deployed, WEB_CLIENT)
    assert flow.token is not None
    rotated = await rotate_with_authlib(deployed, flow.token["refresh_token"])
    assert rotated["refresh_token"] != flow.token["refresh_token"]
    assert rotated["access_token"] != flow.token["access_token"]
    assert rotated["token_type"] == "Bearer"
    assert rotated["scope"] == flow.token["scope"]


async def test_retry_within_grace_returns_the_same_successor(graced: Deployment) -> None:
    """RT-E2E-02 (RT-12): a 60 s grace window: presenting the rotated token again returns
    the same successor, and that successor still rotates."""
    flow = await run_code_flow(graced, WEB_CLIENT)
    assert flow.token is not None
    first = await rotate_with_authlib(graced, flow.token["refresh_token"])
    retry = await rotate_with_authlib(graced, flow.token["refresh_token"])
    assert retry["refresh_token"] == first["refresh_token"]
    onward = await rotate_with_authlib(graced, first["refresh_token"])
    assert onward["refresh_token"] not in (first["refresh_token"], flow.token["refresh_token"])


async def test_reuse_after_the_chain_moved_on_revokes_the_family(
    deployed: Deployment,
) -> None:
    """RT-E2E-03: token 1 -> 2 -> 3; presenting 1 again is reuse (its successor 2 was
    already rotated): invalid_grant, and 3 is revoked with the family."""
    flow = await run_code_flow(deployed, WEB_CLIENT)
    assert flow.token is not None
    one = flow.token["refresh_token"]
    two = (await rotate_with_authlib(deployed, one))["refresh_token"]
    three = (await rotate_with_authlib(deployed, two))["refresh_token"]
    async with http_client(deployed.issuer) as http:
        assert_invalid_grant(await refresh_raw(deployed, http, one))
        assert_invalid_grant(await refresh_raw(deployed, http, three))


async def test_strict_mode_refuses_the_old_token_and_revokes_the_new_one(
    deployed: Deployment,
) -> None:
    """RT-E2E-04 (RT-31): the default grace 0: the old token is refused at once, and that
    reuse revokes the successor the first rotation issued."""
    flow = await run_code_flow(deployed, WEB_CLIENT)
    assert flow.token is not None
    old = flow.token["refresh_token"]
    new = (await rotate_with_authlib(deployed, old))["refresh_token"]
    async with http_client(deployed.issuer) as http:
        assert_invalid_grant(await refresh_raw(deployed, http, old))
        assert_invalid_grant(await refresh_raw(deployed, http, new))


async def test_refresh_token_of_another_client_is_refused(deployed: Deployment) -> None:
    """RT-E2E-05: RFC 6749 §6: the refresh token is bound to the client it was issued to."""
    flow = await run_code_flow(deployed, WEB_CLIENT)
    assert flow.token is not None
    metadata = await discover(deployed)
    async with http_client(deployed.issuer) as http:
        refused = await token_request(
            http,
            metadata.token_endpoint,
            {
                "grant_type": "refresh_token",
                "refresh_token": flow.token["refresh_token"],
                "client_id": "e2e-spa",
            },
        )
        assert_invalid_grant(refused)
        # Not burnt by the refusal: the owner can still rotate it.
        owner = await refresh_raw(deployed, http, flow.token["refresh_token"])
    assert owner.status_code == 200, owner.text


async def test_narrower_scope_on_refresh_is_granted(deployed: Deployment) -> None:
    """RT-E2E-06: RFC 6749 §6: a subset of the original scope may be requested."""
    flow = await run_code_flow(deployed, WEB_CLIENT)
    assert flow.token is not None
    metadata = await discover(deployed)
    client = oauth_client(deployed, WEB_CLIENT)
    async with client:
        token = await client.refresh_token(
            metadata.token_endpoint, refresh_token=flow.token["refresh_token"], scope="openid"
        )
    assert token["scope"] == "openid"
