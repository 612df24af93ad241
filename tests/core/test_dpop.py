"""DPoP proof verification (RFC 9449 §4.3, §7.1, §8, §9, §11.1) on the real SQL stores.

Every store-touching test runs on SQLite and PostgreSQL through the ``db`` fixture. Each refusal
also checks that no replay row was written: the ``jti`` is recorded last, so a proof refused for
any other reason is not burnt.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from authward.core.config import Settings
from authward.core.dpop import (
    DPoPVerifier,
    ProofSite,
    ProtectedResource,
    TokenEndpoint,
    VerifiedProof,
    access_token_hash,
    check_binding,
    normalize_htu,
)
from authward.core.errors import (
    BearerChallenge,
    InvalidDPoPProofError,
    InvalidGrantError,
    UseDPoPNonceError,
)
from authward.core.http import Request, error_response
from authward.core.jose import (
    SIGNING_ALGORITHMS,
    JsonWebKey,
    SigningAlgorithm,
    generate_signing_key,
    jwk_thumbprint,
)
from authward.stores.clock import FrozenClock
from authward.stores.digest import digest
from authward.stores.sql.convert import from_column
from authward.stores.sql.dpop_nonces import SqlDpopNonceStore
from authward.stores.sql.replay import SqlReplayStore
from tests.core.dpop_proofs import (
    RESOURCE_URL,
    TOKEN_URL,
    claims_for,
    hs256,
    omit,
    proof,
    public_members,
    raw_es256,
    unsigned,
)
from tests.dbkit import T0, Db

TOKEN = TokenEndpoint()
RESOURCE = ProtectedResource(realm="api")
ACCESS_TOKEN = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"

# RFC 9449 §4.1 Figure 2 (token request) and §7.1 Figure 13 (resource request), unwrapped.
RFC_TOKEN_PROOF = (
    "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0Vj"
    "NoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5"
    "VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIjoiUE9TV"
    "CIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwiaWF0IjoxNTYyMjYyNjE2fQ.2-GxA6T8"
    "lP4vfrg8v-FdWP0A0zdrj8igiMLvqRMUvwnQg4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg"
)
RFC_RESOURCE_PROOF = (
    "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0Vj"
    "NoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5"
    "VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiJlMWozVl9iS2ljOC1MQUVCIiwiaHRtIjoiR0VUI"
    "iwiaHR1IjoiaHR0cHM6Ly9yZXNvdXJjZS5leGFtcGxlLm9yZy9wcm90ZWN0ZWRyZXNvdXJjZSIsImlhdCI6MTU2MjI"
    "2MjYxOCwiYXRoIjoiZlVIeU8ycjJaM0RaNTNFc05yV0JiMHhXWG9hTnk1OUlpS0NBcWtzbVFFbyJ9.2oW9RP35yRqz"
    "hrtNP86L-Ey71EOptxRimPPToA1plemAgR6pxHF8y6-yqyVnmcw6Fy1dqd-jfxSYoMxhAJpLjA"
)
RFC_JKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"  # RFC 9449 §6.1 Figure 9
RFC_JWK = {
    "kty": "EC",
    "x": "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
    "y": "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA",
    "crv": "P-256",
}


@pytest.fixture(scope="module")
def keys() -> dict[str, JsonWebKey]:
    made: dict[str, JsonWebKey] = {alg: generate_signing_key(alg) for alg in SIGNING_ALGORITHMS}
    made["other"] = generate_signing_key("ES256")
    return made


@pytest.fixture(scope="module")
def es(keys: dict[str, JsonWebKey]) -> JsonWebKey:
    return keys["ES256"]


def verifier(db: Db, *, clock: FrozenClock | None = None, **options: Any) -> DPoPVerifier:
    return DPoPVerifier(
        replay_store=SqlReplayStore(db.engine, clock=db.clock),
        nonce_store=SqlDpopNonceStore(db.engine, clock=db.clock),
        clock=clock or db.clock,
        algorithms=options.pop("algorithms", SIGNING_ALGORITHMS),
        **options,
    )


def request(*proofs: str, method: str = "POST", url: str = TOKEN_URL) -> Request:
    return Request.build(method, url, headers=[("DPoP", p) for p in proofs])


async def replay_rows(db: Db) -> int:
    return len(await db.rows(db.tables.dpop_replays))


async def refused(
    db: Db,
    req: Request,
    match: str,
    *,
    site: ProofSite = TOKEN,
    access_token: str | None = None,
    **options: Any,
) -> InvalidDPoPProofError:
    """Assert the proof is refused with invalid_dpop_proof and that no jti was recorded."""
    with pytest.raises(InvalidDPoPProofError, match=match) as info:
        await verifier(db, **options).verify(req, site=site, access_token=access_token)
    assert info.value.error == "invalid_dpop_proof"
    assert await replay_rows(db) == 0
    return info.value


# --- RFC 9449 examples ----------------------------------------------------------------------------


async def test_rfc9449_token_request_example_proof_verifies(db: Db) -> None:
    """RFC 9449 §4.1 Figure 2 at its own iat; the thumbprint is §6.1's."""
    clock = FrozenClock(1562262616)
    proof_ = await verifier(db, clock=clock).verify(request(RFC_TOKEN_PROOF), site=TOKEN)
    assert proof_ is not None
    assert proof_.jkt == RFC_JKT == jwk_thumbprint(RFC_JWK)
    assert proof_.jti == "-BwC3ESc6acc2lTc"
    assert proof_.iat == 1562262616
    assert proof_.nonce is None
    assert dict(proof_.public_jwk) == RFC_JWK
    assert [r.jti for r in await db.rows(db.tables.dpop_replays)] == [
        f"dpop:{digest('-BwC3ESc6acc2lTc')}"
    ]


