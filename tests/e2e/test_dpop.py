"""End to end over HTTP: DPoP (RFC 9449) with proofs the test signs itself (joserfc; Authlib has
no DPoP client), against a node that requires server nonces, on both databases.

Spec: RFC 9449 §4 (proofs), §5 (DPoP-bound access tokens, token_type DPoP), §6.1 (``cnf.jkt``
in introspection), §7.1 (the DPoP scheme at a protected resource), §8 and §9 (``use_dpop_nonce``
and ``DPoP-Nonce``), §10 (``dpop_jkt`` binds the code), §11.1 (replayed proofs).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.dbkit import KINDS
from tests.e2e.flows import (
    CodeFlow,
    DPoPKey,
    authorize_url,
    bearer,
    browser,
    discover,
    oauth_client,
)
from tests.e2e.harness import (
    DPOP_CLIENT,
    REDIRECT_URI,
    RS_CLIENT,
    SUBJECT,
    Deployment,
    deployment,
    http_client,
)


@pytest.fixture(scope="module", params=KINDS)
def nonce_node(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, e2e_keys: Path
) -> Iterator[Deployment]:
    """A node with ``dpop_nonce_required = true``."""
    kind = str(request.param)
    with deployment(
        kind,
        tmp_path_factory.mktemp(f"e2e-dpop-{kind}"),
        e2e_keys,
        settings={"dpop_nonce_required": True},
    ) as running:
        yield running


class DPoPClient:
    """A public client holding a DPoP key; answers ``use_dpop_nonce`` once per request."""

    def __init__(self, deployed: Deployment, http: httpx.AsyncClient, key: DPoPKey) -> None:
        self.deployed = deployed
        self.http = http
        self.key = key
        self.nonce: str | None = None
        self.nonce_challenges = 0

    async def send(
        self,
        method: str,
        url: str,
        *,
        form: dict[str, str] | None = None,
        access_token: str | None = None,
    ) -> httpx.Response:
        """Send with a fresh proof; on a nonce challenge retry once with the new nonce."""
        response = await self._send(method, url, form, access_token)
        if _wants_nonce(response):
            self.nonce_challenges += 1
            self.nonce = response.headers["dpop-nonce"]
            response = await self._send(method, url, form, access_token)
        elif "dpop-nonce" in response.headers:
            self.nonce = response.headers["dpop-nonce"]
        return response

    async def _send(
        self, method: str, url: str, form: dict[str, str] | None, access_token: str | None
    ) -> httpx.Response:
        headers = {
            "DPoP": self.key.proof(method, url, access_token=access_token, nonce=self.nonce)
        }
        if access_token is not None:
            headers["Authorization"] = f"DPoP {access_token}"
        return await self.http.request(method, url, data=form, headers=headers)


def _wants_nonce(response: httpx.Response) -> bool:
    if response.status_code == 400:
        return bool(response.json().get("error") == "use_dpop_nonce")
    if response.status_code == 401:
        return 'error="use_dpop_nonce"' in response.headers.get("www-authenticate", "")
    return False


async def front_channel(deployed: Deployment, **extra: str) -> tuple[CodeFlow, str]:
    """Log in and consent for the DPoP client; returns the flow and its code."""
    metadata = await discover(deployed)
    flow = CodeFlow(oauth_client(deployed, DPOP_CLIENT, scope="openid profile offline_access"))
    url = await authorize_url(flow, metadata, "openid profile offline_access", **extra)
    await flow.client.aclose()
    async with http_client(deployed.issuer) as http:
        arrival = await browser(http).authorize(url, redirect_uri=REDIRECT_URI)
    return flow, arrival.params["code"]


def code_form(flow: CodeFlow, code: str) -> dict[str, str]:
    return {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": flow.verifier,
        "client_id": DPOP_CLIENT,
    }


async def bound_tokens(
    deployed: Deployment, client: DPoPClient, **extra: str
) -> dict[str, Any]:
    flow, code = await front_channel(deployed, **extra)
    metadata = await discover(deployed)
    response = await client.send("POST", metadata.token_endpoint, form=code_form(flow, code))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def introspect(deployed: Deployment, token: str) -> dict[str, Any]:
    metadata = await discover(deployed)
    async with oauth_client(deployed, RS_CLIENT) as rs:
        response = await rs.introspect_token(metadata.introspection_endpoint, token=token)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_nonce_round_trip_then_a_dpop_bound_token(nonce_node: Deployment) -> None:
    """DPOP-E2E-01: RFC 9449 §8: the first proof has no nonce: 400 use_dpop_nonce with a
    DPoP-Nonce header; the retry carries it and gets token_type DPoP (§5)."""
    key = DPoPKey()
    async with http_client(nonce_node.issuer) as http:
        client = DPoPClient(nonce_node, http, key)
        token = await bound_tokens(nonce_node, client)
    assert client.nonce_challenges == 1
    assert token["token_type"] == "DPoP"
    assert token["refresh_token"]


async def test_bound_token_shows_cnf_jkt_when_introspected(nonce_node: Deployment) -> None:
    """DPOP-E2E-02: RFC 9449 §6.1: introspection returns cnf.jkt = the key's thumbprint and
    token_type DPoP. The owner is a public client (it may not introspect), so the token is
    requested for the resource server (RFC 8707), which introspects it."""
    key = DPoPKey()
    async with http_client(nonce_node.issuer) as http:
        client = DPoPClient(nonce_node, http, key)
        flow, code = await front_channel(nonce_node, resource=RS_CLIENT)
        metadata = await discover(nonce_node)
        form = code_form(flow, code) | {"resource": RS_CLIENT}
        response = await client.send("POST", metadata.token_endpoint, form=form)
    assert response.status_code == 200, response.text
    seen = await introspect(nonce_node, response.json()["access_token"])
    assert seen["active"] is True
    assert seen["token_type"] == "DPoP"
    assert seen["cnf"] == {"jkt": key.jkt}


async def test_userinfo_with_dpop_and_refusals(nonce_node: Deployment) -> None:
    """DPOP-E2E-03: RFC 9449 §7.1 and §9: UserInfo with the DPoP scheme (proof with ath and
    the nonce) answers; the same token as Bearer is invalid_token (401)."""
    key = DPoPKey()
    metadata = await discover(nonce_node)
    async with http_client(nonce_node.issuer) as http:
        client = DPoPClient(nonce_node, http, key)
        token = await bound_tokens(nonce_node, client)
        answer = await client.send(
            "GET", metadata.userinfo_endpoint, access_token=token["access_token"]
        )
        as_bearer = await http.get(
            metadata.userinfo_endpoint, headers=bearer(token["access_token"])
        )
    assert answer.status_code == 200, answer.text
    assert answer.json()["sub"] == SUBJECT
    assert as_bearer.status_code == 401
    assert 'error="invalid_token"' in as_bearer.headers["www-authenticate"]


async def test_replayed_proof_is_refused_at_the_token_endpoint(nonce_node: Deployment) -> None:
    """DPOP-E2E-04: RFC 9449 §11.1: the exact proof of a successful refresh, sent again with
    the new refresh token, is invalid_dpop_proof (400)."""
    key = DPoPKey()
    metadata = await discover(nonce_node)
    async with http_client(nonce_node.issuer) as http:
        client = DPoPClient(nonce_node, http, key)
        token = await bound_tokens(nonce_node, client)
        proof = key.proof("POST", metadata.token_endpoint, nonce=client.nonce)
        first = await http.post(
            metadata.token_endpoint,
            data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"],
                  "client_id": DPOP_CLIENT},
            headers={"DPoP": proof},
        )
        assert first.status_code == 200, first.text
        replay = await http.post(
            metadata.token_endpoint,
            data={"grant_type": "refresh_token",
                  "refresh_token": first.json()["refresh_token"], "client_id": DPOP_CLIENT},
            headers={"DPoP": proof},
        )
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_dpop_proof"


async def test_replayed_proof_is_refused_at_userinfo(nonce_node: Deployment) -> None:
    """DPOP-E2E-05: RFC 9449 §11.1 at a protected resource: 401 invalid_dpop_proof."""
    key = DPoPKey()
    metadata = await discover(nonce_node)
    async with http_client(nonce_node.issuer) as http:
        client = DPoPClient(nonce_node, http, key)
        token = await bound_tokens(nonce_node, client)
        await client.send("GET", metadata.userinfo_endpoint, access_token=token["access_token"])
        headers = {
            "Authorization": f"DPoP {token['access_token']}",
            "DPoP": key.proof(
                "GET", metadata.userinfo_endpoint, access_token=token["access_token"],
                nonce=client.nonce,
            ),
        }
        first = await http.get(metadata.userinfo_endpoint, headers=headers)
        replay = await http.get(metadata.userinfo_endpoint, headers=headers)
    assert first.status_code == 200, first.text
    assert replay.status_code == 401
    assert 'error="invalid_dpop_proof"' in replay.headers["www-authenticate"]


async def test_refresh_with_another_key_is_invalid_grant(nonce_node: Deployment) -> None:
    """DPOP-E2E-06: RFC 9449 §5: a public client's refresh token is bound to its key."""
    metadata = await discover(nonce_node)
    async with http_client(nonce_node.issuer) as http:
        owner = DPoPClient(nonce_node, http, DPoPKey())
        token = await bound_tokens(nonce_node, owner)
        thief = DPoPClient(nonce_node, http, DPoPKey())
        thief.nonce = owner.nonce
        stolen = await thief.send(
            "POST",
            metadata.token_endpoint,
            form={"grant_type": "refresh_token", "refresh_token": token["refresh_token"],
                  "client_id": DPOP_CLIENT},
        )
    assert stolen.status_code == 400
    assert stolen.json()["error"] == "invalid_grant"


