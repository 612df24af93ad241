"""Redirect URI matching and building (RFC 6749 §3.1.2, RFC 8252 §7.3/§8.3)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest

from authward.core.errors import InvalidRequestError
from authward.core.redirects import append_params, check_syntax, is_loopback, resolve

REGISTERED = ("https://client.example/cb", "https://client.example/cb2?tenant=a")


def test_exact_registered_uri_is_returned() -> None:
    assert resolve("https://client.example/cb", REGISTERED) == "https://client.example/cb"
    assert resolve(REGISTERED[1], REGISTERED) == REGISTERED[1]


@pytest.mark.parametrize(
    "requested",
    [
        "https://client.example/cb/",  # trailing slash
        "https://CLIENT.example/cb",  # case differs: still not the same string
        "https://client.example/cb?x=1",  # extra query
        "https://client.example/cb2",  # missing query
        "https://client.example:443/cb",  # explicit default port
        "http://client.example/cb",
        "https://client.example/c",
    ],
)
def test_anything_but_the_exact_string_is_refused(requested: str) -> None:
    """OAuth 2.1 §2.3.1: exact string matching."""
    with pytest.raises(InvalidRequestError):
        resolve(requested, REGISTERED)


def test_fragment_is_refused_even_when_registered() -> None:
    """RFC 6749 §3.1.2: no fragment."""
    with pytest.raises(InvalidRequestError, match="fragment"):
        resolve("https://client.example/cb#x", ("https://client.example/cb#x",))


def test_omitted_redirect_uri_uses_the_single_registration() -> None:
    """RFC 6749 §3.1.2.3."""
    assert resolve(None, ("https://only.example/cb",)) == "https://only.example/cb"


def test_omitted_redirect_uri_with_several_registrations_is_refused() -> None:
    with pytest.raises(InvalidRequestError):
        resolve(None, REGISTERED)
    with pytest.raises(InvalidRequestError):
        resolve(None, ())


@pytest.mark.parametrize(
    ("registered", "requested"),
    [
        ("http://127.0.0.1/cb", "http://127.0.0.1:51004/cb"),
        ("http://127.0.0.1:8080/cb", "http://127.0.0.1:51004/cb"),
        ("http://[::1]/cb", "http://[::1]:61000/cb"),
        ("http://127.0.0.1:1/cb?x=1", "http://127.0.0.1:2/cb?x=1"),
    ],
)
def test_native_loopback_ip_matches_any_port(registered: str, requested: str) -> None:
    """RFC 8252 §7.3."""
    assert resolve(requested, (registered,), native=True) == requested


def test_loopback_port_exception_is_for_native_clients_only() -> None:
    with pytest.raises(InvalidRequestError):
        resolve("http://127.0.0.1:51004/cb", ("http://127.0.0.1/cb",), native=False)


@pytest.mark.parametrize(
    ("registered", "requested"),
    [
        ("http://localhost/cb", "http://localhost:51004/cb"),  # RFC 8252 §8.3: not localhost
        ("http://127.0.0.1/cb", "http://127.0.0.1:51004/other"),  # path differs
        ("http://127.0.0.1/cb", "http://[::1]:51004/cb"),  # other loopback literal
        ("http://127.0.0.1/cb", "https://127.0.0.1:51004/cb"),  # scheme differs
        ("http://127.0.0.1/cb", "http://127.0.0.1:51004/cb?x=1"),  # query differs
        ("http://127.0.0.1/cb", "http://user@127.0.0.1:51004/cb"),  # userinfo
        ("http://127.0.0.1/cb", "http://127.0.0.1:99999/cb"),  # not a port
        ("http://127.0.0.2/cb", "http://127.0.0.2:5/cb"),  # only the two literals
        ("http://127.0.0.1/cb", "http://127.0.0.1:0/cb"),  # port 0: nothing listens there
        ("http://127.0.0.1/cb", "http://127.0.0.1:080/cb"),  # leading zero
        ("http://[::1]/cb", "http://[::1]:00443/cb"),  # leading zeros after an IPv6 literal
        ("http://127.0.0.1/cb", "http://127.0.0.1:/cb"),  # empty port
    ],
)
def test_loopback_exception_does_not_stretch(registered: str, requested: str) -> None:
    with pytest.raises(InvalidRequestError):
        resolve(requested, (registered,), native=True)


def test_localhost_still_matches_exactly() -> None:
    uri = "http://localhost:3000/cb"
    assert resolve(uri, (uri,), native=True) == uri


def test_is_loopback() -> None:
    assert is_loopback("http://127.0.0.1:1/x")
    assert is_loopback("http://[::1]/x")
    assert not is_loopback("http://localhost/x")
    assert not is_loopback("https://127.0.0.1/x")


@pytest.mark.parametrize(
    "uri", ["/relative/cb", "cb", "https://a.example/c b", "https://a.example/\x00", "x:"]
)
def test_syntax_check_refuses_relative_or_broken_uris(uri: str) -> None:
    with pytest.raises(InvalidRequestError):
        check_syntax(uri)


def test_private_use_scheme_is_accepted_syntactically() -> None:
    """RFC 8252 §7.1."""
    check_syntax("com.example.app:/oauth2redirect")


def test_append_params_keeps_the_existing_query() -> None:
    uri = append_params("https://c.example/cb?tenant=a&x=", [("code", "abc"), ("state", "s")])
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "c.example", "/cb")
    assert parse_qsl(parts.query, keep_blank_values=True) == [
        ("tenant", "a"),
        ("x", ""),
        ("code", "abc"),
        ("state", "s"),
    ]


def test_append_params_encodes_reserved_characters() -> None:
    uri = append_params("https://c.example/cb", [("state", "a&b=c d/é"), ("iss", "https://as")])
    assert uri.startswith("https://c.example/cb?state=")
    assert "#" not in uri
    assert parse_qsl(urlsplit(uri).query) == [("state", "a&b=c d/é"), ("iss", "https://as")]


def test_append_params_without_query_or_params() -> None:
    assert append_params("https://c.example/cb", []) == "https://c.example/cb"
    assert append_params("https://c.example/cb?", [("a", "1")]) == "https://c.example/cb?a=1"


def test_append_params_refuses_a_fragment() -> None:
    with pytest.raises(ValueError, match="fragment"):
        append_params("https://c.example/cb#f", [("a", "1")])
