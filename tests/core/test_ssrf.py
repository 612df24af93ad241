"""The outbound-fetch guard: address table, screening, and the pinned fetch (spec §5.2, §6.9).

The guard-table and screening cases (CIMD-19..28) use a recording resolver and an
``httpx.MockTransport`` that records every request, so a refused URL provably caused no request.
The fetch behaviour (CIMD-29..35) runs against a real HTTP server on 127.0.0.1 (loopback allowed,
plain http allowed for loopback), plus a MockTransport where the pinned IP of a public name must
be observed, and a real TLS server to show SNI and the certificate check stay on the hostname.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Sequence

import httpx
import pytest

from authward.core.ssrf import (
    BadContentType,
    BlockedIp,
    Family,
    Fetched,
    GuardedFetcher,
    InvalidUrl,
    Screened,
    TooLarge,
    TransportFailure,
    UnexpectedStatus,
    Unresolvable,
    default_tls,
    is_blocked,
    screen,
)
from tests.core.local_http import Reply, local_server, tls_for

CAP = 5_120
UNSPECIFIED = "0.0.0.0"  # noqa: S104 - an address under test, never bound
TIMEOUT = 5.0


class FakeResolver:
    """Answers from a table and counts the calls per family."""

    def __init__(self, v4: Sequence[str] = (), v6: Sequence[str] = ()) -> None:
        self.answers = {4: tuple(v4), 6: tuple(v6)}
        self.calls: list[tuple[str, Family]] = []

    async def __call__(self, hostname: str, family: Family) -> Sequence[str]:
        self.calls.append((hostname, family))
        return self.answers[family]


class Recorder:
    """An httpx.MockTransport factory that records every request and answers with ``reply``."""

    def __init__(self, reply: httpx.Response | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.reply = reply or httpx.Response(
            200, headers={"Content-Type": "application/json"}, content=b"{}"
        )

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(
            self.reply.status_code, headers=self.reply.headers, content=self.reply.content
        )

    def __call__(self) -> httpx.AsyncBaseTransport:
        return httpx.MockTransport(self.handle)


def fetcher(
    resolver: FakeResolver, recorder: Recorder, *, allow_loopback: bool = False
) -> GuardedFetcher:
    return GuardedFetcher(
        resolver=resolver, allow_loopback=allow_loopback, transport_factory=recorder
    )


# --- the address table (CIMD-19..24) ----------------------------------------------------------

BLOCKED_V4 = [
    "127.0.0.1", "10.0.0.1", "172.16.5.5", "172.31.255.255", "192.168.1.1", "169.254.1.1",
    "100.64.0.1", UNSPECIFIED, "0.1.2.3", "224.0.0.1", "239.255.255.255", "240.0.0.1",
    "255.255.255.255", "192.0.2.1", "198.18.0.1", "198.51.100.7", "203.0.113.9", "192.88.99.1",
    "192.0.0.8",
]


@pytest.mark.parametrize("ip", BLOCKED_V4)
def test_ipv4_special_use_samples_are_blocked(ip: str) -> None:
    """CIMD-19."""
    assert is_blocked(ip)


@pytest.mark.parametrize("ip", ["::1", "::", "fc00::1", "fd00::1", "fe80::1", "ff02::1",
                                "2001:db8::1", "fe80::1%eth0"])
def test_ipv6_special_use_samples_are_blocked(ip: str) -> None:
    """CIMD-20."""
    assert is_blocked(ip)


@pytest.mark.parametrize(
    ("ip", "blocked"),
    [
        ("2001:0:4136:e378:8000:63bf:a9fe:a9fe", True),  # Teredo
        ("2001:20::1", True),  # ORCHIDv2
        ("2001:2f::1", True),
        ("2001:1::1", False),  # just below Teredo's neighbours, globally reachable per IANA
        ("2001:30::1", False),  # just above ORCHIDv2
        ("2001:4860:4860::8888", False),
    ],
)
def test_teredo_and_orchid_are_blocked_and_their_neighbours_pass(ip: str, blocked: bool) -> None:
    """CIMD-21."""
    assert is_blocked(ip) is blocked


@pytest.mark.parametrize("ip", ["::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254"])
def test_ipv4_mapped_special_use_is_blocked(ip: str) -> None:
    """CIMD-22."""
    assert is_blocked(ip)


@pytest.mark.parametrize(
    "ip",
    [
        "64:ff9b::a9fe:a9fe",  # NAT64 well-known prefix, 169.254.169.254
        "64:ff9b:1:a9fe:a9:fe00::",  # NAT64 local use, RFC 6052 /48 layout
        "64:ff9b::7f00:1",  # NAT64 of loopback
        "64:ff9b:1:7f00:0:100::",  # NAT64 local use of 127.0.0.1
        "2002:a9fe:a9fe::",  # 6to4
        "2002:7f00:1::1",  # 6to4 of loopback
        "::a9fe:a9fe",  # IPv4-compatible
        "::7f00:1",
    ],
)
def test_embedded_special_use_ipv4_is_blocked(ip: str) -> None:
    """CIMD-23."""
    assert is_blocked(ip)


@pytest.mark.parametrize(
    "ip",
    [
        "93.184.216.34",
        "8.8.8.8",
        "2606:2800:220:1:248:1893:25c8:1946",
        "::ffff:93.184.216.34",
        "64:ff9b::5db8:d822",  # NAT64 of 93.184.216.34
        "64:ff9b:1:5db8:d8:2200::",  # NAT64 local use of 93.184.216.34
        "2002:5db8:d822::1",  # 6to4 of 93.184.216.34
    ],
)
def test_public_addresses_pass(ip: str) -> None:
    """CIMD-24."""
    assert not is_blocked(ip)


def test_allow_loopback_exempts_only_loopback() -> None:
    """CIMD-28 (table part): 127/8, ::1 and ::ffff:127.x pass; nothing else changes."""
    for ip in ("127.0.0.1", "127.255.0.9", "::1", "::ffff:127.0.0.1"):
        assert not is_blocked(ip, allow_loopback=True)
    for ip in ("10.0.0.1", UNSPECIFIED, "::", "169.254.1.1", "64:ff9b::7f00:1", "2002:7f00:1::",
               "::7f00:1", "fe80::1"):
        assert is_blocked(ip, allow_loopback=True)


def test_a_string_that_is_no_address_is_a_caller_error() -> None:
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6"):
        is_blocked("app.example")


# --- screening through the fetcher (CIMD-25..28) ----------------------------------------------


@pytest.mark.parametrize(
    ("v4", "v6", "reported"),
    [
        (["127.0.0.1"], [], "127.0.0.1"),
        (["10.1.2.3"], [], "10.1.2.3"),
        (["169.254.169.254"], [], "169.254.169.254"),
        (["100.64.0.1"], [], "100.64.0.1"),
        ([UNSPECIFIED], [], UNSPECIFIED),
        ([], ["::ffff:127.0.0.1"], "::ffff:7f00:1"),
        (["93.184.216.34"], ["::1"], "::1"),  # mixed answer: refused as a whole
        (["93.184.216.34", "10.0.0.1"], [], "10.0.0.1"),
        (["10.0.0.1"], ["fc00::1"], "10.0.0.1"),  # IPv4 reported first
    ],
)
async def test_fetch_refuses_when_any_resolved_address_is_blocked(
    v4: list[str], v6: list[str], reported: str
) -> None:
    """CIMD-25: the first blocked address is reported and no request is made."""
    resolver, recorder = FakeResolver(v4, v6), Recorder()
    outcome = await fetcher(resolver, recorder).get_json(
        "https://app.example/client.json", max_bytes=CAP, timeout_seconds=TIMEOUT
    )
    assert outcome == BlockedIp(reported)
    assert recorder.requests == []


async def test_a_resolver_answer_that_is_no_address_is_refused() -> None:
    resolver, recorder = FakeResolver(["not-an-ip"]), Recorder()
    outcome = await fetcher(resolver, recorder).get_json(
        "https://app.example/c", max_bytes=CAP, timeout_seconds=TIMEOUT
    )
    assert isinstance(outcome, BlockedIp)
    assert recorder.requests == []


async def test_an_ip_literal_host_is_screened_without_resolving() -> None:
    resolver, recorder = FakeResolver(["93.184.216.34"]), Recorder()
    for url in ("https://169.254.169.254/latest", "https://[::ffff:127.0.0.1]/x",
                "https://[64:ff9b::a9fe:a9fe]/x"):
        outcome = await fetcher(resolver, recorder).get_json(
            url, max_bytes=CAP, timeout_seconds=TIMEOUT
        )
        assert isinstance(outcome, BlockedIp), url
    assert resolver.calls == []
    assert recorder.requests == []


async def test_empty_resolver_answer_is_unresolvable() -> None:
    """CIMD-26."""
    resolver, recorder = FakeResolver(), Recorder()
    outcome = await fetcher(resolver, recorder).get_json(
        "https://app.example/c", max_bytes=CAP, timeout_seconds=TIMEOUT
    )
    assert outcome == Unresolvable("app.example")
    assert resolver.calls == [("app.example", 4), ("app.example", 6)]
    assert recorder.requests == []


async def test_a_failing_family_counts_as_empty() -> None:
    """Spec §5.2 step 2: an exception in one family does not stop the other."""
    calls: list[Family] = []

    async def resolver(hostname: str, family: Family) -> Sequence[str]:
        calls.append(family)
        if family == 6:
            raise OSError("no AAAA")
        return ["93.184.216.34"]

    recorder = Recorder()
    outcome = await GuardedFetcher(resolver=resolver, transport_factory=recorder).get_json(
        "https://app.example/c", max_bytes=CAP, timeout_seconds=TIMEOUT
    )
    assert isinstance(outcome, Fetched)
    assert calls == [4, 6]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://app.example/client.json", "not_https"),
        ("ftp://app.example/client.json", "not_https"),
        ("https://user:pw@app.example/client.json", "has_userinfo"),
        ("https://app.example:99999/x", "not_a_url"),
        ("https:///nohost", "no_host"),
    ],
)
async def test_unfetchable_urls_are_refused_before_resolving(url: str, reason: str) -> None:
    """CIMD-27 (http) and the other URL refusals: nothing is resolved or requested."""
    resolver, recorder = FakeResolver(["93.184.216.34"]), Recorder()
    outcome = await fetcher(resolver, recorder).get_json(
        url, max_bytes=CAP, timeout_seconds=TIMEOUT
    )
    assert outcome == InvalidUrl(reason)  # type: ignore[arg-type]
    assert resolver.calls == []
    assert recorder.requests == []


async def test_allow_loopback_permits_127_0_0_1_only() -> None:
    """CIMD-28."""
    loop_resolver, recorder = FakeResolver(["127.0.0.1"]), Recorder()
    ok = await fetcher(loop_resolver, recorder, allow_loopback=True).get_json(
        "https://localhost.test/c", max_bytes=CAP, timeout_seconds=TIMEOUT
    )
    assert isinstance(ok, Fetched)
    assert ok.ip == "127.0.0.1"
    private_resolver = FakeResolver(["10.0.0.1"])
    refused = await fetcher(private_resolver, recorder, allow_loopback=True).get_json(
        "https://intranet.test/c", max_bytes=CAP, timeout_seconds=TIMEOUT
    )
    assert refused == BlockedIp("10.0.0.1")
    assert len(recorder.requests) == 1


async def test_http_for_loopback_needs_the_test_switch_and_a_loopback_answer() -> None:
    resolver = FakeResolver(["127.0.0.1"])
    assert await screen("http://app.test/c", resolver=resolver, allow_loopback=True) == InvalidUrl(
        "not_https"
    )
    screened = await screen(
        "http://app.test:8080/c", resolver=resolver, allow_loopback=True, allow_http_loopback=True
    )
    assert isinstance(screened, Screened)
    assert screened.authority == "app.test:8080"
    public = FakeResolver(["93.184.216.34"])
    refused = await screen(
        "http://app.test/c", resolver=public, allow_loopback=True, allow_http_loopback=True
    )
    assert refused == InvalidUrl("not_https")


async def test_screen_reports_host_and_authority() -> None:
    resolver = FakeResolver(["93.184.216.34"], ["2606:2800:220:1:248:1893:25c8:1946"])
    default_port = await screen("https://App.Example:443/c?x=1", resolver=resolver)
    assert isinstance(default_port, Screened)
    assert (str(default_port.ip), default_port.hostname, default_port.authority) == (
        "93.184.216.34", "app.example", "app.example",
    )
    other_port = await screen("https://app.example:8443/c", resolver=resolver)
    assert isinstance(other_port, Screened)
    assert other_port.authority == "app.example:8443"
    v6_only = await screen("https://[2606:2800:220:1:248:1893:25c8:1946]:8443/c")
    assert isinstance(v6_only, Screened)
    assert v6_only.authority == "[2606:2800:220:1:248:1893:25c8:1946]:8443"


# --- the pinned request (CIMD-34, CIMD-35) ----------------------------------------------------


async def test_fetch_connects_to_the_resolved_ip_and_resolves_once_per_family() -> None:
    """CIMD-35 and CIMD-34: the URL host is the checked IP; Host and SNI stay the name."""
    resolver = FakeResolver(["93.184.216.34"], ["2606:2800:220:1:248:1893:25c8:1946"])
    recorder = Recorder(
        httpx.Response(
            200,
            headers={"Content-Type": "application/json",
                     "Cache-Control": "max-age=600, no-cache"},
            content=b'{"client_id": "https://app.example/client.json"}',
        )
    )
    outcome = await fetcher(resolver, recorder).get_json(
        "https://app.example/client.json#frag", max_bytes=CAP, timeout_seconds=TIMEOUT
    )
    assert isinstance(outcome, Fetched)
    assert resolver.calls == [("app.example", 4), ("app.example", 6)]
    (request,) = recorder.requests
    assert request.url.host == "93.184.216.34"
    assert request.url.path == "/client.json"
    assert request.url.fragment == ""
    assert request.headers["Host"] == "app.example"
    assert request.headers["Accept"] == "application/json"
    assert request.extensions["sni_hostname"] == "app.example"
    directives = outcome.cache_directives()
    assert (directives.max_age, directives.no_cache) == (600, True)
    assert outcome.ip == "93.184.216.34"


async def test_an_ipv6_only_name_is_pinned_to_its_aaaa_address() -> None:
    resolver = FakeResolver([], ["2606:2800:220:1:248:1893:25c8:1946"])
    recorder = Recorder()
    outcome = await fetcher(resolver, recorder).get_json(
        "https://app.example:8443/c", max_bytes=CAP, timeout_seconds=TIMEOUT
    )
    assert isinstance(outcome, Fetched)
    (request,) = recorder.requests
    assert request.url.host == "2606:2800:220:1:248:1893:25c8:1946"
    assert request.url.port == 8443
    assert request.headers["Host"] == "app.example:8443"


# --- fetch behaviour against a real local server (CIMD-29..34) --------------------------------


def local_fetcher(**options: object) -> GuardedFetcher:
    resolver = FakeResolver(["127.0.0.1"])
    return GuardedFetcher(
        resolver=resolver, allow_loopback=True, allow_http_loopback=True, **options  # type: ignore[arg-type]
    )


async def test_status_404_is_a_status_failure() -> None:
    """CIMD-29."""
    async with local_server({}) as server:
        outcome = await local_fetcher().get_json(
            f"http://app.test:{server.port}/missing", max_bytes=CAP, timeout_seconds=TIMEOUT
        )
    assert outcome == UnexpectedStatus(404)


async def test_redirect_is_not_followed() -> None:
    """CIMD-30."""
    replies = {"/moved": Reply(302, (("Location", "/doc"),), b""), "/doc": Reply()}
    async with local_server(replies) as server:
        outcome = await local_fetcher().get_json(
            f"http://app.test:{server.port}/moved", max_bytes=CAP, timeout_seconds=TIMEOUT
        )
        assert outcome == UnexpectedStatus(302)
        assert [seen.target for seen in server.seen] == ["/moved"]


@pytest.mark.parametrize("content_type", ["text/html", "text/json", "application/jsonx", None])
async def test_non_json_content_type_is_refused(content_type: str | None) -> None:
    """CIMD-31."""
    headers = () if content_type is None else (("Content-Type", content_type),)
    async with local_server({"/doc": Reply(headers=headers)}) as server:
        outcome = await local_fetcher().get_json(
            f"http://app.test:{server.port}/doc", max_bytes=CAP, timeout_seconds=TIMEOUT
        )
    assert outcome == BadContentType(content_type)


@pytest.mark.parametrize(
    "content_type",
    ["application/cimd+json", "application/json; charset=utf-8", " Application/JSON "],
)
async def test_json_media_types_are_accepted(content_type: str) -> None:
    """CIMD-32."""
    body = json.dumps({"client_id": "x"}).encode()
    reply = Reply(headers=(("Content-Type", content_type),), body=body)
    async with local_server({"/doc": reply}) as server:
        outcome = await local_fetcher().get_json(
            f"http://app.test:{server.port}/doc", max_bytes=CAP, timeout_seconds=TIMEOUT
        )
    assert isinstance(outcome, Fetched)
    assert outcome.body == body


@pytest.mark.parametrize("send_length", [True, False])
async def test_a_body_over_the_cap_is_too_large(send_length: bool) -> None:
    """CIMD-33: 6000 bytes against a 5120-byte cap, with or without Content-Length."""
    reply = Reply(body=b"x" * 6_000, send_length=send_length)
    async with local_server({"/doc": reply}) as server:
        outcome = await local_fetcher().get_json(
            f"http://app.test:{server.port}/doc", max_bytes=CAP, timeout_seconds=TIMEOUT
        )
    assert outcome == TooLarge(CAP)


async def test_a_body_of_exactly_the_cap_is_accepted() -> None:
    reply = Reply(body=b"x" * CAP, send_length=False)
    async with local_server({"/doc": reply}) as server:
        outcome = await local_fetcher().get_json(
            f"http://app.test:{server.port}/doc", max_bytes=CAP, timeout_seconds=TIMEOUT
        )
    assert isinstance(outcome, Fetched)
    assert len(outcome.body) == CAP


async def test_request_carries_accept_and_host_with_port() -> None:
    """CIMD-34 against a real server: Host is ``host:port``, Accept is JSON, body identity."""
    reply = Reply(headers=(("Content-Type", "application/json"),
                           ("Cache-Control", "max-age=600, no-cache")))
    async with local_server({"/client.json": reply}) as server:
        outcome = await local_fetcher().get_json(
            f"http://app.test:{server.port}/client.json?v=1", max_bytes=CAP,
            timeout_seconds=TIMEOUT,
        )
        (seen,) = server.seen
    assert isinstance(outcome, Fetched)
    assert seen.method == "GET"
    assert seen.target == "/client.json?v=1"
    assert seen.headers["host"] == f"app.test:{server.port}"
    assert seen.headers["accept"] == "application/json"
    assert seen.headers["accept-encoding"] == "identity"
    assert (outcome.cache_directives().max_age, outcome.cache_directives().no_cache) == (600, True)


async def test_an_encoded_body_is_refused() -> None:
    reply = Reply(headers=(("Content-Type", "application/json"), ("Content-Encoding", "gzip")))
    async with local_server({"/doc": reply}) as server:
        outcome = await local_fetcher().get_json(
            f"http://app.test:{server.port}/doc", max_bytes=CAP, timeout_seconds=TIMEOUT
        )
    assert outcome == BadContentType("content-encoding gzip")


async def test_slow_trickle_hits_the_overall_deadline() -> None:
    """Each byte arrives well within the read timeout, but the whole fetch takes too long."""
    reply = Reply(body=b"x" * 40, trickle=0.05)
    async with local_server({"/doc": reply}) as server:
        outcome = await local_fetcher().get_json(
            f"http://app.test:{server.port}/doc", max_bytes=CAP, timeout_seconds=1.0,
            deadline_seconds=0.5,
        )
    assert outcome == TransportFailure("deadline")


async def test_connection_refused_is_a_transport_failure() -> None:
    async with local_server({}) as server:
        port = server.port
    outcome = await local_fetcher().get_json(
        f"http://app.test:{port}/doc", max_bytes=CAP, timeout_seconds=TIMEOUT
    )
    assert isinstance(outcome, TransportFailure)


async def test_form_post_delivers_fields_and_accepts_any_2xx() -> None:
    """The logout-delivery shape: POST form body, 2xx success, others a status failure."""
    replies = {"/logout": Reply(204, (), b""), "/broken": Reply(500, (), b"")}
    async with local_server(replies) as server:
        base = f"http://app.test:{server.port}"
        ok = await local_fetcher().post_form(
            f"{base}/logout", [("logout_token", "a.b+c/=")], max_bytes=CAP,
            timeout_seconds=TIMEOUT,
        )
        failed = await local_fetcher().post_form(
            f"{base}/broken", [("logout_token", "x")], max_bytes=CAP, timeout_seconds=TIMEOUT
        )
        first = server.seen[0]
    assert isinstance(ok, Fetched)
    assert ok.status == 204
    assert failed == UnexpectedStatus(500)
    assert first.method == "POST"
    assert first.headers["content-type"] == "application/x-www-form-urlencoded"
    assert first.body == b"logout_token=a.b%2Bc%2F%3D"


# --- TLS: SNI and certificate on the hostname, socket on the IP -------------------------------


async def test_tls_uses_the_hostname_for_sni_and_certificate_while_connecting_to_the_ip() -> None:
    tls = tls_for("app.example")
    async with local_server({"/doc": Reply()}, tls=tls.server) as server:
        guarded = GuardedFetcher(
            resolver=FakeResolver(["127.0.0.1"]), allow_loopback=True, ssl_context=tls.client
        )
        outcome = await guarded.get_json(
            f"https://app.example:{server.port}/doc", max_bytes=CAP, timeout_seconds=TIMEOUT
        )
        (seen,) = server.seen
    assert isinstance(outcome, Fetched)
    assert outcome.ip == "127.0.0.1"
    assert seen.sni == "app.example"
    assert seen.headers["host"] == f"app.example:{server.port}"


async def test_tls_certificate_for_another_name_is_a_transport_failure() -> None:
    tls = tls_for("other.example")
    async with local_server({"/doc": Reply()}, tls=tls.server) as server:
        guarded = GuardedFetcher(
            resolver=FakeResolver(["127.0.0.1"]), allow_loopback=True, ssl_context=tls.client
        )
        outcome = await guarded.get_json(
            f"https://app.example:{server.port}/doc", max_bytes=CAP, timeout_seconds=TIMEOUT
        )
        assert server.seen == []
    assert isinstance(outcome, TransportFailure)


async def test_with_loopback_admits_http_to_loopback_only_and_false_keeps_the_guard() -> None:
    resolver = FakeResolver(["127.0.0.1"])
    strict = GuardedFetcher(resolver=resolver)
    assert strict.with_loopback(False) is strict
    async with local_server({"/doc": Reply()}) as server:
        url = f"http://app.test:{server.port}/doc"
        refused = await strict.get_json(url, max_bytes=CAP, timeout_seconds=TIMEOUT)
        fetched = await strict.with_loopback(True).get_json(
            url, max_bytes=CAP, timeout_seconds=TIMEOUT
        )
        assert [seen.target for seen in server.seen] == ["/doc"]
    assert isinstance(refused, InvalidUrl)
    assert isinstance(fetched, Fetched)
    private = GuardedFetcher(resolver=FakeResolver(["10.0.0.5"])).with_loopback(True)
    outcome = await private.get_json("http://app.test/doc", max_bytes=CAP, timeout_seconds=TIMEOUT)
    assert isinstance(outcome, InvalidUrl | BlockedIp)


def test_default_tls_context_is_built_once_and_verifies() -> None:
    context = default_tls()
    assert default_tls() is context
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
