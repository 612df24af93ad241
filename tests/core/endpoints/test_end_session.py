"""The end-session endpoint: RP-Initiated Logout and the back-channel fan-out it starts.

Spec: OIDC RP-Initiated Logout 1.0 §2 (parameters, the end-user is asked), §3 (redirect with
``state``), §4 (no redirect to an unverified URI); OIDC Back-Channel Logout 1.0 §2.5;
spec/stores.md §3.4 (recording at the token endpoint), §5.4 (fan-out only from the host-confirmed
session). The CSRF check of the confirmation form lives in the transport and is tested in
tests/asgi/test_logout_pages.py.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from authward.core.clients import Client
from authward.core.config import FeatureSettings, LogoutSettings
from authward.core.endpoints import discovery, end_session
from authward.core.endpoints.end_session import LogoutPrompt, SignedOut
from authward.core.errors import InvalidRequestError
from authward.core.http import Request, Response
from authward.core.id_token import mint_id_token
from authward.core.jose import generate_signing_key, sign_jwt
from authward.core.logout import LogoutDispatcher, record_logout_session
from authward.core.policy import Authentication, EndedSession
from authward.core.server import AuthorizationServer
from authward.stores.logout_sessions import LogoutCriteria
from tests.core.endpoints import kit
from tests.core.endpoints.token_requests import call, code_form, new_code, ok
from tests.core.logout_receivers import receiver
from tests.dbkit import T0, Db

END_SESSION_URL = kit.ISSUER + "/end_session"
BYE_A = "https://rp-a.example/bye"
BYE_B = "https://rp-b.example/bye"
STATE = "logout-state-7"


class TerminatingLogin:
    """The kit's login plus ``terminate_session`` (a ``SessionTerminator``)."""

    def __init__(self, sessions: kit.Sessions) -> None:
        self.sessions = sessions
        self.ended: set[str] = set()
        self.terminated: list[Authentication] = []

    async def authenticated(self, request: Request) -> Authentication | None:
        found = await self.sessions.authenticated(request)
        return None if found is None or found.sid in self.ended else found

    def login_url(self, return_to: str) -> str:
        return self.sessions.login_url(return_to)

    async def terminate_session(self, request: Request) -> EndedSession | None:
        found = await self.authenticated(request)
        if found is None:
            return None
        self.ended.add(found.sid)
        self.terminated.append(found)
        return EndedSession(found, headers=(("Set-Cookie", "session=; Max-Age=0; Path=/"),))


class PlainLogin:
    """A host login that cannot end sessions (no ``terminate_session``)."""

    def __init__(self, sessions: kit.Sessions) -> None:
        self.sessions = sessions

    async def authenticated(self, request: Request) -> Authentication | None:
        return await self.sessions.authenticated(request)

    def login_url(self, return_to: str) -> str:
        return self.sessions.login_url(return_to)


@dataclasses.dataclass
class Setup:
    k: kit.Kit
    server: AuthorizationServer
    login: TerminatingLogin
    cookie: tuple[str, str]
    sid: str
    dispatcher: LogoutDispatcher


def setup(db: Db, *, uris: tuple[str, str] = ("https://rp-a.example/bc",
                                               "https://rp-b.example/bc"),
          login: str = "terminating", **logout: Any) -> Setup:
    options: dict[str, Any] = {"enabled": True, "allow_loopback": True}
    options.update(logout)
    k = kit.build(db, logout=LogoutSettings(**options))
    for client_id, bye, uri in (("rp-a", BYE_A, uris[0]), ("rp-b", BYE_B, uris[1])):
        k.clients.add(Client(
            client_id, "public", "none", redirect_uris=(kit.REDIRECT_URI,),
            grant_types=("authorization_code",),
            post_logout_redirect_uris=(bye, bye + "?keep=1"),
            backchannel_logout_uri=uri, client_name=client_id.upper(),
        ))
    terminating = TerminatingLogin(k.login)
    host_login: Any = terminating if login == "terminating" else PlainLogin(k.login)
    server = dataclasses.replace(
        k.server, policy=dataclasses.replace(k.server.policy, login=host_login)
    )
    k.server = server
    cookie = k.login.sign_in("alice", auth_time=T0)
    sid = "sid-s1-alice"
    return Setup(k, server, terminating, cookie, sid, LogoutDispatcher())


