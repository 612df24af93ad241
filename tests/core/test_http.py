"""Request/response values and the error-to-response helpers."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest

from authward.core.errors import (
    AccessDeniedError,
    BearerChallenge,
    DPoPChallenge,
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    UseDPoPNonceError,
)
from authward.core.http import (
    Headers,
    MultiDict,
    Request,
    Response,
    challenge_response,
    error_redirect,
    error_response,
    json_response,
    redirect_response,
)


def test_header_names_are_case_insensitive_and_repeats_kept() -> None:
    headers = Headers([("DPoP", "a"), ("Content-Type", "x"), ("dpop", "b")])
    assert headers.get("dpop") == "a"
    assert headers.get_all("DPOP") == ("a", "b")
    assert "content-type" in headers
    assert headers.get("missing") is None
    assert len(headers) == 3


def test_repeated_header_is_refused_where_one_is_required() -> None:
    """RFC 9449 §4.3: exactly one DPoP header."""
    with pytest.raises(InvalidRequestError):
        Headers([("DPoP", "a"), ("dpop", "b")]).get_one("DPoP")


def test_headers_added_returns_a_new_value() -> None:
    base = Headers([("A", "1")])
    more = base.added([("a", "2")])
    assert base.get_all("a") == ("1",)
    assert more.get_all("a") == ("1", "2")


def test_multidict_keeps_duplicates_in_order() -> None:
    params = MultiDict.parse("scope=a&client_id=c1&scope=b&empty=")
    assert params.get_all("scope") == ("a", "b")
    assert params.get("scope") == "a"
    assert params.repeated() == ("scope",)
    assert params.keys() == ("scope", "client_id", "empty")


def test_repeated_parameter_is_invalid_request() -> None:
    """RFC 6749 §3.1: parameters MUST NOT be included more than once."""
    params = MultiDict.parse("client_id=a&client_id=a")
    with pytest.raises(InvalidRequestError, match="client_id"):
        params.get_one("client_id")


def test_empty_parameter_counts_as_omitted() -> None:
    """RFC 6749 §3.1: a parameter without a value is treated as omitted."""
    params = MultiDict.parse("state=&scope")
    assert params.get_one("state") is None
    assert params.get_one("scope") is None
    assert params.get_one("absent") is None
    assert "state" in params


def test_multidict_decodes_form_encoding() -> None:
    params = MultiDict.parse("redirect_uri=https%3A%2F%2Fc%2Fcb%3Fa%3D1&scope=openid+email")
    assert params.get_one("redirect_uri") == "https://c/cb?a=1"
    assert params.get_one("scope") == "openid email"


def test_multidict_from_mapping() -> None:
    assert MultiDict({"a": "1"}).get_one("a") == "1"


def test_values_of_known_string_pairs_equal_the_checked_ones() -> None:
    pairs = (("Content-Type", "a"), ("X-Two", "1"), ("x-two", "2"))
    fast, checked = Headers.of_strings(pairs), Headers(pairs)
    assert fast == checked
    assert fast.get_all("X-TWO") == checked.get_all("x-two") == ("1", "2")
    params = (("scope", "a b"), ("resource", "r1"), ("resource", "r2"))
    assert MultiDict.of_strings(params) == MultiDict(params)
    assert MultiDict.of_strings(params).get_all("resource") == ("r1", "r2")
    assert MultiDict.of_strings(params).repeated() == ("resource",)
    with pytest.raises(TypeError):  # the checked constructor still refuses what is not text
        Headers(((b"x", "1"),))  # type: ignore[arg-type]


def test_request_build_parses_query_from_url() -> None:
    request = Request.build(
        "get",
        "https://as.example/authorize?response_type=code&scope=openid",
        headers=[("Host", "as.example")],
    )
    assert request.method == "GET"
    assert request.query.get_one("response_type") == "code"
    assert request.form.items == ()
    assert request.json is None
    assert request.headers.get("host") == "as.example"


def test_request_values_are_frozen() -> None:
    request = Request.build("POST", "https://as.example/token", form={"grant_type": "x"})
    with pytest.raises(AttributeError):
        request.method = "GET"  # type: ignore[misc]


def test_request_refuses_lower_case_method() -> None:
    with pytest.raises(ValueError, match="method"):
        Request(method="post", url="https://as.example/")


def test_error_response_renders_status_headers_and_body() -> None:
    response = error_response(InvalidGrantError("expired", detail="hash=zzz"))
    assert response.status == 400
    assert response.json == {"error": "invalid_grant", "error_description": "expired"}
    assert response.headers.get("cache-control") == "no-store"
    assert response.location is None
    assert "zzz" not in repr(response)


def test_error_response_for_basic_client_failure_is_401_with_challenge() -> None:
    response = error_response(InvalidClientError(basic_realm="as"))
    assert response.status == 401
    assert response.headers.get("www-authenticate") == 'Basic realm="as", error="invalid_client"'


def test_error_response_for_resource_nonce_error_carries_challenge_and_nonce() -> None:
    error = UseDPoPNonceError(nonce="n1", challenges=(DPoPChallenge(("ES256",)),))
    response = error_response(error)
    assert response.status == 401
    assert response.headers.get("DPoP-Nonce") == "n1"
    assert response.headers.get("WWW-Authenticate") == 'DPoP error="use_dpop_nonce", algs="ES256"'


def test_error_redirect_appends_error_state_and_issuer_to_existing_query() -> None:
    """RFC 6749 §4.1.2.1, RFC 9207 §2."""
    response = error_redirect(
        AccessDeniedError("denied", detail="user 42"),
        "https://c.example/cb?tenant=t",
        state="s&1",
        iss="https://as.example",
    )
    assert response.status == 302
    assert response.json is None
    assert response.location is not None
    parts = urlsplit(response.location)
    assert parts.netloc == "c.example"
    assert parse_qsl(parts.query) == [
        ("tenant", "t"),
        ("error", "access_denied"),
        ("error_description", "denied"),
        ("state", "s&1"),
        ("iss", "https://as.example"),
    ]
    assert "42" not in response.location


def test_challenge_response_has_no_error_code() -> None:
    """RFC 6750 §3.1: no credentials, no error code."""
    response = challenge_response([BearerChallenge("api"), DPoPChallenge(("ES256",))])
    assert response.status == 401
    assert response.headers.get_all("WWW-Authenticate") == (
        'Bearer realm="api"',
        'DPoP algs="ES256"',
    )
    assert response.json is None
    with pytest.raises(ValueError, match="challenge"):
        challenge_response([])


def test_json_response_is_no_store_by_default() -> None:
    response = json_response({"access_token": "t", "token_type": "Bearer"})
    assert response.headers.get("Cache-Control") == "no-store"
    assert json_response({}, no_store=False).headers.items == ()


def test_redirect_response_needs_a_location_and_3xx() -> None:
    assert redirect_response("https://c/cb", status=303).status == 303
    with pytest.raises(ValueError, match="3xx"):
        Response(status=200, location="https://c/cb")
    with pytest.raises(ValueError, match="not both"):
        Response(status=302, json={"a": 1}, location="https://c/cb")
    with pytest.raises(ValueError, match="status"):
        Response(status=1000)
