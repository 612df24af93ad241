"""The authorization endpoint: direct vs redirected errors, login detours, prompt, max_age, codes.

RFC 6749 §3.1, §4.1.2, §4.1.2.1; RFC 7636; RFC 9207 §2; OIDC Core §3.1.2.1, §3.1.2.6. Real
SQL stores on SQLite and PostgreSQL (``db``); the host policy is the kit's in-test one.
"""

from __future__ import annotations

import pytest

from authward.core.endpoints import authorize
from authward.core.endpoints.authorize import LOGIN_STARTED_PARAM, login_marker
from authward.core.http import Request
from authward.core.jose import sign_jwt, verify_jwt
from authward.core.keys import KeySet
from authward.stores.digest import digest
from tests.core.endpoints.authorize_flow import (
    NONCE,
    STATE,
    SUBJECT,
    authorize_get,
    redirect_query,
    request_params,
    response,
)
from tests.core.endpoints.kit import (
    AUTHORIZE_URL,
    CODE_CHALLENGE,
    ISSUER,
    LOGIN_URL,
    PAR_CLIENT_ID,
    PUBLIC_CLIENT_ID,
    REDIRECT_URI,
    Kit,
    build,
    post,
    query_of,
)
from tests.dbkit import Db


def signed_in(kit: Kit, *, ago: float = 10, consent: bool = True) -> tuple[str, str]:
    """A session for SUBJECT signed in ``ago`` seconds before now (with standing consent)."""
    if consent:
        kit.consent.grant(SUBJECT, PUBLIC_CLIENT_ID, ("openid", "profile"))
    return kit.login.sign_in(SUBJECT, auth_time=kit.clock.now() - ago, acr="1", amr=("pwd",))


async def no_rows_written(db: Db) -> None:
    for table in db.tables.metadata.sorted_tables:
        assert await db.rows(table) == [], table.name


async def test_unknown_client_is_answered_directly_not_redirected(db: Db) -> None:
    kit = build(db)
    res = response(await authorize_get(kit, request_params("nobody"), cookie=signed_in(kit)))
    assert res.status == 400
    assert res.location is None
    assert res.json is not None
    assert res.json["error"] == "invalid_client"
    await no_rows_written(db)


@pytest.mark.parametrize(
    "redirect_uri", ["https://attacker.example/cb", REDIRECT_URI + "?x=1", "not a uri"]
)
async def test_bad_redirect_uri_is_answered_directly(db: Db, redirect_uri: str) -> None:
    kit = build(db)
    res = response(await authorize_get(kit, request_params(redirect_uri=redirect_uri)))
    assert res.status == 400
    assert res.location is None
    assert res.json is not None
    assert res.json["error"] == "invalid_request"
    await no_rows_written(db)


@pytest.mark.parametrize(
    ("overrides", "omit", "expected"),
    [
        ({}, ["code_challenge", "code_challenge_method"], "invalid_request"),
        ({"code_challenge_method": "plain"}, [], "invalid_request"),
        ({"response_type": "token"}, [], "unsupported_response_type"),
        ({"scope": "x " * 5000}, [], "invalid_request"),
        ({"request_uri": "https://client.example/r"}, [], "request_uri_not_supported"),
    ],
    ids=["pkce-missing", "pkce-plain", "response-type", "10kB-scope", "foreign-request-uri"],
)
async def test_other_errors_redirect_with_state_and_iss_rfc9207(
    db: Db, overrides: dict[str, str], omit: list[str], expected: str
) -> None:
    kit = build(db)
    result = await authorize_get(
        kit, request_params(omit=omit, **overrides), cookie=signed_in(kit)
    )
    query = redirect_query(result)
    assert query["error"] == expected
    assert query["state"] == STATE
    assert query["iss"] == ISSUER
    assert "code" not in query
    await no_rows_written(db)


async def test_repeated_parameter_is_invalid_request_and_writes_nothing(db: Db) -> None:
    kit = build(db)
    pairs = [*request_params(), ("scope", "openid")]
    query = redirect_query(await authorize_get(kit, pairs, cookie=signed_in(kit)))
    assert query["error"] == "invalid_request"
    assert query["state"] == STATE
    await no_rows_written(db)


