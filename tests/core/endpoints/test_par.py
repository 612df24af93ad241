"""Pushed authorization requests: the PAR endpoint and /authorize with a pushed request_uri.

RFC 9126 §2 (201, no-store, client authentication, errors as JSON), §2.1 (no pushed
request_uri), §4 (client_id must match, stored params replace the front channel); RFC 9449
§10.1 (dpop_jkt from the proof); authward spec/stores.md §3.7 (fetch while resolving, take just
before issuing: single use at completion, resolvable during login and consent detours; exactly
one winner among concurrent completions). Real SQL stores on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import base64

import pytest

from authward.core.endpoints import authorize, par
from authward.core.http import Request, Response
from authward.core.jose import generate_signing_key
from authward.stores.par import REQUEST_URI_PREFIX
from tests.core.dpop_proofs import proof
from tests.core.endpoints.authorize_flow import (
    STATE,
    SUBJECT,
    answer_consent,
    authorize_get,
    prompt_of,
    redirect_query,
    request_params,
    response,
)
from tests.core.endpoints.kit import (
    AUTHORIZE_URL,
    CODE_CHALLENGE,
    CONFIDENTIAL_CLIENT_ID,
    CONFIDENTIAL_SECRET,
    ISSUER,
    LOGIN_URL,
    OTHER_REDIRECT_URI,
    PAR_CLIENT_ID,
    PAR_CLIENT_SECRET,
    PAR_URL,
    PUBLIC_CLIENT_ID,
    REDIRECT_URI,
    Kit,
    build,
    get,
    post,
    query_of,
)
from tests.dbkit import Db

DPOP_KEY = generate_signing_key("ES256")


def basic(client_id: str, secret: str) -> tuple[str, str]:
    token = base64.b64encode(f"{client_id}:{secret}".encode()).decode("ascii")
    return ("Authorization", f"Basic {token}")


async def push(
    kit: Kit,
    params: list[tuple[str, str]],
    *,
    auth: tuple[str, str] | None = None,
    headers: tuple[tuple[str, str], ...] = (),
) -> Response:
    """POST ``params`` to PAR, by default as the confidential client with Basic."""
    auth = auth or basic(CONFIDENTIAL_CLIENT_ID, CONFIDENTIAL_SECRET)
    return await par.handle(kit.server, post(PAR_URL, params, headers=(auth, *headers)))


async def pushed_uri(kit: Kit, params: list[tuple[str, str]], **kw: object) -> str:
    res = await push(kit, params, **kw)  # type: ignore[arg-type]
    assert res.status == 201, res.json
    assert res.json is not None
    uri = res.json["request_uri"]
    assert isinstance(uri, str)
    return uri


def session(
    kit: Kit, client_id: str = CONFIDENTIAL_CLIENT_ID, *, consent: bool = True
) -> tuple[str, str]:
    if consent:
        kit.consent.grant(SUBJECT, client_id, ("openid", "profile"))
    return kit.login.sign_in(SUBJECT, auth_time=kit.clock.now())


async def par_rows(db: Db) -> int:
    return len(await db.rows(db.tables.pushed_authorization_requests))


async def code_rows(db: Db) -> int:
    return len(await db.rows(db.tables.authorization_codes))


# --- the PAR endpoint ------------------------------------------------------------------------


async def test_push_answers_201_with_request_uri_and_expires_in(db: Db) -> None:
    kit = build(db)
    res = await push(kit, request_params(CONFIDENTIAL_CLIENT_ID))
    assert res.status == 201
    assert res.headers.get("cache-control") == "no-store"
    assert res.json is not None
    assert set(res.json) == {"request_uri", "expires_in"}
    uri = res.json["request_uri"]
    assert isinstance(uri, str)
    assert uri.startswith(REQUEST_URI_PREFIX)
    assert len(uri) == 77
    assert res.json["expires_in"] == 90
    (row,) = await db.rows(db.tables.pushed_authorization_requests)
    assert uri not in repr(tuple(row))  # stored only as a digest
    stored = row._mapping["params"]
    assert stored["client_id"] == CONFIDENTIAL_CLIENT_ID
    assert stored["code_challenge"] == CODE_CHALLENGE
    assert (row._mapping["expires_at"] - row._mapping["inserted_at"]).total_seconds() == 90


async def test_push_never_stores_client_credentials(db: Db) -> None:
    kit = build(db)
    form = [*request_params(PAR_CLIENT_ID), ("client_secret", PAR_CLIENT_SECRET)]
    res = await par.handle(kit.server, post(PAR_URL, form))
    assert res.status == 201, res.json
    (row,) = await db.rows(db.tables.pushed_authorization_requests)
    stored = row._mapping["params"]
    assert "client_secret" not in stored
    assert PAR_CLIENT_SECRET not in repr(stored)
    assert stored["client_id"] == PAR_CLIENT_ID


async def test_push_honours_the_configured_ttl(db: Db) -> None:
    kit = build(db, par_ttl=30)
    res = await push(kit, request_params(CONFIDENTIAL_CLIENT_ID))
    assert res.json is not None
    assert res.json["expires_in"] == 30


async def test_a_public_client_can_push_with_its_client_id(db: Db) -> None:
    kit = build(db)
    res = await par.handle(kit.server, post(PAR_URL, request_params(PUBLIC_CLIENT_ID)))
    assert res.status == 201, res.json


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        ([*request_params(CONFIDENTIAL_CLIENT_ID), ("request_uri", REQUEST_URI_PREFIX + "x")],
         "invalid_request"),
        (request_params(CONFIDENTIAL_CLIENT_ID, redirect_uri="https://attacker.example/cb"),
         "invalid_request"),
        (request_params(CONFIDENTIAL_CLIENT_ID, omit=["code_challenge"]), "invalid_request"),
        (request_params(CONFIDENTIAL_CLIENT_ID, code_challenge_method="plain"),
         "invalid_request"),
        (request_params(CONFIDENTIAL_CLIENT_ID, response_type="token"),
         "unsupported_response_type"),
        ([*request_params(CONFIDENTIAL_CLIENT_ID), ("state", "again")], "invalid_request"),
        (request_params(CONFIDENTIAL_CLIENT_ID, scope="x " * 5000), "invalid_request"),
        (request_params(CONFIDENTIAL_CLIENT_ID, scope="bad\\scope"), "invalid_scope"),
        (request_params(CONFIDENTIAL_CLIENT_ID, resource="relative"), "invalid_target"),
        (request_params(CONFIDENTIAL_CLIENT_ID, request="e30.e30."), "request_not_supported"),
        (request_params(PUBLIC_CLIENT_ID), "invalid_request"),
    ],
    ids=["pushed-request-uri", "bad-redirect", "no-pkce", "plain", "response-type", "repeat",
         "10kB-scope", "scope-syntax", "resource", "jar", "other-client-id"],
)
async def test_push_errors_are_json_400_and_store_nothing(
    db: Db, form: list[tuple[str, str]], expected: str
) -> None:
    kit = build(db)
    res = await push(kit, form)
    assert res.status == 400
    assert res.location is None
    assert res.json is not None
    assert res.json["error"] == expected
    assert res.headers.get("cache-control") == "no-store"
    assert await par_rows(db) == 0


async def test_push_with_a_wrong_secret_is_invalid_client(db: Db) -> None:
    kit = build(db)
    res = await push(kit, request_params(CONFIDENTIAL_CLIENT_ID),
                     auth=basic(CONFIDENTIAL_CLIENT_ID, "wrong"))
    assert res.status == 401
    assert res.json is not None
    assert res.json["error"] == "invalid_client"
    assert await par_rows(db) == 0


async def test_push_needs_post_and_a_form(db: Db) -> None:
    kit = build(db)
    res = await par.handle(kit.server, Request.build("GET", PAR_URL))
    assert res.status == 405
    assert res.headers.get("allow") == "POST"
    json_post = Request.build(
        "POST", PAR_URL, headers=[("Content-Type", "application/json"),
                                  basic(CONFIDENTIAL_CLIENT_ID, CONFIDENTIAL_SECRET)],
        json=dict(request_params(CONFIDENTIAL_CLIENT_ID)),
    )
    res = await par.handle(kit.server, json_post)
    assert res.status == 400
    assert res.json is not None
    assert res.json["error"] == "invalid_request"
    assert await par_rows(db) == 0


async def test_a_dpop_proof_at_par_binds_the_code_to_its_key(db: Db) -> None:
    kit = build(db)
    dpop = proof(DPOP_KEY, htm="POST", htu=PAR_URL, iat=kit.clock.now())
    uri = await pushed_uri(kit, request_params(CONFIDENTIAL_CLIENT_ID), headers=(("DPoP", dpop),))
    (row,) = await db.rows(db.tables.pushed_authorization_requests)
    assert row._mapping["params"]["dpop_jkt"] == DPOP_KEY.thumbprint()
    cookie = session(kit)
    result = await authorize_get(
        kit, {"client_id": CONFIDENTIAL_CLIENT_ID, "request_uri": uri}, cookie=cookie
    )
    assert "code" in redirect_query(result)
    (code,) = await db.rows(db.tables.authorization_codes)
    assert code._mapping["cnf"] == {"jkt": DPOP_KEY.thumbprint()}


async def test_a_dpop_jkt_matching_the_proof_is_accepted(db: Db) -> None:
    kit = build(db)
    dpop = proof(DPOP_KEY, htm="POST", htu=PAR_URL, iat=kit.clock.now())
    form = request_params(CONFIDENTIAL_CLIENT_ID, dpop_jkt=DPOP_KEY.thumbprint())
    await pushed_uri(kit, form, headers=(("DPoP", dpop),))


async def test_a_dpop_jkt_differing_from_the_proof_is_refused(db: Db) -> None:
    kit = build(db)
    other = generate_signing_key("ES256")
    dpop = proof(DPOP_KEY, htm="POST", htu=PAR_URL, iat=kit.clock.now())
    form = request_params(CONFIDENTIAL_CLIENT_ID, dpop_jkt=other.thumbprint())
    res = await push(kit, form, headers=(("DPoP", dpop),))
    assert res.status == 400
    assert res.json is not None
    assert res.json["error"] == "invalid_request"
    assert await par_rows(db) == 0


async def test_a_bad_dpop_proof_at_par_is_invalid_dpop_proof(db: Db) -> None:
    kit = build(db)
    dpop = proof(DPOP_KEY, htm="POST", htu="https://as.example/token", iat=kit.clock.now())
    res = await push(kit, request_params(CONFIDENTIAL_CLIENT_ID), headers=(("DPoP", dpop),))
    assert res.status == 400
    assert res.json is not None
    assert res.json["error"] == "invalid_dpop_proof"
    assert await par_rows(db) == 0


# --- /authorize with a pushed request --------------------------------------------------------


async def test_pushed_request_survives_login_and_consent_detours_then_is_single_use(
    db: Db,
) -> None:
    kit = build(db)
    form = [*request_params(PAR_CLIENT_ID), ("client_secret", PAR_CLIENT_SECRET)]
    res = await par.handle(kit.server, post(PAR_URL, form))
    assert res.json is not None
    uri = str(res.json["request_uri"])
    front = {"client_id": PAR_CLIENT_ID, "request_uri": uri}

    # Not signed in: off to the login page; return_to resumes with client_id + request_uri.
    login = response(await authorize_get(kit, front))
    assert login.location is not None
    assert login.location.startswith(LOGIN_URL)
    return_to = query_of(login.location)["return_to"]
    assert query_of(return_to) == front

    # Signed in, no standing consent: the consent page resubmits client_id + request_uri.
    cookie = session(kit, PAR_CLIENT_ID, consent=False)
    prompt = prompt_of(
        await authorize.handle(kit.server, Request.build("GET", return_to, headers=[cookie]))
    )
    assert prompt.form_fields == (("client_id", PAR_CLIENT_ID), ("request_uri", uri))
    assert await par_rows(db) == 1

    query = redirect_query(await answer_consent(kit, prompt, "approve", cookie=cookie))
    assert (query["state"], query["iss"]) == (STATE, ISSUER)
    assert "code" in query
    assert await par_rows(db) == 0
    (code,) = await db.rows(db.tables.authorization_codes)
    assert code._mapping["client_id"] == PAR_CLIENT_ID

    # Completed: the reference can never be replayed.
    kit.consent.grant(SUBJECT, PAR_CLIENT_ID, ("openid", "profile"))
    again = response(await authorize_get(kit, front, cookie=cookie))
    assert again.status == 400
    assert again.location is None
    assert again.json is not None
    assert again.json["error"] == "invalid_request_uri"
    assert await code_rows(db) == 1


async def test_stored_params_replace_the_front_channel_ones(db: Db) -> None:
    kit = build(db)
    uri = await pushed_uri(kit, request_params(CONFIDENTIAL_CLIENT_ID))
    front = [
        ("client_id", CONFIDENTIAL_CLIENT_ID),
        ("request_uri", uri),
        ("redirect_uri", OTHER_REDIRECT_URI),
        ("scope", "openid profile admin"),
        ("state", "forged"),
        ("code_challenge_method", "plain"),
    ]
    query = redirect_query(await authorize_get(kit, front, cookie=session(kit)), REDIRECT_URI)
    assert query["state"] == STATE
    (code,) = await db.rows(db.tables.authorization_codes)
    assert code._mapping["redirect_uri"] == REDIRECT_URI
    assert list(code._mapping["scope"]) == ["openid", "profile"]


async def test_request_uri_pushed_by_one_client_is_refused_for_another(db: Db) -> None:
    kit = build(db)
    uri = await pushed_uri(kit, request_params(CONFIDENTIAL_CLIENT_ID))
    cookie = session(kit, PUBLIC_CLIENT_ID)
    res = response(
        await authorize_get(kit, {"client_id": PUBLIC_CLIENT_ID, "request_uri": uri},
                            cookie=cookie)
    )
    assert res.status == 400
    assert res.location is None
    assert res.json is not None
    assert res.json["error"] == "invalid_request_uri"
    assert await code_rows(db) == 0
    assert await par_rows(db) == 1


@pytest.mark.parametrize("client_id", [None, ""])
async def test_request_uri_without_client_id_is_a_direct_error(
    db: Db, client_id: str | None
) -> None:
    kit = build(db)
    uri = await pushed_uri(kit, request_params(CONFIDENTIAL_CLIENT_ID))
    front = {"request_uri": uri} if client_id is None else {"request_uri": uri, "client_id": ""}
    res = response(await authorize_get(kit, front, cookie=session(kit)))
    assert res.status == 400
    assert res.location is None
    assert await code_rows(db) == 0


async def test_unknown_or_expired_request_uri_is_a_direct_invalid_request_uri(db: Db) -> None:
    kit = build(db)
    cookie = session(kit)
    unknown = {"client_id": CONFIDENTIAL_CLIENT_ID, "request_uri": REQUEST_URI_PREFIX + "nope"}
    res = response(await authorize_get(kit, unknown, cookie=cookie))
    assert res.json is not None
    assert res.json["error"] == "invalid_request_uri"
    uri = await pushed_uri(kit, request_params(CONFIDENTIAL_CLIENT_ID))
    kit.clock.advance(91)
    expired = {"client_id": CONFIDENTIAL_CLIENT_ID, "request_uri": uri}
    res = response(await authorize_get(kit, expired, cookie=cookie))
    assert res.location is None
    assert res.json is not None
    assert res.json["error"] == "invalid_request_uri"
    assert await code_rows(db) == 0


async def test_par_required_client_completes_through_par(db: Db) -> None:
    kit = build(db)
    form = [*request_params(PAR_CLIENT_ID), ("client_secret", PAR_CLIENT_SECRET)]
    res = await par.handle(kit.server, post(PAR_URL, form))
    assert res.json is not None
    front = {"client_id": PAR_CLIENT_ID, "request_uri": str(res.json["request_uri"])}
    query = redirect_query(await authorize_get(kit, front, cookie=session(kit, PAR_CLIENT_ID)))
    assert "code" in query


async def test_fifty_concurrent_completions_of_one_request_uri_give_one_code(db: Db) -> None:
    kit = build(db)
    uri = await pushed_uri(kit, request_params(CONFIDENTIAL_CLIENT_ID))
    cookie = session(kit)
    engine = db.new_engine(pool_size=60, max_overflow=0, pool_timeout=60)
    try:
        node = kit.sibling(engine)
        front = {"client_id": CONFIDENTIAL_CLIENT_ID, "request_uri": uri}
        servers = [kit.server if i % 2 else node.server for i in range(50)]
        results = await asyncio.gather(
            *(authorize.handle(server, get(AUTHORIZE_URL, front, headers=(cookie,)))
              for server in servers)
        )
    finally:
        await engine.dispose()
    winners = []
    losers = []
    for result in results:
        res = response(result)
        if res.location is not None and "code=" in res.location:
            winners.append(res)
        else:
            losers.append(res)
    assert len(winners) == 1
    for res in losers:
        if res.location is not None:
            query = redirect_query(res)
            assert query["error"] == "invalid_request_uri"
            assert query["state"] == STATE
        else:
            assert res.json is not None
            assert res.json["error"] == "invalid_request_uri"
    assert await code_rows(db) == 1
    assert await par_rows(db) == 0
