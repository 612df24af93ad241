"""The ASGI app: routing, mounting, translation limits and the one server_error boundary.

Spec: RFC 8414 §3, OIDC Discovery §4 (both well-knowns); RFC 7517 §5; RFC 9110 §15.5.6 (405 +
Allow), §15.5.14 (413); RFC 6749 §5.2 (JSON errors); ASGI root_path (mounting).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from authward.asgi import EndpointRoute, create_app, endpoint_routes
from authward.asgi.app import AsyncClosable, AsyncDisposable, close_resources
from authward.core.http import Request, Response, json_response
from authward.core.server import AuthorizationServer
from authward.stores.sql.engine import create_engine
from tests.core.endpoints import kit
from tests.dbkit import Db


def client_for(app: Any, base_url: str = kit.ISSUER) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


async def echo(server: AuthorizationServer, request: Request) -> Response:
    """A test-only handler: what the core saw."""
    return json_response(
        {
            "method": request.method,
            "url": request.url,
            "query": [list(pair) for pair in request.query],
            "form": [list(pair) for pair in request.form],
        }
    )


async def explode(server: AuthorizationServer, request: Request) -> Response:
    """A test-only handler failing with a message that carries a request secret."""
    raise RuntimeError(f"boom: {request.form.get('client_secret')}")


def app_with_test_routes(server: AuthorizationServer, **options: Any) -> Starlette:
    """The seam: ``endpoints=`` takes the default list plus test-only handlers."""
    return create_app(
        server,
        endpoints=[
            *endpoint_routes(server),
            EndpointRoute("/echo", ("GET", "POST"), echo),
            EndpointRoute("/explode", ("POST",), explode),
        ],
        **options,
    )


@pytest.mark.parametrize(
    "path", ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"]
)
async def test_discovery_is_served_at_both_well_known_uris(db: Db, path: str) -> None:
    """RFC 8414 §3 and OIDC Discovery §4: the same document at both locations."""
    k = kit.build(db)
    async with client_for(create_app(k.server)) as client:
        response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"].startswith("public")
    body = response.json()
    assert body["issuer"] == kit.ISSUER
    assert body["jwks_uri"] == kit.ISSUER + "/jwks.json"


async def test_jwks_is_served_with_public_keys(db: Db) -> None:
    """RFC 7517 §5, §8.5.1."""
    k = kit.build(db)
    async with client_for(create_app(k.server)) as client:
        response = await client.get("/jwks.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/jwk-set+json"
    keys = response.json()["keys"]
    assert {key["alg"] for key in keys} == {"RS256", "ES256"}
    assert all("d" not in key for key in keys)


async def test_mounted_app_advertises_urls_under_the_mount(db: Db) -> None:
    """A host mounts the app at /auth with issuer https://testserver/auth: URLs follow."""
    k = kit.build(db, issuer="https://testserver/auth")
    parent = Starlette(routes=[Mount("/auth", app=app_with_test_routes(k.server))])
    async with client_for(parent, "https://testserver") as client:
        metadata = (await client.get("/auth/.well-known/openid-configuration")).json()
        seen = (await client.get("/auth/echo?x=1")).json()
        jwks = await client.get("/auth/jwks.json")
        outside = await client.get("/.well-known/openid-configuration")
    assert metadata["issuer"] == "https://testserver/auth"
    assert metadata["authorization_endpoint"] == "https://testserver/auth/authorize"
    assert metadata["token_endpoint"] == "https://testserver/auth/token"
    assert metadata["jwks_uri"] == "https://testserver/auth/jwks.json"
    assert seen["url"] == "https://testserver/auth/echo?x=1"
    assert jwks.status_code == 200
    assert outside.status_code == 404


async def test_root_path_from_the_server_is_honoured(db: Db) -> None:
    """ASGI root_path (e.g. uvicorn --root-path) is part of the URL core sees."""
    k = kit.build(db)
    transport = httpx.ASGITransport(app=app_with_test_routes(k.server), root_path="/auth")
    async with httpx.AsyncClient(transport=transport, base_url=kit.ISSUER) as client:
        seen = (await client.get("/echo?a=1")).json()
    assert seen["url"] == kit.ISSUER + "/auth/echo?a=1"