async def test_rfc9449_resource_example_proof_verifies_with_its_ath(db: Db) -> None:
    """RFC 9449 §7.1 Figure 13: GET with ath over the §7.1 example access token."""
    assert access_token_hash(ACCESS_TOKEN) == "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
    clock = FrozenClock(1562262618)
    req = request(RFC_RESOURCE_PROOF, method="GET", url=RESOURCE_URL)
    proof_ = await verifier(db, clock=clock).verify(req, site=RESOURCE, access_token=ACCESS_TOKEN)
    assert proof_ is not None
    assert proof_.jkt == RFC_JKT


async def test_rfc9449_example_proof_is_too_old_today(db: Db) -> None:
    """The same Figure 2 proof at the fixture's clock (2026) is outside the iat window."""
    await refused(db, request(RFC_TOKEN_PROOF), "too old")


# --- success paths --------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", SIGNING_ALGORITHMS)
async def test_proof_signed_with_each_allowed_algorithm_verifies(
    db: Db, keys: dict[str, JsonWebKey], alg: SigningAlgorithm
) -> None:
    key = keys[alg]
    result = await verifier(db).verify(request(proof(key, iat=T0, jti="j-1")), site=TOKEN)
    assert result == VerifiedProof(
        jkt=key.kid, jti="j-1", iat=T0, nonce=None, public_jwk=public_members(key)
    )
    assert dict(result.public_jwk) == public_members(key)


async def test_request_without_dpop_header_returns_none_and_writes_nothing(db: Db) -> None:
    """RFC 9449 §4.3: whether a proof is required is the caller's decision."""
    assert await verifier(db).verify(request(), site=TOKEN) is None
    assert await replay_rows(db) == 0


async def test_proof_without_kid_header_verifies(db: Db, es: JsonWebKey) -> None:
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": public_members(es)}
    token = raw_es256(es, header, claims_for(iat=T0))
    result = await verifier(db).verify(request(token), site=TOKEN)
    assert result is not None
    assert result.jkt == es.kid


