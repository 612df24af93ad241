"""A replayed DPoP proof is refused even when it reaches two server instances sharing PostgreSQL.

Spec: RFC 9449 §11.1; authward spec/stores.md §3.6 (the database decides, one shared table).
Each "instance" has its own engine (its own connection pool), its own store objects and its own
verifier; the only thing they share is the PostgreSQL database.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from authward.core.dpop import DPoPVerifier, TokenEndpoint, VerifiedProof
from authward.core.errors import InvalidDPoPProofError, UseDPoPNonceError
from authward.core.http import Request
from authward.core.jose import JsonWebKey, JwsAlgorithm, generate_signing_key
from authward.stores.clock import FrozenClock
from authward.stores.sql.dpop_nonces import SqlDpopNonceStore
from authward.stores.sql.replay import SqlReplayStore
from tests.core.dpop_proofs import TOKEN_URL, proof
from tests.dbkit import T0, Db

SITE = TokenEndpoint()
ALGS: tuple[JwsAlgorithm, ...] = ("ES256",)


@pytest.fixture(scope="module")
def key() -> JsonWebKey:
    return generate_signing_key("ES256")


@asynccontextmanager
async def instance(pg: Db, *, nonce_required: bool = False) -> AsyncIterator[DPoPVerifier]:
    """One server node: a fresh engine and pool, fresh stores, a fresh verifier."""
    engine = pg.new_engine()
    clock = FrozenClock(T0)
    try:
        yield DPoPVerifier(
            replay_store=SqlReplayStore(engine, clock=clock),
            nonce_store=SqlDpopNonceStore(engine, clock=clock),
            clock=clock,
            algorithms=ALGS,
            nonce_required=nonce_required,
        )
    finally:
        await engine.dispose()


def token_request(token: str) -> Request:
    return Request.build("POST", TOKEN_URL, headers=[("DPoP", token)])


async def test_replayed_proof_is_refused_by_a_second_instance(pg: Db, key: JsonWebKey) -> None:
    token = proof(key, iat=T0)
    async with instance(pg) as first, instance(pg) as second:
        accepted = await first.verify(token_request(token), site=SITE)
        assert accepted is not None
        assert accepted.jkt == key.kid
        with pytest.raises(InvalidDPoPProofError, match="already used") as info:
            await second.verify(token_request(token), site=SITE)
    assert info.value.error == "invalid_dpop_proof"
    assert len(await pg.rows(pg.tables.dpop_replays)) == 1


async def test_simultaneous_presentations_to_two_instances_accept_exactly_one(
    pg: Db, key: JsonWebKey
) -> None:
    token = proof(key, iat=T0)
    async with instance(pg) as first, instance(pg) as second:
        results = await asyncio.gather(
            *(
                node.verify(token_request(token), site=SITE)
                for _ in range(10)
                for node in (first, second)
            ),
            return_exceptions=True,
        )
    accepted = [r for r in results if isinstance(r, VerifiedProof)]
    refused = [r for r in results if isinstance(r, InvalidDPoPProofError)]
    assert len(accepted) == 1
    assert len(refused) == 19
    assert all("already used" in str(r) for r in refused)


async def test_nonce_issued_by_one_instance_is_honoured_by_the_other(
    pg: Db, key: JsonWebKey
) -> None:
    """The nonce lives in the shared table too (RFC 9449 §8)."""
    async with (
        instance(pg, nonce_required=True) as first,
        instance(pg, nonce_required=True) as second,
    ):
        with pytest.raises(UseDPoPNonceError) as info:
            await first.verify(token_request(proof(key, iat=T0)), site=SITE)
        retry = proof(key, iat=T0, nonce=info.value.nonce)
        assert await second.verify(token_request(retry), site=SITE) is not None
        with pytest.raises(InvalidDPoPProofError, match="already used"):
            await first.verify(token_request(retry), site=SITE)
