"""The one ``resource`` parser every endpoint uses.

Spec: RFC 8707 §2 (absolute URI without a fragment, may repeat, ``invalid_target``); RFC 3986
§4.3 (a URN is an absolute URI); RFC 6749 §3.1 (an empty parameter counts as omitted).
"""

from __future__ import annotations

import pytest

from authward.core.errors import InvalidTargetError
from authward.core.resource_indicators import (
    MAX_RESOURCE_CHARS,
    MAX_RESOURCES,
    parse_resources,
)


@pytest.mark.parametrize(
    "value",
    [
        "https://api.example.com",
        "https://api.example.com/v1?tenant=a",
        "urn:example:api",
        "urn:ietf:params:oauth:resource:x",
        "http://127.0.0.1:8080/",
        "custom+scheme:thing",
    ],
)
def test_absolute_uris_are_accepted(value: str) -> None:
    assert parse_resources([value]) == (value,)


@pytest.mark.parametrize(
    "value",
    [
        "api.example.com",
        "/relative/path",
        "https://api.example.com/#frag",
        "urn:example:api#frag",
        "https://",
        "https:// api.example.com",
        "1http://x",
        "urn:",
        "https://api.example.com/\u00e9",
    ],
)
def test_values_that_are_not_absolute_uris_without_fragment_are_invalid_target(
    value: str,
) -> None:
    with pytest.raises(InvalidTargetError):
        parse_resources([value])


def test_duplicates_collapse_in_order_and_empty_values_are_omitted() -> None:
    assert parse_resources(["urn:b", "", "https://a.example", "urn:b"]) == (
        "urn:b",
        "https://a.example",
    )
    assert parse_resources([]) == ()
    assert parse_resources([""]) == ()


def test_limits_on_count_and_length() -> None:
    many = [f"urn:example:{i}" for i in range(MAX_RESOURCES)]
    assert parse_resources(many) == tuple(many)
    with pytest.raises(InvalidTargetError, match="too many"):
        parse_resources([*many, "urn:example:one-more"])
    longest = "urn:x:" + "a" * (MAX_RESOURCE_CHARS - 6)
    assert parse_resources([longest]) == (longest,)
    with pytest.raises(InvalidTargetError, match="too long"):
        parse_resources([longest + "a"])