async def test_jti_is_recorded_for_the_window_plus_skew(db: Db, es: JsonWebKey) -> None:
    """RFC 9449 §11.1: the replay row outlives every instant the proof could be accepted."""
    v = verifier(db, window_seconds=60, future_skew_seconds=5)
    assert v.replay_ttl_seconds == 65
    await v.verify(request(proof(es, iat=T0, jti="ttl")), site=TOKEN)
    (row,) = await db.rows(db.tables.dpop_replays)
    assert row.jti == f"dpop:{digest('ttl')}"
    assert from_column(row.expires_at) == pytest.approx(T0 + 65)


async def test_verifier_from_settings_uses_the_dpop_settings(db: Db, es: JsonWebKey) -> None:
    settings = Settings(
        issuer="https://server.example.com",
        refresh_token_rotation_grace_seconds=0,
        dpop_algs=("EdDSA",),
        dpop_proof_window_seconds=120,
    )
    v = DPoPVerifier.from_settings(
        settings, replay_store=SqlReplayStore(db.engine), clock=db.clock
    )
    assert v.algorithms == ("EdDSA",)
    assert v.replay_ttl_seconds == 125
    with pytest.raises(InvalidDPoPProofError, match="alg is not supported"):
        await v.verify(request(proof(es, iat=T0)), site=TOKEN)


# --- header count and JWS shape -------------------------------------------------------------------


async def test_two_dpop_headers_are_refused(db: Db, es: JsonWebKey) -> None:
    """RFC 9449 §4.3 item 1."""
    await refused(db, request(proof(es, iat=T0), proof(es, iat=T0)), "Only one DPoP header")


async def test_dpop_header_names_are_case_insensitive(db: Db, es: JsonWebKey) -> None:
    req = Request.build(
        "POST", TOKEN_URL, headers=[("dpop", proof(es, iat=T0)), ("DPOP", proof(es, iat=T0))]
    )
    await refused(db, req, "Only one DPoP header")


@pytest.mark.parametrize("value", ["", "not-a-jwt", "a.b.c", "e30.e30", "x.y.z.w.v"])
async def test_malformed_jws_is_refused(db: Db, value: str) -> None:
    """RFC 9449 §4.3 item 2."""
    await refused(db, request(value), "not a well-formed JWS")


async def test_comma_joined_proofs_are_refused(db: Db, es: JsonWebKey) -> None:
    joined = proof(es, iat=T0) + ", " + proof(es, iat=T0)
    await refused(db, request(joined), "not a well-formed JWS")


# --- typ, alg, jwk, signature ---------------------------------------------------------------------


@pytest.mark.parametrize("typ", [None, "JWT", "at+jwt", "DPOP+JWT", "application/dpop+jwt"])
async def test_wrong_typ_is_refused(db: Db, es: JsonWebKey, typ: str | None) -> None:
    """RFC 9449 §4.3 item 4."""
    header: dict[str, object] = {"alg": "ES256", "jwk": public_members(es)}
    if typ is not None:
        header["typ"] = typ
    await refused(db, request(raw_es256(es, header, claims_for(iat=T0))), "typ must be dpop")


async def test_alg_none_is_refused(db: Db, es: JsonWebKey) -> None:
    """RFC 9449 §4.3 item 5: never none."""
    header = {"typ": "dpop+jwt", "alg": "none", "jwk": public_members(es)}
    await refused(db, request(unsigned(header, claims_for(iat=T0))), "alg is not supported")


async def test_hs256_is_refused(db: Db, es: JsonWebKey) -> None:
    """RFC 9449 §4.3 item 5: never a MAC, even with an oct jwk the client chose."""
    header = {"typ": "dpop+jwt", "alg": "HS256", "jwk": {"kty": "oct", "k": "c2VjcmV0"}}
    token = hs256(b"secret", header, claims_for(iat=T0))
    await refused(db, request(token), "alg is not supported")


async def test_asymmetric_alg_outside_the_allow_list_is_refused(
    db: Db, keys: dict[str, JsonWebKey]
) -> None:
    await refused(
        db, request(proof(keys["RS256"], iat=T0)), "alg is not supported", algorithms=("ES256",)
    )


