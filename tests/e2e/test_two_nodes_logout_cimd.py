"""End to end over HTTP: RP-Initiated + Back-Channel Logout and Client ID Metadata Documents
across two ``authward serve`` processes sharing one PostgreSQL database, as behind a load
balancer.

Spec: authward issue ("the same flows work with two server processes sharing one PostgreSQL");
OIDC RP-Initiated Logout 1.0 §2-§3; OIDC Back-Channel Logout 1.0 §2.4 (the logout token a
relying party validates: JWKS signature, ``typ``, ``iss``, ``aud``, ``iat``/``exp``, ``events``,
``sid``, no ``nonce``), §2.5 (POST of ``logout_token``); spec/stores.md §3.4 (a logout session
is taken once, one statement, wherever the logout happens); draft-ietf-oauth-client-id-metadata-
document-01 §4 and §4.4 (the document is fetched, validated and cached; the cache is the shared
``attesto_client_id_metadata`` table, so one node's fetch serves the other).

Both nodes serve node A's issuer; a request "sent to node B" connects to node B's port while
keeping the issuer's URL (``tests.e2e.test_two_nodes.via``). The browser's cookie jar is shared
by its node-A and node-B clients, like one browser behind a load balancer. Back-channel
receivers are small threaded HTTP servers in this test process on 127.0.0.1 (they must exist
before the module's nodes start, since their URLs are in the config); CIMD documents are served
by ``tests.core.local_http``. PostgreSQL only, like the other two-node tests.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from http.cookiejar import Cookie, CookieJar
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from tests.asgi.forms import only_form
from tests.core.local_http import LocalServer, Reply, local_server
from tests.e2e.browser import Browser, post_form
from tests.e2e.flows import CodeFlow, discover, run_code_flow
from tests.e2e.harness import HTTP_TIMEOUT, REDIRECT_URI, Deployment, deployment
from tests.e2e.test_logout import (
    SIGNED_OUT,
    relying_party,
    unverified_claims,
    validated_logout_token,
)
from tests.e2e.test_two_nodes import PinnedTransport, via

RP_ONE: Final = "e2e-node-rp-1"
RP_TWO: Final = "e2e-node-rp-2"
DOCUMENT_PATH: Final = "/oauth/client.json"
MAX_AGE: Final = 300
#: The longest wait for something the nodes do in the background (a bound, not an assertion).
WAIT_SECONDS: Final = 20.0
LOGIN_COOKIE: Final = "authward_login"
SESSION_ENDED = re.compile(r'"event": "logout\.session_ended".*"notified": (\d+)')
DELIVERED = re.compile(r'"event": "logout\.delivered".*"client_id": "([^"]+)".*"status": 200')


# --- back-channel receivers ------------------------------------------------------------------


class _ReceiverServer(ThreadingHTTPServer):
    """Records every ``logout_token`` POSTed to it (thread-safe) and answers 200."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ReceiverHandler)
        self.lock = threading.Lock()
        self.tokens: list[str] = []
        self.requests = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/backchannel-logout"

    def received(self) -> list[str]:
        with self.lock:
            return list(self.tokens)


class _ReceiverHandler(BaseHTTPRequestHandler):
    server: _ReceiverServer

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = dict(parse_qsl(self.rfile.read(length).decode("ascii")))
        with self.server.lock:
            self.server.requests += 1
            if "logout_token" in form:
                self.server.tokens.append(form["logout_token"])
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: nothing on stderr."""


@pytest.fixture(scope="module")
def receivers() -> Iterator[tuple[_ReceiverServer, _ReceiverServer]]:
    """Two receivers running in threads for the whole module."""
    servers = (_ReceiverServer(), _ReceiverServer())
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    try:
        yield servers
    finally:
        for server, thread in zip(servers, threads, strict=True):
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory,
    e2e_keys: Path,
    receivers: tuple[_ReceiverServer, _ReceiverServer],
) -> Iterator[Deployment]:
    """Two nodes on one PostgreSQL with logout and CIMD on, loopback receivers and documents
    allowed (skipped when PostgreSQL is unreachable, failed in CI)."""
    one, two = receivers
    with deployment(
        "postgresql",
        tmp_path_factory.mktemp("e2e-logout-cimd-cluster"),
        e2e_keys,
        settings={
            "logout": {"enabled": True, "allow_loopback": True, "delivery_timeout_seconds": 10},
            "client_id_metadata": {"enabled": True, "allow_loopback": True},
        },
        extra_clients=[relying_party(RP_ONE, one.url), relying_party(RP_TWO, two.url)],
        nodes=2,
    ) as running:
        yield running


# --- helpers ---------------------------------------------------------------------------------


async def until(done: Callable[[], bool], what: str) -> None:
    """Wait (bounded by ``WAIT_SECONDS``) until ``done()``; fail naming ``what``."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {WAIT_SECONDS} s")
        await asyncio.sleep(0.05)


