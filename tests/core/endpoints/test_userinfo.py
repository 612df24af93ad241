"""OIDC UserInfo: Bearer and DPoP access, RFC 6750 / RFC 9449 challenges, scope, revocation.

Runs on SQLite and PostgreSQL (the ``db`` fixture) with the real stores.
"""

from __future__ import annotations

import pytest

from authward.core.dpop import access_token_hash
from authward.core.endpoints.userinfo import handle
from authward.core.http import Request, Response
from authward.core.jose import JsonWebKey, generate_signing_key
from tests.core.dpop_proofs import omit, proof
from tests.core.endpoints.issued import SUBJECT, USERINFO_URL, code_family, mint
from tests.core.endpoints.kit import Kit, build, get, post
from tests.dbkit import Db

DPOP_CHALLENGE = 'DPoP algs="ES256 EdDSA PS256 RS256"'


@pytest.fixture(scope="module")
def dpop_key() -> JsonWebKey:
    return generate_signing_key("ES256")


def _challenges(response: Response) -> tuple[str, ...]:
    return response.headers.get_all("WWW-Authenticate")


def _with_claims(kit: Kit) -> Kit:
    kit.claims.by_subject[SUBJECT] = {"name": "Alice", "email": "alice@example.com", "sub": "x"}
    return kit


def _dpop_request(
    kit: Kit, key: JsonWebKey, token: str, *, method: str = "GET", nonce: str | None = None
) -> Request:
    presented = proof(
        key, htm=method, htu=USERINFO_URL, iat=kit.clock.now(), ath=access_token_hash(token),
        nonce=nonce if nonce is not None else omit(),
    )
    headers = [("Authorization", f"DPoP {token}"), ("DPoP", presented)]
    return get(USERINFO_URL, headers=headers) if method == "GET" else post(
        USERINFO_URL, headers=headers
    )


async def test_bearer_token_with_openid_gets_the_claims_and_sub(db: Db) -> None:
    """OIDC Core §5.3.2: sub is always the token's subject, never the host's."""
    kit = _with_claims(build(db))
    token = mint(kit).token

    for request in (
        get(USERINFO_URL, headers=[("Authorization", f"Bearer {token}")]),
        post(USERINFO_URL, headers=[("Authorization", f"Bearer {token}")]),
    ):
        response = await handle(kit.server, request)
        assert response.status == 200
        assert response.json == {"sub": SUBJECT, "name": "Alice", "email": "alice@example.com"}
        assert response.headers.get("Cache-Control") == "no-store"


async def test_dpop_bound_token_with_a_proof_gets_the_claims(
    db: Db, dpop_key: JsonWebKey
) -> None:
    """RFC 9449 §7.1: DPoP scheme, proof with ath."""
    kit = _with_claims(build(db))
    token = mint(kit, dpop_jkt=dpop_key.kid).token

    for method in ("GET", "POST"):
        response = await handle(kit.server, _dpop_request(kit, dpop_key, token, method=method))
        assert response.status == 200
        assert response.json is not None
        assert response.json["sub"] == SUBJECT


async def test_dpop_bound_token_sent_as_bearer_is_refused(db: Db, dpop_key: JsonWebKey) -> None:
    """RFC 9449 §7.2: no downgrade to Bearer."""
    kit = build(db)
    token = mint(kit, dpop_jkt=dpop_key.kid).token

    response = await handle(
        kit.server, get(USERINFO_URL, headers=[("Authorization", f"Bearer {token}")])
    )

    assert response.status == 401
    assert _challenges(response)[0].startswith('Bearer error="invalid_token"')
    assert _challenges(response)[1] == DPOP_CHALLENGE


async def test_dpop_proof_with_a_wrong_ath_or_replayed_is_refused(
    db: Db, dpop_key: JsonWebKey
) -> None:
    """RFC 9449 §4.3, §11.1."""
    kit = build(db)
    token = mint(kit, dpop_jkt=dpop_key.kid).token
    other = mint(kit, dpop_jkt=dpop_key.kid).token

    wrong_ath = proof(
        dpop_key, htm="GET", htu=USERINFO_URL, iat=kit.clock.now(), ath=access_token_hash(other)
    )
    response = await handle(
        kit.server,
        get(USERINFO_URL, headers=[("Authorization", f"DPoP {token}"), ("DPoP", wrong_ath)]),
    )
    assert response.status == 401
    assert _challenges(response)[0].startswith('DPoP error="invalid_dpop_proof"')
    assert _challenges(response)[1] == "Bearer"

    request = _dpop_request(kit, dpop_key, token)
    assert (await handle(kit.server, request)).status == 200
    replayed = await handle(kit.server, request)
    assert replayed.status == 401
    assert _challenges(replayed)[0].startswith('DPoP error="invalid_dpop_proof"')


