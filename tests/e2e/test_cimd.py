"""End to end over HTTP: a Client ID Metadata Document client against ``authward serve``.

Spec: draft-ietf-oauth-client-id-metadata-document-01 §3 (a URL as ``client_id``), §4 (the
document is fetched, validated and cached), §4.3 (an unusable document aborts the request), §5
(``client_id_metadata_document_supported``), §6.5 (SSRF); authward spec/stores.md §3.8, §5.1,
§5.2. The document server runs in the test process on 127.0.0.1; the deployment admits loopback
documents only because ``client_id_metadata.allow_loopback`` (a test and development setting) is
on. Authlib drives the client with PKCE S256; the scripted browser logs in and consents. Both
engines.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.core.local_http import LocalServer, Reply, local_server
from tests.dbkit import KINDS
from tests.e2e.flows import CodeFlow, discover, run_code_flow, validate_id_token
from tests.e2e.harness import SUBJECT, Deployment, deployment, http_client

DOCUMENT_PATH = "/oauth/client.json"
FRESH_SECONDS = 3_600


@pytest.fixture(scope="module", params=KINDS)
def cimd_deployed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, e2e_keys: Path
) -> Any:
    """One node with CIMD on, loopback documents allowed, ``localhost`` on the block list."""
    kind = str(request.param)
    settings: dict[str, object] = {
        "client_id_metadata": {
            "enabled": True,
            "allow_loopback": True,
            "blocked_hosts": ["localhost"],
            "cache_ttl_bounds": [60, 86_400],
        }
    }
    with deployment(
        kind, tmp_path_factory.mktemp(f"e2e-cimd-{kind}"), e2e_keys, settings=settings
    ) as running:
        yield running


@asynccontextmanager
async def document_server(**members: Any) -> AsyncIterator[tuple[LocalServer, str, str]]:
    """Serve a public-client document on 127.0.0.1 with ``max-age``; yields the server, the
    client_id URL and the redirect URI (same origin as the document)."""
    async with local_server({}) as server:
        base = f"http://127.0.0.1:{server.port}"
        client_id = base + DOCUMENT_PATH
        redirect_uri = base + "/callback"
        body = {
            "client_id": client_id,
            "client_name": "E2E MCP client",
            "redirect_uris": [redirect_uri],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
            "scope": "openid profile email offline_access",
            **members,
        }
        server.replies[DOCUMENT_PATH] = Reply(
            headers=(
                ("Content-Type", "application/json"),
                ("Cache-Control", f"public, max-age={FRESH_SECONDS}"),
            ),
            body=json.dumps(body).encode(),
        )
        yield server, client_id, redirect_uri


def document_fetches(server: LocalServer) -> int:
    return sum(1 for seen in server.seen if seen.target == DOCUMENT_PATH)


async def cimd_code_flow(
    deployed: Deployment, client_id: str, redirect_uri: str, *, scope: str
) -> CodeFlow:
    """Authlib (public client, PKCE S256) with the URL as client_id; browser login + consent."""
    return await run_code_flow(deployed, client_id, scope=scope, redirect_uri=redirect_uri)


async def test_discovery_advertises_cimd(cimd_deployed: Deployment) -> None:
    metadata = await discover(cimd_deployed)
    assert metadata.raw["client_id_metadata_document_supported"] is True


async def test_cimd_client_completes_the_code_flow_and_the_document_is_cached(
    cimd_deployed: Deployment,
) -> None:
    """Issue "Must show": a CIMD client served on 127.0.0.1 completes the code flow with PKCE;
    the document is fetched once and not again by a second flow within its freshness window;
    the cache row's expiry follows the document's max-age."""
    async with document_server() as (server, client_id, redirect_uri):
        first = await cimd_code_flow(cimd_deployed, client_id, redirect_uri,
                                     scope="openid profile offline_access")
        assert first.token is not None
        assert first.token["token_type"] == "Bearer"
        assert first.token["refresh_token"]
        claims = await validate_id_token(
            cimd_deployed, first.token["id_token"], client_id=client_id, nonce=first.nonce,
            access_token=first.token["access_token"],
        )
        assert claims["sub"] == SUBJECT
        assert claims["aud"] in (client_id, [client_id])
        assert document_fetches(server) == 1

        second = await cimd_code_flow(cimd_deployed, client_id, redirect_uri, scope="openid")
        assert second.token is not None
        assert second.token["access_token"]
        assert document_fetches(server) == 1

        # Refreshing authenticates the client again (client_id only): still no fetch.
        async with http_client(cimd_deployed.issuer) as http:
            refreshed = await http.post("/token", data={
                "grant_type": "refresh_token",
                "refresh_token": first.token["refresh_token"],
                "client_id": client_id,
            })
        assert refreshed.status_code == 200, refreshed.text
        assert document_fetches(server) == 1
    rows = await cimd_deployed.database.rows("client_id_metadata")
    assert [row["url"] for row in rows] == [client_id]
    row = rows[0]
    lifetime = (row["expires_at"] - row["inserted_at"]).total_seconds()
    assert FRESH_SECONDS - 5 <= lifetime <= FRESH_SECONDS + 5
    assert row["metadata"]["client_id"] == client_id


async def authorize_error(deployed: Deployment, client_id: str, redirect_uri: str) -> Any:
    async with http_client(deployed.issuer) as http:
        response = await http.get("/authorize", params={
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": "openid",
            "state": "s",
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256",
        }, headers={"Accept": "application/json"})
    assert response.status_code == 400, response.text
    assert "location" not in response.headers
    return response.json()


async def test_blocked_host_is_refused_with_no_request(cimd_deployed: Deployment) -> None:
    """A document behind a blocked host (``localhost``, though it is this very server): direct
    ``invalid_client`` naming ``blocked_host``; the document server saw nothing."""
    async with document_server() as (server, _client_id, _redirect_uri):
        client_id = f"http://localhost:{server.port}{DOCUMENT_PATH}"
        body = await authorize_error(
            cimd_deployed, client_id, f"http://localhost:{server.port}/callback"
        )
        assert server.seen == []
    assert body == {
        "error": "invalid_client",
        "error_description": "the client metadata document cannot be used: blocked_host",
    }


@pytest.mark.parametrize(
    "host",
    ["10.255.255.1", "192.168.0.1", "169.254.169.254", "100.64.0.1", "[::ffff:10.0.0.1]",
     "0.0.0.0"],  # noqa: S104 - an address under test, never bound
)
async def test_non_loopback_special_use_address_is_refused(
    cimd_deployed: Deployment, host: str
) -> None:
    """allow_loopback admits loopback only: a document on a private, link-local, CGNAT,
    IPv4-mapped or unspecified address is refused before any connection (``blocked_ip``)."""
    body = await authorize_error(
        cimd_deployed, f"https://{host}/client.json", f"https://{host}/callback"
    )
    assert body == {
        "error": "invalid_client",
        "error_description": "the client metadata document cannot be used: fetch:blocked_ip",
    }


async def test_invalid_document_is_refused_and_not_cached(cimd_deployed: Deployment) -> None:
    """A document naming another client_id is refused at /authorize and at the token endpoint
    (401 invalid_client). It is never cached in the table; the node remembers the refusal for
    ``failure_cache_seconds`` (30), so the second request fetches nothing."""
    async with document_server(client_id="https://impostor.example/client.json") as (
        server, client_id, redirect_uri,
    ):
        body = await authorize_error(cimd_deployed, client_id, redirect_uri)
        assert body["error"] == "invalid_client"
        assert body["error_description"].endswith("invalid_document:client_id_mismatch")
        async with http_client(cimd_deployed.issuer) as http:
            token = await http.post("/token", data={
                "grant_type": "authorization_code", "code": "x" * 43,
                "redirect_uri": redirect_uri, "code_verifier": "v" * 43,
                "client_id": client_id,
            })
        assert token.status_code == 401
        assert token.json()["error"] == "invalid_client"
        assert token.headers["www-authenticate"].startswith("Basic")
        assert document_fetches(server) == 1
    urls = [row["url"] for row in await cimd_deployed.database.rows("client_id_metadata")]
    assert client_id not in urls