def hint(s: Setup, client_id: str = "rp-a", **kw: Any) -> str:
    options: dict[str, Any] = {"issuer": kit.ISSUER, "subject": "alice", "client_id": client_id,
                               "lifetime": 900, "now": T0, "sid": s.sid}
    options.update(kw)
    key = s.server.keys.signing_key("RS256")
    return mint_id_token(key, **options).token


def logout_get(s: Setup, params: dict[str, str], *, signed_in: bool = True) -> Request:
    return kit.get(END_SESSION_URL, params, headers=[s.cookie] if signed_in else [])


def confirm_post(s: Setup, fields: list[tuple[str, str]], decision: str = "logout") -> Request:
    return kit.post(END_SESSION_URL, [*fields, ("decision", decision)], headers=[s.cookie])


async def seed_sessions(s: Setup, *, sid: str | None = None) -> None:
    """Logout sessions for rp-a and rp-b as the token endpoint records them."""
    for client_id in ("rp-a", "rp-b"):
        client = s.k.clients.clients[client_id]
        assert await record_logout_session(s.server, client, sid or s.sid, "alice", T0)


async def remaining(s: Setup, sid: str | None = None) -> int:
    found = await s.server.stores.logout_sessions.targets(
        LogoutCriteria(sid=sid or s.sid), now=T0
    )
    return len(found)


# --- recording at the token endpoint -------------------------------------------------------------


async def test_the_code_grant_records_a_logout_session_per_client_holding_the_sid(db: Db) -> None:
    """spec §3.4: an ID token with sid for a client with a backchannel_logout_uri records a row;
    a client without one records nothing."""
    s = setup(db)
    for client_id in ("rp-a", "rp-b"):
        code = await new_code(s.k, client_id=client_id, scope=("openid",))
        body = ok(await call(s.k, code_form(code, extra=[("client_id", client_id)]),
                             public=True))
        assert "id_token" in body
    confidential = await new_code(s.k, scope=("openid",))
    ok(await call(s.k, code_form(confidential)))
    taken = await s.server.stores.logout_sessions.targets(LogoutCriteria(sid="sid-1"), now=T0)
    assert sorted(t.client_id for t in taken) == ["rp-a", "rp-b"]
    assert {t.backchannel_logout_uri for t in taken} == {
        "https://rp-a.example/bc", "https://rp-b.example/bc"
    }


async def test_no_session_is_recorded_without_openid_or_with_logout_disabled(db: Db) -> None:
    s = setup(db, enabled=False)
    code = await new_code(s.k, client_id="rp-a", scope=("openid",))
    ok(await call(s.k, code_form(code, extra=[("client_id", "rp-a")]), public=True))
    assert await remaining(s, "sid-1") == 0
    on = setup(db)
    code = await new_code(on.k, client_id="rp-a", scope=("read",))
    ok(await call(on.k, code_form(code, extra=[("client_id", "rp-a")]), public=True))
    assert await remaining(on, "sid-1") == 0


# --- step 1: the request -----------------------------------------------------------------------


async def test_a_signed_in_user_is_asked_to_confirm(db: Db) -> None:
    """§2: the OP asks; nothing is ended or taken by the GET."""
    s = setup(db)
    await seed_sessions(s)
    token = hint(s)
    result = await end_session.handle(s.server, logout_get(s, {
        "id_token_hint": token, "post_logout_redirect_uri": BYE_A, "state": STATE,
        "ui_locales": "de fr", "logout_hint": "alice",
    }))
    assert isinstance(result, LogoutPrompt)
    assert result.action == END_SESSION_URL
    assert result.authentication.sid == s.sid
    assert result.request.client is not None
    assert result.request.client.client_id == "rp-a"
    assert dict(result.request.form_fields) == {
        "id_token_hint": token, "client_id": "rp-a", "post_logout_redirect_uri": BYE_A,
        "state": STATE,
    }
    assert s.login.terminated == []
    assert await remaining(s) == 2


