"""Random secrets, digests and constant-time comparison."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

from authward.core.secrets import digest, equal, matches_digest, new_secret


def test_new_secret_is_32_random_bytes_in_base64url() -> None:
    secret = new_secret()
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", secret)
    raw = base64.urlsafe_b64decode(secret + "=")
    assert len(raw) == 32


def test_new_secrets_differ() -> None:
    assert len({new_secret() for _ in range(100)}) == 100


def test_too_little_entropy_is_refused() -> None:
    with pytest.raises(ValueError, match="16"):
        new_secret(8)


def test_digest_is_base64url_sha256_without_padding() -> None:
    expected = (
        base64.urlsafe_b64encode(hashlib.sha256(b"secret").digest()).rstrip(b"=").decode()
    )
    assert digest("secret") == expected
    assert len(digest("secret")) == 43


def test_matches_digest_accepts_the_secret_and_refuses_others() -> None:
    secret = new_secret()
    stored = digest(secret)
    assert matches_digest(secret, stored)
    assert not matches_digest(secret + "x", stored)
    assert not matches_digest(secret, stored[:-1])


def test_equal_compares_str_and_bytes() -> None:
    assert equal("abc", "abc")
    assert equal(b"abc", "abc")
    assert not equal("abc", "abd")
    assert not equal("abc", "abcd")
    assert equal("é", "é".encode())
