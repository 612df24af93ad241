"""OIDC ID tokens: claims (OIDC Core §2), at_hash (§3.1.3.6), RS256 and EdDSA signing."""

from __future__ import annotations

import base64
import hashlib

import pytest

from authward.core.id_token import mint_id_token, token_hash
from authward.core.jose import JoseError, SigningAlgorithm, read_unverified_header, verify_jwt
from authward.core.keys import KeySet

T0 = 1_700_000_000.0
ISS = "https://as.example"
# OIDC Core 1.0 Appendix A (non-normative examples): an access token and its RS256 at_hash.
OIDC_ACCESS_TOKEN = "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"
OIDC_AT_HASH = "77QmUPtjPfzWtF2AnpK9RQ"


@pytest.fixture(scope="module")
def keyset() -> KeySet:
    return KeySet.generate(["RS256", "ES256", "EdDSA", "PS256"], now=T0)


def test_at_hash_matches_the_oidc_core_example() -> None:
    """OIDC Core §3.1.3.6 with the Appendix A example values."""
    assert token_hash(OIDC_ACCESS_TOKEN, "RS256") == OIDC_AT_HASH


@pytest.mark.parametrize(("alg", "hash_name"), [
    ("RS256", "sha256"), ("PS256", "sha256"), ("ES256", "sha256"), ("EdDSA", "sha512"),
])
def test_at_hash_uses_the_left_half_of_the_algs_hash(alg: SigningAlgorithm, hash_name: str) -> None:
    """SHA-256 for the *256 algs; SHA-512 for EdDSA/Ed25519 (OpenID connect issue #1125)."""
    digest = hashlib.new(hash_name, b"some-access-token").digest()
    expected = base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()
    assert token_hash("some-access-token", alg) == expected
    assert len(token_hash("x", alg)) == (22 if hash_name == "sha256" else 43)


def test_id_token_is_signed_with_rs256_and_carries_the_protocol_claims(keyset: KeySet) -> None:
    """OIDC Core §2 and §3.1.3.6; RS256 is mandatory for ID tokens."""
    key = keyset.signing_key("RS256")
    minted = mint_id_token(
        key, issuer=ISS, subject="alice", client_id="app", lifetime=600, now=T0 + 0.5,
        auth_time=int(T0) - 30, nonce="n-0S6_WzA2Mj", acr="urn:acr:pwd", amr=["pwd", "otp"],
        access_token=OIDC_ACCESS_TOKEN, sid="session-1", extra_claims={"email": "a@example"},
    )
    header = read_unverified_header(minted.token)
    assert header["alg"] == "RS256"
    assert header["kid"] == key.kid
    verified = verify_jwt(
        minted.token, keyset.verification_keys(now=T0, max_token_lifetime=600),
        algorithms=["RS256"],
    )
    assert dict(verified.claims) == {
        "iss": ISS, "sub": "alice", "aud": "app", "exp": int(T0) + 600, "iat": int(T0),
        "auth_time": int(T0) - 30, "nonce": "n-0S6_WzA2Mj", "acr": "urn:acr:pwd",
        "amr": ["pwd", "otp"], "at_hash": OIDC_AT_HASH, "sid": "session-1",
        "email": "a@example",
    }
    assert "azp" not in verified.claims


def test_optional_claims_are_absent_when_unknown(keyset: KeySet) -> None:
    """nonce only when the request had one; at_hash only with an access token."""
    minted = mint_id_token(keyset.signing_key("ES256"), issuer=ISS, subject="alice",
                           client_id="app", lifetime=60, now=T0)
    assert set(minted.claims) == {"iss", "sub", "aud", "exp", "iat"}


def test_extra_audience_makes_aud_a_list_and_sets_azp(keyset: KeySet) -> None:
    """OIDC Core §2: azp is the client when the ID token has several audiences."""
    minted = mint_id_token(keyset.signing_key("ES256"), issuer=ISS, subject="alice",
                           client_id="app", lifetime=60, now=T0, extra_audiences=["api"])
    assert minted.claims["aud"] == ["app", "api"]
    assert minted.claims["azp"] == "app"


def test_eddsa_id_token_uses_sha512_at_hash(keyset: KeySet) -> None:
    key = keyset.signing_key("EdDSA")
    minted = mint_id_token(key, issuer=ISS, subject="s", client_id="c", lifetime=60, now=T0,
                           access_token="tok")
    assert minted.claims["at_hash"] == token_hash("tok", "EdDSA")
    assert len(minted.claims["at_hash"]) == 43


def test_extra_claims_cannot_override_protocol_claims(keyset: KeySet) -> None:
    with pytest.raises(ValueError, match="protocol claims"):
        mint_id_token(keyset.signing_key("RS256"), issuer=ISS, subject="s", client_id="c",
                      lifetime=60, now=T0, extra_claims={"aud": "other", "email": "x"})


def test_id_token_signed_by_a_foreign_key_does_not_verify(keyset: KeySet) -> None:
    stranger = KeySet.generate(["RS256"], now=T0).signing_key("RS256")
    minted = mint_id_token(stranger, issuer=ISS, subject="s", client_id="c", lifetime=60, now=T0)
    with pytest.raises(JoseError):
        verify_jwt(minted.token, keyset.verification_keys(now=T0, max_token_lifetime=60),
                   algorithms=["RS256"])