async def test_300_character_state_round_trips(db: Db) -> None:
    kit = build(db)
    state = "s" * 300
    query = redirect_query(
        await authorize_get(kit, request_params(state=state), cookie=signed_in(kit))
    )
    assert query["state"] == state
    assert "code" in query


async def test_signed_in_user_with_consent_gets_a_code_with_state_and_iss(db: Db) -> None:
    kit = build(db)
    query = redirect_query(await authorize_get(kit, request_params(), cookie=signed_in(kit)))
    assert set(query) == {"code", "state", "iss"}
    assert (query["state"], query["iss"]) == (STATE, ISSUER)
    rows = await db.rows(db.tables.authorization_codes)
    assert len(rows) == 1
    row = rows[0]._mapping
    assert row["code_hash"] == digest(query["code"])
    assert row["client_id"] == PUBLIC_CLIENT_ID
    assert row["subject"] == SUBJECT
    assert row["redirect_uri"] == REDIRECT_URI
    assert list(row["scope"]) == ["openid", "profile"]
    assert row["code_challenge"] == CODE_CHALLENGE
    assert row["code_challenge_method"] == "S256"
    claims = row["claims"]
    assert row["nonce"] == NONCE
    assert claims["acr"] == "1"
    assert claims["amr"] == ["pwd"]
    assert claims["auth_time"] == int(kit.clock.now() - 10)
    assert claims["sid"].startswith("sid-")


async def test_redirect_uri_with_query_keeps_it(db: Db) -> None:
    from authward.core.clients import Client

    kit = build(db)
    kit.clients.add(Client("q-app", "public", "none", redirect_uris=(REDIRECT_URI + "?a=1",)))
    kit.consent.grant(SUBJECT, "q-app", ("openid", "profile"))
    cookie = kit.login.sign_in(SUBJECT, auth_time=kit.clock.now())
    res = response(await authorize_get(
        kit, request_params("q-app", redirect_uri=REDIRECT_URI + "?a=1"), cookie=cookie
    ))
    assert res.location is not None
    assert query_of(res.location)["a"] == "1"
    assert "code" in query_of(res.location)


async def test_post_form_is_accepted_rfc6749_3_1(db: Db) -> None:
    kit = build(db)
    res = await authorize.handle(
        kit.server, post(AUTHORIZE_URL, request_params(), headers=(signed_in(kit),))
    )
    assert "code" in redirect_query(res)


async def test_post_with_another_content_type_is_a_direct_error(db: Db) -> None:
    kit = build(db)
    req = Request.build("POST", AUTHORIZE_URL, headers=[("Content-Type", "application/json")],
                        json={"client_id": PUBLIC_CLIENT_ID})
    res = response(await authorize.handle(kit.server, req))
    assert res.status == 400
    assert res.location is None


async def test_other_methods_are_refused(db: Db) -> None:
    kit = build(db)
    res = response(await authorize.handle(kit.server, Request.build("PUT", AUTHORIZE_URL)))
    assert res.status == 400
    assert res.location is None


async def test_nobody_signed_in_redirects_to_login_with_a_resumable_return_to(db: Db) -> None:
    kit = build(db)
    res = response(await authorize_get(kit, request_params()))
    assert res.status == 302
    assert res.location is not None
    assert res.location.startswith(LOGIN_URL + "?")
    return_to = query_of(res.location)["return_to"]
    assert return_to.startswith(AUTHORIZE_URL + "?")
    assert await db.rows(db.tables.authorization_codes) == []
    # The user signs in; the browser follows return_to and the request completes.
    cookie = signed_in(kit, ago=0)
    resumed = Request.build("GET", return_to, headers=[cookie])
    query = redirect_query(await authorize.handle(kit.server, resumed))
    assert query["state"] == STATE
    assert "code" in query


async def test_prompt_none_without_a_session_is_login_required(db: Db) -> None:
    kit = build(db)
    query = redirect_query(await authorize_get(kit, request_params(prompt="none")))
    assert (query["error"], query["state"], query["iss"]) == ("login_required", STATE, ISSUER)
    await no_rows_written(db)


