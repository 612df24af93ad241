"""The resource-server helper: a tiny Starlette API protected by the middleware and the dependency.

Requests go through httpx's ASGI transport (no network server). The DPoP replay cache is the real
SQL replay store on both engines (the ``db`` fixture).
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from authward.asgi.resource_server import STATE_KEY, AccessTokenDependency, RequireAccessToken
from authward.core.dpop import DPoPVerifier, access_token_hash
from authward.core.jose import JsonWebKey, JwsAlgorithm, generate_signing_key
from authward.core.keys import KeySet
from authward.core.resource import ResourceVerifier, keys_from_jwks
from authward.core.tokens import VerifiedAccessToken, mint_access_token
from authward.stores.sql.dpop_nonces import SqlDpopNonceStore
from authward.stores.sql.replay import SqlReplayStore
from tests.core.dpop_proofs import omit, proof
from tests.dbkit import T0, Db

ISSUER = "https://as.example"
API = "https://api.example"
ALGS: tuple[JwsAlgorithm, ...] = ("ES256",)
DPOP_CHALLENGE = 'DPoP algs="ES256"'


@pytest.fixture(scope="module")
def keyset() -> KeySet:
    return KeySet.generate(("ES256",), now=T0 - 60)


@pytest.fixture(scope="module")
def dpop_key() -> JsonWebKey:
    return generate_signing_key("ES256")


def _token(keyset: KeySet, *, scopes: tuple[str, ...] = ("read",),
           dpop_jkt: str | None = None) -> str:
    return mint_access_token(
        keyset.signing_key("ES256"), issuer=ISSUER, subject="alice", client_id="web-app",
        audience=API, scopes=scopes, lifetime=300, now=T0, dpop_jkt=dpop_jkt,
    ).token


def _verifier(db: Db, keyset: KeySet, *, nonce_required: bool = False) -> ResourceVerifier:
    public = keys_from_jwks(keyset.public_jwks(now=T0, max_token_lifetime=900))

    async def keys() -> Sequence[JsonWebKey]:
        return public

    dpop = DPoPVerifier(
        replay_store=SqlReplayStore(db.engine, clock=db.clock),
        nonce_store=SqlDpopNonceStore(db.engine, clock=db.clock),
        nonce_required=nonce_required,
        clock=db.clock,
        algorithms=ALGS,
    )
    return ResourceVerifier(issuer=ISSUER, audience=API, keys=keys, clock=db.clock, dpop=dpop)


def _describe(token: VerifiedAccessToken) -> dict[str, object]:
    return {"sub": token.subject, "scopes": list(token.scopes), "jkt": token.dpop_jkt}


def middleware_app(verifier: ResourceVerifier) -> Starlette:
    async def things(request: Request) -> JSONResponse:
        return JSONResponse(_describe(request.scope["state"][STATE_KEY]))

    return Starlette(
        routes=[Route("/things", things, methods=["GET", "POST"])],
        middleware=[Middleware(RequireAccessToken, verifier=verifier, required_scopes=("read",))],
    )


def dependency_app(verifier: ResourceVerifier) -> Starlette:
    require_write = AccessTokenDependency(verifier, ("write",))

    async def things(request: Request) -> JSONResponse:
        return JSONResponse(_describe(await require_write(request)))

    return Starlette(routes=[Route("/things", things, methods=["GET", "POST"])])


def _client(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=API)


def _dpop_headers(
    db: Db, key: JsonWebKey, token: str, *, method: str = "GET", nonce: str | None = None
) -> dict[str, str]:
    presented = proof(
        key, htm=method, htu=API + "/things", iat=db.clock.now(), ath=access_token_hash(token),
        nonce=nonce if nonce is not None else omit(),
    )
    return {"Authorization": f"DPoP {token}", "DPoP": presented}


async def test_middleware_passes_a_valid_bearer_token_to_the_app(
    db: Db, keyset: KeySet
) -> None:
    async with _client(middleware_app(_verifier(db, keyset))) as client:
        response = await client.get(
            "/things", headers={"Authorization": f"Bearer {_token(keyset)}"}
        )
    assert response.status_code == 200
    assert response.json() == {"sub": "alice", "scopes": ["read"], "jkt": None}


async def test_middleware_answers_401_challenges(db: Db, keyset: KeySet) -> None:
    """RFC 6750 §3.1: bare challenges without credentials, invalid_token for a bad token."""
    async with _client(middleware_app(_verifier(db, keyset))) as client:
        bare = await client.get("/things")
        bad = await client.get("/things", headers={"Authorization": "Bearer a.b.c"})
        query = await client.get("/things", params={"access_token": _token(keyset)})
    assert bare.status_code == 401
    assert bare.headers.get_list("www-authenticate") == ["Bearer", DPOP_CHALLENGE]
    assert bare.headers["cache-control"] == "no-store"
    assert bad.status_code == 401
    challenges = bad.headers.get_list("www-authenticate")
    assert challenges[0].startswith('Bearer error="invalid_token"')
    assert challenges[1] == DPOP_CHALLENGE
    assert bad.json()["error"] == "invalid_token"
    assert query.status_code == 400
    assert query.headers.get_list("www-authenticate")[0].startswith(
        'Bearer error="invalid_request"'
    )


async def test_middleware_answers_403_insufficient_scope(db: Db, keyset: KeySet) -> None:
    async with _client(middleware_app(_verifier(db, keyset))) as client:
        response = await client.get(
            "/things", headers={"Authorization": f"Bearer {_token(keyset, scopes=('other',))}"}
        )
    assert response.status_code == 403
    challenge = response.headers.get_list("www-authenticate")[0]
    assert challenge.startswith('Bearer error="insufficient_scope"')
    assert challenge.endswith('scope="read"')


async def test_middleware_accepts_dpop_with_ath_once(
    db: Db, keyset: KeySet, dpop_key: JsonWebKey
) -> None:
    """RFC 9449 §7.1 (ath over the presented token), §11.1 (replay)."""
    token = _token(keyset, dpop_jkt=dpop_key.kid)
    headers = _dpop_headers(db, dpop_key, token, method="POST")
    async with _client(middleware_app(_verifier(db, keyset))) as client:
        first = await client.post("/things", headers=headers)
        replay = await client.post("/things", headers=headers)
        as_bearer = await client.get("/things", headers={"Authorization": f"Bearer {token}"})
        wrong_ath = await client.get(
            "/things",
            headers={**_dpop_headers(db, dpop_key, _token(keyset)),
                     "Authorization": f"DPoP {token}"},
        )
    assert first.status_code == 200
    assert first.json()["jkt"] == dpop_key.kid
    assert replay.status_code == 401
    assert replay.headers.get_list("www-authenticate")[0].startswith(
        'DPoP error="invalid_dpop_proof"'
    )
    assert as_bearer.status_code == 401
    assert as_bearer.headers.get_list("www-authenticate")[0].startswith(
        'Bearer error="invalid_token"'
    )
    assert wrong_ath.status_code == 401
    assert wrong_ath.json()["error"] == "invalid_dpop_proof"


async def test_middleware_sends_the_dpop_nonce_challenge(
    db: Db, keyset: KeySet, dpop_key: JsonWebKey
) -> None:
    """RFC 9449 §9: 401 use_dpop_nonce with DPoP-Nonce, then the retry passes."""
    token = _token(keyset, dpop_jkt=dpop_key.kid)
    async with _client(middleware_app(_verifier(db, keyset, nonce_required=True))) as client:
        first = await client.get("/things", headers=_dpop_headers(db, dpop_key, token))
        nonce = first.headers.get("dpop-nonce")
        assert nonce
        retry = await client.get(
            "/things", headers=_dpop_headers(db, dpop_key, token, nonce=nonce)
        )
    assert first.status_code == 401
    assert first.headers.get_list("www-authenticate")[0].startswith(
        'DPoP error="use_dpop_nonce"'
    )
    assert retry.status_code == 200


async def test_dependency_returns_the_token_or_raises_challenges(
    db: Db, keyset: KeySet, dpop_key: JsonWebKey
) -> None:
    verifier = _verifier(db, keyset)
    writer = _token(keyset, scopes=("read", "write"))
    bound = _token(keyset, scopes=("write",), dpop_jkt=dpop_key.kid)
    async with _client(dependency_app(verifier)) as client:
        ok = await client.get("/things", headers={"Authorization": f"Bearer {writer}"})
        dpop = await client.get("/things", headers=_dpop_headers(db, dpop_key, bound))
        bare = await client.get("/things")
        reader = await client.get(
            "/things", headers={"Authorization": f"Bearer {_token(keyset)}"}
        )
    assert ok.status_code == 200
    assert ok.json() == {"sub": "alice", "scopes": ["read", "write"], "jkt": None}
    assert dpop.status_code == 200
    assert dpop.json()["jkt"] == dpop_key.kid
    assert bare.status_code == 401
    assert bare.headers["www-authenticate"] == f"Bearer, {DPOP_CHALLENGE}"
    assert reader.status_code == 403
    assert reader.headers["www-authenticate"].startswith('Bearer error="insufficient_scope"')
    assert 'scope="write"' in reader.headers["www-authenticate"]


async def test_middleware_closes_websockets(
    db: Db, keyset: KeySet
) -> None:
    """Websocket connections are not verified by this helper, so they are refused."""
    sent: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError("the app must not be reached")

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(message)

    middleware = RequireAccessToken(app, _verifier(db, keyset))
    await middleware({"type": "websocket", "path": "/ws", "headers": []}, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1008}]
