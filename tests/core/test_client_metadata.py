"""Client ID Metadata Documents: grammar, host lists, document validation, resolver, registry.

Spec: authward spec/stores.md §3.8 (resolver order, freshness), §5.1 (grammar, host policy), §5.2
(validation order, use of the document), §6.9 CIMD-06..18 and CIMD-36; draft-ietf-oauth-client-
id-metadata-document-01 §3, §4, §6.5. Pure checks run without a database; everything that reads
or writes the cache runs on SQLite and PostgreSQL (``db``). Documents are served by a real HTTP
server on 127.0.0.1 (``allow_loopback``), except where the SSRF guard itself is under test: there a
recording resolver and a recording ``httpx.MockTransport`` prove that no connection was made.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import replace
from email.utils import formatdate
from ipaddress import ip_address
from typing import Any

import httpx
import pytest

from authward.core.client_metadata import (
    ClientMetadataRegistry,
    ClientMetadataResolver,
    Refused,
    Resolved,
    check_client_id_url,
    declared_scopes,
    host_allowed,
    normalize_host,
    same_origin,
    to_client,
    validate_document,
)
from authward.core.clients import Client
from authward.core.config import ClientIdMetadataSettings
from authward.core.errors import InvalidClientError
from authward.core.jose import generate_signing_key
from authward.core.policy import Event
from authward.core.ssrf import GuardedFetcher
from authward.stores.client_metadata import Hit, Miss
from authward.stores.sql.client_metadata import SqlClientMetadataCache
from tests.core.local_http import LocalServer, Reply, local_server, tls_for
from tests.core.ssrf_fakes import RecordingTransport, TableResolver
from tests.dbkit import T0, Db

APP = "https://app.example/client.json"
KEY = generate_signing_key("ES256")


# --- helpers ---------------------------------------------------------------------------------




class Events:
    def __init__(self) -> None:
        self.events: list[Event] = []

    async def emit(self, event: Event) -> None:
        self.events.append(event)


class HostRegistry:
    def __init__(self, *clients: Client) -> None:
        self.clients = {c.client_id: c for c in clients}
        self.asked: list[str] = []

    async def get_client(self, client_id: str) -> Client | None:
        self.asked.append(client_id)
        return self.clients.get(client_id)

    async def verify_client_secret(self, client: Client, presented_secret: str) -> bool:
        return presented_secret == "host-secret"


def doc(url: str, **members: Any) -> dict[str, Any]:
    """A valid public-client document for ``url`` (redirect URI on its origin)."""
    origin = url.split("/", 3)
    base: dict[str, Any] = {
        "client_id": url,
        "client_name": "Example App",
        "redirect_uris": [f"{origin[0]}//{origin[2]}/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "scope": "openid profile",
    }
    for name, value in members.items():
        if value is ...:
            base.pop(name, None)
        else:
            base[name] = value
    return base


def json_reply(body: Any, *, cache: str | None = "max-age=600",
               extra: tuple[tuple[str, str], ...] = ()) -> Reply:
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "application/json"),)
    if cache is not None:
        headers += (("Cache-Control", cache),)
    return Reply(headers=headers + extra, body=json.dumps(body).encode())


def settings(**overrides: Any) -> ClientIdMetadataSettings:
    base: dict[str, Any] = {"enabled": True, "allow_loopback": True}
    base.update(overrides)
    return ClientIdMetadataSettings(**base)


def resolver(db: Db, fetcher: GuardedFetcher | None = None, **overrides: Any
             ) -> ClientMetadataResolver:
    return ClientMetadataResolver(
        settings(**overrides),
        cache=SqlClientMetadataCache(db.engine, clock=db.clock),
        fetcher=fetcher or GuardedFetcher(),
        clock=db.clock,
    )


def url_of(server: LocalServer, path: str = "/client.json") -> str:
    return f"http://127.0.0.1:{server.port}{path}"


async def cached_rows(db: Db) -> list[Any]:
    return await db.rows(db.tables.client_id_metadata)


# --- §5.1 grammar ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("not a url", "not_a_url"),
        ("https://", "not_a_url"),
        ("https:///path", "not_a_url"),
        ("https://app.example:99999/c", "not_a_url"),
        ("https://app .example/c", "not_a_url"),
        ("http://app.example/client.json", "not_https"),
        ("ftp://app.example/client.json", "not_https"),
        ("https://app.example", "no_path"),
        ("https://app.example/", "no_path"),
        ("https://app.example/c#", "has_fragment"),
        ("https://app.example/c#frag", "has_fragment"),
        ("https://user@app.example/c", "has_userinfo"),
        ("https://user:pw@app.example/c", "has_userinfo"),
        ("https://app.example/a/../c", "dot_segments"),
        ("https://app.example/./c", "dot_segments"),
        ("https://app.example/a/%2e%2E/c", "dot_segments"),
        ("https://app.example/" + "a" * 236, "too_long"),
    ],
)
def test_grammar_reports_each_reason(url: str, reason: str) -> None:
    """Spec §5.1: each rule has its own reason code; 256 characters is too long."""
    assert check_client_id_url(url) == reason


@pytest.mark.parametrize(
    "url",
    [
        APP,
        "https://app.example/c?version=2",
        "https://APP.example:8443/client",
        "https://app.example/" + "a" * 235,  # exactly 255 characters
        "https://app.example/a/.well-known/x..y",
    ],
)
def test_grammar_accepts_cimd_urls(url: str) -> None:
    """Spec §5.1: https, a path, a query allowed, 255 characters accepted."""
    assert check_client_id_url(url) is None


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://user@app.example/#f", "not_https"),
        ("https://user@app.example/", "no_path"),
        ("https://user@app.example/c#f", "has_fragment"),
        ("https://user@app.example/../c", "has_userinfo"),
        ("http://app.example/" + "x" * 300, "too_long"),
    ],
)
def test_grammar_reports_the_first_failure(url: str, reason: str) -> None:
    """Spec §5.1: checks run in order and the first failure is the one reported."""
    assert check_client_id_url(url) == reason


@pytest.mark.parametrize(
    ("url", "accepted"),
    [
        ("http://127.0.0.1:8000/client.json", True),
        ("http://127.5.6.7/client.json", True),
        ("http://[::1]:9000/client.json", True),
        ("http://localhost:9000/client.json", True),
        ("http://10.0.0.1/client.json", False),
        ("http://app.example/client.json", False),
        ("http://127.0.0.1:8000/", False),
    ],
)
def test_allow_loopback_relaxes_https_only_for_loopback_hosts(url: str, accepted: bool) -> None:
    """allow_loopback (development, tests): http passes only to loopback hosts."""
    assert check_client_id_url(url) is not None
    assert (check_client_id_url(url, allow_loopback=True) is None) is accepted


# --- host lists ------------------------------------------------------------------------------


def test_host_names_are_normalised_before_comparing() -> None:
    """Spec §5.1 (Python): lower-case, IDNA, no trailing dot, no IPv6 brackets."""
    assert normalize_host("App.Example.") == "app.example"
    assert normalize_host("bücher.example") == "xn--bcher-kva.example"
    assert normalize_host("[::1]") == "::1"
    assert normalize_host("*.Example.COM") == "*.example.com"


@pytest.mark.parametrize(
    ("host", "allowed", "blocked", "admitted"),
    [
        ("app.example", None, (), True),
        ("app.example", None, ("app.example",), False),
        ("APP.example.", None, ("app.example",), False),
        ("bücher.example", None, ("xn--bcher-kva.example",), False),
        ("app.example", ("app.example",), (), True),
        ("other.example", ("app.example",), (), False),
        ("app.example", (), (), False),
        ("app.example", ("app.example",), ("app.example",), False),
        ("a.b.example", ("*.b.example",), (), True),
        ("b.example", ("*.b.example",), (), False),
        ("evil.example", None, ("*.example",), False),
    ],
)
def test_host_lists(
    host: str, allowed: tuple[str, ...] | None, blocked: tuple[str, ...], admitted: bool
) -> None:
    """Spec §5.1: blocked wins, a list allow-list admits only its hosts, None admits any,
    an empty list admits none; ``*.x`` matches subdomains of x only."""
    policy = ClientIdMetadataSettings(enabled=True, allowed_hosts=allowed, blocked_hosts=blocked)
    assert host_allowed(host, policy) is admitted


# --- §5.2 document validation ----------------------------------------------------------------


def test_a_valid_document_is_normalised() -> None:
    """Spec §5.2 step 6: client_id, redirect_uris and the known members present; unknown ones
    dropped; null counts as absent."""
    document = doc(APP, logo_uri=None, contacts=["ops@app.example"], software_id="x", extra=1)
    result = validate_document(APP, document)
    assert isinstance(result, dict)
    assert result["client_id"] == APP
    assert result["redirect_uris"] == ["https://app.example/callback"]
    assert result["contacts"] == ["ops@app.example"]
    assert "logo_uri" not in result
    assert "software_id" not in result
    assert "extra" not in result


PUBLIC_JWK = KEY.public_jwk()


@pytest.mark.parametrize(
    ("members", "reason"),
    [
        ({"client_id": "https://other.example/client.json"}, "client_id_mismatch"),
        ({"client_id": APP + "/"}, "client_id_mismatch"),
        ({"client_id": ...}, "client_id_mismatch"),
        ({"client_secret": "s3cret"}, "symmetric_secret"),
        ({"client_secret_expires_at": 0}, "symmetric_secret"),
        ({"token_endpoint_auth_method": "client_secret_basic"}, "symmetric_auth_method"),
        ({"token_endpoint_auth_method": "client_secret_post"}, "symmetric_auth_method"),
        ({"token_endpoint_auth_method": "client_secret_jwt"}, "symmetric_auth_method"),
        ({"redirect_uris": ...}, "invalid_redirect_uris"),
        ({"redirect_uris": []}, "invalid_redirect_uris"),
        ({"redirect_uris": "https://app.example/cb"}, "invalid_redirect_uris"),
        ({"redirect_uris": [1]}, "invalid_redirect_uris"),
        ({"redirect_uris": ["/relative"]}, "invalid_redirect_uris"),
        ({"redirect_uris": ["https://app.example/cb#f"]}, "invalid_redirect_uris"),
        ({"redirect_uris": ["https://app.example\\@evil.example/cb"]}, "invalid_redirect_uris"),
        ({"grant_types": "authorization_code"}, "invalid_metadata"),
        ({"response_types": [1]}, "invalid_metadata"),
        ({"contacts": {"a": 1}}, "invalid_metadata"),
        ({"scope": ["openid"]}, "invalid_metadata"),
        ({"client_name": 7}, "invalid_metadata"),
        ({"client_uri": True}, "invalid_metadata"),
        ({"logo_uri": []}, "invalid_metadata"),
        ({"jwks_uri": 1}, "invalid_metadata"),
        ({"token_endpoint_auth_method": 1}, "invalid_metadata"),
        ({"jwks": [PUBLIC_JWK]}, "invalid_metadata"),
        ({"jwks": {"keys": PUBLIC_JWK}}, "invalid_metadata"),
        ({"jwks": {"keys": [PUBLIC_JWK]}, "jwks_uri": "https://app.example/jwks"},
         "invalid_metadata"),
        ({"jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}, "jwks_symmetric_key"),
        ({"jwks": {"keys": [KEY.private_jwk()]}}, "jwks_private_key"),
        ({"token_endpoint_auth_method": "tls_client_auth"}, "unsupported_auth_method"),
        ({"token_endpoint_auth_method": "private_key_jwt"}, "missing_keys"),
    ],
)
def test_each_document_reason(members: dict[str, Any], reason: str) -> None:
    """Spec §5.2 validation: every reason code (private and symmetric jwks keys too)."""
    assert validate_document(APP, doc(APP, **members)) == reason


@pytest.mark.parametrize(
    ("members", "reason"),
    [
        ({"client_id": "https://x.example/c", "client_secret": "s"}, "client_id_mismatch"),
        ({"client_secret": "s", "token_endpoint_auth_method": "client_secret_basic"},
         "symmetric_secret"),
        ({"token_endpoint_auth_method": "client_secret_post", "redirect_uris": []},
         "symmetric_auth_method"),
        ({"redirect_uris": [], "client_name": 1}, "invalid_redirect_uris"),
        ({"client_name": 1, "token_endpoint_auth_method": "private_key_jwt"}, "invalid_metadata"),
    ],
)
def test_document_checks_run_in_order(members: dict[str, Any], reason: str) -> None:
    """Spec §5.2: the first failing check in the stated order is reported."""
    assert validate_document(APP, doc(APP, **members)) == reason


def test_private_key_jwt_with_public_keys_is_valid() -> None:
    document = doc(APP, token_endpoint_auth_method="private_key_jwt",
                   jwks={"keys": [PUBLIC_JWK]})
    result = validate_document(APP, document)
    assert isinstance(result, dict)
    assert result["jwks"] == {"keys": [PUBLIC_JWK]}
    client = to_client(result, require_same_origin=True)
    assert client is not None
    assert client.client_type == "confidential"
    assert client.token_endpoint_auth_method == "private_key_jwt"
    assert client.jwks == (PUBLIC_JWK,)


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ("openid  profile\temail", ("openid", "profile", "email")),
        (None, ()),
        ("", ()),
        ("   ", ()),
        (["openid"], ()),
        (7, ()),
    ],
)
def test_declared_scopes(scope: Any, expected: tuple[str, ...]) -> None:
    """CIMD-36: a space-delimited string is split; absent, blank or non-string gives ()."""
    metadata = {"client_id": APP} if scope is None else {"client_id": APP, "scope": scope}
    assert declared_scopes(metadata) == expected


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("https://app.example/callback", True),
        ("https://app.example:443/callback", True),
        ("https://APP.example/cb?x=1", True),
        ("https://app.example:8443/callback", False),
        ("http://app.example/callback", False),
        ("https://evil.example/callback", False),
        ("https://sub.app.example/callback", False),
    ],
)
def test_same_origin_uses_the_effective_port(uri: str, expected: bool) -> None:
    """Spec §5.2: scheme, host and effective port; an explicit default port equals none."""
    assert same_origin(uri, APP) is expected


def test_to_client_limits_grants_and_keeps_same_origin_redirects() -> None:
    """A public CIMD client: auth ``none``, grants limited to code and refresh, response type
    code, declared scopes; only same-origin redirect URIs survive the origin rule."""
    metadata = doc(APP, grant_types=["authorization_code", "client_credentials", "refresh_token",
                                     "urn:ietf:params:oauth:grant-type:device_code"],
                   redirect_uris=["https://app.example/callback", "https://evil.example/cb"])
    client = to_client(metadata, require_same_origin=True)
    assert client is not None
    assert client.is_public
    assert client.token_endpoint_auth_method == "none"
    assert client.grant_types == ("authorization_code", "refresh_token")
    assert client.response_types == ("code",)
    assert client.scope == ("openid", "profile")
    assert client.client_name == "Example App"
    assert client.redirect_uris == ("https://app.example/callback",)
    loose = to_client(metadata, require_same_origin=False)
    assert loose is not None
    assert loose.redirect_uris == ("https://app.example/callback", "https://evil.example/cb")
    assert to_client(doc(APP, grant_types=...), require_same_origin=True) == replace(
        client, grant_types=("authorization_code",)
    )


# --- the resolver on real stores (SQLite and PostgreSQL) --------------------------------------


async def test_valid_document_resolves_and_is_cached(db: Db) -> None:
    """CIMD-06, CIMD-07: the normalised client; a second resolve is a cache hit (one fetch)."""
    async with local_server({}) as server:
        url = url_of(server)
        server.replies["/client.json"] = json_reply(doc(url))
        r = resolver(db)
        first = await r.resolve(url)
        second = await r.resolve(url)
    assert isinstance(first, Resolved)
    assert isinstance(second, Resolved)
    assert first.fetched
    assert not second.fetched
    assert first.client == second.client
    assert first.client.client_id == url
    assert first.client.redirect_uris == (f"http://127.0.0.1:{server.port}/callback",)
    assert first.client.token_endpoint_auth_method == "none"
    assert len(server.seen) == 1
    assert server.seen[0].headers["accept"] == "application/json"
    rows = await cached_rows(db)
    assert [row.url for row in rows] == [url]
    assert rows[0].metadata == first.metadata


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (json.dumps(doc("https://placeholder.example/c", token_endpoint_auth_method=
                        "client_secret_basic")).encode(), "client_id_mismatch"),
        (b"{not json", "invalid_json"),
        (b"[1, 2]", "invalid_json"),
        (b'{"client_id": NaN}', "invalid_json"),
    ],
)
async def test_invalid_documents_are_never_cached(db: Db, body: bytes, reason: str) -> None:
    """CIMD-09, CIMD-10: a mismatch or bad JSON is refused and never cached in the table; the
    refusal is remembered in the process for ``failure_cache_seconds`` (one fetch), then the
    document is fetched again."""
    async with local_server({"/client.json": Reply(body=body)}) as server:
        r = resolver(db)
        outcomes = [await r.resolve(url_of(server)) for _ in range(2)]
        assert len(server.seen) == 1
        db.clock.advance(30)
        outcomes.append(await r.resolve(url_of(server)))
    assert all(isinstance(o, Refused) and o.reason == reason for o in outcomes)
    assert len(server.seen) == 2
    assert await cached_rows(db) == []


async def test_symmetric_auth_method_is_never_cached(db: Db) -> None:
    """CIMD-08: both resolves are ``symmetric_auth_method``; with the failure memory off
    (``failure_cache_seconds = 0``) each one fetches; nothing is cached in the table."""
    async with local_server({}) as server:
        url = url_of(server)
        server.replies["/client.json"] = json_reply(
            doc(url, token_endpoint_auth_method="client_secret_basic")
        )
        r = resolver(db, failure_cache_seconds=0)
        outcomes = [await r.resolve(url) for _ in range(2)]
    assert outcomes == [Refused("invalid_document", "symmetric_auth_method")] * 2
    assert len(server.seen) == 2
    assert await cached_rows(db) == []


async def test_concurrent_requests_for_one_uncached_client_share_one_fetch(db: Db) -> None:
    """40 requests at once for an uncached client id: one outbound connection, 40 answers,
    and only the request that fetched says so (one ``client_metadata.fetched`` event)."""
    async with local_server({}) as server:
        url = url_of(server)
        server.replies["/client.json"] = Reply(
            body=json.dumps(doc(url)).encode(), trickle=0.001
        )
        r = resolver(db)
        outcomes = await asyncio.gather(*(r.resolve(url) for _ in range(40)))
    assert all(isinstance(o, Resolved) for o in outcomes)
    assert [o.fetched for o in outcomes if isinstance(o, Resolved)].count(True) == 1
    assert len(server.seen) == 1


async def test_a_failing_fetch_is_not_retried_on_every_request(db: Db) -> None:
    """A client id whose document cannot be fetched: one fetch per ``failure_cache_seconds``
    however many requests name it, concurrent or not."""
    async with local_server({"/client.json": Reply(status=500, body=b"")}) as server:
        r = resolver(db, failure_cache_seconds=10)
        first = await asyncio.gather(*(r.resolve(url_of(server)) for _ in range(20)))
        later = [await r.resolve(url_of(server)) for _ in range(5)]
        assert len(server.seen) == 1
        db.clock.advance(10)
        again = await r.resolve(url_of(server))
    assert {o for o in [*first, *later, again]} == {Refused("fetch", "status_500", "HTTP 500")}
    assert len(server.seen) == 2


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (Reply(status=404, body=b""), "status_404"),
        (Reply(status=302, headers=(("Location", "/elsewhere.json"),), body=b""), "status_302"),
        (Reply(headers=(("Content-Type", "text/html"),), body=b"{}"), "bad_content_type"),
        (Reply(body=b"{" + b" " * 6_000 + b"}"), "too_large"),
    ],
)
async def test_fetch_failures_are_wrapped(db: Db, reply: Reply, reason: str) -> None:
    """CIMD-11 (and the fetcher's status, redirect, type and size rules through the resolver):
    the failure is ``fetch:<reason>``; the redirect is not followed; nothing is cached."""
    async with local_server({"/client.json": reply}) as server:
        outcome = await resolver(db).resolve(url_of(server))
    assert isinstance(outcome, Refused)
    assert (outcome.kind, outcome.reason) == ("fetch", reason)
    assert [seen.target for seen in server.seen] == ["/client.json"]
    assert await cached_rows(db) == []


@pytest.mark.parametrize(
    ("cache_control", "expires_in", "ttl"),
    [
        ("max-age=600", None, 600),
        ("max-age=999999", None, 86_400),
        ("max-age=5", None, 60),
        ("max-age=-10", None, 60),
        ("no-store", None, 60),
        ("no-cache, max-age=600", None, 60),
        ("no-store, max-age=600", None, 60),
        (None, 3_600, 3_600),
        (None, -3_600, 60),
        ("max-age=120", 3_600, 120),
        (None, None, 60),
    ],
)
async def test_freshness_is_clamped_to_the_bounds(
    db: Db, cache_control: str | None, expires_in: int | None, ttl: int
) -> None:
    """Spec §3.8, CIMD-12, CIMD-37: max-age, Expires, no-store and no-cache set expires_at,
    clamped to (60, 86400); max-age beats Expires."""
    async with local_server({}) as server:
        url = url_of(server)
        extra = () if expires_in is None else (
            ("Expires", formatdate(T0 + expires_in, usegmt=True)),
        )
        server.replies["/client.json"] = json_reply(doc(url), cache=cache_control, extra=extra)
        outcome = await resolver(db).resolve(url)
    assert isinstance(outcome, Resolved)
    rows = await cached_rows(db)
    assert len(rows) == 1
    cache = SqlClientMetadataCache(db.engine, clock=db.clock)
    assert isinstance(await cache.get(url, now=T0 + ttl - 1), Hit)
    assert isinstance(await cache.get(url, now=T0 + ttl), Miss)


async def test_expired_entry_is_fetched_again(db: Db) -> None:
    """CIMD-12/13: within the freshness window no fetch; once it passed, one more fetch (and the
    newer document wins)."""
    async with local_server({}) as server:
        url = url_of(server)
        server.replies["/client.json"] = json_reply(doc(url), cache="max-age=0")
        r = resolver(db, cache_ttl_bounds=(1, 86_400))
        assert isinstance(await r.resolve(url), Resolved)
        assert isinstance(await r.resolve(url), Resolved)
        assert len(server.seen) == 1
        db.clock.advance(1)
        server.replies["/client.json"] = json_reply(doc(url, client_name="Renamed"))
        again = await r.resolve(url)
    assert isinstance(again, Resolved)
    assert again.fetched
    assert again.client.client_name == "Renamed"
    assert len(server.seen) == 2
    assert len(await cached_rows(db)) == 1


async def test_cache_hit_needs_no_network(db: Db) -> None:
    """Resolver step 3: a fresh cached document is used without any resolution or request."""
    cache = SqlClientMetadataCache(db.engine, clock=db.clock)
    metadata = validate_document(APP, doc(APP))
    assert isinstance(metadata, dict)
    await cache.put(APP, metadata, T0 + 600)
    names, recorder = TableResolver({}), RecordingTransport({})
    r = resolver(db, GuardedFetcher(resolver=names, transport_factory=recorder),
                 allow_loopback=False)
    outcome = await r.resolve(APP)
    assert isinstance(outcome, Resolved)
    assert not outcome.fetched
    assert outcome.client.client_id == APP
    assert names.calls == []
    assert recorder.requests == []


async def test_non_cimd_ids_fail_fast_without_fetching(db: Db) -> None:
    """CIMD-14: grammar failures are refused before the cache or the network."""
    names, recorder = TableResolver({}), RecordingTransport({})
    r = resolver(db, GuardedFetcher(resolver=names, transport_factory=recorder),
                 allow_loopback=False)
    assert await r.resolve("http://app.example/c") == Refused("invalid_client_id", "not_https")
    assert await r.resolve("https://app.example/") == Refused("invalid_client_id", "no_path")
    assert names.calls == []
    assert recorder.requests == []


async def test_host_lists_are_applied_before_any_fetch(db: Db) -> None:
    """CIMD-15, CIMD-16, CIMD-17: blocked and not-allowed hosts are refused without a lookup;
    an allow-listed host resolves."""
    cache = SqlClientMetadataCache(db.engine, clock=db.clock)
    names = TableResolver({"app.example": (("93.184.216.34",), ())})
    recorder = RecordingTransport({})
    fetcher = GuardedFetcher(resolver=names, transport_factory=recorder)
    blocked = resolver(db, fetcher, allow_loopback=False, blocked_hosts=("app.example",))
    outside = resolver(db, fetcher, allow_loopback=False, allowed_hosts=("other.example",))
    assert await blocked.resolve(APP) == Refused("blocked_host", "blocked_host", "app.example")
    assert (await outside.resolve(APP)).code == "blocked_host"  # type: ignore[union-attr]
    assert names.calls == []
    assert recorder.requests == []

    def reply(request: httpx.Request) -> httpx.Response:
        recorder.requests.append(request)
        return httpx.Response(200, json=doc(APP), headers={"Cache-Control": "max-age=600"})

    allowed = ClientMetadataResolver(
        settings(allow_loopback=False, allowed_hosts=("app.example",)),
        cache=cache,
        fetcher=GuardedFetcher(resolver=names,
                               transport_factory=lambda: httpx.MockTransport(reply)),
        clock=db.clock,
    )
    outcome = await allowed.resolve(APP)
    assert isinstance(outcome, Resolved)
    assert outcome.client.client_id == APP
    assert [str(r.url) for r in recorder.requests] == ["https://93.184.216.34/client.json"]


# Special-use address classes (spec §5.2 table): each as an IP literal and as a name.
SSRF_CASES = [
    ("loopback", "127.0.0.1", 4),
    ("10/8", "10.1.2.3", 4),
    ("172.16/12", "172.20.0.5", 4),
    ("192.168/16", "192.168.1.1", 4),
    ("link-local", "169.254.169.254", 4),
    ("cgnat", "100.64.0.1", 4),
    ("ipv4-mapped loopback", "::ffff:127.0.0.1", 6),
    ("ipv4-mapped private", "::ffff:10.0.0.1", 6),
    ("unspecified v4", "0.0.0.0", 4),  # noqa: S104 - an address under test, never bound
    ("unspecified v6", "::", 6),
    ("loopback v6", "::1", 6),
]


async def test_ssrf_special_use_addresses_are_refused_without_a_connection(db: Db) -> None:
    """Issue: documents at loopback, private, link-local, CGNAT, IPv4-mapped IPv6 and
    unspecified addresses, as literals and as names resolving to them, are refused with a clear
    ``fetch:blocked_ip`` (the address only in the operator detail) and no connection is made
    (the recording transport saw nothing); nothing is cached."""
    table: dict[str, tuple[Sequence[str], Sequence[str]]] = {
        f"h{i}.example": ((ip,), ()) if family == 4 else ((), (ip,))
        for i, (_, ip, family) in enumerate(SSRF_CASES)
    }
    table["mixed.example"] = (("93.184.216.34",), ("::1",))
    names, recorder = TableResolver(table), RecordingTransport({})
    r = resolver(db, GuardedFetcher(resolver=names, transport_factory=recorder),
                 allow_loopback=False)
    for i, (label, ip, family) in enumerate(SSRF_CASES):
        host = f"[{ip}]" if family == 6 else ip
        for url in (f"https://{host}/client.json", f"https://h{i}.example/client.json"):
            outcome = await r.resolve(url)
            assert isinstance(outcome, Refused), (label, url)
            assert outcome.code == "fetch:blocked_ip", (label, url, outcome)
            assert outcome.detail == f"ip {ip_address(ip)}", (label, outcome)
    mixed = await r.resolve("https://mixed.example/client.json")
    assert isinstance(mixed, Refused)
    assert mixed.detail == "ip ::1"
    assert recorder.requests == []
    assert await cached_rows(db) == []


async def test_allow_loopback_admits_only_loopback(db: Db) -> None:
    """CIMD-28 through the resolver: with allow_loopback a name resolving to 10.0.0.1 (or to
    169.254.169.254) is still refused; the local server on 127.0.0.1 sees only the loopback
    fetch."""
    async with local_server({}) as server:
        port = server.port
        names = TableResolver({
            "private.test": (("10.0.0.1",), ()),
            "metadata.test": (("169.254.169.254",), ()),
        })
        r = resolver(db, GuardedFetcher(resolver=names))
        for host in ("private.test", "metadata.test"):
            outcome = await r.resolve(f"https://{host}:{port}/client.json")
            assert isinstance(outcome, Refused)
            assert outcome.reason == "blocked_ip"
        assert server.seen == []


async def test_name_resolving_to_loopback_is_refused_and_the_server_sees_nothing(db: Db) -> None:
    """Without allow_loopback, a name that resolves to 127.0.0.1 (where a real server listens)
    is refused before connecting: the server records no request."""
    tls = tls_for("app.test")
    async with local_server({}, tls=tls.server) as server:
        url = f"https://app.test:{server.port}/client.json"
        server.replies["/client.json"] = json_reply(doc(url))
        names = TableResolver({"app.test": (("127.0.0.1",), ())})
        fetcher = GuardedFetcher(resolver=names, ssl_context=tls.client)
        refused = await resolver(db, fetcher, allow_loopback=False).resolve(url)
        assert refused == Refused("fetch", "blocked_ip", "ip 127.0.0.1")
        assert server.seen == []
        # The same name with allow_loopback: https, pinned to 127.0.0.1, SNI kept on the name.
        resolved = await resolver(db, fetcher).resolve(url)
    assert isinstance(resolved, Resolved)
    assert [(s.sni, s.headers["host"]) for s in server.seen] == [
        ("app.test", f"app.test:{server.port}")
    ]


# --- the registry the endpoints use -----------------------------------------------------------


def registry(db: Db, host: HostRegistry, events: Events, *, basic_realm: str | None = None,
             fetcher: GuardedFetcher | None = None, **overrides: Any) -> ClientMetadataRegistry:
    return ClientMetadataRegistry(
        resolver(db, fetcher, **overrides), host, events=events, clock=db.clock,
        basic_realm=basic_realm,
    )


async def test_registry_routes_urls_to_cimd_and_other_ids_to_the_host(db: Db) -> None:
    """Opaque ids reach the host unchanged; a CIMD URL never does; CIMD clients have no secret
    (verify_client_secret is False even for the host's secret)."""
    opaque = Client("opaque-app", "confidential", "client_secret_basic",
                    redirect_uris=("https://opaque.example/cb",))
    host, events = HostRegistry(opaque), Events()
    async with local_server({}) as server:
        url = url_of(server)
        server.replies["/client.json"] = json_reply(doc(url))
        reg = registry(db, host, events)
        assert await reg.get_client("opaque-app") == opaque
        assert await reg.get_client("unknown-app") is None
        cimd = await reg.get_client(url)
        assert cimd is not None
        assert cimd.client_id == url
        await reg.get_client(url)
    assert host.asked == ["opaque-app", "unknown-app"]
    assert await reg.verify_client_secret(cimd, "host-secret") is False
    assert await reg.verify_client_secret(opaque, "host-secret") is True
    assert [e.name for e in events.events] == ["client_metadata.fetched"]
    assert events.events[0].data == {"client_id": url}
    assert len(server.seen) == 1


async def test_registry_with_the_feature_off_is_the_host(db: Db) -> None:
    """Feature disabled: URL ids go to the host registry, nothing is fetched."""
    host, events, recorder = HostRegistry(), Events(), RecordingTransport({})
    reg = registry(db, host, events, enabled=False,
                   fetcher=GuardedFetcher(transport_factory=recorder))
    assert await reg.get_client(APP) is None
    assert host.asked == [APP]
    assert recorder.requests == []
    assert events.events == []


async def test_registry_refusals_are_invalid_client_with_the_reason(db: Db) -> None:
    """A refused document raises invalid_client naming the reason code (direct 400 without a
    realm, 401 + Basic challenge with one) and emits client_metadata.refused with the detail;
    a URL-shaped id that fails the grammar and is unknown to the host is refused too."""
    host, events = HostRegistry(), Events()
    async with local_server({"/client.json": Reply(status=404, body=b"")}) as server:
        url = url_of(server)
        with pytest.raises(InvalidClientError) as direct:
            await registry(db, host, events).get_client(url)
        with pytest.raises(InvalidClientError) as challenged:
            await registry(db, host, events, basic_realm="authward").get_client(url)
    assert direct.value.status == 400
    assert direct.value.description == (
        "the client metadata document cannot be used: fetch:status_404"
    )
    assert challenged.value.status == 401
    challenge = dict(challenged.value.headers())["WWW-Authenticate"]
    assert challenge.startswith(
        'Basic realm="authward", error="invalid_client", error_description='
    )
    refused = [e for e in events.events if e.name == "client_metadata.refused"]
    assert refused[0].data == {
        "client_id": url, "kind": "fetch", "reason": "status_404", "detail": "HTTP 404"
    }
    with pytest.raises(InvalidClientError) as grammar:
        await registry(db, host, events).get_client("https://app.example/")
    assert grammar.value.description is not None
    assert grammar.value.description.endswith("invalid_client_id:no_path")
    assert host.asked == ["https://app.example/"]
    assert events.events[-1].data["reason"] == "no_path"
    assert await cached_rows(db) == []


async def test_unreachable_document_is_a_transport_refusal(db: Db) -> None:
    """A document server that is gone (connection refused) gives ``fetch:transport``."""
    async with local_server({}) as server:
        url = url_of(server)
    outcome = await resolver(db).resolve(url)
    assert isinstance(outcome, Refused)
    assert outcome.code == "fetch:transport"
    assert await cached_rows(db) == []


async def test_an_expired_document_is_not_used_when_the_refetch_fails(db: Db) -> None:
    """Once the freshness window has passed the cached document is not used: a failing
    re-fetch refuses the client (no stale fallback)."""
    async with local_server({}) as server:
        url = url_of(server)
        server.replies["/client.json"] = json_reply(doc(url), cache="max-age=60")
        r = resolver(db)
        assert isinstance(await r.resolve(url), Resolved)
        db.clock.advance(60)
        server.replies["/client.json"] = Reply(status=500, body=b"")
        outcome = await r.resolve(url)
    assert outcome == Refused("fetch", "status_500", "HTTP 500")
    assert len(server.seen) == 2


async def test_expires_an_hour_ahead_makes_the_second_resolve_a_cache_hit(db: Db) -> None:
    """CIMD-12: no max-age, ``Expires`` one hour ahead: the second resolve fetches nothing."""
    async with local_server({}) as server:
        url = url_of(server)
        server.replies["/client.json"] = json_reply(
            doc(url), cache=None, extra=(("Expires", formatdate(T0 + 3_600, usegmt=True)),)
        )
        r = resolver(db)
        first, second = await r.resolve(url), await r.resolve(url)
    assert isinstance(first, Resolved)
    assert isinstance(second, Resolved)
    assert (first.fetched, second.fetched) == (True, False)
    assert len(server.seen) == 1


def test_private_key_jwt_with_a_jwks_uri_becomes_a_confidential_client() -> None:
    metadata = validate_document(APP, doc(
        APP, token_endpoint_auth_method="private_key_jwt", jwks_uri="https://app.example/jwks"
    ))
    assert isinstance(metadata, dict)
    client = to_client(metadata, require_same_origin=True)
    assert client is not None
    assert client.client_type == "confidential"
    assert client.jwks_uri == "https://app.example/jwks"
    assert client.jwks is None


def test_a_documents_id_token_signing_alg_is_carried_and_an_unknown_one_is_refused() -> None:
    """OIDC Registration §2 ``id_token_signed_response_alg`` in a CIMD document."""
    metadata = validate_document(APP, doc(APP, id_token_signed_response_alg="ES256"))
    assert isinstance(metadata, dict)
    client = to_client(metadata, require_same_origin=True)
    assert client is not None
    assert client.id_token_signed_response_alg == "ES256"
    unknown = validate_document(APP, doc(APP, id_token_signed_response_alg="HS256"))
    assert isinstance(unknown, dict)
    assert to_client(unknown, require_same_origin=True) is None
