"""The consent detour: prompt, approve or deny, and a single-use grant bound to the request.

authward spec/stores.md §3.9 (CON: request-bound, single-use consent grants; the token is the
consent form's CSRF protection); RFC 6749 §4.1.2.1 (access_denied); OIDC Core §3.1.2.1
(prompt=consent). Real SQL stores on SQLite and PostgreSQL.
"""

from __future__ import annotations

import pytest

from authward.core.endpoints import authorize
from authward.core.endpoints.authorize import CONSENT_TTL_SECONDS
from authward.core.http import Request
from authward.core.pkce import s256_challenge
from authward.stores.digest import digest
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
    CONFIDENTIAL_CLIENT_ID,
    ISSUER,
    OTHER_REDIRECT_URI,
    PUBLIC_CLIENT_ID,
    REDIRECT_URI,
    Kit,
    build,
    get,
    query_of,
)
from tests.dbkit import Db


def session(kit: Kit, subject: str = SUBJECT) -> tuple[str, str]:
    return kit.login.sign_in(subject, auth_time=kit.clock.now())


async def codes(db: Db) -> int:
    return len(await db.rows(db.tables.authorization_codes))


async def test_consent_prompt_then_approve_issues_a_code(db: Db) -> None:
    kit = build(db)
    cookie = session(kit)
    prompt = prompt_of(await authorize_get(kit, request_params(), cookie=cookie))
    assert prompt.client.client_id == PUBLIC_CLIENT_ID
    assert prompt.scopes == ("openid", "profile")
    assert prompt.subject == SUBJECT
    assert prompt.action == AUTHORIZE_URL
    assert dict(prompt.form_fields)["state"] == STATE
    assert ("consent_token", prompt.consent_token) in prompt.hidden_fields
    (grant,) = await db.rows(db.tables.consent_grants)
    assert grant._mapping["consumed_at"] is None
    assert await codes(db) == 0

    query = redirect_query(await answer_consent(kit, prompt, "approve", cookie=cookie))
    assert set(query) == {"code", "state", "iss"}
    assert (query["state"], query["iss"]) == (STATE, ISSUER)
    (row,) = await db.rows(db.tables.authorization_codes)
    assert row._mapping["code_hash"] == digest(query["code"])
    (grant,) = await db.rows(db.tables.consent_grants)
    assert grant._mapping["consumed_at"] is not None


async def test_the_consent_grant_expires_after_its_ttl(db: Db) -> None:
    kit = build(db)
    cookie = session(kit)
    prompt = prompt_of(await authorize_get(kit, request_params(), cookie=cookie))
    (grant,) = await db.rows(db.tables.consent_grants)
    lifetime = grant._mapping["expires_at"] - grant._mapping["inserted_at"]
    assert lifetime.total_seconds() == CONSENT_TTL_SECONDS
    kit.clock.advance(CONSENT_TTL_SECONDS + 1)
    query = redirect_query(await answer_consent(kit, prompt, "approve", cookie=cookie))
    assert query["error"] == "access_denied"
    assert await codes(db) == 0


async def test_deny_is_access_denied_with_state_and_iss(db: Db) -> None:
    kit = build(db)
    cookie = session(kit)
    prompt = prompt_of(await authorize_get(kit, request_params(), cookie=cookie))
    query = redirect_query(await answer_consent(kit, prompt, "deny", cookie=cookie))
    assert (query["error"], query["state"], query["iss"]) == ("access_denied", STATE, ISSUER)
    assert await codes(db) == 0
    # The denied grant is spent: approving with it afterwards does not work either.
    again = redirect_query(await answer_consent(kit, prompt, "approve", cookie=cookie))
    assert again["error"] == "access_denied"
    assert await codes(db) == 0


async def test_a_replayed_consent_token_is_refused(db: Db) -> None:
    kit = build(db)
    cookie = session(kit)
    prompt = prompt_of(await authorize_get(kit, request_params(), cookie=cookie))
    assert "code" in redirect_query(await answer_consent(kit, prompt, "approve", cookie=cookie))
    replay = redirect_query(await answer_consent(kit, prompt, "approve", cookie=cookie))
    assert replay["error"] == "access_denied"
    assert await codes(db) == 1