async def test_missing_jwk_is_refused(db: Db, es: JsonWebKey) -> None:
    header = {"typ": "dpop+jwt", "alg": "ES256"}
    await refused(db, request(raw_es256(es, header, claims_for(iat=T0))), "no jwk header")


async def test_private_key_in_jwk_is_refused(db: Db, es: JsonWebKey) -> None:
    """RFC 9449 §4.3 item 7."""
    private = dict(es.private_jwk())
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": private}
    await refused(db, request(raw_es256(es, header, claims_for(iat=T0))), "usable public key")


async def test_jwk_of_another_key_type_than_alg_is_refused(
    db: Db, es: JsonWebKey, keys: dict[str, JsonWebKey]
) -> None:
    """ES256 proof carrying an RSA jwk."""
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": public_members(keys["RS256"])}
    token = raw_es256(es, header, claims_for(iat=T0))
    await refused(db, request(token), "does not fit its alg")


async def test_jwk_whose_alg_member_contradicts_its_key_is_refused(
    db: Db, es: JsonWebKey
) -> None:
    """A P-256 jwk claiming ``alg: ES384`` is not a usable key at all."""
    jwk = {**public_members(es), "alg": "ES384"}
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk}
    await refused(db, request(raw_es256(es, header, claims_for(iat=T0))), "usable public key")


async def test_symmetric_jwk_is_refused(db: Db, es: JsonWebKey) -> None:
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": {"kty": "oct", "k": "c2VjcmV0"}}
    await refused(db, request(raw_es256(es, header, claims_for(iat=T0))), "usable public key")


async def test_signature_by_another_key_than_the_jwk_is_refused(
    db: Db, es: JsonWebKey, keys: dict[str, JsonWebKey]
) -> None:
    """RFC 9449 §4.3 item 6: signed by ``other`` but presenting ``es``'s public key."""
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": public_members(es)}
    token = raw_es256(keys["other"], header, claims_for(iat=T0))
    await refused(db, request(token), "signature is invalid")


async def test_tampered_payload_is_refused(db: Db, es: JsonWebKey) -> None:
    head, _, sig = proof(es, iat=T0, htm="GET").split(".")
    _, body, _ = proof(es, iat=T0, htm="POST").split(".")
    await refused(db, request(f"{head}.{body}.{sig}"), "signature is invalid")


async def test_proof_with_a_kid_that_is_not_the_jwk_thumbprint_verifies(
    db: Db, es: JsonWebKey
) -> None:
    """RFC 9449 §4.2, §4.3: the proof's own jwk is the key; a kid header is only a hint."""
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": public_members(es), "kid": "my-key-1"}
    token = raw_es256(es, header, claims_for(iat=T0))
    result = await verifier(db).verify(request(token), site=TOKEN)
    assert result is not None
    assert result.jkt == es.kid
    assert await replay_rows(db) == 1


async def test_proof_with_a_kid_that_is_not_a_string_is_refused(
    db: Db, es: JsonWebKey
) -> None:
    """RFC 7515 §4.1.4: kid is a string."""
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": public_members(es), "kid": 7}
    token = raw_es256(es, header, claims_for(iat=T0))
    await refused(db, request(token), "not a well-formed JWS")


# --- claims ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("jti", [omit(), "", 42])
async def test_missing_or_non_string_jti_is_refused(db: Db, es: JsonWebKey, jti: object) -> None:
    """RFC 9449 §4.2, §4.3 item 3."""
    await refused(db, request(proof(es, iat=T0, jti=jti)), "needs a jti")


async def test_jti_of_1024_characters_is_accepted(db: Db, es: JsonWebKey) -> None:
    result = await verifier(db).verify(request(proof(es, iat=T0, jti="j" * 1024)), site=TOKEN)
    assert result is not None
    assert len(result.jti) == 1024


async def test_over_long_jti_is_a_malformed_proof(db: Db, es: JsonWebKey) -> None:
    """Spec §3.6 hardening: more than 1024 characters never reaches the store."""
    await refused(db, request(proof(es, iat=T0, jti="j" * 1025)), "jti is too long")


