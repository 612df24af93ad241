"""Client authentication: Basic, post, private_key_jwt, none (RFC 6749 §2.3, RFC 7523 §3).

The host registry is an in-test class holding SHA-256 digests of secrets (compared with
``hmac.compare_digest``); assertion replay runs on the real SQL replay store of the ``db``
fixture, so every test runs on SQLite and PostgreSQL. ``jwks_uri`` keys come from a real HTTP
server on 127.0.0.1 through the SSRF guard's loopback test switch.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import quote_plus

import pytest

from authward.core.client_auth import (
    JWT_BEARER_ASSERTION_TYPE,
    AssertionPolicy,
    AuthenticatedClient,
    ClientAuthenticator,
    ClientAuthLimits,
)
from authward.core.clients import Client
from authward.core.defaults import FileClientRegistry, generate_client_secret, hash_secret
from authward.core.errors import InvalidClientError, InvalidRequestError
from authward.core.failure_limits import FailureBudget, FailureLimiter
from authward.core.http import Request
from authward.core.jose import JsonWebKey, generate_signing_key, sign_jwt
from authward.core.ssrf import Family, GuardedFetcher
from authward.stores.clock import FrozenClock
from authward.stores.replay import RecordOutcome
from authward.stores.sql.replay import SqlReplayStore
from tests.core.defaults.hashers import CountingHasher
from tests.core.local_http import Reply, local_server
from tests.dbkit import T0, Db

ISSUER = "https://as.example"
TOKEN_ENDPOINT = "https://as.example/token"
TOKEN_URL = TOKEN_ENDPOINT
SPECIAL_ID = "app:1+%/é"
SPECIAL_SECRET = "p%25:+ss w:rd+%"


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8")).digest()


class HashedRegistry:
    """A host registry: clients by id, secrets only as SHA-256 digests."""

    def __init__(self) -> None:
        self.clients: dict[str, Client] = {}
        self.digests: dict[str, bytes] = {}
        self.verified: list[str] = []
        self.placeholders: list[Client] = []
        self.placeholder_answer = False

    def add(self, client: Client, secret: str | None = None) -> None:
        self.clients[client.client_id] = client
        if secret is not None:
            self.digests[client.client_id] = _digest(secret)

    async def get_client(self, client_id: str) -> Client | None:
        return self.clients.get(client_id)

    async def verify_client_secret(self, client: Client, presented_secret: str) -> bool:
        self.verified.append(client.client_id)
        if self.clients.get(client.client_id) != client:
            self.placeholders.append(client)
            return self.placeholder_answer
        stored = self.digests.get(client.client_id)
        if stored is None:
            return False
        return hmac.compare_digest(stored, _digest(presented_secret))


KEY: JsonWebKey = generate_signing_key("ES256")
OTHER_KEY: JsonWebKey = generate_signing_key("ES256")
RSA_KEY: JsonWebKey = generate_signing_key("RS256")


def jwt_client(client_id: str = "jwt-client", **options: Any) -> Client:
    options.setdefault("jwks", (KEY.public_jwk(), RSA_KEY.public_jwk()))
    return Client(client_id, "confidential", "private_key_jwt", **options)


@pytest.fixture
def registry() -> HashedRegistry:
    reg = HashedRegistry()
    reg.add(Client("basic-client", "confidential", "client_secret_basic"), "s3cret")
    reg.add(Client(SPECIAL_ID, "confidential", "client_secret_basic"), SPECIAL_SECRET)
    reg.add(Client("post-client", "confidential", "client_secret_post"), "p0st")
    reg.add(Client("public-client", "public", "none"))
    reg.add(jwt_client())
    return reg


@pytest.fixture
def policy() -> AssertionPolicy:
    return AssertionPolicy(issuer=ISSUER, token_endpoint=TOKEN_ENDPOINT)


class UnusedReplayStore:
    """Secret-based and ``none`` authentication must never touch the replay table."""

    async def check_and_record(
        self, namespace: str, raw_jti: str, ttl_seconds: int = 60, *, now: float | None = None
    ) -> RecordOutcome:
        raise AssertionError("the replay store was used without an assertion")

    async def is_recorded(self, namespace: str, raw_jti: str, *, now: float | None = None) -> bool:
        raise AssertionError("not used")

    async def sweep(self, *, now: float | None = None) -> int:
        raise AssertionError("not used")


@pytest.fixture
def auth(registry: HashedRegistry, policy: AssertionPolicy) -> ClientAuthenticator:
    """For the secret and ``none`` methods and for requests refused before any replay check."""
    return ClientAuthenticator(
        registry=registry, replay=UnusedReplayStore(), policy=policy, clock=FrozenClock(T0)
    )


@pytest.fixture
def jwt_auth(db: Db, registry: HashedRegistry, policy: AssertionPolicy) -> ClientAuthenticator:
    """For assertions: the real SQL replay store, on SQLite and PostgreSQL."""
    return ClientAuthenticator(
        registry=registry,
        replay=SqlReplayStore(db.engine, clock=db.clock),
        policy=policy,
        clock=db.clock,
    )


def basic(client_id: str, secret: str) -> tuple[str, str]:
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return ("Authorization", "Basic " + base64.b64encode(raw).decode("ascii"))


def token_request(
    form: Mapping[str, str] | list[tuple[str, str]] = (),  # type: ignore[assignment]
    headers: list[tuple[str, str]] | None = None,
    address: str | None = None,
) -> Request:
    pairs = list(form.items()) if isinstance(form, Mapping) else list(form)
    return Request.build(
        "POST",
        TOKEN_URL,
        headers=headers or [],
        form=[("grant_type", "client_credentials"), *pairs],
        client_address=address,
    )


def claims(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "iss": "jwt-client",
        "sub": "jwt-client",
        "aud": ISSUER,
        "iat": int(T0),
        "exp": int(T0) + 60,
        "jti": "jti-1",
    }
    for name, value in overrides.items():
        if value is None:
            base.pop(name, None)
        else:
            base[name] = value
    return base


def assertion(key: JsonWebKey = KEY, header: Mapping[str, object] | None = None,
              **overrides: object) -> str:
    return sign_jwt(key, claims(**overrides), header=header)


def assertion_form(token: str, **extra: str) -> dict[str, str]:
    return {"client_assertion_type": JWT_BEARER_ASSERTION_TYPE, "client_assertion": token, **extra}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unsigned(alg: str, secret: bytes = b"") -> str:
    head = _b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = _b64(json.dumps(claims()).encode())
    signing_input = f"{head}.{body}".encode()
    if alg == "none":
        return f"{head}.{body}."
    mac = hmac.new(secret, signing_input, hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(mac)}"


async def refused(auth: ClientAuthenticator, request: Request) -> InvalidClientError:
    with pytest.raises(InvalidClientError) as caught:
        await auth.authenticate(request)
    return caught.value


# --- client_secret_basic ----------------------------------------------------------------------


async def test_basic_credentials_authenticate(auth: ClientAuthenticator) -> None:
    result = await auth.authenticate(token_request(headers=[basic("basic-client", "s3cret")]))
    assert result == AuthenticatedClient(
        client=result.client, method="client_secret_basic"
    )
    assert result.client.client_id == "basic-client"


async def test_basic_id_and_secret_are_form_decoded_after_base64(
    auth: ClientAuthenticator,
) -> None:
    """RFC 6749 §2.3.1: '%', '+', ':' and non-ASCII survive the form-urlencoding round trip."""
    result = await auth.authenticate(token_request(headers=[basic(SPECIAL_ID, SPECIAL_SECRET)]))
    assert result.client.client_id == SPECIAL_ID


async def test_basic_with_the_raw_unencoded_secret_fails(auth: ClientAuthenticator) -> None:
    """A '+' sent raw decodes to a space, so the secret no longer matches."""
    raw = base64.b64encode(f"{SPECIAL_ID}:{SPECIAL_SECRET}".encode()).decode()
    error = await refused(auth, token_request(headers=[("Authorization", f"Basic {raw}")]))
    assert error.status == 401


async def test_wrong_basic_secret_is_401_with_a_basic_challenge(
    auth: ClientAuthenticator,
) -> None:
    error = await refused(auth, token_request(headers=[basic("basic-client", "guess-Xq9")]))
    assert error.status == 401
    assert (
        "WWW-Authenticate",
        'Basic realm="authward", error="invalid_client", '
        'error_description="client authentication failed"',
    ) in error.headers()
    assert "s3cret" not in str(error)
    assert "guess-Xq9" not in str(error)


@pytest.mark.parametrize(
    "value",
    [
        "Basic",
        "Basic !!!not-base64",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic " + base64.b64encode(b":secret-without-id").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
        "Basic " + base64.b64encode(b"id%FF:x").decode(),
        "Basic dXNlcjpwYXNz extra",
    ],
)
async def test_malformed_basic_header_is_invalid_client_401(
    auth: ClientAuthenticator, value: str
) -> None:
    error = await refused(auth, token_request(headers=[("Authorization", value)]))
    assert error.status == 401
    assert any(name == "WWW-Authenticate" and v.startswith("Basic") for name, v in error.headers())


async def test_unknown_client_over_basic_is_invalid_client_401(
    auth: ClientAuthenticator, registry: HashedRegistry
) -> None:
    error = await refused(auth, token_request(headers=[basic("nobody", "s3cret")]))
    assert error.status == 401
    assert [c.client_id for c in registry.placeholders] == ["nobody"]


async def test_an_unknown_client_costs_the_same_secret_check_as_a_wrong_secret(
    auth: ClientAuthenticator, registry: HashedRegistry
) -> None:
    """No existence oracle by timing: an unknown client_id with a secret reaches the registry's
    verify path too (with a placeholder record it never issued), as a wrong secret does."""
    unknown = await refused(auth, token_request(headers=[basic("nobody", "s3cret")]))
    wrong = await refused(auth, token_request(headers=[basic("basic-client", "wrong")]))
    assert registry.verified == ["nobody", "basic-client"]
    assert [p.token_endpoint_auth_method for p in registry.placeholders] == [
        "client_secret_basic"
    ]
    assert (unknown.status, unknown.headers(), unknown.body()) == (
        wrong.status, wrong.headers(), wrong.body()
    )


async def test_a_yes_to_the_placeholder_check_never_authenticates(
    auth: ClientAuthenticator, registry: HashedRegistry
) -> None:
    """The answer of the placeholder check is thrown away."""
    registry.placeholder_answer = True
    await refused(auth, token_request(headers=[basic("nobody", "s3cret")]))
    await refused(auth, token_request({"client_id": "nobody", "client_secret": "s3cret"}))
    await refused(auth, token_request({"client_id": "basic-client", "client_secret": "s3cret"}))


async def test_basic_with_a_different_body_client_id_is_invalid_request(
    auth: ClientAuthenticator,
) -> None:
    with pytest.raises(InvalidRequestError):
        await auth.authenticate(
            token_request({"client_id": "post-client"}, headers=[basic("basic-client", "s3cret")])
        )


async def test_basic_with_the_same_body_client_id_is_accepted(auth: ClientAuthenticator) -> None:
    result = await auth.authenticate(
        token_request({"client_id": "basic-client"}, headers=[basic("basic-client", "s3cret")])
    )
    assert result.method == "client_secret_basic"


# --- client_secret_post and none --------------------------------------------------------------


async def test_post_credentials_authenticate(auth: ClientAuthenticator) -> None:
    result = await auth.authenticate(
        token_request({"client_id": "post-client", "client_secret": "p0st"})
    )
    assert (result.client.client_id, result.method) == ("post-client", "client_secret_post")


async def test_wrong_post_secret_is_invalid_client_400(auth: ClientAuthenticator) -> None:
    error = await refused(auth, token_request({"client_id": "post-client", "client_secret": "x"}))
    assert error.status == 400
    assert not any(name == "WWW-Authenticate" for name, _ in error.headers())


async def test_public_client_authenticates_with_client_id_only(auth: ClientAuthenticator) -> None:
    result = await auth.authenticate(token_request({"client_id": "public-client"}))
    assert (result.client.client_id, result.method) == ("public-client", "none")


async def test_no_credentials_at_all_is_invalid_client(auth: ClientAuthenticator) -> None:
    error = await refused(auth, token_request())
    assert error.status == 400


async def test_unknown_client_id_is_invalid_client(auth: ClientAuthenticator) -> None:
    await refused(auth, token_request({"client_id": "nobody"}))


@pytest.mark.parametrize(
    ("form", "headers"),
    [
        ({"client_id": "basic-client", "client_secret": "s3cret"}, []),  # post, registered basic
        ({}, [basic("post-client", "p0st")]),  # basic, registered post
        ({"client_id": "basic-client"}, []),  # none, registered basic
        ({"client_id": "public-client", "client_secret": "x"}, []),  # post, registered none
        ({"client_id": "jwt-client"}, []),  # none, registered private_key_jwt
    ],
)
async def test_a_method_other_than_the_registered_one_is_invalid_client(
    auth: ClientAuthenticator,
    registry: HashedRegistry,
    form: dict[str, str],
    headers: list[tuple[str, str]],
) -> None:
    await refused(auth, token_request(form, headers=headers))
    # a presented secret is never checked against the client's record, only a placeholder
    assert all(checked not in registry.clients.values() for checked in registry.placeholders)
    assert len(registry.placeholders) == len(registry.verified)


async def test_a_confidential_client_cannot_skip_its_secret(auth: ClientAuthenticator) -> None:
    await refused(auth, token_request({"client_id": "post-client"}))


# --- two methods at once ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("form", "headers"),
    [
        ({"client_secret": "p0st"}, [basic("basic-client", "s3cret")]),
        ({"client_assertion_type": JWT_BEARER_ASSERTION_TYPE, "client_assertion": "a.b.c"},
         [basic("basic-client", "s3cret")]),
        ({"client_id": "jwt-client", "client_secret": "x",
          "client_assertion_type": JWT_BEARER_ASSERTION_TYPE, "client_assertion": "a.b.c"}, []),
    ],
)
async def test_two_methods_at_once_is_invalid_request(
    auth: ClientAuthenticator, form: dict[str, str], headers: list[tuple[str, str]]
) -> None:
    """RFC 6749 §2.3: the client MUST NOT use more than one authentication method."""
    with pytest.raises(InvalidRequestError):
        await auth.authenticate(token_request(form, headers=headers))


async def test_repeated_credential_parameters_are_invalid_request(
    auth: ClientAuthenticator,
) -> None:
    with pytest.raises(InvalidRequestError):
        await auth.authenticate(
            token_request([("client_id", "post-client"), ("client_secret", "p0st"),
                           ("client_secret", "p0st")])
        )


async def test_assertion_without_its_type_is_invalid_request(auth: ClientAuthenticator) -> None:
    with pytest.raises(InvalidRequestError):
        await auth.authenticate(token_request({"client_assertion": assertion()}))


async def test_an_unknown_assertion_type_is_invalid_client(auth: ClientAuthenticator) -> None:
    await refused(auth, token_request({"client_assertion_type": "urn:x", "client_assertion": "a"}))


# --- private_key_jwt --------------------------------------------------------------------------


async def test_valid_assertion_authenticates(jwt_auth: ClientAuthenticator, db: Db) -> None:
    result = await jwt_auth.authenticate(token_request(assertion_form(assertion())))
    assert (result.client.client_id, result.method) == ("jwt-client", "private_key_jwt")
    assert len(await db.rows(db.tables.dpop_replays)) == 1


async def test_assertion_naming_the_clients_own_kid_authenticates(
    registry: HashedRegistry, jwt_auth: ClientAuthenticator
) -> None:
    """RFC 7517 §4.5: a client names its keys as it likes; its ``kid`` selects the key."""
    registry.add(jwt_client("named-kid-client", jwks=({**KEY.public_jwk(), "kid": "key-1"},)))
    named = replace(KEY, kid="key-1")  # the same private key, signing with header kid "key-1"
    token = sign_jwt(named, claims(iss="named-kid-client", sub="named-kid-client"))
    result = await jwt_auth.authenticate(token_request(assertion_form(token)))
    assert result.client.client_id == "named-kid-client"


async def test_assertion_naming_another_keys_kid_is_refused(
    registry: HashedRegistry, jwt_auth: ClientAuthenticator
) -> None:
    registry.add(jwt_client("named-kid-client", jwks=({**KEY.public_jwk(), "kid": "key-1"},)))
    wrong = replace(KEY, kid="key-2")
    token = sign_jwt(wrong, claims(iss="named-kid-client", sub="named-kid-client"))
    await refused(jwt_auth, token_request(assertion_form(token)))


@pytest.mark.parametrize(
    "aud",
    [ISSUER, [ISSUER], TOKEN_ENDPOINT, [TOKEN_ENDPOINT]],
)
async def test_issuer_or_token_endpoint_as_sole_audience_is_accepted(
    jwt_auth: ClientAuthenticator, aud: object
) -> None:
    await jwt_auth.authenticate(token_request(assertion_form(assertion(aud=aud))))


async def test_rsa_assertion_with_a_client_id_parameter_is_accepted(
    jwt_auth: ClientAuthenticator,
) -> None:
    token = assertion(RSA_KEY, header={"typ": "client-authentication+jwt"})
    result = await jwt_auth.authenticate(
        token_request(assertion_form(token, client_id="jwt-client"))
    )
    assert result.method == "private_key_jwt"


async def test_token_endpoint_audience_can_be_switched_off(
    db: Db, registry: HashedRegistry
) -> None:
    strict = ClientAuthenticator(
        registry=registry,
        replay=SqlReplayStore(db.engine, clock=db.clock),
        policy=AssertionPolicy(
            issuer=ISSUER, token_endpoint=TOKEN_ENDPOINT, accept_token_endpoint_audience=False
        ),
        clock=db.clock,
    )
    await refused(strict, token_request(assertion_form(assertion(aud=TOKEN_ENDPOINT))))
    await strict.authenticate(token_request(assertion_form(assertion(aud=ISSUER, jti="j2"))))


NOW = int(T0)


@pytest.mark.parametrize(
    ("case", "token_args"),
    [
        ("wrong iss", {"iss": "someone-else"}),
        ("missing iss", {"iss": None}),
        ("wrong sub", {"sub": "other-client"}),
        ("wrong aud", {"aud": "https://evil.example"}),
        ("aud with several values", {"aud": [ISSUER, "https://evil.example"]}),
        ("par endpoint aud", {"aud": "https://as.example/par"}),
        ("missing aud", {"aud": None}),
        ("expired", {"iat": NOW - 120, "exp": NOW - 60}),
        ("expired beyond leeway", {"iat": NOW - 100, "exp": NOW - 31}),
        ("missing exp", {"exp": None}),
        ("exp not a number", {"exp": "soon"}),
        ("missing jti", {"jti": None}),
        ("empty jti", {"jti": ""}),
        ("jti not a string", {"jti": 7}),
        ("too-long lifetime", {"exp": NOW + 301}),
        ("too-long lifetime without iat", {"iat": None, "exp": NOW + 3600}),
        ("future iat", {"iat": NOW + 120, "exp": NOW + 180}),
        ("future nbf", {"nbf": NOW + 120}),
        ("over-long jti", {"jti": "j" * 1100}),
    ],
)
async def test_assertion_claim_refusals(
    jwt_auth: ClientAuthenticator, db: Db, case: str, token_args: dict[str, Any]
) -> None:
    error = await refused(jwt_auth, token_request(assertion_form(assertion(**token_args))))
    assert error.status == 400, case
    assert await db.rows(db.tables.dpop_replays) == []  # nothing recorded for a refused one


async def test_wrong_sub_with_another_known_client_is_refused(
    jwt_auth: ClientAuthenticator, registry: HashedRegistry
) -> None:
    """A key of client A cannot authenticate client B, whoever ``sub`` names."""
    registry.add(jwt_client("victim", jwks=(OTHER_KEY.public_jwk(),)))
    await refused(jwt_auth, token_request(assertion_form(assertion(iss="victim", sub="victim"))))


async def test_expiry_inside_leeway_is_accepted(jwt_auth: ClientAuthenticator) -> None:
    await jwt_auth.authenticate(
        token_request(assertion_form(assertion(iat=NOW - 60, exp=NOW - 10)))
    )


@pytest.mark.parametrize(
    ("case", "token_factory"),
    [
        ("signed by an unregistered key", lambda: assertion(OTHER_KEY)),
        ("unknown kid", lambda: sign_jwt(OTHER_KEY, claims())),
        ("alg none", lambda: unsigned("none")),
        ("HS256 keyed with public material", lambda: unsigned("HS256", b"secret")),
        ("garbage", lambda: "not-a-jwt"),
        ("payload not JSON", lambda: "eyJhbGciOiJFUzI1NiJ9.bm90LWpzb24.c2ln"),
        ("foreign typ", lambda: assertion(header={"typ": "dpop+jwt"})),
        ("access token typ", lambda: assertion(header={"typ": "at+jwt"})),
    ],
)
async def test_assertion_signature_and_header_refusals(
    jwt_auth: ClientAuthenticator, case: str, token_factory: Any
) -> None:
    await refused(jwt_auth, token_request(assertion_form(token_factory())))


async def test_assertion_with_a_mismatching_client_id_parameter_is_refused(
    jwt_auth: ClientAuthenticator,
) -> None:
    await refused(jwt_auth, token_request(assertion_form(assertion(), client_id="post-client")))


async def test_replayed_assertion_is_invalid_client(jwt_auth: ClientAuthenticator) -> None:
    """RFC 7523 §3 item 7, spec §3.6: one jti per client, shared through the database."""
    token = assertion(jti="once")
    await jwt_auth.authenticate(token_request(assertion_form(token)))
    error = await refused(jwt_auth, token_request(assertion_form(token)))
    assert error.description == "client assertion was already used"


async def test_the_same_jti_from_another_client_is_not_a_replay(
    jwt_auth: ClientAuthenticator, registry: HashedRegistry
) -> None:
    registry.add(jwt_client("second", jwks=(OTHER_KEY.public_jwk(),)))
    await jwt_auth.authenticate(token_request(assertion_form(assertion(jti="shared"))))
    other = sign_jwt(OTHER_KEY, claims(iss="second", sub="second", jti="shared"))
    result = await jwt_auth.authenticate(token_request(assertion_form(other)))
    assert result.client.client_id == "second"


async def test_assertion_signed_for_a_secret_client_is_refused(
    jwt_auth: ClientAuthenticator,
) -> None:
    """A client registered for client_secret_basic cannot switch to an assertion."""
    token = assertion(iss="basic-client", sub="basic-client")
    await refused(jwt_auth, token_request(assertion_form(token)))


# --- keys from jwks_uri, through the guard, from a real local server --------------------------


class LoopbackResolver:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, hostname: str, family: Family) -> list[str]:
        self.calls += 1
        return ["127.0.0.1"] if family == 4 else []


def uri_authenticator(db: Db, registry: HashedRegistry, fetcher: GuardedFetcher | None
                      ) -> ClientAuthenticator:
    return ClientAuthenticator(
        registry=registry,
        replay=SqlReplayStore(db.engine, clock=db.clock),
        policy=AssertionPolicy(issuer=ISSUER, token_endpoint=TOKEN_ENDPOINT),
        fetcher=fetcher,
        clock=db.clock,
    )


async def test_keys_are_fetched_from_jwks_uri_through_the_guard(
    db: Db, registry: HashedRegistry
) -> None:
    jwks = {"keys": [{"kty": "oct", "k": "c2VjcmV0"}, KEY.public_jwk()]}
    reply = Reply(body=json.dumps(jwks).encode())
    resolver = LoopbackResolver()
    fetcher = GuardedFetcher(resolver=resolver, allow_loopback=True, allow_http_loopback=True)
    async with local_server({"/jwks.json": reply}) as server:
        uri = f"http://keys.test:{server.port}/jwks.json"
        registry.add(jwt_client("uri-client", jwks=None, jwks_uri=uri))
        jwt_auth = uri_authenticator(db, registry, fetcher)
        token = assertion(iss="uri-client", sub="uri-client")
        result = await jwt_auth.authenticate(token_request(assertion_form(token)))
        (seen,) = server.seen
    assert result.client.client_id == "uri-client"
    assert seen.target == "/jwks.json"
    assert seen.headers["accept"] == "application/json"
    assert resolver.calls == 2


async def test_jwks_uri_without_the_signing_key_is_refused(
    db: Db, registry: HashedRegistry
) -> None:
    reply = Reply(body=json.dumps({"keys": [OTHER_KEY.public_jwk()]}).encode())
    fetcher = GuardedFetcher(
        resolver=LoopbackResolver(), allow_loopback=True, allow_http_loopback=True
    )
    async with local_server({"/jwks.json": reply}) as server:
        registry.add(jwt_client("uri-client", jwks=None,
                                jwks_uri=f"http://keys.test:{server.port}/jwks.json"))
        jwt_auth = uri_authenticator(db, registry, fetcher)
        await refused(jwt_auth, token_request(assertion_form(assertion(iss="uri-client",
                                                                   sub="uri-client"))))


@pytest.mark.parametrize(
    "reply",
    [Reply(status=404, body=b""), Reply(body=b"not json"), Reply(body=b'{"no": "keys"}'),
     Reply(headers=(("Content-Type", "text/html"),), body=b"{}")],
)
async def test_an_unusable_jwks_uri_answer_is_invalid_client(
    db: Db, registry: HashedRegistry, reply: Reply
) -> None:
    fetcher = GuardedFetcher(
        resolver=LoopbackResolver(), allow_loopback=True, allow_http_loopback=True
    )
    async with local_server({"/jwks.json": reply}) as server:
        registry.add(jwt_client("uri-client", jwks=None,
                                jwks_uri=f"http://keys.test:{server.port}/jwks.json"))
        jwt_auth = uri_authenticator(db, registry, fetcher)
        await refused(jwt_auth, token_request(assertion_form(assertion(iss="uri-client",
                                                                   sub="uri-client"))))


async def test_a_jwks_uri_on_a_private_address_is_never_fetched(
    db: Db, registry: HashedRegistry
) -> None:
    async def private(hostname: str, family: Family) -> list[str]:
        return ["10.0.0.5"] if family == 4 else []

    async with local_server({}) as server:
        registry.add(jwt_client("uri-client", jwks=None,
                                jwks_uri=f"https://keys.test:{server.port}/jwks.json"))
        jwt_auth = uri_authenticator(db, registry, GuardedFetcher(resolver=private))
        error = await refused(jwt_auth, token_request(assertion_form(assertion(iss="uri-client",
                                                                           sub="uri-client"))))
        assert server.seen == []
    assert error.detail is not None
    assert "blocked_ip" in error.detail


async def test_a_jwks_uri_client_without_a_fetcher_is_refused(
    db: Db, registry: HashedRegistry
) -> None:
    registry.add(jwt_client("uri-client", jwks=None, jwks_uri="https://keys.example/jwks"))
    jwt_auth = uri_authenticator(db, registry, None)
    await refused(jwt_auth, token_request(assertion_form(assertion(iss="uri-client",
                                                               sub="uri-client"))))


# --- failure limits ---------------------------------------------------------------------------

WINDOW_START = 60 * 30_000_000.0  # a window boundary, so the clock arithmetic reads plainly


def limits(
    per_client: int | None = 3, per_address: int | None = 3, delay: float = 0.0
) -> ClientAuthLimits:
    def limiter(failures: int | None) -> FailureLimiter | None:
        return None if failures is None else FailureLimiter(FailureBudget(failures, 60))

    return ClientAuthLimits(
        per_client=limiter(per_client), per_address=limiter(per_address),
        locked_delay_seconds=delay,
    )


def limited(registry: Any, policy: AssertionPolicy, clock: FrozenClock,
            guard: ClientAuthLimits) -> ClientAuthenticator:
    return ClientAuthenticator(
        registry=registry, replay=UnusedReplayStore(), policy=policy, clock=clock, limits=guard
    )


async def test_after_k_wrong_secrets_a_client_id_is_refused_without_a_secret_check(
    registry: HashedRegistry, policy: AssertionPolicy
) -> None:
    """RFC 6749 §10.10, RFC 6819 §5.1.4.2.3: the registry is not asked once the budget is spent,
    and the refusal reads exactly like a wrong secret (RFC 6749 §5.2: 401 + Basic)."""
    auth = limited(registry, policy, FrozenClock(WINDOW_START), limits(per_address=None))
    for _ in range(3):
        wrong = await refused(auth, token_request(headers=[basic("basic-client", "wrong")]))
    assert registry.verified == ["basic-client"] * 3
    locked = await refused(auth, token_request(headers=[basic("basic-client", "s3cret")]))
    assert registry.verified == ["basic-client"] * 3  # not even the right secret is checked
    assert (locked.status, locked.headers(), locked.body()) == (
        wrong.status, wrong.headers(), wrong.body()
    )
    assert locked.status == 401
    assert (await auth.authenticate(token_request({"client_id": "post-client",
                                                   "client_secret": "p0st"}))).client


async def test_a_new_window_lets_the_client_in_again(
    registry: HashedRegistry, policy: AssertionPolicy
) -> None:
    clock = FrozenClock(WINDOW_START + 10)
    auth = limited(registry, policy, clock, limits(per_address=None))
    for _ in range(3):
        await refused(auth, token_request({"client_id": "post-client", "client_secret": "x"}))
    await refused(auth, token_request({"client_id": "post-client", "client_secret": "p0st"}))
    clock.advance(49)  # still the same window
    await refused(auth, token_request({"client_id": "post-client", "client_secret": "p0st"}))
    clock.advance(1)  # the next one
    result = await auth.authenticate(
        token_request({"client_id": "post-client", "client_secret": "p0st"})
    )
    assert result.client.client_id == "post-client"


async def test_failures_are_counted_per_source_address_across_client_ids(
    registry: HashedRegistry, policy: AssertionPolicy
) -> None:
    auth = limited(registry, policy, FrozenClock(WINDOW_START), limits(per_client=None))
    for client_id in ("basic-client", "nobody", "post-client"):
        await refused(auth, token_request(headers=[basic(client_id, "wrong")],
                                          address="203.0.113.7"))
    checked = len(registry.verified)
    await refused(auth, token_request(headers=[basic("basic-client", "s3cret")],
                                      address="203.0.113.7"))
    assert len(registry.verified) == checked
    elsewhere = await auth.authenticate(
        token_request(headers=[basic("basic-client", "s3cret")], address="198.51.100.2")
    )
    assert elsewhere.client.client_id == "basic-client"


async def test_unknown_client_ids_and_wrong_methods_count_as_failures(
    registry: HashedRegistry, policy: AssertionPolicy
) -> None:
    auth = limited(registry, policy, FrozenClock(WINDOW_START), limits(per_client=None))
    address = "203.0.113.9"
    await refused(auth, token_request(headers=[basic("nobody", "x")], address=address))
    await refused(auth, token_request({"client_id": "basic-client", "client_secret": "x"},
                                      address=address))
    await refused(auth, token_request(headers=[basic("public-client", "x")], address=address))
    before = len(registry.verified)
    await refused(auth, token_request(headers=[basic("basic-client", "s3cret")], address=address))
    assert len(registry.verified) == before


async def test_methods_without_a_secret_are_not_limited(
    registry: HashedRegistry, policy: AssertionPolicy
) -> None:
    auth = limited(registry, policy, FrozenClock(WINDOW_START), limits(per_client=1,
                                                                       per_address=1))
    for _ in range(3):
        await refused(auth, token_request({"client_id": "nobody"}, address="203.0.113.1"))
    result = await auth.authenticate(token_request({"client_id": "public-client"},
                                                   address="203.0.113.1"))
    assert result.method == "none"


async def test_a_flood_of_wrong_secrets_buys_at_most_k_argon2_verifications(
    policy: AssertionPolicy,
) -> None:
    """The limit sits in front of the default registry's argon2 work, for unknown ids too."""
    hasher = CountingHasher()
    registry = FileClientRegistry.from_mapping(
        {"clients": [{"client_id": "legacy", "client_type": "confidential",
                      "client_secret_hash": hash_secret("chosen", hasher=hasher)}]},
        hasher=hasher,
    )
    auth = limited(registry, policy, FrozenClock(WINDOW_START), limits(per_client=5,
                                                                       per_address=8))
    for attempt in range(40):
        await refused(auth, token_request(headers=[basic("legacy", f"guess {attempt}")],
                                          address=f"203.0.113.{attempt}"))
    assert hasher.verifies == 5
    for attempt in range(40):
        await refused(auth, token_request(headers=[basic(f"ghost-{attempt}", "guess")],
                                          address="198.51.100.1"))
    assert hasher.verifies == 5 + 8  # the placeholder checks stop at the address budget