def pinned_browser(cluster: Deployment, index: int, jar: CookieJar) -> httpx.AsyncClient:
    """The end-user's browser connected to node ``index``, keeping its cookies in ``jar``."""
    return httpx.AsyncClient(
        base_url=cluster.issuer,
        transport=PinnedTransport(cluster.nodes[index]),
        timeout=HTTP_TIMEOUT,
        cookies=jar,
    )


async def public_code_flow(
    cluster: Deployment,
    client_id: str,
    redirect_uri: str,
    *,
    front: httpx.AsyncClient,
    token_at: int,
    scope: str = "openid",
) -> tuple[CodeFlow, Browser]:
    """A public client (PKCE S256, Authlib): authorization through ``front`` (a browser pinned
    to some node), token request sent to node ``token_at``."""
    flow = await run_code_flow(
        cluster, client_id, scope=scope, http=front, redirect_uri=redirect_uri,
        transport=PinnedTransport(cluster.nodes[token_at]),
    )
    assert flow.user is not None
    return flow, flow.user


def ended_sessions(cluster: Deployment, index: int) -> list[int]:
    """The ``notified`` count of every ``logout.session_ended`` event in node ``index``'s log."""
    return [int(n) for n in SESSION_ENDED.findall(cluster.nodes[index].log(limit=10**7))]


def delivered(cluster: Deployment, index: int) -> list[str]:
    """The clients of every ``logout.delivered`` (200) event in node ``index``'s log."""
    return sorted(DELIVERED.findall(cluster.nodes[index].log(limit=10**7)))


def login_cookie(jar: CookieJar) -> Cookie:
    found = [cookie for cookie in jar if cookie.name == LOGIN_COOKIE]
    assert len(found) == 1, [cookie.name for cookie in jar]
    return copy.copy(found[0])


# --- back-channel logout across nodes --------------------------------------------------------


async def test_logout_at_b_tells_relying_parties_signed_in_at_a_and_b_once(
    cluster: Deployment, receivers: tuple[_ReceiverServer, _ReceiverServer]
) -> None:
    """NODE-LOGOUT-01: RP1's flow runs at node A, RP2's at node B in the same browser (one
    sid; the cookie from A is accepted at B without a new login). Logout confirmed at node B
    sends each receiver exactly one logout token, valid against node A's JWKS; the logout
    sessions are gone from the shared table, so the same session ended again at node A (an old
    copy of the signed cookie) notifies nobody."""
    one, two = receivers
    metadata = await discover(cluster)
    end_session = metadata.raw["end_session_endpoint"]
    jar = CookieJar()
    async with pinned_browser(cluster, 0, jar) as at_a, pinned_browser(cluster, 1, jar) as at_b:
        first, user_a = await public_code_flow(cluster, RP_ONE, REDIRECT_URI,
                                               front=at_a, token_at=0)
        second, user_b = await public_code_flow(cluster, RP_TWO, REDIRECT_URI,
                                                front=at_b, token_at=1)
        assert (user_a.logins, user_b.logins) == (1, 0)  # B trusts the cookie A set
        assert first.token is not None
        assert second.token is not None
        id_tokens = [str(first.token["id_token"]), str(second.token["id_token"])]
        sids = {unverified_claims(token)["sid"] for token in id_tokens}
        assert len(sids) == 1  # one browser session, one sid, whichever node minted it
        sid = sids.pop()
        sessions = await cluster.database.rows("logout_sessions")
        assert sorted((row["client_id"], row["sid"]) for row in sessions) == [
            (RP_ONE, sid), (RP_TWO, sid)
        ]
        old_cookie = login_cookie(jar)

        page = await at_b.get(end_session, params={
            "id_token_hint": id_tokens[0], "post_logout_redirect_uri": SIGNED_OUT,
            "state": "bye-node-b",
        })
        assert page.status_code == 200, page.text
        form = only_form(page.text)
        done = await post_form(at_b, form.action, [*form.fields(), ("decision", "logout")])
        assert done.status_code == 303, done.text
        location = done.headers["location"]
        assert location.split("?")[0] == SIGNED_OUT
        assert dict(parse_qsl(urlsplit(location).query)) == {"state": "bye-node-b"}
        assert ended_sessions(cluster, 1) == [2]
        assert ended_sessions(cluster, 0) == []

        await until(lambda: bool(one.received()) and bool(two.received()),
                    "a logout token at both receivers")
        await until(lambda: delivered(cluster, 1) == [RP_ONE, RP_TWO],
                    "node B's two logout.delivered events")
        assert await cluster.database.rows("logout_sessions") == []
        async with via(cluster, 0) as node_a:
            jwks = (await node_a.get(metadata.jwks_uri)).json()

        # The same session ended again at node A: a stolen or kept copy of the signed cookie
        # is still valid (it cannot be revoked), but the sessions were taken at B.
        assert [cookie.name for cookie in jar if cookie.name == LOGIN_COOKIE] == []
        jar.set_cookie(old_cookie)
        page = await at_a.get(end_session, params={
            "id_token_hint": id_tokens[1], "post_logout_redirect_uri": SIGNED_OUT,
        })
        assert page.status_code == 200, page.text
        form = only_form(page.text)
        again = await post_form(at_a, form.action, [*form.fields(), ("decision", "logout")])
        assert again.status_code == 303, again.text
        assert ended_sessions(cluster, 0) == [0]
        assert ended_sessions(cluster, 1) == [2]

    assert delivered(cluster, 0) == []
    assert (one.requests, two.requests) == (1, 1)
    for receiver, client_id in ((one, RP_ONE), (two, RP_TWO)):
        tokens = receiver.received()
        assert len(tokens) == 1
        claims = validated_logout_token(tokens[0], jwks, issuer=cluster.issuer,
                                        client_id=client_id, sid=sid)
        assert claims["aud"] in (client_id, [client_id])