@pytest.mark.parametrize("htm", ["GET", "post", None])
async def test_wrong_htm_is_refused(db: Db, es: JsonWebKey, htm: str | None) -> None:
    """RFC 9449 §4.3 item 8 (methods are case-sensitive)."""
    token = proof(es, iat=T0, htm=omit() if htm is None else htm)
    await refused(db, request(token), "htm does not match")


@pytest.mark.parametrize(
    "htu",
    [
        "https://server.example.com/token2",
        "https://server.example.com/other/token",
        "https://server.example.com/",
        "http://server.example.com/token",
        "https://server.example.com:8443/token",
        "https://evil.example.com/token",
        "/token",
        "urn:x:token",
    ],
)
async def test_wrong_htu_is_refused(db: Db, es: JsonWebKey, htu: str) -> None:
    """RFC 9449 §4.3 item 9."""
    await refused(db, request(proof(es, iat=T0, htu=htu)), "htu does not match")


async def test_missing_htu_is_refused(db: Db, es: JsonWebKey) -> None:
    await refused(db, request(proof(es, iat=T0, htu=omit())), "htu does not match")


@pytest.mark.parametrize(
    ("htu", "url"),
    [
        ("https://server.example.com/token", "https://server.example.com/token?a=1#frag"),
        ("https://server.example.com/token?x=2#y", "https://server.example.com/token"),
        ("HTTPS://Server.Example.COM/token", "https://server.example.com/token"),
        ("https://server.example.com:443/token", "https://server.example.com/token"),
        ("https://server.example.com/token", "https://server.example.com:443/token"),
        ("https://server.example.com:/token", "https://server.example.com/token"),
        ("http://server.example.com:80/token", "http://server.example.com/token"),
        ("https://server.example.com/%7Etoken", "https://server.example.com/~token"),
        ("https://server.example.com/a%2fb", "https://server.example.com/a%2Fb"),
        ("https://server.example.com/x/../token", "https://server.example.com/token"),
        ("https://server.example.com", "https://server.example.com/"),
    ],
)
async def test_htu_is_compared_after_normalisation(
    db: Db, es: JsonWebKey, htu: str, url: str
) -> None:
    """RFC 9449 §4.3 item 9; RFC 3986 §6.2.2 and §6.2.3."""
    result = await verifier(db).verify(request(proof(es, iat=T0, htu=htu), url=url), site=TOKEN)
    assert result is not None


@pytest.mark.parametrize(
    ("uri", "normal"),
    [
        ("HTTPS://EXAMPLE.com:443", "https://example.com/"),
        ("http://example.com:8080/a?b#c", "http://example.com:8080/a"),
        ("http://example.com:0080/", "http://example.com/"),
        ("https://example.com:80/", "https://example.com:80/"),
        ("https://[2001:DB8::1]:443/p", "https://[2001:db8::1]/p"),
        ("https://u%7e@example.com/%61%2f%2a", "https://u~@example.com/a%2F%2A"),
        ("https://example.com/a/./b/../c", "https://example.com/a/c"),
        ("https://ex%41mple.com/", "https://example.com/"),
    ],
)
def test_normalize_htu(uri: str, normal: str) -> None:
    assert normalize_htu(uri) == normal


@pytest.mark.parametrize(
    "uri", ["", "/token", "ftp://example.com/", "https://", "https://h:x/", "https://[::1/"]
)
def test_normalize_htu_rejects_non_http_uris(uri: str) -> None:
    assert normalize_htu(uri) is None


@pytest.mark.parametrize("iat", [omit(), "1767225600", True, math.inf])
async def test_missing_or_non_numeric_iat_is_refused(db: Db, es: JsonWebKey, iat: object) -> None:
    await refused(db, request(proof(es, iat=iat)), "numeric iat")


async def test_iat_at_the_edge_of_the_window_is_accepted(db: Db, es: JsonWebKey) -> None:
    v = verifier(db, window_seconds=60, future_skew_seconds=5)
    assert await v.verify(request(proof(es, iat=T0 - 60)), site=TOKEN) is not None
    assert await v.verify(request(proof(es, iat=T0 + 5)), site=TOKEN) is not None