async def test_post_from_the_relying_party_works_like_get(db: Db) -> None:
    s = setup(db)
    result = await end_session.handle(s.server, kit.post(END_SESSION_URL, [
        ("client_id", "rp-b"), ("post_logout_redirect_uri", BYE_B),
    ], headers=[s.cookie]))
    assert isinstance(result, LogoutPrompt)
    assert dict(result.request.form_fields) == {"client_id": "rp-b",
                                                "post_logout_redirect_uri": BYE_B}


async def test_nobody_signed_in_redirects_at_once_and_tells_nobody(db: Db) -> None:
    s = setup(db)
    await seed_sessions(s)
    result = await end_session.handle(s.server, logout_get(s, {
        "id_token_hint": hint(s), "post_logout_redirect_uri": BYE_A, "state": STATE,
    }, signed_in=False))
    assert isinstance(result, Response)
    assert result.status == 303
    assert result.location == f"{BYE_A}?state={STATE}"
    assert await remaining(s) == 2


async def test_without_a_redirect_uri_the_signed_out_page_is_shown(db: Db) -> None:
    s = setup(db)
    result = await end_session.handle(s.server, logout_get(s, {}, signed_in=False))
    assert result == SignedOut(client=None)


async def test_an_expired_id_token_is_a_valid_hint(db: Db) -> None:
    """§2: the OP accepts an expired ID token as a hint."""
    s = setup(db)
    token = hint(s, now=T0 - 10_000, lifetime=60)
    result = await end_session.handle(s.server, logout_get(s, {
        "id_token_hint": token, "post_logout_redirect_uri": BYE_A,
    }))
    assert isinstance(result, LogoutPrompt)


async def test_a_hint_with_several_audiences_names_its_azp(db: Db) -> None:
    s = setup(db)
    token = hint(s, client_id="rp-b", extra_audiences=("https://api.example",))
    result = await end_session.handle(s.server, logout_get(s, {
        "id_token_hint": token, "post_logout_redirect_uri": BYE_B,
    }))
    assert isinstance(result, LogoutPrompt)
    assert result.request.client is not None
    assert result.request.client.client_id == "rp-b"


def foreign_token(s: Setup, **claims: Any) -> str:
    base: dict[str, Any] = {"iss": kit.ISSUER, "sub": "alice", "aud": "rp-a", "iat": int(T0),
                            "exp": int(T0) + 600}
    base.update(claims)
    return sign_jwt(generate_signing_key("ES256"), base, header={"typ": "JWT"})


def own_token(s: Setup, typ: str = "JWT", **claims: Any) -> str:
    base: dict[str, Any] = {"iss": kit.ISSUER, "sub": "alice", "aud": "rp-a", "iat": int(T0),
                            "exp": int(T0) + 600}
    base.update({k: v for k, v in claims.items() if v is not None})
    for name in [k for k, v in claims.items() if v is None]:
        base.pop(name)
    return sign_jwt(s.server.keys.signing_key("ES256"), base, header={"typ": typ})


