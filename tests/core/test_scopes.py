"""Scope parsing and formatting (RFC 6749 §3.3)."""

from __future__ import annotations

import pytest

from authward.core.errors import InvalidScopeError
from authward.core.scopes import format_scopes, is_scope_token, is_subset, missing, parse


def test_parse_splits_on_spaces_keeping_order() -> None:
    assert parse("openid profile email") == ("openid", "profile", "email")


def test_parse_drops_duplicates_keeping_first_occurrence() -> None:
    assert parse("b a b c a") == ("b", "a", "c")


def test_absent_or_empty_scope_is_empty() -> None:
    assert parse(None) == ()
    assert parse("") == ()


def test_scope_token_charset_edges_are_accepted() -> None:
    """scope-token = 1*( %x21 / %x23-5B / %x5D-7E )."""
    token = "!#[]~" + "https://api.example/read"
    assert parse(token) == (token,)


@pytest.mark.parametrize(
    "value",
    [
        'a "b"',  # %x22 is excluded
        "a\\b",  # %x5C is excluded
        " a",  # leading space
        "a ",  # trailing space
        "a  b",  # doubled space
        "a\tb",  # tab is not the delimiter
        "a\nb",
        "é",
    ],
)
def test_malformed_scope_is_invalid_scope(value: str) -> None:
    with pytest.raises(InvalidScopeError):
        parse(value)


def test_format_joins_with_single_spaces_and_dedupes() -> None:
    assert format_scopes(["openid", "profile", "openid"]) == "openid profile"
    assert format_scopes([]) == ""


def test_format_refuses_non_tokens() -> None:
    with pytest.raises(ValueError, match="scope-token"):
        format_scopes(["ok", "not ok"])


def test_format_gives_the_same_answer_for_a_tuple_every_time() -> None:
    """Tuples are remembered (a refusal never is): same string, same refusal, each call."""
    for _ in range(2):
        assert format_scopes(("b", "a", "b")) == "b a"
        assert format_scopes(iter(["b", "a"])) == "b a"
        with pytest.raises(ValueError, match="scope-token"):
            format_scopes(("ok", "not ok"))


def test_parse_and_format_round_trip() -> None:
    value = "openid offline_access api:read"
    assert format_scopes(parse(value)) == value


def test_subset_ignores_order() -> None:
    assert is_subset(("profile", "openid"), ("openid", "email", "profile"))
    assert is_subset((), ("openid",))
    assert not is_subset(("openid", "admin"), ("openid",))


def test_missing_lists_ungranted_tokens_in_request_order() -> None:
    assert missing(("c", "a", "b", "c"), ("a",)) == ("c", "b")


def test_is_scope_token() -> None:
    assert is_scope_token("a")
    assert not is_scope_token("")
    assert not is_scope_token("a b")