async def test_iat_too_old_is_refused(db: Db, es: JsonWebKey) -> None:
    """RFC 9449 §4.3 item 11, §11.1."""
    await refused(db, request(proof(es, iat=T0 - 61)), "too old", window_seconds=60)


async def test_iat_in_the_future_is_refused(db: Db, es: JsonWebKey) -> None:
    await refused(db, request(proof(es, iat=T0 + 6)), "in the future", future_skew_seconds=5)


async def test_configured_window_widens_acceptance(db: Db, es: JsonWebKey) -> None:
    v = verifier(db, window_seconds=300)
    assert await v.verify(request(proof(es, iat=T0 - 299)), site=TOKEN) is not None


# --- ath (resource requests) ----------------------------------------------------------------------


def resource_request(token: str) -> Request:
    return request(token, method="GET", url=RESOURCE_URL)


async def test_resource_proof_with_matching_ath_verifies(db: Db, es: JsonWebKey) -> None:
    token = proof(es, iat=T0, htm="GET", htu=RESOURCE_URL, ath=access_token_hash("at-1"))
    result = await verifier(db).verify(
        resource_request(token), site=RESOURCE, access_token="at-1"
    )
    assert result is not None
    assert result.jkt == es.kid


async def test_resource_proof_without_ath_is_refused_with_a_dpop_challenge(
    db: Db, es: JsonWebKey
) -> None:
    """RFC 9449 §4.3 item 12, §7.1: 401 with WWW-Authenticate DPoP error=..., algs=..."""
    token = proof(es, iat=T0, htm="GET", htu=RESOURCE_URL)
    error = await refused(
        db, resource_request(token), "needs an ath", site=RESOURCE, access_token="at-1",
        algorithms=("ES256", "EdDSA"),
    )
    response = error_response(error)
    assert response.status == 401
    assert response.headers.get_all("WWW-Authenticate") == (
        'DPoP realm="api", error="invalid_dpop_proof", '
        'error_description="The DPoP proof needs an ath claim", algs="ES256 EdDSA"',
    )


async def test_resource_proof_with_wrong_ath_is_refused(db: Db, es: JsonWebKey) -> None:
    token = proof(es, iat=T0, htm="GET", htu=RESOURCE_URL, ath=access_token_hash("at-2"))
    await refused(
        db, resource_request(token), "ath does not match", site=RESOURCE, access_token="at-1"
    )


async def test_ath_on_a_token_request_is_ignored(db: Db, es: JsonWebKey) -> None:
    """Documented decision: RFC 9449 gives ath no meaning at the token endpoint."""
    token = proof(es, iat=T0, ath=access_token_hash("whatever"))
    assert await verifier(db).verify(request(token), site=TOKEN) is not None


async def test_site_and_access_token_must_agree(db: Db, es: JsonWebKey) -> None:
    v = verifier(db)
    with pytest.raises(ValueError, match="protected resource"):
        await v.verify(resource_request(proof(es, iat=T0)), site=RESOURCE)
    with pytest.raises(ValueError, match="token endpoint"):
        await v.verify(request(proof(es, iat=T0)), site=TOKEN, access_token="at")


async def test_token_endpoint_errors_are_400_json_without_challenge(
    db: Db, es: JsonWebKey
) -> None:
    """RFC 9449 §5."""
    error = await refused(db, request(proof(es, iat=T0, htm="GET")), "htm does not match")
    response = error_response(error)
    assert response.status == 400
    assert response.json == {
        "error": "invalid_dpop_proof",
        "error_description": "The DPoP proof htm does not match the request method",
    }
    assert "WWW-Authenticate" not in response.headers


async def test_resource_errors_can_also_advertise_bearer(db: Db, es: JsonWebKey) -> None:
    site = ProtectedResource(other_challenges=(BearerChallenge(),))
    token = proof(es, iat=T0, htm="POST", htu=RESOURCE_URL)
    error = await refused(db, resource_request(token), "htm", site=site, access_token="at")
    values = error_response(error).headers.get_all("WWW-Authenticate")
    assert values[0].startswith('DPoP error="invalid_dpop_proof"')
    assert values[1] == "Bearer"