async def test_wrong_method_is_405_with_allow_and_json(db: Db) -> None:
    """RFC 9110 §15.5.6: 405 carries Allow; the body is an OAuth JSON error."""
    k = kit.build(db)
    async with client_for(create_app(k.server)) as client:
        response = await client.post("/.well-known/openid-configuration", data={"a": "b"})
        missing = await client.get("/no-such-endpoint")
    assert response.status_code == 405
    assert set(response.headers["allow"].replace(" ", "").split(",")) == {"GET", "HEAD"}
    assert response.json()["error"] == "invalid_request"
    assert missing.status_code == 404
    assert missing.json()["error"] == "invalid_request"


async def test_a_trailing_slash_is_not_redirected(db: Db) -> None:
    """``POST /token/`` is a 404, never a 307 to a Location built from Host or
    X-Forwarded-Proto (a client following it would re-post its credentials there)."""
    k = kit.build(db)
    async with client_for(create_app(k.server)) as client:
        response = await client.post(
            "/token/?x=1",
            data={"grant_type": "client_credentials"},
            headers={"host": "evil.example", "x-forwarded-proto": "http"},
            auth=("basic-client", "s3cret"),
        )
    assert response.status_code == 404
    assert "location" not in response.headers
    assert response.json()["error"] == "invalid_request"


async def test_form_body_and_query_reach_core_with_duplicates(db: Db) -> None:
    """RFC 6749 §3.1: repeats are kept so the endpoint can refuse them; blanks kept."""
    k = kit.build(db)
    async with client_for(app_with_test_routes(k.server)) as client:
        seen = (
            await client.post(
                "/echo?q=1&q=2&e=",
                content=b"scope=a+b&scope=c&empty=&n=%C3%A9",
                headers={"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"},
            )
        ).json()
    assert seen["method"] == "POST"
    assert seen["query"] == [["q", "1"], ["q", "2"], ["e", ""]]
    assert seen["form"] == [["scope", "a b"], ["scope", "c"], ["empty", ""], ["n", "é"]]


async def test_non_form_bodies_are_not_parsed(db: Db) -> None:
    k = kit.build(db)
    async with client_for(app_with_test_routes(k.server)) as client:
        seen = (await client.post("/echo", json={"grant_type": "x"})).json()
    assert seen["form"] == []


