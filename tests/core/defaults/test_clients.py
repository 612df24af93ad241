"""The TOML client registry's secrets: fast digests, argon2 hashes, lists mixing them, the
placeholder check for clients it does not know, and the cache of argon2 successes.

Spec: RFC 6749 §2.3.1; RFC 6819 §5.1.4.1.3, §5.1.4.2.2 (high-entropy generated secrets).
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from argon2 import PasswordHasher

from authward.core.clients import Client
from authward.core.defaults import (
    Argon2Verifier,
    FileClientRegistry,
    FileUserDirectory,
    HostFileError,
    VerifiedSecretCache,
    generate_client_secret,
    hash_secret,
)
from authward.core.failure_limits import FailureBudget
from authward.stores.clock import FrozenClock
from tests.core.defaults.hashers import CHEAP, CountingHasher

FAST = generate_client_secret()
OTHER = generate_client_secret()


def entry(client_id: str = "web", **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "client_id": client_id,
        "client_type": "confidential",
        "token_endpoint_auth_method": "client_secret_basic",
        "client_secret_hash": FAST.digest,
        "redirect_uris": ["https://app.example/cb"],
    }
    base.update(overrides)
    return base


def registry(*entries: dict[str, Any], hasher: PasswordHasher = CHEAP,
             cache: VerifiedSecretCache | None = None) -> FileClientRegistry:
    return FileClientRegistry.from_mapping({"clients": list(entries)}, hasher=hasher, cache=cache)


async def client_of(reg: FileClientRegistry, client_id: str = "web") -> Client:
    found = await reg.get_client(client_id)
    assert found is not None
    return found


# --- the fast form ---------------------------------------------------------------------------


async def test_a_fast_digest_verifies_its_secret_without_argon2() -> None:
    hasher = CountingHasher()
    reg = registry(entry(), hasher=hasher)
    web = await client_of(reg)
    assert await reg.verify_client_secret(web, FAST.secret) is True
    assert await reg.verify_client_secret(web, OTHER.secret) is False
    assert await reg.verify_client_secret(web, FAST.secret[:-1]) is False
    assert await reg.verify_client_secret(web, "") is False
    assert hasher.verifies == 0


async def test_a_rotation_list_may_mix_fast_digests_and_argon2_hashes() -> None:
    hasher = CountingHasher()
    old = hash_secret("a person chose this", hasher=CHEAP)
    reg = registry(entry(client_secret_hash=[old, FAST.digest]), hasher=hasher)
    web = await client_of(reg)
    assert await reg.verify_client_secret(web, FAST.secret) is True
    assert hasher.verifies == 0  # the fast digest answered first
    assert await reg.verify_client_secret(web, "a person chose this") is True
    assert hasher.verifies == 1
    assert await reg.verify_client_secret(web, OTHER.secret) is False
    assert hasher.verifies == 2


@pytest.mark.parametrize(
    "value",
    [
        "$sha256$" + "A" * 42,
        "$sha256$short",
        [FAST.digest, "plain-text"],
        [],
    ],
)
def test_a_malformed_secret_hash_names_its_key(value: object) -> None:
    with pytest.raises(HostFileError) as raised:
        registry(entry(client_secret_hash=value))
    assert raised.value.key == "clients[0].client_secret_hash"
    assert "$sha256$" in str(raised.value)


def test_the_constructor_refuses_a_hash_of_neither_form() -> None:
    web = Client("web", "confidential", "client_secret_basic")
    with pytest.raises(ValueError, match="web"):
        FileClientRegistry({"web": web}, {"web": ("plain-text",)})


def test_a_password_hash_must_be_argon2_not_the_fast_form() -> None:
    """Passwords are chosen by people: a fast digest would make a stolen file crackable."""
    with pytest.raises(HostFileError) as raised:
        FileUserDirectory.from_mapping(
            {"users": [{"subject": "u", "username": "alice", "password_hash": FAST.digest}]}
        )
    assert raised.value.key == "users[0].password_hash"
    assert "argon2" in str(raised.value)
    assert "only for generated client secrets" in str(raised.value)


# --- clients the registry does not know ------------------------------------------------------


async def test_an_unknown_client_costs_one_digest_compare_in_a_fast_only_registry() -> None:
    """A known fast-form client and an unknown id both cost microseconds: no argon2 anywhere."""
    hasher = CountingHasher()
    reg = registry(entry(), entry("api", client_secret_hash=OTHER.digest), hasher=hasher)
    ghost = Client("ghost", "confidential", "client_secret_basic")
    assert await reg.verify_client_secret(ghost, FAST.secret) is False
    forged = Client("web", "confidential", "client_secret_post")  # not the record it issued
    assert await reg.verify_client_secret(forged, FAST.secret) is False
    assert hasher.verifies == 0


async def test_an_unknown_client_costs_one_argon2_check_while_argon2_hashes_exist() -> None:
    hasher = CountingHasher()
    reg = registry(
        entry(),
        entry("legacy", client_secret_hash=hash_secret("chosen", hasher=CHEAP)),
        hasher=hasher,
    )
    ghost = Client("ghost", "confidential", "client_secret_basic")
    assert await reg.verify_client_secret(ghost, "chosen") is False
    assert hasher.verifies == 1
    assert await reg.verify_client_secret(await client_of(reg, "legacy"), "wrong") is False
    assert hasher.verifies == 2
    assert await reg.verify_client_secret(await client_of(reg, "legacy"), "") is False
    assert hasher.verifies == 3  # an empty secret costs what the unknown client did


# --- the cache of argon2 successes -----------------------------------------------------------


async def test_a_verified_argon2_secret_is_not_verified_again_within_the_ttl() -> None:
    hasher = CountingHasher()
    clock = FrozenClock(1_000.0)
    reg = registry(entry(client_secret_hash=hash_secret("chosen", hasher=CHEAP)), hasher=hasher,
                   cache=VerifiedSecretCache(ttl_seconds=300, clock=clock))
    web = await client_of(reg)
    assert await reg.verify_client_secret(web, "chosen") is True
    assert await reg.verify_client_secret(web, "chosen") is True
    assert hasher.verifies == 1
    assert await reg.verify_client_secret(web, "not it") is False  # a miss runs argon2
    assert hasher.verifies == 2
    assert await reg.verify_client_secret(web, "not it") is False  # failures are not cached
    assert hasher.verifies == 3
    clock.advance(300)
    assert await reg.verify_client_secret(web, "chosen") is True
    assert hasher.verifies == 4


async def test_spent_argon2_budget_refuses_without_argon2_but_passes_a_remembered_secret() -> None:
    """Issue 10 item 3: wrong secrets cannot buy argon2 time for a client without end, and a
    client that authenticated recently is not locked out by them."""
    hasher = CountingHasher()
    clock = FrozenClock(1_200.0)
    reg = FileClientRegistry(
        {"web": Client("web", "confidential", "client_secret_basic")},
        {"web": (hash_secret("chosen", hasher=CHEAP),)},
        hasher=hasher, cache=VerifiedSecretCache(ttl_seconds=300, clock=clock),
        argon2_failure_budget=FailureBudget(max_failures=3, window_seconds=60), clock=clock,
    )
    web = await client_of(reg)
    assert await reg.verify_client_secret(web, "chosen") is True  # remembered from now on
    for _ in range(3):
        assert await reg.verify_client_secret(web, "guess") is False
    spent = hasher.verifies
    assert await reg.verify_client_secret(web, "guess") is False
    assert await reg.verify_client_secret(web, "chosen") is True  # the success cache
    assert hasher.verifies == spent  # no argon2 while the budget is spent
    clock.advance(60)
    assert await reg.verify_client_secret(web, "guess") is False
    assert hasher.verifies == spent + 1  # a new window: argon2 again


async def test_an_unknown_client_id_spends_argon2_and_its_budget_like_a_known_one() -> None:
    """Issue 11 item 5: no existence oracle by timing. Wrong secrets for a known argon2 client
    and for an unknown client_id run the same argon2 verifications, and both stop running them
    once the budget of that client_id is spent, so the answer times stay alike over any
    number of attempts."""
    hasher = CountingHasher()
    clock = FrozenClock(1_200.0)
    reg = FileClientRegistry(
        {"web": Client("web", "confidential", "client_secret_basic")},
        {"web": (hash_secret("chosen", hasher=CHEAP),)},
        hasher=hasher, argon2_failure_budget=FailureBudget(max_failures=3, window_seconds=60),
        clock=clock,
    )
    known = await client_of(reg)
    unknown = Client("nobody", "confidential", "client_secret_basic")
    counts = {}
    for client in (known, unknown):
        before = hasher.verifies
        for _ in range(5):
            assert await reg.verify_client_secret(client, "guess") is False
        counts[client.client_id] = hasher.verifies - before
    assert counts == {"web": 3, "nobody": 3}


async def test_fast_digests_are_never_locked_by_failures() -> None:
    reg = registry(entry())
    web = await client_of(reg)
    for _ in range(100):
        assert await reg.verify_client_secret(web, OTHER.secret) is False
    assert await reg.verify_client_secret(web, FAST.secret) is True


async def test_a_rotation_stops_the_old_secret_at_once_despite_the_cache() -> None:
    """The stored hashes are part of the cache key, so a changed hash list misses."""
    cache = VerifiedSecretCache(ttl_seconds=300)
    old = hash_secret("old secret", hasher=CHEAP)
    first = registry(entry(client_secret_hash=old), cache=cache)
    assert await first.verify_client_secret(await client_of(first), "old secret") is True
    rotated = registry(entry(client_secret_hash=hash_secret("new secret", hasher=CHEAP)),
                       cache=cache)
    assert await rotated.verify_client_secret(await client_of(rotated), "old secret") is False
    assert await rotated.verify_client_secret(await client_of(rotated), "new secret") is True


async def test_the_registry_and_the_user_directory_can_share_one_bounded_verifier() -> None:
    hasher = CountingHasher()
    verifier = Argon2Verifier(hasher, max_concurrent=1)
    data = {
        "clients": [entry(client_secret_hash=hash_secret("chosen", hasher=CHEAP))],
        "users": [{"subject": "u", "username": "alice",
                   "password_hash": hash_secret("pw", hasher=CHEAP)}],
    }
    reg = FileClientRegistry.from_mapping(data, verifier=verifier)
    users = FileUserDirectory.from_mapping(data, verifier=verifier)
    assert await reg.verify_client_secret(await client_of(reg), "chosen")
    assert await users.verify_password("alice", "pw") == "u"
    assert hasher.verifies == 2


# --- nothing secret in the logs --------------------------------------------------------------


async def test_no_secret_or_digest_reaches_the_logs(caplog: pytest.LogCaptureFixture) -> None:
    argon2 = hash_secret("chosen by a person", hasher=CHEAP)
    with caplog.at_level(logging.DEBUG):
        reg = registry(entry(client_secret_hash=[FAST.digest, argon2]))
        web = await client_of(reg)
        ghost = Client("ghost", "confidential", "client_secret_basic")
        for presented in (FAST.secret, OTHER.secret, "chosen by a person", ""):
            await reg.verify_client_secret(web, presented)
            await reg.verify_client_secret(ghost, presented)
    for value in (FAST.secret, OTHER.secret, FAST.digest, FAST.digest[8:], argon2,
                  "chosen by a person"):
        assert value not in caplog.text


async def test_a_client_may_register_its_id_token_signing_alg_in_the_file() -> None:
    """OIDC Registration §2 ``id_token_signed_response_alg``; an unknown one names its key."""
    web = await client_of(registry(entry(id_token_signed_response_alg="ES256")))
    assert web.id_token_signed_response_alg == "ES256"
    with pytest.raises(HostFileError, match="clients"):
        registry(entry(id_token_signed_response_alg="HS256"))