ERRORS: list[tuple[str, Any, str]] = [
    ("garbage hint", lambda s: {"id_token_hint": "not.a.jwt"}, "id_token_hint"),
    ("foreign key", lambda s: {"id_token_hint": foreign_token(s)}, "id_token_hint"),
    ("wrong iss", lambda s: {"id_token_hint": own_token(s, iss="https://evil.example")},
     "id_token_hint"),
    ("access token as hint", lambda s: {"id_token_hint": own_token(s, typ="at+jwt")},
     "id_token_hint"),
    ("no sub", lambda s: {"id_token_hint": own_token(s, sub=None)}, "id_token_hint"),
    ("several aud, no azp", lambda s: {"id_token_hint": own_token(s, aud=["rp-a", "rp-b"])},
     "single client"),
    ("mismatched client_id", lambda s: {"id_token_hint": hint(s), "client_id": "rp-b"},
     "client_id does not match"),
    ("unknown client", lambda s: {"client_id": "nobody"}, "unknown client"),
    ("unregistered redirect", lambda s: {"id_token_hint": hint(s),
                                         "post_logout_redirect_uri": "https://evil.example/"},
     "not registered"),
    ("another client's redirect", lambda s: {"client_id": "rp-a",
                                             "post_logout_redirect_uri": BYE_B},
     "not registered"),
    ("prefix of a registered redirect", lambda s: {"client_id": "rp-a",
                                                   "post_logout_redirect_uri": BYE_A + "x"},
     "not registered"),
    ("redirect without client", lambda s: {"post_logout_redirect_uri": BYE_A},
     "needs an id_token_hint or a client_id"),
    ("repeated state", lambda s: [("client_id", "rp-a"), ("state", "1"), ("state", "2")],
     "state must not be repeated"),
    ("over-long state", lambda s: {"client_id": "rp-a", "state": "x" * 8193},
     "state is too long"),
    ("repeated hint", lambda s: [("id_token_hint", hint(s)), ("id_token_hint", hint(s))],
     "id_token_hint must not be repeated"),
]


@pytest.mark.parametrize(("case", "params", "message"), ERRORS, ids=[e[0] for e in ERRORS])
async def test_a_bad_request_is_refused_and_never_redirected(
    db: Db, case: str, params: Any, message: str
) -> None:
    """§4: invalid_request (400) shown to the user; no redirect, nothing ended or taken."""
    s = setup(db)
    await seed_sessions(s)
    given = params(s)
    pairs = list(given.items()) if isinstance(given, dict) else list(given)
    with pytest.raises(InvalidRequestError, match=message) as asked:
        await end_session.handle(s.server, kit.get(END_SESSION_URL, pairs, headers=[s.cookie]))
    with pytest.raises(InvalidRequestError, match=message) as confirmed:
        await end_session.confirm(s.server, confirm_post(s, pairs), dispatcher=s.dispatcher)
    for caught in (asked, confirmed):
        assert caught.value.status == 400
        assert caught.value.error == "invalid_request"
    assert s.login.terminated == []
    assert await remaining(s) == 2


# --- step 2: the confirmation --------------------------------------------------------------------


async def test_confirming_ends_the_session_tells_every_rp_and_redirects_with_state(
    db: Db,
) -> None:
    async with receiver() as a, receiver() as b:
        s = setup(db, uris=(a.url, b.url))
        await seed_sessions(s)
        prompt = await end_session.handle(s.server, logout_get(s, {
            "id_token_hint": hint(s), "post_logout_redirect_uri": BYE_A + "?keep=1",
            "state": STATE,
        }))
        assert isinstance(prompt, LogoutPrompt)
        result = await end_session.confirm(
            s.server, confirm_post(s, list(prompt.request.form_fields)),
            dispatcher=s.dispatcher,
        )
        assert isinstance(result, Response)
        assert result.status == 303
        assert result.location == f"{BYE_A}?keep=1&state={STATE}"
        assert result.headers.get("set-cookie") == "session=; Max-Age=0; Path=/"
        assert await remaining(s) == 0  # taken before the answer
        await s.dispatcher.drain()
    assert [t.sid for t in s.login.terminated] == [s.sid]
    assert len(a.tokens) == 1
    assert len(b.tokens) == 1
    ended = [e for e in s.k.events.events if e.name == "logout.session_ended"]
    assert [(e.data["client_id"], e.data["notified"]) for e in ended] == [("rp-a", 2)]
    assert sorted(str(e.data["client_id"]) for e in s.k.events.events
                  if e.name == "logout.delivered") == ["rp-a", "rp-b"]