async def test_dpop_scheme_without_a_proof_is_refused(db: Db, dpop_key: JsonWebKey) -> None:
    kit = build(db)
    token = mint(kit, dpop_jkt=dpop_key.kid).token
    response = await handle(
        kit.server, get(USERINFO_URL, headers=[("Authorization", f"DPoP {token}")])
    )
    assert response.status == 401
    assert _challenges(response)[0].startswith('DPoP error="invalid_dpop_proof"')


async def test_server_nonce_is_demanded_with_a_401_dpop_challenge(
    db: Db, dpop_key: JsonWebKey
) -> None:
    """RFC 9449 §9: use_dpop_nonce at a resource is a 401 DPoP challenge plus DPoP-Nonce."""
    kit = build(db, dpop_nonce_required=True)
    token = mint(kit, dpop_jkt=dpop_key.kid).token

    first = await handle(kit.server, _dpop_request(kit, dpop_key, token))

    assert first.status == 401
    assert _challenges(first)[0].startswith('DPoP error="use_dpop_nonce"')
    nonce = first.headers.get("DPoP-Nonce")
    assert nonce
    second = await handle(kit.server, _dpop_request(kit, dpop_key, token, nonce=nonce))
    assert second.status == 200


async def test_request_without_credentials_gets_bare_challenges(db: Db) -> None:
    """RFC 6750 §3.1: no error code when no credentials were sent."""
    kit = build(db)
    for headers in ([], [("Authorization", "Basic YTpi")]):
        response = await handle(kit.server, get(USERINFO_URL, headers=headers))
        assert response.status == 401
        assert _challenges(response) == ("Bearer", DPOP_CHALLENGE)
        assert response.json is None


async def test_invalid_or_expired_token_is_invalid_token(db: Db) -> None:
    kit = build(db)
    expired = mint(kit, now=kit.clock.now() - 3600, lifetime=60).token
    for token in ("not-a-jwt", expired, mint(kit).token[:-3] + "abc"):
        response = await handle(
            kit.server, get(USERINFO_URL, headers=[("Authorization", f"Bearer {token}")])
        )
        assert response.status == 401
        assert _challenges(response)[0].startswith('Bearer error="invalid_token"')
        assert response.json is not None
        assert response.json["error"] == "invalid_token"


async def test_token_without_openid_is_insufficient_scope(db: Db) -> None:
    """OIDC Core §5.3; RFC 6750 §3.1: 403 naming the scope."""
    kit = build(db)
    token = mint(kit, scopes=("profile",)).token
    response = await handle(
        kit.server, get(USERINFO_URL, headers=[("Authorization", f"Bearer {token}")])
    )
    assert response.status == 403
    assert _challenges(response)[0] == (
        'Bearer error="insufficient_scope", '
        'error_description="The access token lacks a required scope", scope="openid"'
    )


async def test_revoked_jti_is_refused(db: Db) -> None:
    """Spec §3.1 "Protected resources": access_token_revoked on every request."""
    kit = build(db)
    family = await code_family(kit, scopes=("openid",))
    request = get(USERINFO_URL, headers=[("Authorization", f"Bearer {family.access.token}")])
    assert (await handle(kit.server, request)).status == 200

    await kit.server.stores.authorization_codes.revoke_family_access_tokens(family.family_id)

    response = await handle(kit.server, request)
    assert response.status == 401
    assert _challenges(response)[0].startswith('Bearer error="invalid_token"')


async def test_token_in_query_or_form_is_refused(db: Db) -> None:
    """RFC 6750 §2.1 only: §2.2 form and §2.3 query tokens are not accepted."""
    kit = build(db)
    token = mint(kit).token
    for request in (
        get(USERINFO_URL, {"access_token": token}),
        post(USERINFO_URL, [("access_token", token)]),
        get(USERINFO_URL, {"access_token": token},
            headers=[("Authorization", f"Bearer {token}")]),
    ):
        response = await handle(kit.server, request)
        assert response.status == 400
        assert _challenges(response)[0].startswith('Bearer error="invalid_request"')


async def test_other_methods_are_not_allowed(db: Db) -> None:
    kit = build(db)
    response = await handle(kit.server, Request.build("DELETE", USERINFO_URL))
    assert response.status == 405
    assert response.headers.get("Allow") == "GET, POST"