# --- server nonces --------------------------------------------------------------------------------


async def nonce_rows(db: Db) -> list[str]:
    return [r.nonce for r in await db.rows(db.tables.dpop_nonces)]


async def test_nonce_required_and_missing_issues_a_persisted_nonce(
    db: Db, es: JsonWebKey
) -> None:
    """RFC 9449 §8, NON-17: use_dpop_nonce, DPoP-Nonce header, row persisted, retry works."""
    v = verifier(db, nonce_required=True)
    with pytest.raises(UseDPoPNonceError) as info:
        await v.verify(request(proof(es, iat=T0, jti="first")), site=TOKEN)
    error = info.value
    response = error_response(error)
    assert response.status == 400
    assert response.json == {
        "error": "use_dpop_nonce",
        "error_description": "Authorization server requires nonce in DPoP proof",
    }
    assert response.headers.get("DPoP-Nonce") == error.nonce
    assert await nonce_rows(db) == [error.nonce]
    assert await replay_rows(db) == 0
    # The retry with the issued nonce (and the same jti: it was not burnt) succeeds.
    retry = await v.verify(
        request(proof(es, iat=T0, jti="first", nonce=error.nonce)), site=TOKEN
    )
    assert retry is not None
    assert retry.nonce == error.nonce


async def test_nonce_error_at_a_resource_is_a_401_challenge(db: Db, es: JsonWebKey) -> None:
    """RFC 9449 §9."""
    v = verifier(db, nonce_required=True, algorithms=("ES256",))
    token = proof(es, iat=T0, htm="GET", htu=RESOURCE_URL, ath=access_token_hash("at"))
    with pytest.raises(UseDPoPNonceError) as info:
        await v.verify(resource_request(token), site=RESOURCE, access_token="at")
    response = error_response(info.value)
    assert response.status == 401
    assert response.headers.get("DPoP-Nonce") == info.value.nonce
    assert response.headers.get("WWW-Authenticate") == (
        'DPoP realm="api", error="use_dpop_nonce", '
        'error_description="Authorization server requires nonce in DPoP proof", algs="ES256"'
    )


async def test_stale_nonce_gets_a_fresh_one(db: Db, es: JsonWebKey) -> None:
    v = verifier(db, nonce_required=True, nonce_ttl=300)
    old = await SqlDpopNonceStore(db.engine, clock=db.clock).issue(300, now=T0 - 301)
    with pytest.raises(UseDPoPNonceError, match="invalid or expired") as info:
        await v.verify(request(proof(es, iat=T0, nonce=old)), site=TOKEN)
    assert info.value.nonce != old
    assert sorted(await nonce_rows(db)) == sorted([old, info.value.nonce])
    assert await replay_rows(db) == 0


async def test_unknown_nonce_gets_a_fresh_one(db: Db, es: JsonWebKey) -> None:
    v = verifier(db, nonce_required=True)
    with pytest.raises(UseDPoPNonceError) as info:
        await v.verify(request(proof(es, iat=T0, nonce="made-up")), site=TOKEN)
    assert await nonce_rows(db) == [info.value.nonce]


async def test_windowed_nonce_serves_several_proofs(db: Db, es: JsonWebKey) -> None:
    v = verifier(db, nonce_required=True, nonce_policy="windowed")
    nonce = await SqlDpopNonceStore(db.engine, clock=db.clock).issue(300, now=T0)
    for _ in range(3):
        assert await v.verify(request(proof(es, iat=T0, nonce=nonce)), site=TOKEN) is not None


