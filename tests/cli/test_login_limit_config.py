"""The host file's ``[login]`` keys for the failed sign-in limit, read by load_host_config.

RFC 6819 §5.1.4.2.3 (lock accounts after failed attempts). Parsing only: the wired limit is
exercised over HTTP by tests/e2e/test_login_limit.py on both engines.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from authward.cli.wiring import load_host_config
from authward.core.attempt_limits import GrowingDelay
from authward.core.defaults import HostFileError


def host_file(tmp_path: Path, login: str) -> Path:
    config = tmp_path / "authward.toml"
    config.write_text(f'[login]\ncookie_secret = "{"c" * 40}"\n{login}\n', encoding="utf-8")
    return config


def test_defaults_are_ten_failures_per_fifteen_minutes(tmp_path: Path) -> None:
    host = load_host_config(host_file(tmp_path, ""))
    assert (host.max_failed_logins, host.failed_login_window_seconds) == (10, 900)
    empty = load_host_config(None)
    assert (empty.max_failed_logins, empty.failed_login_window_seconds) == (10, 900)


def test_the_growing_delay_defaults_to_two_free_failures_then_1_to_8_seconds(
    tmp_path: Path,
) -> None:
    assert load_host_config(host_file(tmp_path, "")).login_delay == GrowingDelay(2, 1.0, 8.0)
    assert load_host_config(None).login_delay == GrowingDelay(2, 1.0, 8.0)


def test_the_growing_delay_keys_are_read(tmp_path: Path) -> None:
    host = load_host_config(
        host_file(
            tmp_path,
            "free_failures = 0\nfailure_delay_seconds = 0.5\nmax_failure_delay_seconds = 30",
        )
    )
    assert host.login_delay == GrowingDelay(0, 0.5, 30.0)
    off = load_host_config(
        host_file(tmp_path, "failure_delay_seconds = 0\nmax_failure_delay_seconds = 0")
    )
    assert off.login_delay.seconds(100) == 0


def test_both_keys_are_read(tmp_path: Path) -> None:
    host = load_host_config(
        host_file(tmp_path, "max_failed_logins = 3\nfailed_login_window_seconds = 120")
    )
    assert (host.max_failed_logins, host.failed_login_window_seconds) == (3, 120)


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("max_failed_logins = 0", "max_failed_logins"),
        ("max_failed_logins = -1", "max_failed_logins"),
        ("max_failed_logins = 1001", "max_failed_logins"),
        ('max_failed_logins = "10"', "max_failed_logins"),
        ("max_failed_logins = true", "max_failed_logins"),
        ("max_failed_logins = 2.5", "max_failed_logins"),
        ("failed_login_window_seconds = 0", "failed_login_window_seconds"),
        ("failed_login_window_seconds = 1.5", "failed_login_window_seconds"),
        ('failed_login_window_seconds = "900"', "failed_login_window_seconds"),
        ("failed_login_window_seconds = false", "failed_login_window_seconds"),
        ("free_failures = -1", "free_failures"),
        ("free_failures = 1.5", "free_failures"),
        ("failure_delay_seconds = -1", "failure_delay_seconds"),
        ("failure_delay_seconds = 61", "failure_delay_seconds"),
        ('failure_delay_seconds = "1"', "failure_delay_seconds"),
        ("failure_delay_seconds = true", "failure_delay_seconds"),
        ("failure_delay_seconds = nan", "failure_delay_seconds"),
        ("max_failure_delay_seconds = inf", "max_failure_delay_seconds"),
        ("failure_delay_seconds = 9", "max_failure_delay_seconds"),
    ],
)
def test_a_bad_value_is_refused_naming_the_key(tmp_path: Path, line: str, key: str) -> None:
    with pytest.raises(HostFileError, match=rf"^login\.{key}"):
        load_host_config(host_file(tmp_path, line))