async def test_a_known_fast_form_client_and_an_unknown_id_take_the_same_path(
    policy: AssertionPolicy,
) -> None:
    """Structural timing check: with fast digests only, neither a wrong secret for a known
    client nor an unknown id reaches argon2, and both get the same answer."""
    hasher = CountingHasher()
    made = generate_client_secret()
    registry = FileClientRegistry.from_mapping(
        {"clients": [{"client_id": "web", "client_type": "confidential",
                      "client_secret_hash": made.digest}]},
        hasher=hasher,
    )
    auth = limited(registry, policy, FrozenClock(WINDOW_START), limits())
    known = await refused(auth, token_request(headers=[basic("web", "wrong")]))
    unknown = await refused(auth, token_request(headers=[basic("ghost", "wrong")]))
    assert hasher.verifies == 0
    assert (known.status, known.headers(), known.body()) == (
        unknown.status, unknown.headers(), unknown.body()
    )
    result = await auth.authenticate(token_request(headers=[basic("web", made.secret)]))
    assert result.client.client_id == "web"


def test_a_client_may_register_only_a_known_id_token_signing_alg() -> None:
    """OIDC Registration §2: ``id_token_signed_response_alg`` names a JWS algorithm."""
    client = Client("web", "public", "none", id_token_signed_response_alg="ES256")
    assert client.id_token_signed_response_alg == "ES256"
    with pytest.raises(ValueError, match="id_token_signed_response_alg"):
        Client("web", "public", "none", id_token_signed_response_alg="none")  # type: ignore[arg-type]


async def test_a_refusal_by_a_spent_budget_is_answered_after_the_delay(
    registry: HashedRegistry, policy: AssertionPolicy
) -> None:
    """A flooding source gets one answer per connection and delay: its refusals wait."""
    auth = limited(registry, policy, FrozenClock(WINDOW_START),
                   limits(per_client=None, per_address=1, delay=0.3))
    wrong = token_request(headers=[basic("basic-client", "nope")], address="192.0.2.7")
    with pytest.raises(InvalidClientError):
        await auth.authenticate(wrong)  # the failure that spends the budget: no delay
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(InvalidClientError):
        await auth.authenticate(wrong)
    assert loop.time() - started >= 0.3