async def test_oversized_body_is_413_invalid_request(db: Db) -> None:
    """RFC 9110 §15.5.14: refused before parsing, never a 500."""
    k = kit.build(db)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"a" * 1024

    async with client_for(app_with_test_routes(k.server, max_body_bytes=16 * 1024)) as client:
        declared = await client.post("/echo", data={"a": "x" * 20_000})
        streamed = await client.post(
            "/echo", content=chunks(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        within = await client.post("/echo", data={"a": "x" * 1000})
    for response in (declared, streamed):
        assert response.status_code == 413
        assert response.json()["error"] == "invalid_request"
    assert within.status_code == 200


async def test_default_body_limit_is_64_kilobytes(db: Db) -> None:
    k = kit.build(db)
    async with client_for(app_with_test_routes(k.server)) as client:
        response = await client.post("/echo", data={"a": "x" * (64 * 1024)})
    assert response.status_code == 413


@pytest.mark.parametrize(
    "body", [b"a=%ff", b"a=\xff\xfe", b"a=1&&b=2", b"novalue"]
)
async def test_malformed_form_body_is_invalid_request(db: Db, body: bytes) -> None:
    """Invalid UTF-8 or broken form syntax: 400 invalid_request, never a 500."""
    k = kit.build(db)
    async with client_for(app_with_test_routes(k.server)) as client:
        response = await client.post(
            "/echo", content=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_query_that_is_not_utf8_is_invalid_request(db: Db) -> None:
    k = kit.build(db)
    async with client_for(app_with_test_routes(k.server)) as client:
        response = await client.get("/echo?a=%ff")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_unexpected_exception_is_a_json_server_error_without_details(
    db: Db, caplog: pytest.LogCaptureFixture
) -> None:
    """The one boundary: 500 server_error; the log names the type and request id only."""
    k = kit.build(db)
    with caplog.at_level(logging.ERROR, logger="authward.asgi"):
        async with client_for(app_with_test_routes(k.server)) as client:
            response = await client.post("/explode", data={"client_secret": "s3cr3t-value"})
    assert response.status_code == 500
    assert response.json() == {"error": "server_error"}
    assert response.headers["cache-control"] == "no-store"
    assert "boom" not in response.text
    request_id = response.headers["x-request-id"]
    assert "RuntimeError" in caplog.text
    assert request_id in caplog.text
    assert "s3cr3t-value" not in caplog.text


@pytest.mark.parametrize(
    "url", ["postgresql://postgres@127.0.0.1:1/test", "sqlite:////nonexistent-dir/authward.db"]
)
async def test_an_unreachable_database_is_503_with_retry_after_and_one_log_line(
    db: Db, caplog: pytest.LogCaptureFixture, url: str
) -> None:
    """RFC 9110 §15.6.4: a database that refuses connections is not a bug: every request that
    needs it gets 503 temporarily_unavailable with Retry-After, and the outage is logged once
    (no stack trace), however many requests fail during it."""
    unreachable = create_engine(url)
    k = kit.build(db, engine=unreachable)
    form = {"grant_type": "refresh_token", "refresh_token": "x" * 43}
    auth = (kit.CONFIDENTIAL_CLIENT_ID, kit.CONFIDENTIAL_SECRET)
    try:
        with caplog.at_level(logging.INFO, logger="authward.asgi"):
            async with client_for(create_app(k.server)) as client:
                responses = [await client.post("/token", data=form, auth=auth) for _ in range(3)]
                metadata = await client.get("/.well-known/openid-configuration")
    finally:
        await unreachable.dispose()
    for response in responses:
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        assert response.headers["cache-control"] == "no-store"
        assert response.json()["error"] == "temporarily_unavailable"
    assert metadata.status_code == 200  # what needs no database still answers
    lines = [r for r in caplog.records if r.name == "authward.asgi"]
    assert len(lines) == 1
    assert lines[0].getMessage().startswith("database unavailable (")
    assert "Traceback" not in caplog.text
    assert 'File "' not in caplog.text


class Closable:
    def __init__(self, log: list[str], name: str, *, fail: bool = False) -> None:
        self.log, self.name, self.fail = log, name, fail

    async def aclose(self) -> None:
        self.log.append(self.name)
        if self.fail:
            raise OSError("cannot close")


class Disposable:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def dispose(self) -> None:
        self.log.append("engine")


async def run_lifespan(app: Starlette) -> list[str]:
    """Drive the ASGI lifespan protocol: startup, then shutdown."""
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[str] = []

    async def receive() -> dict[str, str]:
        return incoming.pop(0)

    async def send(message: Any) -> None:
        sent.append(message["type"])

    await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
    return sent


async def test_lifespan_closes_resources_on_shutdown(db: Db) -> None:
    """The engine is disposed and the HTTP client closed, last first, even if one fails."""
    k = kit.build(db)
    log: list[str] = []
    resources = (Disposable(log), Closable(log, "http", fail=True), Closable(log, "other"))
    app = create_app(k.server, lifespan_resources=resources)
    sent = await run_lifespan(app)
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert log == ["other", "http", "engine"]


async def test_close_resources_disposes_a_real_engine(db: Db) -> None:
    """An AsyncEngine is disposed, an httpx.AsyncClient closed (real objects, no fakes)."""
    engine = db.new_engine()
    async with engine.connect():
        pass
    http = httpx.AsyncClient()
    assert isinstance(engine, AsyncDisposable)
    assert isinstance(http, AsyncClosable)
    await close_resources([engine, http])
    assert http.is_closed
