"""CIMD clients at the authorization, PAR and token endpoints, and in discovery.

draft-ietf-oauth-client-id-metadata-document-01 §3, §4.3 (an unusable document aborts the
request), §5 (``client_id_metadata_document_supported``); RFC 6749 §4.1.2.1 (an untrusted client
is answered directly), §5.2 (``invalid_client``); authward spec/stores.md §3.8 (where errors
surface), §5.2 (same-origin redirect URIs), §6.9 CIMD-18. The document is served by a real HTTP
server on 127.0.0.1 (``allow_loopback``, a test-only setting); real SQL stores on SQLite and
PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from authward.core.client_auth import JWT_BEARER_ASSERTION_TYPE
from authward.core.config import ClientIdMetadataSettings
from authward.core.endpoints import authorize, discovery, par, token
from authward.core.jose import generate_signing_key, sign_jwt
from tests.core.endpoints.authorize_flow import (
    STATE,
    SUBJECT,
    authorize_get,
    redirect_query,
    request_params,
    response,
)
from tests.core.endpoints.kit import (
    AUTHORIZE_URL,
    CODE_VERIFIER,
    ISSUER,
    PAR_URL,
    TOKEN_URL,
    Kit,
    build,
    get,
    post,
)
from tests.core.local_http import LocalServer, Reply, local_server
from tests.dbkit import Db

KEY = generate_signing_key("ES256")


def cimd_settings(**overrides: Any) -> ClientIdMetadataSettings:
    """CIMD on, loopback documents allowed (a test-only setting)."""
    return ClientIdMetadataSettings(**{"enabled": True, "allow_loopback": True, **overrides})


def document(url: str, port: int, **members: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "client_id": url,
        "client_name": "CIMD App",
        "redirect_uris": [f"http://127.0.0.1:{port}/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_method": "none",
    }
    base.update(members)
    return base


def serve_json(server: LocalServer, path: str, body: dict[str, Any],
               cache: str = "max-age=600") -> None:
    server.replies[path] = Reply(
        headers=(("Content-Type", "application/json"), ("Cache-Control", cache)),
        body=json.dumps(body).encode(),
    )


@asynccontextmanager
async def cimd(db: Db, **members: Any) -> AsyncIterator[tuple[Kit, LocalServer, str, str]]:
    """A kit with CIMD on (loopback allowed) and a document server; yields the kit, the server,
    the client_id URL and its redirect URI."""
    async with local_server({}) as server:
        url = f"http://127.0.0.1:{server.port}/client.json"
        serve_json(server, "/client.json", document(url, server.port, **members))
        kit = build(db, client_id_metadata=cimd_settings())
        yield kit, server, url, f"http://127.0.0.1:{server.port}/callback"


def signed_in(kit: Kit, client_id: str) -> tuple[str, str]:
    kit.consent.grant(SUBJECT, client_id, ("openid", "profile"))
    return kit.login.sign_in(SUBJECT, auth_time=kit.clock.now())


def documents_fetched(server: LocalServer) -> int:
    return sum(1 for seen in server.seen if seen.target == "/client.json")


async def test_cimd_client_completes_the_code_flow_with_one_fetch(db: Db) -> None:
    """A public CIMD client (auth ``none`` + PKCE): authorize gives a code, the token endpoint
    redeems it with client_id = the URL; the document is fetched once and then cached."""
    async with cimd(db) as (kit, server, url, redirect_uri):
        cookie = signed_in(kit, url)
        params = request_params(url, redirect_uri=redirect_uri)
        query = redirect_query(await authorize_get(kit, params, cookie=cookie), redirect_uri)
        assert query["state"] == STATE
        form = [("grant_type", "authorization_code"), ("code", query["code"]),
                ("redirect_uri", redirect_uri), ("code_verifier", CODE_VERIFIER),
                ("client_id", url)]
        res = await token.handle(kit.server, post(TOKEN_URL, form))
        assert res.status == 200, res.json
        assert res.json is not None
        assert res.json["token_type"] in ("Bearer", "DPoP")
        assert "access_token" in res.json
        assert "id_token" in res.json
        # A second authorization within the freshness window: no new fetch.
        again = await authorize_get(kit, params, cookie=cookie)
        assert "code" in redirect_query(again, redirect_uri)
    assert documents_fetched(server) == 1
    assert kit.events.names().count("client_metadata.fetched") == 1


async def test_unusable_document_is_a_direct_invalid_client_at_authorize(db: Db) -> None:
    """An unusable document aborts the request without redirecting (the redirect URI cannot be
    trusted): 400 ``invalid_client`` naming the reason; the event carries it too."""
    async with cimd(db) as (kit, server, url, redirect_uri):
        serve_json(server, "/client.json",
                   document(url, server.port, token_endpoint_auth_method="client_secret_post"))
        res = response(await authorize_get(kit, request_params(url, redirect_uri=redirect_uri)))
    assert res.status == 400
    assert res.location is None
    assert res.json is not None
    assert res.json["error"] == "invalid_client"
    assert res.json["error_description"] == (
        "the client metadata document cannot be used: invalid_document:symmetric_auth_method"
    )
    refused = [e for e in kit.events.events if e.name == "client_metadata.refused"]
    assert refused[0].data["reason"] == "symmetric_auth_method"
    assert await db.rows(db.tables.client_id_metadata) == []


async def test_missing_document_is_a_direct_invalid_client_at_authorize(db: Db) -> None:
    async with cimd(db) as (kit, _server, url, redirect_uri):
        bad = url.replace("/client.json", "/missing.json")
        res = response(await authorize_get(kit, request_params(bad, redirect_uri=redirect_uri)))
    assert res.status == 400
    assert res.json is not None
    assert res.json["error"] == "invalid_client"
    assert str(res.json["error_description"]).endswith("fetch:status_404")


async def test_redirect_uri_outside_the_document_is_refused_directly(db: Db) -> None:
    async with cimd(db) as (kit, server, url, _redirect_uri):
        other = f"http://127.0.0.1:{server.port}/elsewhere"
        res = response(await authorize_get(kit, request_params(url, redirect_uri=other)))
    assert res.status == 400
    assert res.location is None
    assert res.json is not None
    assert res.json["error"] == "invalid_request"


async def test_cross_origin_redirect_uri_is_refused_when_same_origin_is_required(db: Db) -> None:
    """Spec §5.2: with require_same_origin_redirect_uri (default) a redirect URI on another
    origin (here another port: the effective port counts) is refused directly even though the
    document lists it; with the setting off it is used."""
    async with local_server({}) as server:
        url = f"http://127.0.0.1:{server.port}/client.json"
        cross = f"http://127.0.0.1:{server.port + 1}/callback"
        serve_json(server, "/client.json", document(url, server.port, redirect_uris=[cross]))
        strict = build(db, client_id_metadata=cimd_settings())
        res = response(await authorize_get(strict, request_params(url, redirect_uri=cross)))
        assert res.status == 400
        assert res.location is None
        loose = build(db, client_id_metadata=cimd_settings(
            require_same_origin_redirect_uri=False
        ))
        cookie = signed_in(loose, url)
        query = redirect_query(
            await authorize_get(loose, request_params(url, redirect_uri=cross), cookie=cookie),
            cross,
        )
    assert "code" in query


async def test_feature_off_treats_the_url_as_an_unknown_client(db: Db) -> None:
    async with local_server({}) as server:
        url = f"http://127.0.0.1:{server.port}/client.json"
        serve_json(server, "/client.json", document(url, server.port))
        kit = build(db)
        res = response(await authorize_get(kit, request_params(url)))
    assert res.status == 400
    assert res.json is not None
    assert res.json["error"] == "invalid_client"
    assert res.json["error_description"] == "unknown client"
    assert server.seen == []


async def test_cimd_client_pushes_a_request_and_redeems_it(db: Db) -> None:
    """PAR with a public CIMD client (client_id only), then /authorize with the request_uri."""
    async with cimd(db) as (kit, server, url, redirect_uri):
        pushed = await par.handle(
            kit.server, post(PAR_URL, request_params(url, redirect_uri=redirect_uri))
        )
        assert pushed.status == 201, pushed.json
        assert pushed.json is not None
        cookie = signed_in(kit, url)
        res = await authorize.handle(kit.server, get(
            AUTHORIZE_URL,
            [("client_id", url), ("request_uri", str(pushed.json["request_uri"]))],
            headers=(cookie,),
        ))
        assert "code" in redirect_query(res, redirect_uri)
    assert documents_fetched(server) == 1


async def test_unusable_document_is_invalid_client_401_at_par_and_token(db: Db) -> None:
    """At PAR and the token endpoint a refused document is ``invalid_client`` 401 with a
    challenge; nothing is stored."""
    async with cimd(db) as (kit, server, url, redirect_uri):
        serve_json(server, "/client.json",
                   document(url, server.port, client_id="https://other.example/c.json"))
        pushed = await par.handle(
            kit.server, post(PAR_URL, request_params(url, redirect_uri=redirect_uri))
        )
        form = [("grant_type", "authorization_code"), ("code", "x" * 43),
                ("redirect_uri", redirect_uri), ("code_verifier", CODE_VERIFIER),
                ("client_id", url)]
        redeemed = await token.handle(kit.server, post(TOKEN_URL, form))
    for res in (pushed, redeemed):
        assert res.status == 401
        assert res.json is not None
        assert res.json["error"] == "invalid_client"
        assert str(res.json["error_description"]).endswith("client_id_mismatch")
        challenge = res.headers.get("www-authenticate") or ""
        assert challenge.startswith('Basic realm="authward", error="invalid_client"')
        assert challenge.endswith('client_id_mismatch"')
    assert await db.rows(db.tables.pushed_authorization_requests) == []
    assert await db.rows(db.tables.client_id_metadata) == []


async def test_private_key_jwt_cimd_client_authenticates_with_its_document_keys(db: Db) -> None:
    """A confidential CIMD client: private_key_jwt with the document's public jwks. A secret
    is never accepted for it."""
    async with cimd(db, token_endpoint_auth_method="private_key_jwt",
                    jwks={"keys": [KEY.public_jwk()]}) as (kit, server, url, redirect_uri):
        now = int(kit.clock.now())
        claims = {"iss": url, "sub": url, "aud": ISSUER, "iat": now, "exp": now + 60,
                  "jti": "cimd-jti-1"}
        form = [("client_assertion_type", JWT_BEARER_ASSERTION_TYPE),
                ("client_assertion", sign_jwt(KEY, claims)),
                *request_params(url, redirect_uri=redirect_uri)]
        pushed = await par.handle(kit.server, post(PAR_URL, form))
        assert pushed.status == 201, pushed.json
        with_secret = await par.handle(kit.server, post(
            PAR_URL,
            [("client_secret", "guess"), *request_params(url, redirect_uri=redirect_uri)],
        ))
        assert with_secret.status in (400, 401)
        assert with_secret.json is not None
        assert with_secret.json["error"] == "invalid_client"
    assert documents_fetched(server) == 1


async def test_discovery_advertises_cimd_only_when_enabled(db: Db) -> None:
    """CIMD-18."""
    on = build(db, client_id_metadata=cimd_settings())
    off = build(db)
    assert discovery.metadata(on.server).get("client_id_metadata_document_supported") is True
    assert "client_id_metadata_document_supported" not in discovery.metadata(off.server)