async def test_prompt_none_with_consent_needed_is_consent_required(db: Db) -> None:
    kit = build(db)
    cookie = signed_in(kit, consent=False)
    query = redirect_query(await authorize_get(kit, request_params(prompt="none"), cookie=cookie))
    assert query["error"] == "consent_required"
    await no_rows_written(db)


async def test_prompt_none_signed_in_with_standing_consent_issues_a_code(db: Db) -> None:
    kit = build(db)
    query = redirect_query(
        await authorize_get(kit, request_params(prompt="none"), cookie=signed_in(kit))
    )
    assert "code" in query


async def test_prompt_none_with_max_age_exceeded_is_login_required(db: Db) -> None:
    kit = build(db)
    cookie = signed_in(kit, ago=120)
    query = redirect_query(
        await authorize_get(kit, request_params(prompt="none", max_age="60"), cookie=cookie)
    )
    assert query["error"] == "login_required"


async def test_max_age_exceeded_sends_to_login_and_a_fresh_login_passes(db: Db) -> None:
    kit = build(db)
    stale = signed_in(kit, ago=120)
    res = response(await authorize_get(kit, request_params(max_age="60"), cookie=stale))
    assert res.location is not None
    assert res.location.startswith(LOGIN_URL)
    return_to = query_of(res.location)["return_to"]
    fresh = kit.login.sign_in(SUBJECT, auth_time=kit.clock.now())
    query = redirect_query(
        await authorize.handle(kit.server, Request.build("GET", return_to, headers=[fresh]))
    )
    assert "code" in query


async def test_max_age_within_limit_issues_a_code(db: Db) -> None:
    kit = build(db)
    query = redirect_query(
        await authorize_get(kit, request_params(max_age="60"), cookie=signed_in(kit, ago=30))
    )
    assert "code" in query


async def test_prompt_login_forces_a_new_login_then_completes(db: Db) -> None:
    kit = build(db)
    cookie = signed_in(kit, ago=5)
    res = response(await authorize_get(kit, request_params(prompt="login"), cookie=cookie))
    assert res.location is not None
    assert res.location.startswith(LOGIN_URL)
    return_to = query_of(res.location)["return_to"]
    marker = query_of(return_to)[LOGIN_STARTED_PARAM]
    verified = verify_jwt(marker, kit.server.keys.verification_keys(
        now=kit.clock.now(), max_token_lifetime=3600), algorithms=("RS256", "ES256"))
    assert verified.header["typ"] == "authward-login-marker"
    assert verified.claims["iat"] == int(kit.clock.now())
    # Coming back without having signed in again: still sent to login.
    again = await authorize.handle(kit.server, Request.build("GET", return_to, headers=[cookie]))
    assert response(again).location is not None
    assert response(again).location.startswith(LOGIN_URL)  # type: ignore[union-attr]
    kit.clock.advance(3)
    fresh = kit.login.sign_in(SUBJECT, auth_time=kit.clock.now())
    query = redirect_query(
        await authorize.handle(kit.server, Request.build("GET", return_to, headers=[fresh]))
    )
    assert "code" in query


async def test_prompt_login_marker_from_long_ago_is_not_honoured(db: Db) -> None:
    kit = build(db)
    cookie = signed_in(kit, ago=5)
    long_ago = login_marker(kit.server, kit.clock.now() - 3600)
    pairs = [*request_params(prompt="login"), (LOGIN_STARTED_PARAM, long_ago)]
    res = response(await authorize_get(kit, pairs, cookie=cookie))
    assert res.location is not None
    assert res.location.startswith(LOGIN_URL)


def forged_marker(kit: Kit, iat: float, *, typ: str = "authward-login-marker",
                  keys: KeySet | None = None, issuer: str = ISSUER) -> str:
    key = (keys or kit.server.keys).signing_key("RS256")
    return sign_jwt(key, {"iss": issuer, "iat": int(iat), "exp": int(iat) + 600},
                    header={"typ": typ})


@pytest.mark.parametrize("kind", ["unsigned", "foreign key", "other typ", "other issuer",
                                  "two markers"])
