"""The two at-rest forms of host secrets and their verification: the fast ``$sha256$`` digest
of generated secrets, argon2id for human-chosen ones, and argon2's bounded concurrency.

Spec: RFC 6819 §5.1.4.1.3, §5.1.4.2.2; RFC 9106; RFC 4648 §4.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import threading
import time
from typing import Literal

import pytest
from argon2 import PasswordHasher

from authward.core.defaults.hashing import (
    Argon2Verifier,
    check_fast_secret,
    default_argon2_concurrency,
    fast_digest_bytes,
    fast_digest_matches,
    generate_client_secret,
    hash_secret,
    is_argon2_hash,
    is_fast_digest,
)

CHEAP = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
GENERATED = "Xq3v_0K9bZr-T7hLmN2pWc4sYd8eFgJ1kAiU6oVxR5Q"  # 43 base64url characters


class InFlightHasher(PasswordHasher):
    """A cheap hasher whose ``verify`` holds for a moment and records how many run at once."""

    def __init__(self, hold_seconds: float = 0.02) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.hold_seconds = hold_seconds
        self.release = threading.Event()
        self.release.set()
        self.started = threading.Event()
        self.calls = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.threads: set[int] = set()
        self._lock = threading.Lock()

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        with self._lock:
            self.calls += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.threads.add(threading.get_ident())
        self.started.set()
        try:
            time.sleep(self.hold_seconds)
            self.release.wait(timeout=5)
            return super().verify(hash, password)
        finally:
            with self._lock:
                self.in_flight -= 1


# --- the fast form ---------------------------------------------------------------------------


def test_fast_digest_is_sha256_in_unpadded_standard_base64() -> None:
    digest = hash_secret(GENERATED, fast=True)
    expected = base64.b64encode(hashlib.sha256(GENERATED.encode()).digest()).rstrip(b"=")
    assert digest == "$sha256$" + expected.decode()
    assert len(digest) == len("$sha256$") + 43
    assert is_fast_digest(digest)
    assert not is_argon2_hash(digest)


def test_fast_digest_round_trips_through_the_constant_time_compare() -> None:
    raw = fast_digest_bytes(hash_secret(GENERATED, fast=True))
    assert raw is not None
    assert fast_digest_matches((raw,), GENERATED) is True
    assert fast_digest_matches((raw,), GENERATED[:-1]) is False
    assert fast_digest_matches((raw,), GENERATED + " ") is False
    assert fast_digest_matches((raw,), "") is False
    assert fast_digest_matches((), GENERATED) is False


def test_any_of_several_fast_digests_matches_during_a_rotation() -> None:
    old, new = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    stored = tuple(fast_digest_bytes(hash_secret(s, fast=True)) or b"" for s in (old, new))
    assert fast_digest_matches(stored, old)
    assert fast_digest_matches(stored, new)
    assert not fast_digest_matches(stored, secrets.token_urlsafe(32))


@pytest.mark.parametrize(
    "plain",
    ["s3cret", "x" * 42, secrets.token_urlsafe(31)[:42], "correct horse battery staple 2024!!"],
)
def test_fast_form_refuses_a_secret_shorter_than_43_characters(plain: str) -> None:
    with pytest.raises(ValueError, match="at least 43 characters") as raised:
        hash_secret(plain, fast=True)
    assert plain not in str(raised.value)


@pytest.mark.parametrize("plain", ["a" * 64, "abcd" * 20, "0123456789abcde" * 3])
def test_fast_form_refuses_a_long_secret_without_entropy(plain: str) -> None:
    with pytest.raises(ValueError, match="distinct characters") as raised:
        check_fast_secret(plain)
    assert plain not in str(raised.value)


def test_fast_form_refuses_an_empty_secret_and_argon2_parameters() -> None:
    with pytest.raises(ValueError, match="empty"):
        hash_secret("", fast=True)
    with pytest.raises(ValueError, match="hasher"):
        hash_secret(GENERATED, fast=True, hasher=CHEAP)


def test_a_generated_secret_is_256_bits_with_its_fast_digest() -> None:
    made = generate_client_secret()
    assert len(made.secret) == 43
    assert made.digest == hash_secret(made.secret, fast=True)
    assert made.secret not in repr(made)
    assert generate_client_secret().secret != made.secret


@pytest.mark.parametrize(
    "value",
    [
        "$sha256$" + "A" * 42,  # too short
        "$sha256$" + "A" * 44,  # too long
        "$sha256$" + "A" * 42 + "=",  # padded
        "$sha256$" + "-" * 43,  # base64url alphabet, not standard
        "$sha256$" + "A" * 42 + "B",  # non-zero trailing bits: not canonical
        "$SHA256$" + "A" * 43,
        "sha256$" + "A" * 43,
        None,
        42,
    ],
)
def test_a_malformed_fast_digest_is_not_one(value: object) -> None:
    assert not is_fast_digest(value)
    assert fast_digest_bytes(value) is None


# --- argon2 ----------------------------------------------------------------------------------


async def test_argon2_hashes_still_verify_as_before() -> None:
    hashed = hash_secret("correct horse", hasher=CHEAP)
    assert hashed.startswith("$argon2id$")
    assert is_argon2_hash(hashed)
    assert not is_fast_digest(hashed)
    verifier = Argon2Verifier(CHEAP)
    assert await verifier.verify([hashed], "correct horse") is True
    assert await verifier.verify([hashed], "wrong") is False
    assert await verifier.verify([hashed], "") is False
    assert await verifier.verify([], "correct horse") is False
    assert await verifier.verify(["$argon2id$garbage"], "correct horse") is False


async def test_argon2_runs_off_the_event_loop_thread() -> None:
    hasher = InFlightHasher(hold_seconds=0.05)
    verifier = Argon2Verifier(hasher)
    hashed = hash_secret("pw", hasher=CHEAP)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    try:
        assert await verifier.verify([hashed], "pw")
    finally:
        task.cancel()
    assert threading.get_ident() not in hasher.threads
    assert ticks > 1  # the loop kept running while argon2 did


@pytest.mark.parametrize("limit", [1, 2])
async def test_at_most_max_concurrent_argon2_verifications_run_at_once(limit: int) -> None:
    hasher = InFlightHasher()
    verifier = Argon2Verifier(hasher, max_concurrent=limit)
    hashed = hash_secret("pw", hasher=CHEAP)
    results = await asyncio.gather(*(verifier.verify([hashed], "pw") for _ in range(6)))
    assert results == [True] * 6
    assert hasher.calls == 6
    assert hasher.max_in_flight == limit


async def test_a_cancelled_verification_keeps_its_slot_until_argon2_finishes() -> None:
    """Cancelling the waiting request does not stop the thread, so it must not free the slot
    early: the next verification waits for the thread, keeping the bound exact."""
    hasher = InFlightHasher(hold_seconds=0)
    hasher.release.clear()
    verifier = Argon2Verifier(hasher, max_concurrent=1)
    hashed = hash_secret("pw", hasher=CHEAP)
    first = asyncio.create_task(verifier.verify([hashed], "pw"))
    assert await asyncio.to_thread(hasher.started.wait, 5)
    first.cancel()
    second = asyncio.create_task(verifier.verify([hashed], "pw"))
    for _ in range(20):
        await asyncio.sleep(0.001)
    assert hasher.calls == 1  # the second waits for the cancelled one's thread
    hasher.release.set()
    assert await second is True
    assert hasher.max_in_flight == 1
    assert first.cancelled()


async def test_an_unknown_account_still_costs_one_argon2_verification() -> None:
    hasher = InFlightHasher(hold_seconds=0)
    verifier = Argon2Verifier(hasher)
    assert await verifier.verify([], "pw") is False
    assert await verifier.verify([hash_secret("pw", hasher=CHEAP)], "") is False
    assert hasher.calls == 2


def test_concurrency_defaults_to_the_cpus_and_refuses_zero() -> None:
    assert Argon2Verifier(CHEAP).max_concurrent == default_argon2_concurrency() >= 1
    with pytest.raises(ValueError, match="max_concurrent"):
        Argon2Verifier(CHEAP, max_concurrent=0)
