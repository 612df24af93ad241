"""RFC 9068 access tokens: minting and local verification, every refusal (RFC 9449 §7 included)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from authward.core.errors import InvalidDPoPProofError, InvalidTokenError
from authward.core.jose import JsonWebKey, read_unverified_header, sign_jwt
from authward.core.keys import KeySet
from authward.core.tokens import (
    AccessTokenClaims,
    Scheme,
    VerifiedAccessToken,
    mint_access_token,
    never_revoked,
    verify_access_token,
)

T0 = 1_700_000_000.0
ISS = "https://as.example"
AUD = "https://rs.example"
JKT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
OTHER_JKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"

Keys = tuple[JsonWebKey, ...]


@pytest.fixture(scope="module")
def keyset() -> KeySet:
    return KeySet.generate(["ES256", "RS256"], now=T0)


@pytest.fixture(scope="module")
def signer(keyset: KeySet) -> JsonWebKey:
    return keyset.signing_key("ES256")


@pytest.fixture(scope="module")
def public(keyset: KeySet) -> tuple[JsonWebKey, ...]:
    return keyset.verification_keys(now=T0, max_token_lifetime=3600)


def mint(signer: JsonWebKey, **overrides: object) -> str:
    args: dict[str, object] = {
        "issuer": ISS,
        "subject": "alice",
        "client_id": "app",
        "audience": AUD,
        "scopes": ["read", "write"],
        "lifetime": 300,
        "now": T0,
    }
    args.update(overrides)
    return mint_access_token(signer, **args).token  # type: ignore[arg-type]


async def verify(
    token: str,
    public: Keys,
    *,
    now: float = T0 + 10,
    scheme: Scheme = "Bearer",
    dpop_jkt: str | None = None,
    leeway: int = 0,
    audience: str = AUD,
    issuer: str = ISS,
) -> VerifiedAccessToken:
    return await verify_access_token(
        token,
        keys=public,
        issuer=issuer,
        audience=audience,
        now=now,
        scheme=scheme,
        dpop_jkt=dpop_jkt,
        is_revoked=never_revoked,
        leeway=leeway,
    )


def claims_at(now: float = T0, **changes: object) -> dict[str, object]:
    claims: dict[str, object] = {
        "iss": ISS, "sub": "alice", "aud": AUD, "exp": int(now) + 300, "iat": int(now),
        "jti": "j1", "client_id": "app",
    }
    claims.update(changes)
    return claims


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def test_minted_token_has_the_rfc9068_header_and_claims(signer: JsonWebKey) -> None:
    """RFC 9068 §2.1-§2.2."""
    minted = mint_access_token(
        signer, issuer=ISS, subject="alice", client_id="app", audience=AUD,
        scopes=["read", "write"], lifetime=300, now=T0 + 0.7, dpop_jkt=JKT,
        auth_time=int(T0) - 50, acr="urn:mace:incommon:iap:silver",
    )
    header = read_unverified_header(minted.token)
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "ES256"
    assert header["kid"] == signer.kid
    expected: AccessTokenClaims = {
        "iss": ISS, "sub": "alice", "aud": AUD, "exp": int(T0) + 300, "iat": int(T0),
        "jti": minted.jti, "client_id": "app", "scope": "read write", "cnf": {"jkt": JKT},
        "auth_time": int(T0) - 50, "acr": "urn:mace:incommon:iap:silver",
    }
    assert minted.claims == expected
    assert minted.exp == int(T0) + 300
    assert len(minted.jti) >= 22


def test_audience_comes_from_resource_indicators(signer: JsonWebKey) -> None:
    """RFC 8707 §2: one resource gives a string aud, several a list."""
    one = mint_access_token(signer, issuer=ISS, subject="s", client_id="c", audience=AUD,
                            resources=["https://api.one"], lifetime=60, now=T0)
    two = mint_access_token(signer, issuer=ISS, subject="s", client_id="c", audience=AUD,
                            resources=["https://api.one", "https://api.two"], lifetime=60, now=T0)
    assert one.claims["aud"] == "https://api.one"
    assert two.claims["aud"] == ["https://api.one", "https://api.two"]


def test_jtis_are_unique(signer: JsonWebKey) -> None:
    jtis = {mint_access_token(signer, issuer=ISS, subject="s", client_id="c", audience=AUD,
                              lifetime=60, now=T0).jti for _ in range(20)}
    assert len(jtis) == 20


async def test_valid_bearer_token_verifies(signer: JsonWebKey, public: Keys) -> None:
    result = await verify(mint(signer), public)
    assert (result.subject, result.client_id, result.scopes) == ("alice", "app", ("read", "write"))
    assert result.audience == (AUD,)
    assert result.dpop_jkt is None
    assert result.exp == int(T0) + 300


async def test_rs256_token_verifies(keyset: KeySet, public: Keys) -> None:
    result = await verify(mint(keyset.signing_key("RS256")), public)
    assert result.subject == "alice"


async def test_audience_list_must_contain_the_resource(
    signer: JsonWebKey, public: Keys
) -> None:
    token = mint(signer, resources=["https://a", AUD])
    assert (await verify(token, public)).audience == ("https://a", AUD)
    with pytest.raises(InvalidTokenError):
        await verify(token, public, audience="https://b")


async def test_expired_token_is_refused(signer: JsonWebKey, public: Keys) -> None:
    """RFC 9068 §4 item 7."""
    token = mint(signer)
    with pytest.raises(InvalidTokenError) as caught:
        await verify(token, public, now=T0 + 300)
    assert caught.value.status == 401
    assert caught.value.description == "The access token expired"
    assert (await verify(token, public, now=T0 + 300, leeway=5)).subject == "alice"


async def test_token_issued_in_the_future_is_refused(
    signer: JsonWebKey, public: Keys
) -> None:
    token = mint(signer, now=T0 + 30)
    with pytest.raises(InvalidTokenError, match="not yet valid"):
        await verify(token, public, now=T0)
    assert (await verify(token, public, now=T0, leeway=30)).subject == "alice"


async def test_token_with_future_nbf_is_refused(
    signer: JsonWebKey, public: Keys
) -> None:
    token = sign_jwt(signer, claims_at(nbf=int(T0) + 60), header={"typ": "at+jwt"})
    with pytest.raises(InvalidTokenError, match="not yet valid"):
        await verify(token, public, now=T0)


async def test_wrong_audience_is_refused(signer: JsonWebKey, public: Keys) -> None:
    with pytest.raises(InvalidTokenError):
        await verify(mint(signer), public, audience="https://other.example")


async def test_wrong_issuer_is_refused(signer: JsonWebKey, public: Keys) -> None:
    with pytest.raises(InvalidTokenError):
        await verify(mint(signer), public, issuer="https://evil.example")


@pytest.mark.parametrize("typ", ["JWT", "jwt", "dpop+jwt", None])
async def test_wrong_typ_is_refused(
    signer: JsonWebKey, public: Keys, typ: str | None
) -> None:
    """RFC 9068 §4 item 1: an ID token or other JWT is not an access token."""
    header = {} if typ is None else {"typ": typ}
    token = sign_jwt(signer, claims_at(), header=header)
    with pytest.raises(InvalidTokenError):
        await verify(token, public)


@pytest.mark.parametrize("typ", ["at+jwt", "AT+JWT", "application/at+jwt", "Application/AT+JWT"])
async def test_typ_is_compared_case_insensitively(
    signer: JsonWebKey, public: Keys, typ: str
) -> None:
    token = sign_jwt(signer, claims_at(), header={"typ": typ})
    assert (await verify(token, public)).jti == "j1"


async def test_alg_none_token_is_refused(public: Keys) -> None:
    head = b64(json.dumps({"alg": "none", "typ": "at+jwt"}).encode())
    body = b64(json.dumps(claims_at()).encode())
    with pytest.raises(InvalidTokenError):
        await verify(f"{head}.{body}.", public)


async def test_hs256_token_is_refused(public: Keys) -> None:
    key = public[0]
    head = b64(json.dumps({"alg": "HS256", "typ": "at+jwt", "kid": key.kid}).encode())
    body = b64(json.dumps(claims_at()).encode())
    secret = json.dumps(key.public_jwk()).encode()
    sig = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    with pytest.raises(InvalidTokenError):
        await verify(f"{head}.{body}.{b64(sig)}", public)


async def test_token_signed_by_an_unknown_key_is_refused(public: Keys) -> None:
    stranger = KeySet.generate(["ES256"], now=T0).signing_key("ES256")
    with pytest.raises(InvalidTokenError):
        await verify(mint(stranger), public)


async def test_missing_client_id_is_refused(
    signer: JsonWebKey, public: Keys
) -> None:
    claims = claims_at()
    del claims["client_id"]
    with pytest.raises(InvalidTokenError):
        await verify(sign_jwt(signer, claims, header={"typ": "at+jwt"}), public)


async def test_revoked_jti_is_refused(signer: JsonWebKey, public: Keys) -> None:
    minted = mint_access_token(signer, issuer=ISS, subject="s", client_id="c", audience=AUD,
                               lifetime=60, now=T0)
    asked: list[str] = []

    async def revoked(jti: str, /) -> bool:
        asked.append(jti)
        return jti == minted.jti

    with pytest.raises(InvalidTokenError, match="revoked"):
        await verify_access_token(minted.token, keys=public, issuer=ISS, audience=AUD,
                                  now=T0, scheme="Bearer", is_revoked=revoked)
    assert asked == [minted.jti]


async def test_dpop_bound_token_with_matching_proof_verifies(
    signer: JsonWebKey, public: Keys
) -> None:
    """RFC 9449 §7.1."""
    token = mint(signer, dpop_jkt=JKT)
    result = await verify(token, public, scheme="DPoP", dpop_jkt=JKT)
    assert result.dpop_jkt == JKT


async def test_dpop_bound_token_with_the_wrong_proof_key_is_refused(
    signer: JsonWebKey, public: Keys
) -> None:
    """RFC 9449 §7.1: the proof key must be the key the token is bound to."""
    token = mint(signer, dpop_jkt=JKT)
    with pytest.raises(InvalidTokenError, match="DPoP key binding"):
        await verify(token, public, scheme="DPoP", dpop_jkt=OTHER_JKT)


async def test_dpop_bound_token_presented_as_bearer_is_refused(
    signer: JsonWebKey, public: Keys
) -> None:
    """RFC 9449 §7.2: the downgrade guard."""
    token = mint(signer, dpop_jkt=JKT)
    with pytest.raises(InvalidTokenError):
        await verify(token, public, scheme="Bearer")
    with pytest.raises(InvalidTokenError):
        await verify(token, public, scheme="Bearer", dpop_jkt=JKT)


async def test_dpop_scheme_without_a_proof_is_an_invalid_proof(
    signer: JsonWebKey, public: Keys
) -> None:
    token = mint(signer, dpop_jkt=JKT)
    with pytest.raises(InvalidDPoPProofError):
        await verify(token, public, scheme="DPoP")


async def test_unbound_token_presented_as_dpop_is_refused(
    signer: JsonWebKey, public: Keys
) -> None:
    """Project decision (tokens module docstring): the DPoP scheme is for DPoP-bound tokens."""
    with pytest.raises(InvalidTokenError, match="not DPoP-bound"):
        await verify(mint(signer), public, scheme="DPoP", dpop_jkt=JKT)


@pytest.mark.parametrize("cnf", [{"x5t#S256": "abc"}, {"jkt": 5}, "jkt", {"jkt": ""}])
async def test_unknown_or_malformed_confirmation_fails_closed(
    signer: JsonWebKey, public: Keys, cnf: object
) -> None:
    token = sign_jwt(signer, claims_at(cnf=cnf), header={"typ": "at+jwt"})
    with pytest.raises(InvalidTokenError):
        await verify(token, public)


async def test_leeway_above_sixty_seconds_is_a_caller_bug(
    signer: JsonWebKey, public: Keys
) -> None:
    with pytest.raises(ValueError, match="leeway"):
        await verify(mint(signer), public, leeway=61)
