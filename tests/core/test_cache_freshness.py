"""CIMD cache freshness: header parsing and the clamped lifetime (spec §3.8, CIMD-37)."""

from __future__ import annotations

import calendar

import pytest

from authward.core.cache_freshness import (
    DEFAULT_TTL_BOUNDS,
    CacheDirectives,
    cache_expires_at,
    cache_ttl,
    parse_cache_headers,
    parse_imf_fixdate,
    raw_lifetime,
)

NOW = 1_767_225_600.0  # Thu, 01 Jan 2026 00:00:00 GMT
IN_ONE_HOUR = "Thu, 01 Jan 2026 01:00:00 GMT"
AN_HOUR_AGO = "Wed, 31 Dec 2025 23:00:00 GMT"


def ttl_of(cache_control: list[str], expires: list[str] | None = None) -> int:
    return cache_ttl(parse_cache_headers(cache_control, expires or []), NOW)


def test_default_bounds_are_one_minute_to_one_day() -> None:
    assert DEFAULT_TTL_BOUNDS == (60, 86_400)


def test_no_store_uses_the_minimum_bound() -> None:
    """CIMD-37: no-store still caches for the minimum, even with a max-age."""
    assert ttl_of(["no-store"]) == 60
    assert ttl_of(["max-age=600, no-store"]) == 60


def test_no_cache_uses_the_minimum_bound() -> None:
    """CIMD-37."""
    assert ttl_of(["no-cache"]) == 60
    assert ttl_of(["max-age=600", "no-cache"]) == 60


def test_max_age_within_bounds_is_used() -> None:
    assert ttl_of(["max-age=600"]) == 600


def test_max_age_is_clamped_to_the_maximum() -> None:
    """CIMD-37."""
    assert ttl_of(["max-age=31536000"]) == 86_400


def test_small_and_negative_max_age_are_clamped_to_the_minimum() -> None:
    assert ttl_of(["max-age=5"]) == 60
    directives = parse_cache_headers(["max-age=-30"])
    assert directives.max_age == -30
    assert cache_ttl(directives, NOW) == 60


def test_past_expires_uses_the_minimum_bound() -> None:
    """CIMD-37."""
    directives = parse_cache_headers([], [AN_HOUR_AGO])
    assert raw_lifetime(directives, NOW) == -3600
    assert cache_ttl(directives, NOW) == 60


def test_future_expires_gives_the_seconds_until_then() -> None:
    assert ttl_of([], [IN_ONE_HOUR]) == 3600


def test_unparseable_expires_uses_the_minimum_bound() -> None:
    """CIMD-37."""
    assert ttl_of([], ["tomorrow"]) == 60
    assert raw_lifetime(parse_cache_headers([], ["0"]), NOW) == 0


def test_max_age_takes_precedence_over_expires() -> None:
    """CIMD-37."""
    assert ttl_of(["max-age=120"], [IN_ONE_HOUR]) == 120
    assert ttl_of(["max-age=120"], [AN_HOUR_AGO]) == 120


def test_no_headers_use_the_minimum_bound() -> None:
    assert ttl_of([]) == 60


def test_cache_expires_at_is_now_plus_the_clamped_ttl() -> None:
    assert cache_expires_at(parse_cache_headers(["max-age=600"]), NOW) == NOW + 600
    assert cache_expires_at(CacheDirectives(), NOW, (0, 10)) == NOW


def test_zero_bounds_allow_an_already_expired_entry() -> None:
    """Feeds CIMD-13: bounds (0, 86400) with max-age=0 give expires_at == now."""
    assert cache_ttl(parse_cache_headers(["max-age=0"]), NOW, (0, 86_400)) == 0


@pytest.mark.parametrize("bounds", [(100, 60), (-1, 60), (1.5, 60), (True, 60)])
def test_bad_bounds_raise(bounds: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="bounds"):
        cache_ttl(CacheDirectives(), NOW, bounds)


def test_directives_are_joined_across_headers_trimmed_and_lower_cased() -> None:
    d = parse_cache_headers(["  Max-Age=300 ", "NO-CACHE,,", " public"])
    assert d == CacheDirectives(max_age=300, no_cache=True)


def test_repeated_directive_last_value_wins() -> None:
    assert parse_cache_headers(["max-age=100, max-age=200"]).max_age == 200
    assert parse_cache_headers(["max-age=100", "max-age=oops"]).max_age is None


@pytest.mark.parametrize("value", ['"600"', "600s", "6e2", "", " 600", "1_000", "٦٠٠", "+-1"])
def test_max_age_must_be_entirely_an_integer(value: str) -> None:
    assert parse_cache_headers([f"max-age={value}"]).max_age is None


def test_max_age_allows_a_sign() -> None:
    assert parse_cache_headers(["max-age=+90"]).max_age == 90


def test_only_the_first_expires_header_counts() -> None:
    d = parse_cache_headers([], [AN_HOUR_AGO, IN_ONE_HOUR])
    assert d.expires == AN_HOUR_AGO
    assert cache_ttl(d, NOW) == 60


@pytest.mark.parametrize("ignored", ["s-maxage=9999", "private", "must-revalidate", "public"])
def test_other_directives_are_ignored(ignored: str) -> None:
    assert ttl_of([ignored, "max-age=300"]) == 300
    assert ttl_of([ignored]) == 60


def test_imf_fixdate_parses_to_unix_seconds() -> None:
    assert parse_imf_fixdate("Sun, 06 Nov 1994 08:49:37 GMT") == calendar.timegm(
        (1994, 11, 6, 8, 49, 37, 0, 0, 0)
    )
    assert parse_imf_fixdate(IN_ONE_HOUR) == NOW + 3600


@pytest.mark.parametrize(
    "value",
    [
        "Sunday, 06-Nov-94 08:49:37 GMT",  # RFC 850
        "Sun Nov  6 08:49:37 1994",  # asctime
        "Sun, 6 Nov 1994 08:49:37 GMT",  # one-digit day
        "Sun, 06 nov 1994 08:49:37 GMT",  # month case
        "Sun, 06 November 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 UTC",
        "Sun, 06 Nov 1994 08:49:37 +0000",
        "06 Nov 1994 08:49:37 GMT",
        "Sun, 31 Feb 1994 08:49:37 GMT",  # impossible date
        "Sun, 06 Nov 1994 24:00:00 GMT",
        "Sun, 06 Nov 1994 08:60:00 GMT",
        "Sun, 06 Nov 1994 08:49:37 GMT trailing",
        "",
    ],
)
def test_non_imf_fixdate_forms_are_unparseable(value: str) -> None:
    assert parse_imf_fixdate(value) is None
    assert ttl_of([], [value]) == 60
