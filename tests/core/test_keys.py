"""Signing keys: key file, rotation, pruning, public JWKS (RFC 7517 §5, OIDC Core §10.1.1)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from authward.core.jose import JoseError, sign_jwt, verify_jwt
from authward.core.keys import (
    KeyFileError,
    KeySet,
    SigningKey,
    load_key_file,
    save_key_file,
)

T0 = 1_700_000_000.0
LIFETIME = 3600.0
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi"}


def kids(keyset: KeySet) -> list[str]:
    return [k["kid"] for k in keyset.public_jwks(now=T0, max_token_lifetime=LIFETIME)["keys"]]


def by_status(keyset: KeySet, alg: str, status: str) -> list[SigningKey]:
    return [k for k in keyset.keys if k.alg == alg and k.status == status]


def test_generated_set_has_one_active_and_one_published_next_key_per_alg() -> None:
    keyset = KeySet.generate(["ES256", "RS256"], now=T0)
    assert keyset.algorithms == ("ES256", "RS256")
    for alg in ("ES256", "RS256"):
        assert len(by_status(keyset, alg, "active")) == 1
        assert len(by_status(keyset, alg, "next")) == 1
    assert len(kids(keyset)) == 4


def test_public_jwks_has_only_public_members_with_kid_alg_use() -> None:
    """RFC 7517 §5: the published set never carries private members or bookkeeping."""
    keyset = KeySet.generate(["ES256", "EdDSA", "PS256", "RS256"], now=T0)
    jwks = keyset.public_jwks(now=T0, max_token_lifetime=LIFETIME)
    assert len(jwks["keys"]) == 8
    for jwk in jwks["keys"]:
        assert not PRIVATE_MEMBERS & set(jwk)
        assert "status" not in jwk
        assert jwk["use"] == "sig"
        assert jwk["alg"] in ("ES256", "EdDSA", "PS256", "RS256")
        assert jwk["kid"]


def test_signing_key_is_chosen_by_algorithm() -> None:
    keyset = KeySet.generate(["ES256", "RS256"], now=T0)
    assert keyset.signing_key("ES256").alg == "ES256"
    assert keyset.signing_key("RS256").alg == "RS256"
    assert keyset.signing_key("RS256").kid == by_status(keyset, "RS256", "active")[0].kid
    with pytest.raises(LookupError):
        keyset.signing_key("EdDSA")


def test_rotation_publishes_the_next_key_before_it_signs() -> None:
    """OIDC Core §10.1.1: the key that will sign after rotation is already in the JWKS."""
    before = KeySet.generate(["ES256"], now=T0)
    published_next = by_status(before, "ES256", "next")[0].kid
    assert published_next in kids(before)
    assert before.signing_key("ES256").kid != published_next
    after = before.rotate(now=T0 + 10)
    assert after.signing_key("ES256").kid == published_next
    new_next = by_status(after, "ES256", "next")[0].kid
    assert new_next not in {k.kid for k in before.keys}
    assert new_next in kids(after)


def test_rotation_retires_the_old_active_key_with_a_timestamp() -> None:
    before = KeySet.generate(["ES256"], now=T0)
    old = before.signing_key("ES256").kid
    after = before.rotate(now=T0 + 10)
    retired = by_status(after, "ES256", "retired")
    assert [k.kid for k in retired] == [old]
    assert retired[0].retired_at == T0 + 10


def test_rotation_without_a_published_next_key_generates_one() -> None:
    start = KeySet.generate(["ES256"], now=T0)
    without_next = KeySet(tuple(k for k in start.keys if k.status != "next"))
    after = without_next.rotate(now=T0 + 1)
    assert len(by_status(after, "ES256", "active")) == 1
    assert len(by_status(after, "ES256", "next")) == 1
    assert after.signing_key("ES256").kid != start.signing_key("ES256").kid


def test_rotation_of_one_algorithm_leaves_the_others_alone() -> None:
    keyset = KeySet.generate(["ES256", "RS256"], now=T0)
    after = keyset.rotate(now=T0 + 1, algorithms=["ES256"])
    assert after.signing_key("RS256") == keyset.signing_key("RS256")
    assert after.signing_key("ES256") != keyset.signing_key("ES256")


def test_token_signed_by_a_retired_key_verifies_until_prune() -> None:
    keyset = KeySet.generate(["ES256"], now=T0)
    token = sign_jwt(keyset.signing_key("ES256"), {"sub": "alice"})
    rotated = keyset.rotate(now=T0 + 100)
    keys = rotated.verification_keys(now=T0 + 200, max_token_lifetime=LIFETIME)
    assert verify_jwt(token, keys, algorithms=["ES256"]).claims["sub"] == "alice"
    # still there one second before every token it signed has expired
    kept = rotated.prune(now=T0 + 100 + LIFETIME - 1, max_token_lifetime=LIFETIME)
    assert len(by_status(kept, "ES256", "retired")) == 1


def test_pruned_key_no_longer_verifies_its_tokens() -> None:
    keyset = KeySet.generate(["ES256"], now=T0)
    token = sign_jwt(keyset.signing_key("ES256"), {"sub": "alice"})
    rotated = keyset.rotate(now=T0 + 100)
    pruned = rotated.prune(now=T0 + 100 + LIFETIME, max_token_lifetime=LIFETIME)
    assert by_status(pruned, "ES256", "retired") == []
    keys = pruned.verification_keys(now=T0 + 100 + LIFETIME, max_token_lifetime=LIFETIME)
    with pytest.raises(JoseError) as caught:
        verify_jwt(token, keys, algorithms=["ES256"])
    assert caught.value.reason == "unknown_key"


def test_expired_retired_key_is_not_published_even_before_prune() -> None:
    rotated = KeySet.generate(["ES256"], now=T0).rotate(now=T0 + 100)
    retired = by_status(rotated, "ES256", "retired")[0].kid
    assert retired in kids(rotated)
    late = rotated.public_jwks(now=T0 + 100 + LIFETIME, max_token_lifetime=LIFETIME)
    assert retired not in [k["kid"] for k in late["keys"]]


def test_set_refuses_two_active_keys_for_one_alg() -> None:
    one = KeySet.generate(["ES256"], now=T0)
    two = KeySet.generate(["ES256"], now=T0)
    with pytest.raises(ValueError, match="exactly one active"):
        KeySet(one.keys + two.keys)


def test_key_file_round_trips_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "authward-keys.json"
    keyset = KeySet.generate(["ES256", "EdDSA", "PS256", "RS256"], now=T0).rotate(now=T0 + 5)
    save_key_file(keyset, path, overwrite=False)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = load_key_file(path)
    assert [(k.kid, k.alg, k.status, k.created_at, k.retired_at) for k in loaded.keys] == [
        (k.kid, k.alg, k.status, k.created_at, k.retired_at) for k in keyset.keys
    ]
    token = sign_jwt(loaded.signing_key("RS256"), {"x": 1})
    assert verify_jwt(token, keyset.verification_keys(now=T0, max_token_lifetime=LIFETIME),
                      algorithms=["RS256"]).claims == {"x": 1}
    document = json.loads(path.read_text())
    assert {entry["status"] for entry in document["keys"]} == {"next", "active", "retired"}
    assert all("d" in entry for entry in document["keys"])


def test_key_file_is_not_overwritten_without_permission(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text("keep me")
    with pytest.raises(FileExistsError):
        save_key_file(KeySet.generate(["ES256"], now=T0), path, overwrite=False)
    assert path.read_text() == "keep me"
    save_key_file(KeySet.generate(["ES256"], now=T0), path, overwrite=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert list(tmp_path.iterdir()) == [path]


@pytest.mark.parametrize(
    "content",
    ["not json", "{}", '{"keys": []}', '{"keys": [{"kty": "EC"}]}', '{"keys": [1]}'],
)
def test_broken_key_file_is_a_clear_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "keys.json"
    path.write_text(content)
    with pytest.raises(KeyFileError):
        load_key_file(path)


def test_key_file_with_a_bad_status_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    save_key_file(KeySet.generate(["ES256"], now=T0), path, overwrite=False)
    document = json.loads(path.read_text())
    document["keys"][0]["status"] = "signing"
    path.write_text(json.dumps(document))
    with pytest.raises(KeyFileError, match="status"):
        load_key_file(path)


def test_missing_key_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot read"):
        load_key_file(tmp_path / "absent.json")
