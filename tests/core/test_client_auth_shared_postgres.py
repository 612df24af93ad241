"""A replayed client assertion is refused across server instances sharing one PostgreSQL.

Spec: RFC 7523 §3 item 7; authward spec/stores.md §3.6 (the replay table is shared state, so no
node keeps replay memory of its own). Two engines (two pools) stand for two server processes;
each has its own replay store and authenticator.
"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from authward.core.client_auth import (
    JWT_BEARER_ASSERTION_TYPE,
    AssertionPolicy,
    AuthenticatedClient,
    ClientAuthenticator,
)
from authward.core.clients import Client
from authward.core.errors import InvalidClientError
from authward.core.http import Request
from authward.core.jose import generate_signing_key, sign_jwt
from authward.stores.sql.engine import PoolSize
from authward.stores.sql.replay import SqlReplayStore
from tests.dbkit import T0, Db

ISSUER = "https://as.example"
KEY = generate_signing_key("ES256")
CLIENT = Client("jwt-client", "confidential", "private_key_jwt", jwks=(KEY.public_jwk(),))


class Registry:
    async def get_client(self, client_id: str) -> Client | None:
        return CLIENT if client_id == CLIENT.client_id else None

    async def verify_client_secret(self, client: Client, presented_secret: str) -> bool:
        return False


def request_with(token: str) -> Request:
    return Request.build(
        "POST",
        f"{ISSUER}/token",
        form={
            "grant_type": "client_credentials",
            "client_assertion_type": JWT_BEARER_ASSERTION_TYPE,
            "client_assertion": token,
        },
    )


def assertion(jti: str) -> str:
    return sign_jwt(
        KEY,
        {"iss": "jwt-client", "sub": "jwt-client", "aud": ISSUER, "iat": int(T0),
         "exp": int(T0) + 60, "jti": jti},
    )


def node(engine: AsyncEngine, pg: Db) -> ClientAuthenticator:
    return ClientAuthenticator(
        registry=Registry(),
        replay=SqlReplayStore(engine, clock=pg.clock),
        policy=AssertionPolicy(issuer=ISSUER),
        clock=pg.clock,
    )


async def test_replayed_assertion_is_refused_by_a_second_instance(pg: Db) -> None:
    engine_a, engine_b = pg.new_engine(), pg.new_engine()
    try:
        first, second = node(engine_a, pg), node(engine_b, pg)
        token = assertion("shared-jti")
        accepted = await first.authenticate(request_with(token))
        assert accepted.client.client_id == "jwt-client"
        with pytest.raises(InvalidClientError) as caught:
            await second.authenticate(request_with(token))
        assert caught.value.description == "client assertion was already used"
        fresh = await second.authenticate(request_with(assertion("another-jti")))
        assert fresh.method == "private_key_jwt"
    finally:
        await engine_a.dispose()
        await engine_b.dispose()


async def test_concurrent_presentations_on_two_instances_accept_exactly_one(pg: Db) -> None:
    """The same assertion sent 20 times at once to each of two nodes: one success in total."""
    engine_a = pg.new_engine(statement_pool=PoolSize(25, 0))
    engine_b = pg.new_engine(statement_pool=PoolSize(25, 0))
    try:
        nodes = (node(engine_a, pg), node(engine_b, pg))
        token = assertion("raced-jti")

        async def attempt(index: int) -> AuthenticatedClient | InvalidClientError:
            try:
                return await nodes[index % 2].authenticate(request_with(token))
            except InvalidClientError as error:
                return error

        results = await asyncio.gather(*(attempt(i) for i in range(40)))
        winners = [r for r in results if isinstance(r, AuthenticatedClient)]
        losers = [r for r in results if isinstance(r, InvalidClientError)]
        assert len(winners) == 1
        assert len(losers) == 39
        assert {e.description for e in losers} == {"client assertion was already used"}
    finally:
        await engine_a.dispose()
        await engine_b.dispose()