@pytest.mark.parametrize(
    "change",
    [
        {"scope": "openid profile email"},
        {"scope": "openid"},
        {"code_challenge": s256_challenge("another-verifier-" + "x" * 40)},
        {"redirect_uri": OTHER_REDIRECT_URI},
    ],
    ids=["more-scope", "less-scope", "other-challenge", "other-redirect"],
)
async def test_a_consent_token_for_another_request_is_refused_and_stays_usable(
    db: Db, change: dict[str, str]
) -> None:
    kit = build(db)
    cookie = session(kit)
    original = request_params(CONFIDENTIAL_CLIENT_ID)
    prompt = prompt_of(await authorize_get(kit, original, cookie=cookie))
    other = request_params(CONFIDENTIAL_CLIENT_ID, **change)
    result = await answer_consent(kit, prompt, "approve", cookie=cookie, fields=other)
    query = redirect_query(result, change.get("redirect_uri", REDIRECT_URI))
    assert query["error"] == "access_denied"
    assert await codes(db) == 0
    # A binding mismatch never spends the grant: the request it was minted for still works.
    assert "code" in redirect_query(await answer_consent(kit, prompt, "approve", cookie=cookie))


async def test_a_consent_token_is_bound_to_the_signed_in_user(db: Db) -> None:
    kit = build(db)
    prompt = prompt_of(await authorize_get(kit, request_params(), cookie=session(kit)))
    mallory = session(kit, "mallory")
    query = redirect_query(await answer_consent(kit, prompt, "approve", cookie=mallory))
    assert query["error"] == "access_denied"
    assert await codes(db) == 0


async def test_a_forged_consent_post_without_a_valid_token_is_access_denied(db: Db) -> None:
    kit = build(db)
    cookie = session(kit)
    prompt = prompt_of(await authorize_get(kit, request_params(), cookie=cookie))
    for token in ("forged", "x" * 300):
        query = redirect_query(
            await answer_consent(kit, prompt, "approve", cookie=cookie, token=token)
        )
        assert query["error"] == "access_denied"
    assert await codes(db) == 0


async def test_an_unknown_decision_is_access_denied(db: Db) -> None:
    kit = build(db)
    cookie = session(kit)
    prompt = prompt_of(await authorize_get(kit, request_params(), cookie=cookie))
    query = redirect_query(await answer_consent(kit, prompt, "maybe", cookie=cookie))
    assert query["error"] == "access_denied"


async def test_a_consent_token_in_a_get_query_is_ignored(db: Db) -> None:
    kit = build(db)
    cookie = session(kit)
    prompt = prompt_of(await authorize_get(kit, request_params(), cookie=cookie))
    pairs = [*prompt.form_fields, ("consent_token", prompt.consent_token), ("decision", "approve")]
    again = await authorize.handle(kit.server, get(AUTHORIZE_URL, pairs, headers=(cookie,)))
    prompt_of(again)
    assert await codes(db) == 0


async def test_prompt_consent_asks_even_with_standing_consent(db: Db) -> None:
    kit = build(db)
    kit.consent.grant(SUBJECT, PUBLIC_CLIENT_ID, ("openid", "profile"))
    cookie = session(kit)
    prompt = prompt_of(await authorize_get(kit, request_params(prompt="consent"), cookie=cookie))
    assert "code" in redirect_query(await answer_consent(kit, prompt, "approve", cookie=cookie))


async def test_prompt_login_then_consent_completes_without_a_login_loop(db: Db) -> None:
    kit = build(db)
    cookie = session(kit)
    first = await authorize_get(kit, request_params(prompt="login"), cookie=cookie)
    location = response(first).location
    assert location is not None
    return_to = query_of(location)["return_to"]
    kit.clock.advance(2)
    fresh = session(kit)
    prompt = prompt_of(
        await authorize.handle(kit.server, Request.build("GET", return_to, headers=[fresh]))
    )
    assert "code" in redirect_query(await answer_consent(kit, prompt, "approve", cookie=fresh))


async def test_a_signed_out_consent_post_goes_to_login(db: Db) -> None:
    kit = build(db)
    prompt = prompt_of(await authorize_get(kit, request_params(), cookie=session(kit)))
    result = await answer_consent(kit, prompt, "approve", cookie=("Cookie", "session=gone"))
    assert response(result).status == 302
    assert await codes(db) == 0
    (grant,) = await db.rows(db.tables.consent_grants)
    assert grant._mapping["consumed_at"] is None
