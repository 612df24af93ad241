"""The public JWKS: RFC 7517 §5, OIDC Core §10.1.1 rotation."""

from __future__ import annotations

import dataclasses

from authward.core.endpoints import jwks
from tests.core.endpoints import kit
from tests.dbkit import Db

PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "k")


async def test_jwks_serves_public_keys_only(db: Db) -> None:
    """RFC 7517 §5: a JWK Set of public keys; no private member ever leaves."""
    k = kit.build(db)
    response = await jwks.handle(k.server, kit.get(kit.ISSUER + "/jwks.json"))
    assert response.status == 200
    assert response.headers.get("content-type") == "application/jwk-set+json"
    assert response.json is not None
    keys = response.json["keys"]
    assert isinstance(keys, list)
    assert {key["alg"] for key in keys} == {"RS256", "ES256"}
    for key in keys:
        assert not any(member in key for member in PRIVATE_MEMBERS)
        assert key["kid"]


async def test_jwks_keeps_a_retired_key_until_its_tokens_expire(db: Db) -> None:
    """OIDC Core §10.1.1: after rotation the retired key stays for max_token_lifetime."""
    k = kit.build(db)
    before = {key.kid for key in k.server.keys.keys}
    rotated = k.server.keys.rotate(now=k.clock.now(), algorithms=("RS256",))
    server = dataclasses.replace(k.server, keys=rotated)

    async def kids() -> set[str]:
        response = await jwks.handle(server, kit.get(kit.ISSUER + "/jwks.json"))
        assert response.json is not None
        keys = response.json["keys"]
        assert isinstance(keys, list)
        return {key["kid"] for key in keys}

    assert before <= await kids()
    k.clock.advance(server.max_token_lifetime + 1)
    after = await kids()
    retired = {key.kid for key in rotated.keys if key.status == "retired"}
    assert retired
    assert not retired & after
