"""In-process failure limits: K failures per key and fixed window, bounded memory.

Spec: RFC 6749 §10.10; RFC 6819 §5.1.4.2.3.
"""

from __future__ import annotations

import pytest

from authward.core.failure_limits import FailureBudget, FailureLimiter

T0 = 60 * 16_667 + 20.0  # 20 s into a 60-second window


def test_the_kth_failure_spends_the_budget_until_the_window_ends() -> None:
    limiter = FailureLimiter(FailureBudget(max_failures=3, window_seconds=60))
    for _ in range(2):
        limiter.fail("web", T0)
        assert limiter.retry_after("web", T0) is None
    limiter.fail("web", T0)
    assert limiter.retry_after("web", T0) == 40
    assert limiter.retry_after("web", T0 + 39.5) == 1
    assert limiter.retry_after("other", T0) is None


def test_a_new_window_starts_from_zero() -> None:
    limiter = FailureLimiter(FailureBudget(max_failures=2, window_seconds=60))
    limiter.fail("web", T0)
    limiter.fail("web", T0)
    assert limiter.retry_after("web", T0) is not None
    assert limiter.retry_after("web", T0 + 40) is None  # the next window
    limiter.fail("web", T0 + 40)
    assert limiter.retry_after("web", T0 + 40) is None  # one failure in the new window
    limiter.fail("web", T0 + 41)
    assert limiter.retry_after("web", T0 + 41) == 59


def test_failures_in_an_earlier_window_do_not_add_up() -> None:
    limiter = FailureLimiter(FailureBudget(max_failures=2, window_seconds=60))
    limiter.fail("web", T0 + 39)  # the last second of one window
    limiter.fail("web", T0 + 40)  # the first of the next
    assert limiter.retry_after("web", T0 + 40) is None


def test_memory_is_bounded_and_the_least_recently_failed_key_goes_first() -> None:
    limiter = FailureLimiter(FailureBudget(max_failures=1, window_seconds=60), max_keys=3)
    for key in ("a", "b", "c"):
        limiter.fail(key, T0)
    assert limiter.retry_after("a", T0) is not None  # asking about a spent key keeps it
    limiter.fail("d", T0)
    assert len(limiter) == 3
    assert limiter.retry_after("b", T0) is None  # dropped
    assert all(limiter.retry_after(key, T0) is not None for key in ("a", "c", "d"))


def test_a_long_key_costs_a_fixed_size_entry() -> None:
    limiter = FailureLimiter(FailureBudget(max_failures=1, window_seconds=60))
    key = "x" * 10_000
    limiter.fail(key, T0)
    [entry] = list(limiter._counts)
    assert len(entry) == 16
    assert key.encode()[:16] != entry
    assert limiter.retry_after(key, T0) is not None


@pytest.mark.parametrize(("failures", "window"), [(0, 60), (3, 0), (True, 60), (3, 1.5)])
def test_a_bad_budget_is_refused(failures: object, window: object) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        FailureBudget(failures, window)  # type: ignore[arg-type]