# --- CIMD across nodes -----------------------------------------------------------------------


class Document:
    """A CIMD document served on 127.0.0.1 with ``Cache-Control: max-age=300``."""

    def __init__(self, server: LocalServer) -> None:
        self.server = server
        base = f"http://127.0.0.1:{server.port}"
        self.client_id = base + DOCUMENT_PATH
        self.redirect_uri = base + "/callback"
        body = {
            "client_id": self.client_id,
            "client_name": "E2E two-node MCP client",
            "redirect_uris": [self.redirect_uri],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
            "scope": "openid profile",
        }
        server.replies[DOCUMENT_PATH] = Reply(
            headers=(
                ("Content-Type", "application/json"),
                ("Cache-Control", f"public, max-age={MAX_AGE}"),
            ),
            body=json.dumps(body).encode(),
        )

    @property
    def fetches(self) -> int:
        return sum(1 for seen in self.server.seen if seen.target == DOCUMENT_PATH)


async def cache_rows(cluster: Deployment, client_id: str) -> list[dict[str, Any]]:
    return [row for row in await cluster.database.rows("client_id_metadata")
            if row["url"] == client_id]


async def test_cimd_authorized_at_a_redeemed_at_b_then_cached_for_b(
    cluster: Deployment,
) -> None:
    """NODE-CIMD-01: a URL client_id: authorization (login, consent, code) at node A, token at
    node B; a second flow wholly at node B. The document was fetched once in all: node A's
    cache row in the shared table served node B."""
    assert cluster.database.tables.client_id_metadata.name == (
        cluster.database.prefix + "attesto_client_id_metadata"
    )
    async with local_server({}) as server:
        doc = Document(server)
        jar = CookieJar()
        async with pinned_browser(cluster, 0, jar) as at_a:
            first, _ = await public_code_flow(cluster, doc.client_id, doc.redirect_uri,
                                              front=at_a, token_at=1)
        assert first.token is not None
        assert first.token["token_type"] == "Bearer"
        assert unverified_claims(str(first.token["id_token"]))["aud"] in (
            doc.client_id, [doc.client_id]
        )
        assert doc.fetches == 1

        async with pinned_browser(cluster, 1, CookieJar()) as at_b:
            second, _ = await public_code_flow(cluster, doc.client_id, doc.redirect_uri,
                                               front=at_b, token_at=1)
        assert second.token is not None
        assert second.token["access_token"]
        assert doc.fetches == 1
    rows = await cache_rows(cluster, doc.client_id)
    assert len(rows) == 1
    lifetime = (rows[0]["expires_at"] - rows[0]["inserted_at"]).total_seconds()
    assert MAX_AGE - 5 <= lifetime <= MAX_AGE + 5
    assert rows[0]["metadata"]["client_id"] == doc.client_id


async def test_parallel_first_requests_on_both_nodes_all_resolve_one_row(
    cluster: Deployment,
) -> None:
    """NODE-CIMD-02: ten concurrent first authorization requests for an uncached CIMD client,
    five at each node: every one is accepted (sent on to the login page, not refused), and
    the shared table ends with one row. Concurrent misses may each fetch (no cross-node
    single-flight is promised): the count is reported, bounded by the number of requests."""
    async with local_server({}) as server:
        doc = Document(server)
        params = {
            "response_type": "code",
            "client_id": doc.client_id,
            "redirect_uri": doc.redirect_uri,
            "scope": "openid",
            "state": "s",
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256",
        }
        async with via(cluster, 0) as node_a, via(cluster, 1) as node_b:
            answers = await asyncio.gather(*(
                (node_a if i % 2 == 0 else node_b).get("/authorize", params=params)
                for i in range(10)
            ))
        fetches = doc.fetches
    for answer in answers:
        assert answer.is_redirect, (answer.status_code, answer.text)
        assert urlsplit(answer.headers["location"]).path == "/login", answer.headers
    assert len(await cache_rows(cluster, doc.client_id)) == 1
    assert 1 <= fetches <= 10
    print(f"\n[two nodes] 10 concurrent first requests fetched the document {fetches} time(s)")
