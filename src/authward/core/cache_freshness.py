"""How long a fetched CIMD document may be cached: header parsing and the clamped lifetime.

Spec: authward spec/stores.md §3.8 (freshness computation, header parsing rules), §5.2 (the
fetcher's directives), §6.9 CIMD-37; RFC 9111 §5.2 (Cache-Control), §5.3 (Expires);
RFC 9110 §5.6.7 (IMF-fixdate).

Deliberate deviations kept for parity: ``no-store`` and ``no-cache`` still cache for the
minimum bound (it caps outbound fetch fan-out), and only the IMF-fixdate form of ``Expires``
is understood (the obsolete RFC 850 and asctime forms count as unparseable).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

#: Default ``(min, max)`` cache lifetime in seconds (spec §8 ``cache_ttl_bounds``).
DEFAULT_TTL_BOUNDS: Final = (60, 86_400)

_MONTHS: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun",
                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_IMF_FIXDATE: Final = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), ([0-9]{2}) (" + "|".join(_MONTHS) + r") ([0-9]{4}) "
    r"([0-9]{2}):([0-9]{2}):([0-9]{2}) GMT",
    re.ASCII,
)
_INTEGER: Final = re.compile(r"[+-]?[0-9]+", re.ASCII)


@dataclass(frozen=True, slots=True)
class CacheDirectives:
    """The freshness inputs of one response (spec §5.2 "On success").

    ``max_age`` is ``None`` when absent or not entirely an integer (it may be negative);
    ``expires`` is the raw value of the first ``Expires`` header, or ``None``.
    """

    max_age: int | None = None
    no_store: bool = False
    no_cache: bool = False
    expires: str | None = None


def parse_cache_headers(
    cache_control: Iterable[str], expires: Iterable[str] = ()
) -> CacheDirectives:
    """Read the directives from every ``Cache-Control`` value and the ``Expires`` values.

    All ``Cache-Control`` values are joined with "," and split on ","; each directive is
    trimmed, lower-cased and split on its first "="; a repeated directive's last value wins.
    ``max-age`` counts only if its value is entirely an integer. Only the first ``Expires``
    value is kept.
    """
    directives: dict[str, str | None] = {}
    for part in ",".join(cache_control).split(","):
        item = part.strip().lower()
        if not item:
            continue
        name, sep, value = item.partition("=")
        directives[name] = value if sep else None
    raw_max_age = directives.get("max-age")
    max_age = (
        int(raw_max_age)
        if raw_max_age is not None and _INTEGER.fullmatch(raw_max_age)
        else None
    )
    first_expires = next(iter(expires), None)
    return CacheDirectives(
        max_age=max_age,
        no_store="no-store" in directives,
        no_cache="no-cache" in directives,
        expires=first_expires,
    )


def parse_imf_fixdate(value: str) -> int | None:
    """Unix seconds of an exact IMF-fixdate (``Sun, 06 Nov 1994 08:49:37 GMT``), else ``None``.

    Two-digit day, English month abbreviation, four-digit year, literal ``GMT``; surrounding
    whitespace is ignored. The day name is not checked against the date. Any other form
    (RFC 850, asctime, numeric zones) and impossible dates give ``None``.
    """
    match = _IMF_FIXDATE.fullmatch(value.strip())
    if match is None:
        return None
    day, month, year, hour, minute, second = match.groups()
    y, mo, d = int(year), _MONTHS.index(month) + 1, int(day)
    h, mi, s = int(hour), int(minute), int(second)
    if not (1 <= d <= calendar.monthrange(y, mo)[1] and h <= 23 and mi <= 59 and s <= 59):
        return None
    return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))


def raw_lifetime(directives: CacheDirectives, now: float) -> int:
    """The unclamped lifetime in whole seconds; the first matching rule wins.

    ``no-store`` -> 0; ``no-cache`` -> 0; ``max-age`` -> its value (may be negative);
    ``Expires`` -> whole seconds from ``now`` to that date (0 if unparseable, may be <= 0);
    otherwise 0.
    """
    if directives.no_store or directives.no_cache:
        return 0
    if directives.max_age is not None:
        return directives.max_age
    if directives.expires is not None:
        at = parse_imf_fixdate(directives.expires)
        return 0 if at is None else int(at - now)
    return 0


def cache_ttl(
    directives: CacheDirectives, now: float, bounds: tuple[int, int] = DEFAULT_TTL_BOUNDS
) -> int:
    """``raw_lifetime`` clamped to ``bounds`` (``(min, max)`` seconds, ``0 <= min <= max``)."""
    low, high = _check_bounds(bounds)
    return min(max(raw_lifetime(directives, now), low), high)


def cache_expires_at(
    directives: CacheDirectives, now: float, bounds: tuple[int, int] = DEFAULT_TTL_BOUNDS
) -> float:
    """``now + cache_ttl(...)``: the ``expires_at`` to hand to the cache's ``put``."""
    return now + cache_ttl(directives, now, bounds)


def _check_bounds(bounds: tuple[int, int]) -> tuple[int, int]:
    low, high = bounds
    for b in (low, high):
        if isinstance(b, bool) or not isinstance(b, int):
            raise ValueError(f"cache TTL bounds must be integers, got {bounds!r}")
    if not 0 <= low <= high:
        raise ValueError(f"cache TTL bounds must satisfy 0 <= min <= max, got {bounds!r}")
    return low, high