async def test_dpop_jkt_code_without_a_proof_is_refused_without_spending_it(
    nonce_node: Deployment,
) -> None:
    """DPOP-E2E-07: RFC 9449 §10 and spec §3.1 "dpop_bound? pre-check": a code requested
    with dpop_jkt and redeemed without a proof is invalid_dpop_proof, and the code survives:
    the right key then redeems it."""
    key = DPoPKey()
    metadata = await discover(nonce_node)
    async with http_client(nonce_node.issuer) as http:
        flow, code = await front_channel(nonce_node, dpop_jkt=key.jkt)
        bare = await http.post(metadata.token_endpoint, data=code_form(flow, code))
        right = DPoPClient(nonce_node, http, key)
        accepted = await right.send("POST", metadata.token_endpoint, form=code_form(flow, code))
    assert bare.status_code == 400
    assert bare.json()["error"] == "invalid_dpop_proof"
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["token_type"] == "DPoP"


async def test_dpop_jkt_code_with_another_key_is_invalid_grant_and_spent(
    nonce_node: Deployment,
) -> None:
    """DPOP-E2E-08: RFC 9449 §10 and spec §3.1 (take before validation): another key is
    invalid_grant and the code is spent, so the right key is refused afterwards too."""
    key = DPoPKey()
    metadata = await discover(nonce_node)
    async with http_client(nonce_node.issuer) as http:
        flow, code = await front_channel(nonce_node, dpop_jkt=key.jkt)
        other = DPoPClient(nonce_node, http, DPoPKey())
        refused = await other.send("POST", metadata.token_endpoint, form=code_form(flow, code))
        right = DPoPClient(nonce_node, http, key)
        right.nonce = other.nonce
        late = await right.send("POST", metadata.token_endpoint, form=code_form(flow, code))
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"
    assert late.status_code == 400
    assert late.json()["error"] == "invalid_grant"


async def test_client_requiring_dpop_without_a_proof_is_refused(
    nonce_node: Deployment,
) -> None:
    """DPOP-E2E-09: dpop_bound_access_tokens client without a proof: invalid_request."""
    flow, code = await front_channel(nonce_node)
    metadata = await discover(nonce_node)
    async with http_client(nonce_node.issuer) as http:
        response = await http.post(metadata.token_endpoint, data=code_form(flow, code))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
