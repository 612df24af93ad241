"""The memory of successful argon2 client-secret checks: keyed, bounded, short-lived.

Spec: RFC 6819 §5.1.4.1.3 (no cleartext at rest); RFC 2104 (HMAC).
"""

from __future__ import annotations

import pytest

from authward.core.defaults.verified_secrets import VerifiedSecretCache
from authward.stores.clock import FrozenClock

HASHES = ("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g",)
ROTATED = (*HASHES, "$argon2id$v=19$m=8,t=1,p=1$b3RoZXJzYWx0$bmV3aGFzaA")


def test_a_remembered_verification_is_seen_until_its_ttl_ends() -> None:
    clock = FrozenClock(1_000.0)
    cache = VerifiedSecretCache(ttl_seconds=300, clock=clock)
    assert not cache.seen("web", HASHES, "s3cret")
    cache.remember("web", HASHES, "s3cret")
    assert cache.seen("web", HASHES, "s3cret")
    clock.advance(299.9)
    assert cache.seen("web", HASHES, "s3cret")  # a hit does not extend the entry
    clock.advance(0.1)
    assert not cache.seen("web", HASHES, "s3cret")
    assert len(cache) == 0


@pytest.mark.parametrize(
    ("client_id", "hashes", "secret"),
    [
        ("web", HASHES, "s3cret "),  # another secret
        ("web2", HASHES, "s3cret"),  # another client
        ("web", ROTATED, "s3cret"),  # the client's hash list changed (rotation)
        ("web", (), "s3cret"),
        ("web\x00s3cret", HASHES, ""),  # no ambiguous joining of the parts
    ],
)
def test_only_the_same_client_hashes_and_secret_hit(
    client_id: str, hashes: tuple[str, ...], secret: str
) -> None:
    cache = VerifiedSecretCache()
    cache.remember("web", HASHES, "s3cret")
    assert not cache.seen(client_id, hashes, secret)


def test_the_least_recently_used_entry_goes_first() -> None:
    cache = VerifiedSecretCache(max_entries=2)
    cache.remember("a", HASHES, "1")
    cache.remember("b", HASHES, "2")
    assert cache.seen("a", HASHES, "1")  # a is now the most recent
    cache.remember("c", HASHES, "3")
    assert len(cache) == 2
    assert cache.seen("a", HASHES, "1")
    assert not cache.seen("b", HASHES, "2")
    assert cache.seen("c", HASHES, "3")


def test_neither_the_secret_nor_an_unkeyed_digest_is_kept() -> None:
    """Entries are HMACs under a per-instance random key: two caches disagree on the same input,
    so an entry cannot be checked against guesses without the key."""
    secret = "Xq3v_0K9bZr-T7hLmN2pWc4sYd8eFgJ1kAiU6oVxR5Q"
    first, second = VerifiedSecretCache(), VerifiedSecretCache()
    first.remember("web", HASHES, secret)
    second.remember("web", HASHES, secret)
    [entry_one] = list(first._expiry)
    [entry_two] = list(second._expiry)
    assert entry_one != entry_two
    assert secret.encode() not in entry_one
    assert secret not in repr(vars(first))


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="ttl"):
        VerifiedSecretCache(ttl_seconds=0)
    with pytest.raises(ValueError, match="max_entries"):
        VerifiedSecretCache(max_entries=0)
