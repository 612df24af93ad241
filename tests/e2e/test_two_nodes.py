"""End to end over HTTP: two ``authward serve`` processes sharing one PostgreSQL database (same
table prefix, key file and config), as behind a load balancer.

Spec: authward issue 4 ("two processes sharing PostgreSQL"); RFC 9126 §4 (a request_uri is
single use wherever it is redeemed); RFC 6749 §4.1.2 and §10.5 (a code is single use; reuse
revokes what it issued); RFC 9449 §11.1 (a proof's jti is single use across the deployment).

Both nodes serve the same issuer (node A's origin). A request "sent to node B" opens its TCP
connection to node B's port while keeping the issuer's ``Host`` header, exactly what a load
balancer in front of the two does; URLs the server builds (and DPoP ``htu``) stay the issuer's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.flows import (
    CodeFlow,
    DPoPKey,
    authorize_url,
    browser,
    discover,
    oauth_client,
)
from tests.e2e.harness import (
    HTTP_TIMEOUT,
    REDIRECT_URI,
    WEB_CLIENT,
    WEB_SECRET,
    Deployment,
    ServerProcess,
    basic_auth,
    deployment,
)


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, e2e_keys: Path
) -> Iterator[Deployment]:
    """Two nodes on one PostgreSQL (skipped when PostgreSQL is unreachable, failed in CI)."""
    with deployment(
        "postgresql", tmp_path_factory.mktemp("e2e-cluster"), e2e_keys, nodes=2
    ) as running:
        yield running


class PinnedTransport(httpx.AsyncBaseTransport):
    """Sends every request to one node's port, keeping the request's Host header."""

    def __init__(self, node: ServerProcess) -> None:
        self._node = node
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_with(host="127.0.0.1", port=self._node.port)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def via(cluster: Deployment, index: int) -> httpx.AsyncClient:
    """A client whose every connection goes to node ``index`` (URLs stay the issuer's)."""
    return httpx.AsyncClient(
        base_url=cluster.issuer,
        transport=PinnedTransport(cluster.nodes[index]),
        timeout=HTTP_TIMEOUT,
    )


def web_auth() -> dict[str, str]:
    return {"Authorization": basic_auth(WEB_CLIENT, WEB_SECRET)}


async def test_nodes_are_distinct_processes(cluster: Deployment) -> None:
    """NODE-E2E-00: two live processes, on two ports, serving the same issuer."""
    a, b = cluster.nodes
    assert a.process is not None
    assert b.process is not None
    assert a.process.pid != b.process.pid
    assert a.port != b.port
    for index in (0, 1):
        async with via(cluster, index) as http:
            doc = (await http.get("/.well-known/openid-configuration")).json()
        assert doc["issuer"] == cluster.issuer


async def test_request_uri_pushed_to_a_is_redeemed_at_b(cluster: Deployment) -> None:
    """NODE-E2E-01: PAR at node A; login, consent, code and token all at node B."""
    metadata = await discover(cluster)
    flow = CodeFlow(oauth_client(cluster, WEB_CLIENT, scope="openid"))
    url = await authorize_url(flow, metadata, "openid")
    await flow.client.aclose()
    async with via(cluster, 0) as node_a:
        pushed = await node_a.post(
            metadata.pushed_authorization_request_endpoint,
            data=dict(httpx.URL(url).params),
            headers=web_auth(),
        )
    assert pushed.status_code == 201, pushed.text
    request_uri = pushed.json()["request_uri"]
    front = f"{metadata.authorization_endpoint}?" + str(
        httpx.QueryParams({"client_id": WEB_CLIENT, "request_uri": request_uri})
    )
    async with via(cluster, 1) as node_b:
        arrival = await browser(node_b).authorize(front, redirect_uri=REDIRECT_URI)
        assert arrival.params["state"] == flow.state
        token = await node_b.post(
            metadata.token_endpoint,
            data={
                "grant_type": "authorization_code",
                "code": arrival.params["code"],
                "redirect_uri": REDIRECT_URI,
                "code_verifier": flow.verifier,
            },
            headers=web_auth(),
        )
    async with via(cluster, 0) as node_a:
        again = await node_a.get(front)
    assert token.status_code == 200, token.text
    # Taken at B, the request_uri is gone at A too (RFC 9126 §4: single use), answered
    # directly since the stored request can no longer vouch for a redirect URI.
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_request_uri"


async def test_code_redeemed_at_a_is_refused_at_b(cluster: Deployment) -> None:
    """NODE-E2E-02: code issued and redeemed at A; the second redemption at B is
    invalid_grant and revokes the refresh token A issued (seen at B and at A)."""
    metadata = await discover(cluster)
    flow = CodeFlow(oauth_client(cluster, WEB_CLIENT, scope="openid offline_access"))
    url = await authorize_url(flow, metadata, "openid offline_access")
    await flow.client.aclose()
    form = {
        "grant_type": "authorization_code",
        "redirect_uri": REDIRECT_URI,
        "code_verifier": flow.verifier,
    }
    async with via(cluster, 0) as node_a, via(cluster, 1) as node_b:
        arrival = await browser(node_a).authorize(url, redirect_uri=REDIRECT_URI)
        form["code"] = arrival.params["code"]
        first = await node_a.post(metadata.token_endpoint, data=form, headers=web_auth())
        second = await node_b.post(metadata.token_endpoint, data=form, headers=web_auth())
        assert first.status_code == 200, first.text
        refresh = {"grant_type": "refresh_token", "refresh_token": first.json()["refresh_token"]}
        at_a = await node_a.post(metadata.token_endpoint, data=refresh, headers=web_auth())
    assert second.status_code == 400
    assert second.json()["error"] == "invalid_grant"
    assert at_a.status_code == 400
    assert at_a.json()["error"] == "invalid_grant"


async def test_dpop_proof_used_at_a_is_refused_at_b(cluster: Deployment) -> None:
    """NODE-E2E-03: RFC 9449 §11.1: a proof accepted at A (DPoP-bound client_credentials
    token) is invalid_dpop_proof when replayed at B."""
    metadata = await discover(cluster)
    key = DPoPKey()
    proof = key.proof("POST", metadata.token_endpoint)
    form = {"grant_type": "client_credentials"}
    async with via(cluster, 0) as node_a, via(cluster, 1) as node_b:
        first = await node_a.post(
            metadata.token_endpoint, data=form, headers={**web_auth(), "DPoP": proof}
        )
        replay = await node_b.post(
            metadata.token_endpoint, data=form, headers={**web_auth(), "DPoP": proof}
        )
    assert first.status_code == 200, first.text
    assert first.json()["token_type"] == "DPoP"
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_dpop_proof"


async def test_refresh_rotated_at_a_then_reused_at_b_revokes_the_family(
    cluster: Deployment,
) -> None:
    """NODE-E2E-04: rotate 1 -> 2 at A, 2 -> 3 at B; presenting 1 at B is reuse, and 3 is
    then refused at A."""
    metadata = await discover(cluster)
    flow = CodeFlow(oauth_client(cluster, WEB_CLIENT, scope="openid offline_access"))
    url = await authorize_url(flow, metadata, "openid offline_access")
    await flow.client.aclose()
    async with via(cluster, 0) as node_a, via(cluster, 1) as node_b:
        arrival = await browser(node_a).authorize(url, redirect_uri=REDIRECT_URI)
        issued = await node_a.post(
            metadata.token_endpoint,
            data={"grant_type": "authorization_code", "code": arrival.params["code"],
                  "redirect_uri": REDIRECT_URI, "code_verifier": flow.verifier},
            headers=web_auth(),
        )
        one = issued.json()["refresh_token"]

        async def rotate(http: httpx.AsyncClient, token: str) -> httpx.Response:
            return await http.post(
                metadata.token_endpoint,
                data={"grant_type": "refresh_token", "refresh_token": token},
                headers=web_auth(),
            )

        two = (await rotate(node_a, one)).json()["refresh_token"]
        three = (await rotate(node_b, two)).json()["refresh_token"]
        reuse = await rotate(node_b, one)
        after = await rotate(node_a, three)
    assert reuse.status_code == 400
    assert reuse.json()["error"] == "invalid_grant"
    assert after.status_code == 400
    assert after.json()["error"] == "invalid_grant"