async def test_single_use_nonce_works_once(db: Db, es: JsonWebKey) -> None:
    v = verifier(db, nonce_required=True, nonce_policy="single_use", nonce_ttl=300)
    nonce = await SqlDpopNonceStore(db.engine, clock=db.clock).issue(300, now=T0)
    assert await v.verify(request(proof(es, iat=T0, nonce=nonce)), site=TOKEN) is not None
    with pytest.raises(UseDPoPNonceError) as info:
        await v.verify(request(proof(es, iat=T0, nonce=nonce)), site=TOKEN)
    assert info.value.nonce != nonce
    assert await replay_rows(db) == 1


async def test_nonce_not_required_passes_the_claim_through(db: Db, es: JsonWebKey) -> None:
    result = await verifier(db).verify(request(proof(es, iat=T0, nonce="n-1")), site=TOKEN)
    assert result is not None
    assert result.nonce == "n-1"
    assert await nonce_rows(db) == []


async def test_non_string_nonce_is_a_malformed_proof(db: Db, es: JsonWebKey) -> None:
    await refused(db, request(proof(es, iat=T0, nonce=7)), "nonce must be a string")


# --- replay ---------------------------------------------------------------------------------------


async def test_replayed_proof_is_refused(db: Db, es: JsonWebKey) -> None:
    """RFC 9449 §11.1, REP-12 at the core level."""
    v = verifier(db)
    token = proof(es, iat=T0)
    assert await v.verify(request(token), site=TOKEN) is not None
    with pytest.raises(InvalidDPoPProofError, match="already used"):
        await v.verify(request(token), site=TOKEN)
    assert await replay_rows(db) == 1


async def test_refused_proof_does_not_burn_its_jti(db: Db, es: JsonWebKey) -> None:
    """A proof refused (here for its method) can still be used where it fits."""
    token = proof(es, iat=T0, htm="POST")
    await refused(db, request(token, method="PUT"), "htm does not match")
    assert await verifier(db).verify(request(token), site=TOKEN) is not None


async def test_same_jti_from_another_key_is_still_a_replay(
    db: Db, es: JsonWebKey, keys: dict[str, JsonWebKey]
) -> None:
    v = verifier(db)
    await v.verify(request(proof(es, iat=T0, jti="shared")), site=TOKEN)
    with pytest.raises(InvalidDPoPProofError, match="already used"):
        await v.verify(request(proof(keys["other"], iat=T0, jti="shared")), site=TOKEN)


# --- configuration and grant binding --------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"algorithms": ()}, "non-empty"),
        ({"algorithms": ("HS256",)}, "asymmetric"),
        ({"algorithms": ("none",)}, "asymmetric"),
        ({"window_seconds": 0}, "window_seconds"),
        ({"future_skew_seconds": -1}, "future_skew_seconds"),
        ({"future_skew_seconds": 301}, "future_skew_seconds"),
        ({"nonce_ttl": 0}, "nonce_ttl"),
        ({"nonce_policy": "sometimes"}, "nonce_policy"),
        ({"nonce_required": True, "nonce_store": None}, "nonce_store"),
    ],
)
async def test_bad_configuration_is_refused(db: Db, options: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {
        "replay_store": SqlReplayStore(db.engine),
        "nonce_store": SqlDpopNonceStore(db.engine),
        "clock": db.clock,
        "algorithms": ("ES256",),
    }
    args.update(options)
    with pytest.raises(ValueError, match=match):
        DPoPVerifier(**args)


def test_unbound_grant_accepts_any_or_no_proof() -> None:
    check_binding(None, None)
    check_binding(None, VerifiedProof("jkt", "j", T0, None, {}))


def test_bound_grant_without_proof_is_invalid_dpop_proof() -> None:
    with pytest.raises(InvalidDPoPProofError, match="required") as info:
        check_binding(RFC_JKT, None)
    assert info.value.status == 400


def test_bound_grant_with_another_key_is_invalid_grant() -> None:
    with pytest.raises(InvalidGrantError, match="different DPoP key"):
        check_binding(RFC_JKT, VerifiedProof("other-jkt", "j", T0, None, {}))


def test_bound_grant_with_its_key_passes() -> None:
    check_binding(RFC_JKT, VerifiedProof(RFC_JKT, "j", T0, None, {}))
