"""The resource-server verifier: credentials, DPoP with ath and replay, token checks, scopes.

A resource server apart from the authorization server: it knows the issuer's public JWKS (as a
key provider), its own audience and a revocation check; the DPoP replay cache is the real SQL
replay store on both engines (the ``db`` fixture).
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from authward.core.dpop import DPoPVerifier, access_token_hash
from authward.core.http import Request
from authward.core.jose import JsonWebKey, JwsAlgorithm, generate_signing_key
from authward.core.keys import KeySet
from authward.core.resource import Authorized, Refused, ResourceVerifier, keys_from_jwks
from authward.core.tokens import MintedAccessToken, mint_access_token
from authward.stores.clock import FrozenClock
from authward.stores.sql.replay import SqlReplayStore
from tests.core.dpop_proofs import proof
from tests.dbkit import T0, Db

ISSUER = "https://as.example"
API = "https://api.example"
URL = API + "/things?page=2"
ALGS: tuple[JwsAlgorithm, ...] = ("ES256", "RS256")


@pytest.fixture(scope="module")
def keyset() -> KeySet:
    return KeySet.generate(("ES256",), now=T0 - 60)


@pytest.fixture(scope="module")
def dpop_key() -> JsonWebKey:
    return generate_signing_key("ES256")


def _token(
    keyset: KeySet, *, scopes: tuple[str, ...] = ("read",), audience: str = API,
    dpop_jkt: str | None = None, now: float = T0, lifetime: int = 300,
) -> MintedAccessToken:
    return mint_access_token(
        keyset.signing_key("ES256"), issuer=ISSUER, subject="alice", client_id="web-app",
        audience=audience, scopes=scopes, lifetime=lifetime, now=now, dpop_jkt=dpop_jkt,
    )


def _verifier(
    db: Db, keyset: KeySet, *, revoked: frozenset[str] = frozenset(), dpop: bool = True,
    provider_async: bool = True,
) -> ResourceVerifier:
    public = keys_from_jwks(keyset.public_jwks(now=db.clock.now(), max_token_lifetime=900))

    async def fetch_keys() -> Sequence[JsonWebKey]:
        return public

    def cached_keys() -> Sequence[JsonWebKey]:
        return public

    async def is_revoked(jti: str, /) -> bool:
        return jti in revoked

    verifier = DPoPVerifier(
        replay_store=SqlReplayStore(db.engine, clock=db.clock), clock=db.clock, algorithms=ALGS
    )
    return ResourceVerifier(
        issuer=ISSUER, audience=API, keys=fetch_keys if provider_async else cached_keys,
        clock=db.clock, is_revoked=is_revoked, dpop=verifier if dpop else None,
    )


def _get(*headers: tuple[str, str], url: str = URL) -> Request:
    return Request.build("GET", url, headers=headers)


def _dpop(clock: FrozenClock, key: JsonWebKey, token: str) -> str:
    return proof(key, htm="GET", htu=URL, iat=clock.now(), ath=access_token_hash(token))


async def test_bearer_token_is_authorized_with_its_scopes(db: Db, keyset: KeySet) -> None:
    """RFC 6750 §2.1, RFC 9068 §4; keys from a sync and from an async provider."""
    token = _token(keyset, scopes=("read", "write"))
    for provider_async in (True, False):
        verifier = _verifier(db, keyset, provider_async=provider_async)
        outcome = await verifier.authorize(
            _get(("Authorization", f"Bearer {token.token}")), required_scopes=("read",)
        )
        assert isinstance(outcome, Authorized)
        assert outcome.scheme == "Bearer"
        assert outcome.token.subject == "alice"
        assert outcome.token.scopes == ("read", "write")
        assert outcome.proof is None


async def test_keyset_source_verifies_too(db: Db, keyset: KeySet) -> None:
    verifier = ResourceVerifier(issuer=ISSUER, audience=API, keys=keyset, clock=db.clock)
    outcome = await verifier.authorize(_get(("Authorization", f"Bearer {_token(keyset).token}")))
    assert isinstance(outcome, Authorized)


async def test_no_credentials_gets_bare_challenges(db: Db, keyset: KeySet) -> None:
    """RFC 6750 §3.1 (no error code), RFC 9449 §7.1 (DPoP algs)."""
    verifier = _verifier(db, keyset)
    for request in (_get(), _get(("Authorization", "Basic YTpi"))):
        outcome = await verifier.authorize(request)
        assert isinstance(outcome, Refused)
        assert outcome.error is None
        assert outcome.response.status == 401
        assert outcome.response.headers.get_all("WWW-Authenticate") == (
            "Bearer", 'DPoP algs="ES256 RS256"'
        )


async def test_without_dpop_only_bearer_is_offered(db: Db, keyset: KeySet) -> None:
    verifier = _verifier(db, keyset, dpop=False)
    bare = await verifier.authorize(_get())
    assert isinstance(bare, Refused)
    assert bare.response.headers.get_all("WWW-Authenticate") == ("Bearer",)
    dpop = await verifier.authorize(_get(("Authorization", f"DPoP {_token(keyset).token}")))
    assert isinstance(dpop, Refused)
    assert dpop.error is not None
    assert dpop.error.error == "invalid_token"


@pytest.mark.parametrize(
    "case", ["wrong-audience", "expired", "revoked", "garbage", "other-issuer-key"]
)
async def test_bad_tokens_are_invalid_token(db: Db, keyset: KeySet, case: str) -> None:
    good = _token(keyset)
    tokens = {
        "wrong-audience": _token(keyset, audience="https://elsewhere.example").token,
        "expired": _token(keyset, now=T0 - 600).token,
        "revoked": good.token,
        "garbage": "abc.def.ghi",
        "other-issuer-key": _token(KeySet.generate(("ES256",), now=T0)).token,
    }
    verifier = _verifier(db, keyset, revoked=frozenset({good.jti}))
    outcome = await verifier.authorize(_get(("Authorization", f"Bearer {tokens[case]}")))
    assert isinstance(outcome, Refused)
    assert outcome.response.status == 401
    challenges = outcome.response.headers.get_all("WWW-Authenticate")
    assert challenges[0].startswith('Bearer error="invalid_token"')
    assert challenges[1] == 'DPoP algs="ES256 RS256"'


async def test_malformed_credentials_are_invalid_request(db: Db, keyset: KeySet) -> None:
    """RFC 6750 §3.1: invalid_request (400) for a malformed request."""
    token = _token(keyset).token
    verifier = _verifier(db, keyset)
    for request in (
        _get(("Authorization", "Bearer")),
        _get(("Authorization", "Bearer a b")),
        _get(("Authorization", "Bearer tok%en")),
        _get(("Authorization", f"Bearer {token}"), ("Authorization", f"Bearer {token}")),
        _get(url=URL + "&access_token=" + token),
        Request.build("POST", URL, form=[("access_token", token)]),
    ):
        outcome = await verifier.authorize(request)
        assert isinstance(outcome, Refused)
        assert outcome.response.status == 400
        assert outcome.error is not None
        assert outcome.error.error == "invalid_request"


async def test_missing_scope_is_insufficient_scope(db: Db, keyset: KeySet) -> None:
    """RFC 6750 §3.1: 403 naming the needed scope."""
    verifier = _verifier(db, keyset)
    outcome = await verifier.authorize(
        _get(("Authorization", f"Bearer {_token(keyset).token}")),
        required_scopes=("read", "admin"),
    )
    assert isinstance(outcome, Refused)
    assert outcome.response.status == 403
    challenge = outcome.response.headers.get_all("WWW-Authenticate")[0]
    assert challenge.startswith('Bearer error="insufficient_scope"')
    assert challenge.endswith('scope="read admin"')


async def test_dpop_bound_token_with_proof_and_ath_is_authorized_once(
    db: Db, keyset: KeySet, dpop_key: JsonWebKey
) -> None:
    """RFC 9449 §7.1 (ath), §11.1 (replay)."""
    token = _token(keyset, dpop_jkt=dpop_key.kid).token
    verifier = _verifier(db, keyset)
    request = _get(("Authorization", f"DPoP {token}"), ("DPoP", _dpop(db.clock, dpop_key, token)))

    outcome = await verifier.authorize(request, required_scopes=("read",))
    assert isinstance(outcome, Authorized)
    assert outcome.scheme == "DPoP"
    assert outcome.proof is not None
    assert outcome.token.dpop_jkt == dpop_key.kid

    replay = await verifier.authorize(request)
    assert isinstance(replay, Refused)
    challenges = replay.response.headers.get_all("WWW-Authenticate")
    assert challenges[0].startswith('DPoP error="invalid_dpop_proof"')
    assert challenges[1] == "Bearer"


async def test_dpop_failures_are_refused(
    db: Db, keyset: KeySet, dpop_key: JsonWebKey
) -> None:
    """RFC 9449 §7.1, §7.2."""
    bound = _token(keyset, dpop_jkt=dpop_key.kid).token
    unbound = _token(keyset).token
    other_key = generate_signing_key("ES256")
    verifier = _verifier(db, keyset)
    cases = {
        "bound-as-bearer": (_get(("Authorization", f"Bearer {bound}")), "invalid_token"),
        "no-proof": (_get(("Authorization", f"DPoP {bound}")), "invalid_dpop_proof"),
        "wrong-ath": (
            _get(("Authorization", f"DPoP {bound}"),
                 ("DPoP", _dpop(db.clock, dpop_key, unbound))),
            "invalid_dpop_proof",
        ),
        "other-key": (
            _get(("Authorization", f"DPoP {bound}"),
                 ("DPoP", _dpop(db.clock, other_key, bound))),
            "invalid_token",
        ),
        "unbound-as-dpop": (
            _get(("Authorization", f"DPoP {unbound}"),
                 ("DPoP", _dpop(db.clock, dpop_key, unbound))),
            "invalid_token",
        ),
    }
    for name, (request, expected) in cases.items():
        outcome = await verifier.authorize(request)
        assert isinstance(outcome, Refused), name
        assert outcome.response.status == 401, name
        assert outcome.error is not None
        assert outcome.error.error == expected, name


def test_keys_from_jwks_skips_unusable_entries(keyset: KeySet) -> None:
    """RFC 7517 §5: readers ignore keys they do not understand."""
    jwks = keyset.public_jwks(now=T0, max_token_lifetime=900)
    keys = keys_from_jwks({"keys": [*jwks["keys"], {"kty": "oct", "k": "AAAA"}, "nope"]})
    assert [k.kid for k in keys] == [entry["kid"] for entry in jwks["keys"]]
    with pytest.raises(ValueError, match="keys"):
        keys_from_jwks({"keys": "nope"})
