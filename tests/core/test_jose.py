"""The JOSE wrapper: keys, thumbprints, signing and the refusals (RFC 7515, 7517, 7638, 8725)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from authward.core.jose import (
    SIGNING_ALGORITHMS,
    JoseError,
    SigningAlgorithm,
    generate_signing_key,
    import_public_jwk,
    import_signing_key,
    jwk_thumbprint,
    read_unverified_header,
    sign_jwt,
    validate_claims,
    verify_jwt,
    verify_jwt_with_key,
)
from tests.core.dpop_proofs import raw_es256

# RFC 7638 §3.1 example key and its thumbprint.
RFC7638_KEY = {
    "kty": "RSA",
    "n": (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_B"
        "JECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_F"
        "DW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4"
        "vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    ),
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29",
}
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"

T0 = 1_700_000_000.0


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def handmade(header: dict[str, object], claims: dict[str, object], signature: bytes) -> str:
    """Build a compact JWS by hand (for hostile tokens the wrapper must refuse)."""
    head = b64(json.dumps(header).encode())
    body = b64(json.dumps(claims).encode())
    return f"{head}.{body}.{b64(signature)}"


def test_rfc7638_example_key_has_the_published_thumbprint() -> None:
    """RFC 7638 §3.1."""
    assert jwk_thumbprint(RFC7638_KEY) == RFC7638_THUMBPRINT
    assert import_public_jwk(RFC7638_KEY).kid == RFC7638_THUMBPRINT


@pytest.mark.parametrize("alg", SIGNING_ALGORITHMS)
def test_generated_key_signs_and_verifies_a_jwt(alg: SigningAlgorithm) -> None:
    """RFC 7515 §3.1: compact JWS round trip for every signing algorithm."""
    key = generate_signing_key(alg)
    token = sign_jwt(key, {"sub": "alice"}, header={"typ": "at+jwt"})
    header = read_unverified_header(token)
    assert header["alg"] == alg
    assert header["kid"] == key.kid
    assert header["typ"] == "at+jwt"
    public = import_public_jwk(key.public_jwk())
    verified = verify_jwt(token, [public], algorithms=[alg])
    assert verified.claims == {"sub": "alice"}
    assert verified.key.kid == key.kid


@pytest.mark.parametrize("alg", SIGNING_ALGORITHMS)
def test_private_jwk_round_trips_and_kid_is_the_thumbprint(alg: SigningAlgorithm) -> None:
    """RFC 7638 §3: kid is the thumbprint of the public part, private export re-imports."""
    key = generate_signing_key(alg)
    private = key.private_jwk()
    assert "d" in private
    again = import_signing_key(private)
    assert again.kid == key.kid == jwk_thumbprint(key.public_jwk())
    assert again.alg == alg
    token = sign_jwt(again, {"n": 1})
    assert verify_jwt(token, [key], algorithms=[alg]).claims == {"n": 1}


def test_public_jwk_has_no_private_members() -> None:
    """RFC 7517 §4: public export carries only public members, kid, alg and use."""
    key = generate_signing_key("RS256")
    public = key.public_jwk()
    assert set(public) == {"kty", "n", "e", "kid", "alg", "use"}
    assert public["use"] == "sig"


def test_public_import_refuses_private_members() -> None:
    """A DPoP `jwk` header must not carry a private key (RFC 9449 §4.3 item 7)."""
    private = generate_signing_key("ES256").private_jwk()
    with pytest.raises(JoseError) as caught:
        import_public_jwk(private)
    assert caught.value.reason == "invalid_key"


def test_public_import_refuses_symmetric_keys() -> None:
    """RFC 8725 §3.2: no symmetric key is ever a verification key here."""
    with pytest.raises(JoseError):
        import_public_jwk({"kty": "oct", "k": "c2VjcmV0"})


def test_public_import_refuses_short_rsa_keys() -> None:
    """RSA keys below 2048 bits are refused."""
    short = dict(RFC7638_KEY, n=RFC7638_KEY["n"][:172])  # ~1024 bits
    with pytest.raises(JoseError):
        import_public_jwk(short)


def test_signing_key_import_refuses_a_kid_that_is_not_the_thumbprint() -> None:
    private = dict(generate_signing_key("ES256").private_jwk(), kid="chosen")
    with pytest.raises(JoseError):
        import_signing_key(private)


def test_signing_key_import_refuses_alg_key_type_mismatch() -> None:
    private = dict(generate_signing_key("ES256").private_jwk(), alg="RS256")
    with pytest.raises(JoseError):
        import_signing_key(private)


def test_alg_none_is_refused_even_without_a_signature() -> None:
    """RFC 8725 §3.1: `alg: none` never verifies."""
    key = generate_signing_key("ES256")
    token = handmade({"alg": "none", "kid": key.kid}, {"sub": "x"}, b"")
    with pytest.raises(JoseError) as caught:
        verify_jwt(token, [key], algorithms=["ES256"])
    assert caught.value.reason == "algorithm_not_allowed"


def test_hs256_token_is_refused_even_when_keyed_with_the_public_key() -> None:
    """RFC 8725 §3.1 (key confusion): an HMAC token keyed with the public JWK is refused."""
    key = generate_signing_key("RS256")
    secret = json.dumps(key.public_jwk()).encode()
    head = b64(json.dumps({"alg": "HS256", "kid": key.kid}).encode())
    body = b64(json.dumps({"sub": "x"}).encode())
    sig = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    with pytest.raises(JoseError) as caught:
        verify_jwt(f"{head}.{body}.{b64(sig)}", [key], algorithms=["RS256"])
    assert caught.value.reason == "algorithm_not_allowed"


def test_symmetric_or_empty_allow_list_is_a_caller_bug() -> None:
    key = generate_signing_key("ES256")
    token = sign_jwt(key, {})
    with pytest.raises(ValueError, match="non-empty"):
        verify_jwt(token, [key], algorithms=[])
    with pytest.raises(ValueError, match="not allowed"):
        verify_jwt(token, [key], algorithms=["HS256"])  # type: ignore[list-item]


def test_algorithm_outside_the_allow_list_is_refused() -> None:
    key = generate_signing_key("ES256")
    token = sign_jwt(key, {})
    with pytest.raises(JoseError) as caught:
        verify_jwt(token, [key], algorithms=["RS256"])
    assert caught.value.reason == "algorithm_not_allowed"


def test_token_signed_by_an_unknown_key_is_refused() -> None:
    signer = generate_signing_key("ES256")
    other = generate_signing_key("ES256")
    token = sign_jwt(signer, {})
    with pytest.raises(JoseError) as caught:
        verify_jwt(token, [other], algorithms=["ES256"])
    assert caught.value.reason == "unknown_key"


def test_kid_pointing_at_a_different_key_fails_the_signature() -> None:
    signer = generate_signing_key("ES256")
    other = generate_signing_key("ES256")
    forged = sign_jwt(signer, {}).split(".")
    head = b64(json.dumps({"alg": "ES256", "kid": other.kid}).encode())
    with pytest.raises(JoseError) as caught:
        verify_jwt(f"{head}.{forged[1]}.{forged[2]}", [other], algorithms=["ES256"])
    assert caught.value.reason == "bad_signature"


def test_one_given_key_verifies_whatever_the_kid_header_says() -> None:
    """RFC 7515 §4.1.4: kid is a hint; with an explicitly given key it need not match."""
    key = generate_signing_key("ES256")
    token = raw_es256(key, {"alg": "ES256", "kid": "my-key-1"}, {"sub": "alice"})
    verified = verify_jwt_with_key(token, key, algorithms=["ES256"])
    assert verified.header["kid"] == "my-key-1"
    assert verified.claims == {"sub": "alice"}
    assert verified.key == key


def test_key_sets_still_match_on_kid() -> None:
    key = generate_signing_key("ES256")
    token = raw_es256(key, {"alg": "ES256", "kid": "my-key-1"}, {"sub": "alice"})
    with pytest.raises(JoseError) as caught:
        verify_jwt(token, [key], algorithms=["ES256"])
    assert caught.value.reason == "unknown_key"


def test_one_given_key_must_still_sign_the_token() -> None:
    signer = generate_signing_key("ES256")
    other = generate_signing_key("ES256")
    token = raw_es256(signer, {"alg": "ES256", "kid": other.kid}, {"sub": "alice"})
    with pytest.raises(JoseError) as caught:
        verify_jwt_with_key(token, other, algorithms=["ES256"])
    assert caught.value.reason == "bad_signature"


def test_one_given_key_must_fit_the_header_alg() -> None:
    key = generate_signing_key("EdDSA")
    token = sign_jwt(key, {})
    with pytest.raises(JoseError) as caught:
        verify_jwt_with_key(token, generate_signing_key("ES256"), algorithms=["ES256", "EdDSA"])
    assert caught.value.reason == "unknown_key"


def test_tampered_payload_fails_the_signature() -> None:
    key = generate_signing_key("EdDSA")
    head, _, sig = sign_jwt(key, {"sub": "alice"}).split(".")
    body = b64(json.dumps({"sub": "mallory"}).encode())
    with pytest.raises(JoseError) as caught:
        verify_jwt(f"{head}.{body}.{sig}", [key], algorithms=["EdDSA"])
    assert caught.value.reason == "bad_signature"


@pytest.mark.parametrize("junk", ["", "a.b", "not-a-jwt", "....", "é.é.é"])
def test_malformed_tokens_are_refused(junk: str) -> None:
    key = generate_signing_key("ES256")
    with pytest.raises(JoseError) as caught:
        verify_jwt(junk, [key], algorithms=["ES256"])
    assert caught.value.reason == "malformed"


def test_header_cannot_override_alg_or_kid() -> None:
    key = generate_signing_key("ES256")
    with pytest.raises(ValueError, match="alg"):
        sign_jwt(key, {}, header={"alg": "none"})
    with pytest.raises(ValueError, match="kid"):
        sign_jwt(key, {}, header={"kid": "other"})


def test_public_key_cannot_sign() -> None:
    public = import_public_jwk(generate_signing_key("ES256").public_jwk())
    with pytest.raises(ValueError, match="private"):
        sign_jwt(public, {})


def test_claims_validation_time_window() -> None:
    """RFC 7519 §4.1.4/§4.1.5: exp in the future, nbf/iat not in the future (with leeway)."""
    good = {"exp": T0 + 60, "iat": T0, "nbf": T0}
    validate_claims(good, now=T0)
    with pytest.raises(JoseError) as caught:
        validate_claims(good, now=T0 + 60)
    assert caught.value.reason == "expired"
    validate_claims(good, now=T0 + 60, leeway=5)
    with pytest.raises(JoseError) as caught:
        validate_claims({"exp": T0 + 60, "iat": T0 + 10}, now=T0)
    assert caught.value.reason == "not_yet_valid"
    with pytest.raises(JoseError) as caught:
        validate_claims({"exp": T0 + 60, "nbf": T0 + 10}, now=T0)
    assert caught.value.reason == "not_yet_valid"
    validate_claims({"exp": T0 + 60, "nbf": T0 + 10}, now=T0, leeway=10)
    with pytest.raises(JoseError) as caught:
        validate_claims({"iat": T0}, now=T0)
    assert caught.value.reason == "missing_claim"


def test_claims_validation_issuer_and_audience() -> None:
    """RFC 7519 §4.1.1/§4.1.3: iss equals, aud contains."""
    claims = {"exp": T0 + 60, "iss": "https://as", "aud": ["https://rs", "https://other"]}
    validate_claims(claims, now=T0, issuer="https://as", audience="https://rs")
    with pytest.raises(JoseError) as caught:
        validate_claims(claims, now=T0, issuer="https://evil", audience="https://rs")
    assert caught.value.reason == "invalid_claim"
    with pytest.raises(JoseError) as caught:
        validate_claims(claims, now=T0, issuer="https://as", audience="https://nope")
    assert caught.value.reason == "invalid_claim"


def test_es256_signature_is_the_raw_r_and_s_a_plain_ecdsa_verifier_accepts() -> None:
    """RFC 7518 §3.4: R and S as 32-octet big-endian integers. Checked with ``cryptography``
    alone (not joserfc, whose signing authward's ES256 path bypasses)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    key = generate_signing_key("ES256")
    public = key.public_jwk()
    numbers = ec.EllipticCurvePublicNumbers(
        int.from_bytes(base64.urlsafe_b64decode(public["x"] + "=="), "big"),
        int.from_bytes(base64.urlsafe_b64decode(public["y"] + "=="), "big"),
        ec.SECP256R1(),
    )
    for claims in ({"sub": "alice"}, {"sub": "bob", "n": 2}):
        token = sign_jwt(key, claims)
        head, body, signature = token.split(".")
        raw = base64.urlsafe_b64decode(signature + "==")
        assert len(raw) == 64
        der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
        numbers.public_key().verify(der, f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256()))
        assert json.loads(base64.urlsafe_b64decode(body + "==")) == claims
