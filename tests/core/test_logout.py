"""Back-channel logout: the logout token, URI screening, recording, and delivery.

Spec: OIDC Back-Channel Logout 1.0 §2.4 (logout token), §2.5 (POST of ``logout_token``);
spec/stores.md §3.4 (recording), §5.3 (screening), §5.4 (take-then-deliver, concurrency,
deadline, outcomes). Deliveries go to real receivers on 127.0.0.1 (``logout_receivers``); the
SSRF refusals use an injected resolver and a transport that records every request, so "no
connection was made" is observed, not assumed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

import pytest

from authward.core.clients import Client
from authward.core.config import LogoutSettings
from authward.core.jose import JoseError, validate_claims, verify_jwt
from authward.core.logout import (
    BACKCHANNEL_LOGOUT_EVENT,
    LogoutDispatcher,
    deliver_logout_tokens,
    mint_logout_token,
    record_logout_session,
    screen_logout_uri,
    start_backchannel_logout,
)
from authward.core.policy import Event
from authward.core.server import AuthorizationServer
from authward.core.ssrf import GuardedFetcher
from authward.stores.logout_sessions import LogoutCriteria, LogoutSession, LogoutTarget
from tests.core.endpoints import kit
from tests.core.logout_receivers import receiver
from tests.core.ssrf_fakes import RecordingTransport, TableResolver
from tests.dbkit import T0, Db

RP = "https://rp.example/backchannel"


def logout_kit(db: Db, **logout: Any) -> kit.Kit:
    options: dict[str, Any] = {"enabled": True, "allow_loopback": True,
                               "delivery_timeout_seconds": 5.0}
    options.update(logout)
    return kit.build(db, logout=LogoutSettings(**options))


def rp_client(client_id: str, uri: str | None, *, session_required: bool = False) -> Client:
    return Client(
        client_id, "public", "none",
        redirect_uris=("https://rp.example/cb",),
        backchannel_logout_uri=uri,
        backchannel_logout_session_required=session_required,
    )


def check_token(server: AuthorizationServer, token: str, client_id: str) -> dict[str, object]:
    """Validate a logout token as a relying party would, against the published keys."""
    now = server.clock.now()
    jwks = server.keys.verification_keys(now=now, max_token_lifetime=server.max_token_lifetime)
    verified = verify_jwt(token, jwks, algorithms=server.keys.algorithms)
    assert verified.header["typ"] == "logout+jwt"
    validate_claims(verified.claims, now=now, issuer=server.issuer, audience=client_id,
                    required=("iat", "exp", "jti"))
    return dict(verified.claims)


async def record(k: kit.Kit, client_id: str, uri: str, *, sid: str = "sid-1",
                 subject: str = "alice") -> None:
    """A logout session row as the token endpoint leaves it (bypassing record-time checks)."""
    await k.server.stores.logout_sessions.record(
        LogoutSession(sid=sid, subject=subject, client_id=client_id, backchannel_logout_uri=uri,
                      expires_at=int(T0) + 3600),
        now=T0,
    )


def events(k: kit.Kit, name: str) -> list[Event]:
    return [e for e in k.events.events if e.name == name]


async def until(condition: Any, *, bound: float = 10.0) -> None:
    """Wait (at most ``bound`` seconds, a hang guard) until ``condition()`` is true."""
    async with asyncio.timeout(bound):
        while not condition():  # noqa: ASYNC110 - a plain condition, hang-guarded
            await asyncio.sleep(0.005)


# --- the logout token ------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_logout_token_has_the_header_and_claims_of_section_2_4(alg: str) -> None:
    """§2.4: typ logout+jwt, iss, aud, iat, exp = iat + 120, jti, events, sid, sub; no nonce."""
    keys = kit.signing_keys()
    key = keys.signing_key(alg)  # type: ignore[arg-type]
    minted = mint_logout_token(key, issuer=kit.ISSUER, client_id="rp", now=T0 + 0.7,
                               sid="sid-9", subject="alice")
    verified = verify_jwt(minted.token, keys.verification_keys(now=T0, max_token_lifetime=900),
                          algorithms=[alg])  # type: ignore[list-item]
    assert verified.header["typ"] == "logout+jwt"
    assert verified.header["alg"] == alg
    assert verified.header["kid"] == key.kid
    claims = verified.claims
    assert claims["iss"] == kit.ISSUER
    assert claims["aud"] == "rp"
    assert claims["iat"] == int(T0)
    assert claims["exp"] == int(T0) + 120
    assert claims["events"] == {BACKCHANNEL_LOGOUT_EVENT: {}}
    assert claims["sid"] == "sid-9"
    assert claims["sub"] == "alice"
    assert isinstance(claims["jti"], str)
    assert len(claims["jti"]) == 22
    assert "nonce" not in claims
    assert dict(claims) == dict(minted.claims)


def test_every_logout_token_has_a_fresh_jti_and_sid_or_sub_alone_suffices() -> None:
    key = kit.signing_keys().signing_key("ES256")
    only_sid = mint_logout_token(key, issuer=kit.ISSUER, client_id="rp", now=T0, sid="s")
    only_sub = mint_logout_token(key, issuer=kit.ISSUER, client_id="rp", now=T0, subject="u")
    assert "sub" not in only_sid.claims
    assert only_sid.claims["sid"] == "s"
    assert "sid" not in only_sub.claims
    assert only_sub.claims["sub"] == "u"
    assert only_sid.claims["jti"] != only_sub.claims["jti"]


def test_a_logout_token_needs_sid_or_sub_and_at_most_120_seconds() -> None:
    key = kit.signing_keys().signing_key("ES256")
    with pytest.raises(ValueError, match="sid or a sub"):
        mint_logout_token(key, issuer=kit.ISSUER, client_id="rp", now=T0)
    with pytest.raises(ValueError, match="lifetime"):
        mint_logout_token(key, issuer=kit.ISSUER, client_id="rp", now=T0, sid="s", lifetime=121)
    shorter = mint_logout_token(key, issuer=kit.ISSUER, client_id="rp", now=T0, sid="s",
                                lifetime=30)
    assert shorter.claims["exp"] == int(T0) + 30


# --- screening the URI (spec §5.3) -----------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "refusal"),
    [
        ("https://rp.example/logout", None),
        ("https://rp.example:8443/logout?x=1", None),
        ("https://93.184.215.14/logout", None),
        ("http://rp.example/logout", "not_https"),
        ("ftp://rp.example/logout", "not_https"),
        ("https:///logout", "no_host"),
        ("https://user:pw@rp.example/logout", "has_userinfo"),
        ("https://rp.example/logout#frag", "has_fragment"),
        ("https://localhost/logout", "localhost"),
        ("https://LOCALHOST./logout", "localhost"),
        ("https://app.localhost/logout", "localhost"),
        ("https://127.0.0.1/logout", "blocked_ip"),
        ("https://10.1.2.3/logout", "blocked_ip"),
        ("https://172.16.0.1/logout", "blocked_ip"),
        ("https://192.168.1.1/logout", "blocked_ip"),
        ("https://169.254.169.254/logout", "blocked_ip"),
        ("https://100.64.0.1/logout", "blocked_ip"),
        ("https://0.0.0.0/logout", "blocked_ip"),
        ("https://[::1]/logout", "blocked_ip"),
        ("https://[::]/logout", "blocked_ip"),
        ("https://[::ffff:127.0.0.1]/logout", "blocked_ip"),
        ("https://[::ffff:10.0.0.1]/logout", "blocked_ip"),
        ("https://[fd00::1]/logout", "blocked_ip"),
        ("https://[fe80::1]/logout", "blocked_ip"),
        ("https://rp.example:99999/logout", "not_a_url"),
    ],
)
def test_backchannel_logout_uris_are_screened_literally(uri: str, refusal: str | None) -> None:
    """§5.3 (plus CGNAT, IPv4-mapped and the guard's full table): refused URIs are absent."""
    assert screen_logout_uri(uri) == refusal


@pytest.mark.parametrize(
    ("uri", "refusal"),
    [
        ("http://127.0.0.1:8080/logout", None),
        ("http://localhost:8080/logout", None),
        ("https://[::1]/logout", None),
        ("http://10.0.0.1/logout", "blocked_ip"),
        ("http://169.254.169.254/logout", "blocked_ip"),
        ("http://rp.example/logout", "not_https"),
    ],
)
def test_allow_loopback_admits_loopback_only(uri: str, refusal: str | None) -> None:
    """The development setting exempts loopback (http too) and nothing else."""
    assert screen_logout_uri(uri, allow_loopback=True) == refusal


def test_allow_loopback_defaults_to_off() -> None:
    assert LogoutSettings().allow_loopback is False
    with pytest.raises(ValueError, match="allow_loopback"):
        LogoutSettings(allow_loopback="yes")  # type: ignore[arg-type]


# --- recording (spec §3.4) -------------------------------------------------------------------


async def test_a_session_is_recorded_for_a_client_with_a_usable_uri(db: Db) -> None:
    k = logout_kit(db, session_ttl_seconds=600)
    client = rp_client("rp-a", RP, session_required=True)
    assert await record_logout_session(k.server, client, "sid-1", "alice", T0) is True
    found = await k.server.stores.logout_sessions.targets(LogoutCriteria(sid="sid-1"), now=T0)
    assert found == (LogoutTarget("rp-a", RP, "sid-1", True),)
    later = await k.server.stores.logout_sessions.targets(
        LogoutCriteria(sid="sid-1"), now=T0 + 600
    )
    assert later == ()


@pytest.mark.parametrize(
    ("enabled", "uri", "sid"),
    [
        (False, RP, "sid-1"),
        (True, None, "sid-1"),
        (True, "https://10.0.0.1/logout", "sid-1"),
        (True, "http://rp.example/logout", "sid-1"),
        (True, RP, None),
        (True, RP, ""),
    ],
)
async def test_nothing_is_recorded_unless_every_condition_holds(
    db: Db, enabled: bool, uri: str | None, sid: str | None
) -> None:
    k = logout_kit(db, enabled=enabled)
    client = rp_client("rp-a", uri)
    assert await record_logout_session(k.server, client, sid, "alice", T0) is False
    assert await k.server.stores.logout_sessions.targets(
        LogoutCriteria(subject="alice"), now=T0
    ) == ()


async def test_a_refused_uri_is_reported_not_dropped_silently(
    db: Db, caplog: pytest.LogCaptureFixture
) -> None:
    """A registered backchannel_logout_uri the literal check refuses means that client gets no
    logout tokens: every recording attempt emits ``logout.uri_refused`` with the reason, and
    the log says so once per client and URI."""
    k = logout_kit(db, allow_loopback=False)
    client_id = f"rp-internal-{id(k)}"  # the once-per-process warning: a fresh client each run
    client = rp_client(client_id, "https://10.0.0.1/logout")
    with caplog.at_level(logging.WARNING, logger="authward.logout"):
        for sid in ("sid-1", "sid-2"):
            assert await record_logout_session(k.server, client, sid, "alice", T0) is False
    refused = events(k, "logout.uri_refused")
    assert [e.data for e in refused] == [{"client_id": client_id, "reason": "blocked_ip"}] * 2
    warnings = [r for r in caplog.records if "backchannel_logout_uri refused" in r.getMessage()]
    assert len(warnings) == 1
    assert client_id in warnings[0].getMessage()


async def test_a_failing_store_never_fails_issuance(db: Db) -> None:
    """Best effort: an over-long sid makes the store refuse; recording says False, no raise."""
    k = logout_kit(db)
    assert await record_logout_session(k.server, rp_client("rp-a", RP), "s" * 300, "alice",
                                       T0) is False


# --- delivery to real receivers ----------------------------------------------------------------


async def test_logout_tokens_reach_two_receivers_and_validate_against_the_jwks(db: Db) -> None:
    k = logout_kit(db)
    async with receiver() as a, receiver(status=204) as b:
        await record(k, "rp-a", a.url)
        await record(k, "rp-b", b.url)
        outcomes = await deliver_logout_tokens(
            k.server,
            await k.server.stores.logout_sessions.take_targets(LogoutCriteria(sid="sid-1"),
                                                               now=T0),
            subject="alice",
        )
    assert sorted((o.client_id, o.delivered, o.status) for o in outcomes) == [
        ("rp-a", True, 200), ("rp-b", True, 204),
    ]
    for rp, client_id in ((a, "rp-a"), (b, "rp-b")):
        assert len(rp.tokens) == 1
        claims = check_token(k.server, rp.tokens[0], client_id)
        assert claims["sid"] == "sid-1"
        assert claims["sub"] == "alice"
        assert claims["events"] == {BACKCHANNEL_LOGOUT_EVENT: {}}
        assert "nonce" not in claims
    delivered = events(k, "logout.delivered")
    assert sorted(str(e.data["client_id"]) for e in delivered) == ["rp-a", "rp-b"]
    for event in k.events.events:  # never the token in an event
        assert all(token not in repr(event.data) for token in (*a.tokens, *b.tokens))


async def test_a_failing_receiver_is_reported_with_its_status(db: Db) -> None:
    k = logout_kit(db)
    async with receiver() as good, receiver(status=500) as broken:
        await record(k, "rp-good", good.url)
        await record(k, "rp-broken", broken.url)
        dispatcher = LogoutDispatcher()
        told = await start_backchannel_logout(k.server, dispatcher, sid="sid-1", subject="alice")
        await dispatcher.drain()
    assert told == 2
    assert len(broken.tokens) == 1
    assert len(good.tokens) == 1
    failed = events(k, "logout.delivery_failed")
    assert [(e.data["client_id"], e.data["reason"], e.data["status"]) for e in failed] == [
        ("rp-broken", "status 500", 500)
    ]
    assert [e.data["client_id"] for e in events(k, "logout.delivered")] == ["rp-good"]


async def test_a_slow_receiver_holds_back_neither_the_others_nor_the_caller(db: Db) -> None:
    """§5.4 (Python): concurrent delivery in the background; the held receiver's delivery is
    still running when the others are done and reported."""
    k = logout_kit(db, delivery_timeout_seconds=30.0)
    async with receiver(held=True) as slow, receiver() as a, receiver() as b:
        for client_id, rp in (("rp-slow", slow), ("rp-a", a), ("rp-b", b)):
            await record(k, client_id, rp.url)
        taken = await k.server.stores.logout_sessions.take_targets(
            LogoutCriteria(sid="sid-1"), now=T0
        )
        slow_first = sorted(taken, key=lambda t: t.client_id != "rp-slow")
        dispatcher = LogoutDispatcher()
        dispatcher.dispatch(k.server, slow_first, subject="alice")  # returns at once
        await until(lambda: len(events(k, "logout.delivered")) == 2)
        await slow.arrived.wait()
        assert dispatcher.pending == 1
        assert events(k, "logout.delivery_failed") == []
        slow.release()
        await dispatcher.drain()
    assert dispatcher.pending == 0
    assert sorted(str(e.data["client_id"]) for e in events(k, "logout.delivered")) == [
        "rp-a", "rp-b", "rp-slow",
    ]


async def test_a_receiver_that_never_answers_is_cut_off_at_the_deadline(db: Db) -> None:
    k = logout_kit(db, delivery_timeout_seconds=0.5)
    async with receiver(held=True) as stuck, receiver() as fine:
        await record(k, "rp-stuck", stuck.url)
        await record(k, "rp-fine", fine.url)
        dispatcher = LogoutDispatcher()
        await start_backchannel_logout(k.server, dispatcher, sid="sid-1", subject="alice")
        await dispatcher.drain()  # bounded by the deadline although the receiver never answers
    failed = events(k, "logout.delivery_failed")
    assert [e.data["client_id"] for e in failed] == ["rp-stuck"]
    assert "deadline" in str(failed[0].data["reason"])
    assert [e.data["client_id"] for e in events(k, "logout.delivered")] == ["rp-fine"]


async def test_take_then_deliver_means_a_second_logout_delivers_nothing(db: Db) -> None:
    k = logout_kit(db)
    async with receiver() as rp:
        await record(k, "rp-a", rp.url)
        dispatcher = LogoutDispatcher()
        first, second = await asyncio.gather(
            start_backchannel_logout(k.server, dispatcher, sid="sid-1", subject="alice"),
            start_backchannel_logout(k.server, dispatcher, sid="sid-1", subject="alice"),
        )
        await dispatcher.drain()
        third = await start_backchannel_logout(k.server, dispatcher, sid="sid-1",
                                               subject="alice")
        await dispatcher.drain()
    assert sorted((first, second)) == [0, 1]
    assert third == 0
    assert len(rp.tokens) == 1


async def test_sid_wins_and_subject_is_the_fallback(db: Db) -> None:
    k = logout_kit(db)
    async with receiver() as rp:
        await record(k, "rp-a", rp.url, sid="sid-1")
        await record(k, "rp-a", rp.url, sid="sid-2")
        dispatcher = LogoutDispatcher()
        assert await start_backchannel_logout(k.server, dispatcher, sid="sid-1",
                                              subject="alice") == 1
        assert await start_backchannel_logout(k.server, dispatcher, sid=None,
                                              subject="alice") == 1
        assert await start_backchannel_logout(k.server, dispatcher, sid="", subject="") == 0
        await dispatcher.drain()
    sids = sorted(str(check_token(k.server, t, "rp-a")["sid"]) for t in rp.tokens)
    assert sids == ["sid-1", "sid-2"]


async def test_disabled_logout_takes_and_delivers_nothing(db: Db) -> None:
    k = logout_kit(db, enabled=False)
    async with receiver() as rp:
        await record(k, "rp-a", rp.url)
        dispatcher = LogoutDispatcher()
        assert await start_backchannel_logout(k.server, dispatcher, sid="sid-1",
                                              subject="alice") == 0
        await dispatcher.drain()
    assert rp.connections == 0
    assert len(await k.server.stores.logout_sessions.targets(LogoutCriteria(sid="sid-1"),
                                                             now=T0)) == 1


# --- SSRF: refused before any connection -------------------------------------------------------




BAD_ADDRESSES = {
    "loopback": (("127.0.0.1",), ()),
    "ten": (("10.20.30.40",), ()),
    "one-seven-two": (("172.16.5.4",), ()),
    "one-nine-two": (("192.168.0.10",), ()),
    "link-local": (("169.254.169.254",), ()),
    "cgnat": (("100.64.1.2",), ()),
    "mapped": ((), ("::ffff:127.0.0.1",)),
    "unspecified4": (("0.0.0.0",), ()),  # noqa: S104 - an address under test, never bound
    "unspecified6": ((), ("::",)),
    "loopback6": ((), ("::1",)),
    "mixed": (("93.184.215.14",), ("fd00::1",)),
}


def guarded_server(k: kit.Kit) -> tuple[AuthorizationServer, TableResolver, RecordingTransport]:
    table = {f"{name}.rp.example": answer for name, answer in BAD_ADDRESSES.items()}
    table["public.rp.example"] = (("93.184.215.14",), ())
    resolver, transport = TableResolver(table), RecordingTransport()
    server = dataclasses.replace(
        k.server, fetcher=GuardedFetcher(resolver=resolver, transport_factory=transport)
    )
    return server, resolver, transport


@pytest.mark.parametrize(
    "uri",
    [
        "https://127.0.0.1/logout",
        "https://10.0.0.1/logout",
        "https://172.16.0.1/logout",
        "https://192.168.1.1/logout",
        "https://169.254.169.254/logout",
        "https://100.64.0.1/logout",
        "https://[::ffff:127.0.0.1]/logout",
        "https://0.0.0.0/logout",
        "https://[::]/logout",
        "https://localhost/logout",
    ],
)
async def test_literal_special_use_targets_are_refused_without_a_connection(
    db: Db, uri: str
) -> None:
    """Rows holding a special-use literal (recorded by an older version, say) are refused."""
    k = logout_kit(db, allow_loopback=False)
    server, _, transport = guarded_server(k)
    await record(k, "rp-x", uri)
    outcomes = await deliver_logout_tokens(
        server, await server.stores.logout_sessions.take_targets(LogoutCriteria(sid="sid-1"),
                                                                 now=T0),
        subject="alice",
    )
    assert [o.delivered for o in outcomes] == [False]
    assert transport.requests == []
    failed = events(k, "logout.delivery_failed")
    assert len(failed) == 1
    reason = str(failed[0].data["reason"])
    assert reason in ("invalid_url blocked_ip", "invalid_url localhost")


@pytest.mark.parametrize("name", sorted(BAD_ADDRESSES))
async def test_names_resolving_to_special_use_addresses_are_refused_without_a_connection(
    db: Db, name: str
) -> None:
    """The record-time check cannot see DNS; the guard resolves at delivery and refuses."""
    k = logout_kit(db, allow_loopback=False)
    server, resolver, transport = guarded_server(k)
    uri = f"https://{name}.rp.example/logout"
    assert screen_logout_uri(uri) is None  # passes the literal screen...
    await record(k, "rp-x", uri)
    outcomes = await deliver_logout_tokens(
        server, await server.stores.logout_sessions.take_targets(LogoutCriteria(sid="sid-1"),
                                                                 now=T0),
        subject="alice",
    )
    assert [o.delivered for o in outcomes] == [False]  # ...and is refused at delivery
    assert transport.requests == []
    assert {call[0] for call in resolver.calls} == {f"{name}.rp.example"}
    reason = str(events(k, "logout.delivery_failed")[0].data["reason"])
    assert reason.startswith("blocked_ip ")


async def test_a_public_name_is_delivered_through_the_pinned_guard(db: Db) -> None:
    """The control case: the same path with a public address does send (to the pinned IP)."""
    k = logout_kit(db, allow_loopback=False)
    server, _, transport = guarded_server(k)
    await record(k, "rp-x", "https://public.rp.example/logout")
    outcomes = await deliver_logout_tokens(
        server, await server.stores.logout_sessions.take_targets(LogoutCriteria(sid="sid-1"),
                                                                 now=T0),
        subject="alice",
    )
    assert [o.delivered for o in outcomes] == [True]
    assert len(transport.requests) == 1
    sent = transport.requests[0]
    assert sent.url.host == "93.184.215.14"
    assert sent.headers["host"] == "public.rp.example"
    assert sent.headers["content-type"] == "application/x-www-form-urlencoded"
    assert sent.content.startswith(b"logout_token=")


async def test_a_real_loopback_receiver_sees_nothing_without_allow_loopback(db: Db) -> None:
    """A name that resolves to 127.0.0.1, with a real receiver listening there: no connection."""
    k = logout_kit(db, allow_loopback=False)
    async with receiver() as rp:
        resolver = TableResolver({"rp.example": (("127.0.0.1",), ())})
        server = dataclasses.replace(k.server, fetcher=GuardedFetcher(resolver=resolver))
        await record(k, "rp-x", f"https://rp.example:{rp.port}/backchannel-logout")
        await record(k, "rp-y", rp.url)
        dispatcher = LogoutDispatcher()
        assert await start_backchannel_logout(server, dispatcher, sid="sid-1",
                                              subject="alice") == 2
        await dispatcher.drain()
    assert rp.connections == 0
    reasons = sorted(str(e.data["reason"]) for e in events(k, "logout.delivery_failed"))
    assert reasons == ["blocked_ip 127.0.0.1", "invalid_url blocked_ip"]


async def test_a_delivery_that_raises_is_logged_and_swallowed(db: Db) -> None:
    """An exception inside a delivery becomes a failure event; the dispatcher survives."""
    k = logout_kit(db)

    class Exploding(GuardedFetcher):
        async def post_form(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("receiver exploded")

        def with_loopback(self, allow_loopback: bool) -> GuardedFetcher:
            return self

    server = dataclasses.replace(k.server, fetcher=Exploding())
    await record(k, "rp-a", RP)
    dispatcher = LogoutDispatcher()
    assert await start_backchannel_logout(server, dispatcher, sid="sid-1", subject="alice") == 1
    await dispatcher.drain()
    failed = events(k, "logout.delivery_failed")
    assert [(e.data["client_id"], e.data["reason"]) for e in failed] == [("rp-a", "RuntimeError")]


def test_check_token_refuses_a_token_for_another_audience() -> None:
    """The helper used above really checks ``aud`` (it can fail)."""
    key = kit.signing_keys().signing_key("ES256")
    minted = mint_logout_token(key, issuer=kit.ISSUER, client_id="rp-a", now=T0, sid="s")

    class Stub:
        issuer = kit.ISSUER
        keys = kit.signing_keys()
        max_token_lifetime = 900

        class clock:  # noqa: N801 - mimics server.clock
            @staticmethod
            def now() -> float:
                return T0

    with pytest.raises(JoseError):
        check_token(Stub(), minted.token, "rp-b")  # type: ignore[arg-type]
