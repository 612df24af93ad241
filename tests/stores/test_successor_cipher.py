"""The refresh-successor envelope (spec §3.2.6 Python proposal, RT-07, RT-36)."""

from __future__ import annotations

import base64
import dataclasses
import json

import pytest

from authward.stores.refresh import RefreshData, Successor
from authward.stores.successor_cipher import (
    SuccessorCipher,
    SuccessorKeyError,
    successor_from_json,
)

KEY_A = b"a" * 32
KEY_B = b"b" * 48
PARENT = "p" * 43
FAMILY = "family-1"

SUCC = Successor(
    token="the-plaintext-successor-token",
    generation=3,
    retry_until=1_767_225_660,
    context=RefreshData(
        subject="alice",
        scope=("openid", "offline_access"),
        resource=("https://api.example.com",),
        acr="1",
        auth_time=1_767_225_000,
        client_id="client-1",
        dpop_jkt="jkt",
        claims={"sid": "s1", "amr": ["pwd"]},
    ),
)


def seal(cipher: SuccessorCipher) -> dict[str, object]:
    return dict(cipher.seal(SUCC, parent_hash=PARENT, family_id=FAMILY))


def test_envelope_round_trips_and_hides_the_token() -> None:
    cipher = SuccessorCipher({"k1": KEY_A})
    env = seal(cipher)
    assert set(env) == {"v", "kid", "ct"}
    assert env["v"] == 2
    assert env["kid"] == "k1"
    assert "plaintext-successor" not in json.dumps(env)
    assert cipher.open(env, parent_hash=PARENT, family_id=FAMILY, generation=3) == SUCC


def test_the_kept_access_token_round_trips_sealed() -> None:
    """The access token answered with the successor travels in the same sealed envelope (an
    honest retry gets it back); an envelope without one opens with None."""
    cipher = SuccessorCipher({"k1": KEY_A})
    kept = dataclasses.replace(SUCC, access_token="eyJ.the-access-token.sig")
    env = cipher.seal(kept, parent_hash=PARENT, family_id=FAMILY)
    assert "the-access-token" not in json.dumps(dict(env))
    opened = cipher.open(env, parent_hash=PARENT, family_id=FAMILY, generation=3)
    assert opened == kept
    assert SUCC.access_token is None


def test_each_envelope_uses_a_fresh_nonce() -> None:
    cipher = SuccessorCipher({"k1": KEY_A})
    assert seal(cipher)["ct"] != seal(cipher)["ct"]


@pytest.mark.parametrize(
    ("parent", "family", "generation"),
    [("q" * 43, FAMILY, 3), (PARENT, "family-2", 3), (PARENT, FAMILY, 4)],
)
def test_envelope_copied_to_another_row_fails_authentication_rt_36(
    parent: str, family: str, generation: int
) -> None:
    """RT-36: the AAD binds parent hash, family and successor generation."""
    cipher = SuccessorCipher({"k1": KEY_A})
    env = seal(cipher)
    assert cipher.open(env, parent_hash=parent, family_id=family, generation=generation) is None


def test_tampered_ciphertext_opens_as_none() -> None:
    cipher = SuccessorCipher({"k1": KEY_A})
    env = seal(cipher)
    raw = bytearray(base64.urlsafe_b64decode(str(env["ct"]) + "=="))
    raw[20] ^= 1
    env["ct"] = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    assert cipher.open(env, parent_hash=PARENT, family_id=FAMILY, generation=3) is None


@pytest.mark.parametrize(
    "bad",
    [
        None,
        "string",
        [],
        {},
        {"v": 1, "ciphertext": "x"},
        {"v": 2, "kid": "k1"},
        {"v": 2, "kid": "k1", "ct": "!!!not base64!!!"},
        {"v": 2, "kid": "k1", "ct": "AAAA"},
        {"v": 2, "kid": 5, "ct": "AAAA"},
        {"v": "2", "kid": "k1", "ct": "AAAA"},
    ],
)
def test_malformed_envelope_opens_as_none(bad: object) -> None:
    cipher = SuccessorCipher({"k1": KEY_A})
    assert cipher.open(bad, parent_hash=PARENT, family_id=FAMILY, generation=3) is None


def test_wrong_secret_or_unknown_kid_opens_as_none() -> None:
    env = seal(SuccessorCipher({"k1": KEY_A}))
    wrong = SuccessorCipher({"k1": b"c" * 32})
    assert wrong.open(env, parent_hash=PARENT, family_id=FAMILY, generation=3) is None
    other_kid = SuccessorCipher({"k2": KEY_A})
    assert other_kid.open(env, parent_hash=PARENT, family_id=FAMILY, generation=3) is None


def test_key_rotation_opens_old_envelopes_by_kid_and_seals_with_the_active_key() -> None:
    old = seal(SuccessorCipher({"k1": KEY_A}))
    rotated = SuccessorCipher({"k1": KEY_A, "k2": KEY_B}, active_kid="k2")
    assert rotated.active_kid == "k2"
    assert rotated.open(old, parent_hash=PARENT, family_id=FAMILY, generation=3) == SUCC
    new = seal(rotated)
    assert new["kid"] == "k2"
    assert rotated.open(new, parent_hash=PARENT, family_id=FAMILY, generation=3) == SUCC


@pytest.mark.parametrize(
    ("keys", "active"),
    [
        ({}, None),
        ({"k1": b"x" * 31}, None),
        ({"k1": "a" * 32}, None),
        ({"": KEY_A}, None),
        ({"k" * 65: KEY_A}, None),
        ({"k1": KEY_A, "k2": KEY_B}, None),
        ({"k1": KEY_A}, "k9"),
    ],
)
def test_unusable_key_configuration_is_refused(keys: dict[str, bytes], active: str | None) -> None:
    with pytest.raises(SuccessorKeyError):
        SuccessorCipher(keys, active)


def test_legacy_plaintext_map_is_normalised_with_defaults_rt_28() -> None:
    """RT-28 (the normaliser): string keys, missing optional fields get their defaults."""
    got = successor_from_json(
        {"token": "t", "generation": 1, "context": {"subject": "bob", "scope": ["a"]}}
    )
    assert got == Successor(
        token="t",
        generation=1,
        retry_until=None,
        context=RefreshData(subject="bob", scope=("a",)),
    )
    assert got is not None
    assert got.context.resource == ()
    assert got.context.claims == {}


@pytest.mark.parametrize(
    "bad",
    [
        {"token": "t", "generation": "1", "context": {"subject": "bob"}},
        {"token": "t", "generation": True, "context": {"subject": "bob"}},
        {"token": "", "generation": 1, "context": {"subject": "bob"}},
        {"token": "t", "generation": 1, "context": {}},
        {"token": "t", "generation": 1, "context": {"subject": "bob", "scope": "a b"}},
        {"token": "t", "generation": 1, "context": {"subject": "bob", "client_id": 3}},
        {"token": "t", "generation": 1, "context": "x"},
    ],
)
def test_malformed_successor_map_is_none(bad: object) -> None:
    assert successor_from_json(bad) is None