async def test_prompt_login_marker_cannot_be_forged_to_skip_the_login(db: Db, kind: str) -> None:
    """A user agent holding a session from before the forced login cannot pass it off as
    fresh by writing its own marker (the old unsigned timestamp allowed exactly that)."""
    kit = build(db)
    cookie = signed_in(kit, ago=30)
    before_login = kit.clock.now() - 60
    markers = {
        "unsigned": [str(int(before_login))],
        "foreign key": [forged_marker(kit, before_login,
                                      keys=KeySet.generate(("RS256",), now=kit.clock.now()))],
        "other typ": [forged_marker(kit, before_login, typ="JWT")],
        "other issuer": [forged_marker(kit, before_login, issuer="https://other.example")],
        "two markers": [login_marker(kit.server, before_login)] * 2,
    }[kind]
    pairs = [*request_params(prompt="login"), *((LOGIN_STARTED_PARAM, m) for m in markers)]
    res = response(await authorize_get(kit, pairs, cookie=cookie))
    assert res.location is not None
    if kind == "two markers":  # a repeated parameter is refused outright (RFC 6749 §3.1)
        assert query_of(res.location)["error"] == "invalid_request"
    else:
        assert res.location.startswith(LOGIN_URL)
    assert "code" not in query_of(res.location)


async def test_prompt_login_honours_a_genuine_marker_older_than_the_session(db: Db) -> None:
    kit = build(db)
    cookie = signed_in(kit, ago=30)
    marker = login_marker(kit.server, kit.clock.now() - 60)
    pairs = [*request_params(prompt="login"), (LOGIN_STARTED_PARAM, marker)]
    assert "code" in redirect_query(await authorize_get(kit, pairs, cookie=cookie))


async def test_scope_policy_granting_nothing_is_invalid_scope(db: Db) -> None:
    kit = build(db)
    kit.scopes.refused.update({"openid", "profile"})
    query = redirect_query(await authorize_get(kit, request_params(), cookie=signed_in(kit)))
    assert query["error"] == "invalid_scope"
    await no_rows_written(db)


async def test_scope_policy_narrows_the_granted_scope(db: Db) -> None:
    kit = build(db)
    kit.scopes.refused.add("profile")
    kit.consent.grant(SUBJECT, PUBLIC_CLIENT_ID, ("openid",))
    query = redirect_query(await authorize_get(kit, request_params(), cookie=signed_in(kit)))
    assert "code" in query
    (row,) = await db.rows(db.tables.authorization_codes)
    assert list(row._mapping["scope"]) == ["openid"]


async def test_resource_and_dpop_jkt_are_bound_to_the_code(db: Db) -> None:
    kit = build(db)
    jkt = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
    pairs = [*request_params(dpop_jkt=jkt), ("resource", "https://api.example/")]
    assert "code" in redirect_query(await authorize_get(kit, pairs, cookie=signed_in(kit)))
    (row,) = await db.rows(db.tables.authorization_codes)
    assert list(row._mapping["resource"]) == ["https://api.example/"]
    assert row._mapping["cnf"] == {"jkt": jkt}


async def test_par_required_client_without_par_is_refused(db: Db) -> None:
    kit = build(db)
    kit.consent.grant(SUBJECT, PAR_CLIENT_ID, ("openid", "profile"))
    query = redirect_query(
        await authorize_get(kit, request_params(PAR_CLIENT_ID), cookie=signed_in(kit))
    )
    assert query["error"] == "invalid_request"
    assert query["iss"] == ISSUER
    await no_rows_written(db)


async def test_server_requiring_par_refuses_a_plain_request(db: Db) -> None:
    kit = build(db, require_pushed_authorization_requests=True)
    query = redirect_query(await authorize_get(kit, request_params(), cookie=signed_in(kit)))
    assert query["error"] == "invalid_request"
    await no_rows_written(db)


async def test_events_never_carry_the_code(db: Db) -> None:
    kit = build(db)
    query = redirect_query(await authorize_get(kit, request_params(), cookie=signed_in(kit)))
    assert kit.events.names() == ["authorization.code_issued"]
    assert query["code"] not in repr(kit.events.events)