async def test_the_fan_out_follows_the_host_session_not_the_hint(db: Db) -> None:
    """spec §5.4: a hint naming another sid logs out only the session the host ended."""
    s = setup(db)
    await seed_sessions(s)
    await seed_sessions(s, sid="sid-other")
    token = hint(s, sid="sid-other")
    result = await end_session.confirm(
        s.server, confirm_post(s, [("id_token_hint", token)]), dispatcher=s.dispatcher
    )
    await s.dispatcher.drain()
    assert isinstance(result, SignedOut)
    assert result.ended is True
    assert await remaining(s) == 0
    assert await remaining(s, "sid-other") == 2


async def test_staying_signed_in_ends_nothing(db: Db) -> None:
    s = setup(db)
    await seed_sessions(s)
    result = await end_session.confirm(
        s.server, confirm_post(s, [("client_id", "rp-a"), ("post_logout_redirect_uri", BYE_A)],
                               decision="stay"),
        dispatcher=s.dispatcher,
    )
    assert result == SignedOut(client=s.k.clients.clients["rp-a"], ended=False, stayed=True)
    assert s.login.terminated == []
    assert await remaining(s) == 2


@pytest.mark.parametrize("decision", ["", "yes", "LOGOUT"])
async def test_an_unknown_decision_is_refused(db: Db, decision: str) -> None:
    s = setup(db)
    with pytest.raises(InvalidRequestError, match="decision"):
        await end_session.confirm(s.server, confirm_post(s, [], decision=decision),
                                  dispatcher=s.dispatcher)
    assert s.login.terminated == []


async def test_confirming_with_nobody_signed_in_just_finishes(db: Db) -> None:
    s = setup(db)
    await seed_sessions(s)
    request = kit.post(END_SESSION_URL, [("client_id", "rp-b"),
                                         ("post_logout_redirect_uri", BYE_B),
                                         ("decision", "logout")])
    result = await end_session.confirm(s.server, request, dispatcher=s.dispatcher)
    assert isinstance(result, Response)
    assert result.location == BYE_B
    assert await remaining(s) == 2


async def test_a_host_login_that_cannot_end_sessions_signs_nobody_out(db: Db) -> None:
    s = setup(db, login="plain")
    await seed_sessions(s)
    result = await end_session.confirm(
        s.server, confirm_post(s, [("client_id", "rp-a"), ("post_logout_redirect_uri", BYE_A)]),
        dispatcher=s.dispatcher,
    )
    assert result == SignedOut(client=s.k.clients.clients["rp-a"], ended=False)
    assert await remaining(s) == 2


async def test_with_logout_disabled_the_session_ends_but_nothing_is_delivered(db: Db) -> None:
    s = setup(db)
    await seed_sessions(s)
    off = dataclasses.replace(
        s.server, settings=dataclasses.replace(s.server.settings, logout=LogoutSettings())
    )
    result = await end_session.confirm(off, confirm_post(s, []), dispatcher=s.dispatcher)
    assert isinstance(result, SignedOut)
    assert [t.sid for t in s.login.terminated] == [s.sid]
    assert await remaining(s) == 2
    assert s.dispatcher.pending == 0


# --- discovery -----------------------------------------------------------------------------------


async def test_discovery_lists_the_logout_metadata_only_when_enabled(db: Db) -> None:
    """RP-Initiated §2.1, Back-Channel §2.1."""
    on = discovery.metadata(kit.build(db, logout=LogoutSettings(enabled=True)).server)
    assert on["end_session_endpoint"] == END_SESSION_URL
    assert on["backchannel_logout_supported"] is True
    assert on["backchannel_logout_session_supported"] is True
    rp_only = discovery.metadata(kit.build(db).server)
    assert rp_only["end_session_endpoint"] == END_SESSION_URL
    assert "backchannel_logout_supported" not in rp_only
    assert "backchannel_logout_session_supported" not in rp_only
    none = discovery.metadata(kit.build(
        db, logout=LogoutSettings(enabled=True),
        features=FeatureSettings(end_session=False),
    ).server)
    for name in ("end_session_endpoint", "backchannel_logout_supported",
                 "backchannel_logout_session_supported"):
        assert name not in none
