"""The out-of-the-box host defaults: TOML clients and users, argon2 secrets, scope/consent
policies, the audit sink and the signed login cookie.

Spec: RFC 6749 §2.3.1, §3.3; RFC 6819 §5.1.4.2.2; OIDC Core 1.0 §5.4; RFC 6265; RFC 9700 §4.11.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher

from authward.core.clients import Client
from authward.core.defaults import (
    AllowRequestedScopes,
    AlwaysAskConsent,
    FileClientRegistry,
    FileUserDirectory,
    HostFileError,
    LoggingEventSink,
    SignedCookieLogin,
    hash_secret,
    is_argon2_hash,
)
from authward.core.http import Request
from authward.core.policy import Event
from authward.stores.clock import FrozenClock

CHEAP = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
SECRET = b"k" * 32
ISSUER = "https://as.example/auth"


def cheap_hash(plain: str) -> str:
    return hash_secret(plain, hasher=CHEAP)


def client_entry(**overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "client_id": "web",
        "client_type": "confidential",
        "token_endpoint_auth_method": "client_secret_basic",
        "client_secret_hash": cheap_hash("s3cret"),
        "redirect_uris": ["https://app.example/cb"],
        "grant_types": ["authorization_code", "refresh_token"],
        "scope": "openid profile",
    }
    entry.update(overrides)
    return entry


def user_entry(**overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "subject": "u-1",
        "username": "alice",
        "password_hash": cheap_hash("correct horse"),
        "claims": {
            "name": "Alice Example",
            "email": "alice@example.com",
            "email_verified": True,
            "phone_number": "+33 1 23 45 67 89",
            "address": {"locality": "Paris", "country": "FR"},
        },
    }
    entry.update(overrides)
    return entry


# --- clients ---------------------------------------------------------------------------------


async def test_clients_file_round_trips_every_field(tmp_path: Path) -> None:
    """The TOML keys map onto the Client record (RFC 7591 §2 names)."""
    path = tmp_path / "clients.toml"
    path.write_text(
        f"""
[[clients]]
client_id = "web"
client_type = "confidential"
token_endpoint_auth_method = "client_secret_post"
client_secret_hash = "{cheap_hash('s3cret')}"
redirect_uris = ["https://app.example/cb"]
grant_types = ["authorization_code"]
scope = "openid email"
require_pushed_authorization_requests = true
dpop_bound_access_tokens = true
post_logout_redirect_uris = ["https://app.example/bye"]
backchannel_logout_uri = "https://app.example/logout"
client_name = "Web"

[[clients]]
client_id = "cli"
client_type = "public"
redirect_uris = ["http://127.0.0.1/cb"]
native = true
""",
        encoding="utf-8",
    )
    registry = FileClientRegistry.from_file(path, hasher=CHEAP)
    assert registry.client_ids == ("web", "cli")
    web = await registry.get_client("web")
    assert web is not None
    assert web.token_endpoint_auth_method == "client_secret_post"
    assert web.scope == ("openid", "email")
    assert web.require_pushed_authorization_requests is True
    assert web.dpop_bound_access_tokens is True
    assert web.post_logout_redirect_uris == ("https://app.example/bye",)
    assert web.backchannel_logout_uri == "https://app.example/logout"
    cli = await registry.get_client("cli")
    assert cli is not None
    assert cli.is_public
    assert cli.token_endpoint_auth_method == "none"
    assert cli.native is True
    assert await registry.get_client("nobody") is None


async def test_client_secret_is_verified_with_argon2() -> None:
    """RFC 6749 §2.3.1 / RFC 6819 §5.1.4.2.2: hashed at rest, verified by argon2."""
    registry = FileClientRegistry.from_mapping({"clients": [client_entry()]}, hasher=CHEAP)
    client = await registry.get_client("web")
    assert client is not None
    assert await registry.verify_client_secret(client, "s3cret") is True
    assert await registry.verify_client_secret(client, "s3cret ") is False
    assert await registry.verify_client_secret(client, "") is False


async def test_secret_rotation_accepts_either_hash() -> None:
    """A list of hashes lets old and new secrets both work during a rotation."""
    entry = client_entry(client_secret_hash=[cheap_hash("old"), cheap_hash("new")])
    registry = FileClientRegistry.from_mapping({"clients": [entry]}, hasher=CHEAP)
    client = await registry.get_client("web")
    assert client is not None
    assert await registry.verify_client_secret(client, "old")
    assert await registry.verify_client_secret(client, "new")
    assert not await registry.verify_client_secret(client, "other")


async def test_secret_of_a_foreign_client_record_never_verifies() -> None:
    """A Client record this registry did not issue (same id, other fields) gets False."""
    registry = FileClientRegistry.from_mapping({"clients": [client_entry()]}, hasher=CHEAP)
    forged = Client("web", "confidential", "client_secret_post")
    assert await registry.verify_client_secret(forged, "s3cret") is False
    public = Client("other", "public", "none")
    assert await registry.verify_client_secret(public, "s3cret") is False


@pytest.mark.parametrize(
    ("entry", "bad_key"),
    [
        (client_entry(redirect_uri=["x"]), "clients[0].redirect_uri"),
        (client_entry(redirect_uris="https://app.example/cb"), "clients[0].redirect_uris"),
        (client_entry(client_secret_hash="plain-text"), "clients[0].client_secret_hash"),
        (client_entry(client_secret_hash=None), "clients[0].client_secret_hash"),
        (client_entry(scope="openid  profile"), "clients[0].scope"),
        (client_entry(native="yes"), "clients[0].native"),
        (client_entry(client_id=""), "clients[0].client_id"),
        (client_entry(client_type="public"), "clients[0]"),
        (client_entry(jwks={"keys": [{"kty": "oct", "k": "c2VjcmV0"}]},
                      token_endpoint_auth_method="private_key_jwt",
                      client_secret_hash=None), "clients[0].jwks.keys[0]"),
    ],
)
def test_a_bad_client_entry_names_its_key(entry: dict[str, Any], bad_key: str) -> None:
    """Configuration errors point at the offending TOML key."""
    entry = {k: v for k, v in entry.items() if v is not None}
    with pytest.raises(HostFileError) as raised:
        FileClientRegistry.from_mapping({"clients": [entry]}, hasher=CHEAP)
    assert raised.value.key == bad_key
    assert str(raised.value).startswith(bad_key + ":")


def test_duplicate_client_ids_are_refused() -> None:
    with pytest.raises(HostFileError) as raised:
        FileClientRegistry.from_mapping({"clients": [client_entry(), client_entry()]})
    assert raised.value.key == "clients[1].client_id"


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[[clients]\nclient_id = 1", encoding="utf-8")
    with pytest.raises(HostFileError) as raised:
        FileClientRegistry.from_file(path)
    assert raised.value.key == str(path)


# --- users -----------------------------------------------------------------------------------


async def test_password_is_verified_with_argon2() -> None:
    users = FileUserDirectory.from_mapping({"users": [user_entry()]}, hasher=CHEAP)
    assert await users.verify_password("alice", "correct horse") == "u-1"
    assert await users.verify_password("alice", "wrong") is None
    assert await users.verify_password("Alice", "correct horse") is None
    assert await users.verify_password("bob", "correct horse") is None
    assert await users.verify_password("alice", "") is None


async def test_claims_follow_the_oidc_scope_mapping() -> None:
    """OIDC Core §5.4: profile, email, address, phone each release their own claims."""
    users = FileUserDirectory.from_mapping({"users": [user_entry()]}, hasher=CHEAP)
    assert await users.claims("u-1", ("openid",)) == {}
    assert await users.claims("u-1", ("openid", "profile")) == {"name": "Alice Example"}
    assert await users.claims("u-1", ("email",)) == {
        "email": "alice@example.com", "email_verified": True
    }
    assert await users.claims("u-1", ("address",)) == {
        "address": {"locality": "Paris", "country": "FR"}
    }
    assert await users.claims("u-1", ("phone",)) == {"phone_number": "+33 1 23 45 67 89"}
    assert await users.claims("nobody", ("profile",)) == {}


@pytest.mark.parametrize(
    ("entry", "bad_key"),
    [
        (user_entry(password_hash="hunter2"), "users[0].password_hash"),
        (user_entry(claims={"sub": "x"}), "users[0].claims.sub"),
        (user_entry(claims={"favourite_colour": "red"}), "users[0].claims.favourite_colour"),
        (user_entry(claims={"email_verified": "yes"}), "users[0].claims.email_verified"),
        (user_entry(claims={"address": {"planet": "Mars"}}), "users[0].claims.address.planet"),
        (user_entry(claims={"updated_at": "today"}), "users[0].claims.updated_at"),
        (user_entry(role="admin"), "users[0].role"),
        ({"username": "x", "password_hash": cheap_hash("p")}, "users[0].subject"),
    ],
)
def test_a_bad_user_entry_names_its_key(entry: dict[str, Any], bad_key: str) -> None:
    with pytest.raises(HostFileError) as raised:
        FileUserDirectory.from_mapping({"users": [entry]}, hasher=CHEAP)
    assert raised.value.key == bad_key


def test_duplicate_usernames_are_refused() -> None:
    with pytest.raises(HostFileError) as raised:
        FileUserDirectory.from_mapping(
            {"users": [user_entry(), user_entry(subject="u-2")]}, hasher=CHEAP
        )
    assert raised.value.key == "users[1].username"


def test_hash_secret_produces_argon2id() -> None:
    hashed = hash_secret("pw", hasher=CHEAP)
    assert hashed.startswith("$argon2id$")
    assert is_argon2_hash(hashed)
    assert not is_argon2_hash("pw")
    with pytest.raises(ValueError, match="empty"):
        hash_secret("")


# --- policies --------------------------------------------------------------------------------


async def test_scope_policy_narrows_to_the_declared_scope() -> None:
    """RFC 6749 §3.3: openid and offline_access pass; others only when declared."""
    policy = AllowRequestedScopes()
    declared = Client("c", "public", "none", scope=("profile",))
    granted = await policy.grantable_scopes(
        declared, ("openid", "email", "profile", "offline_access"), "u-1"
    )
    assert granted == ("openid", "profile", "offline_access")
    open_client = Client("d", "public", "none")
    assert await policy.grantable_scopes(open_client, ("a", "b"), None) == ("a", "b")


async def test_consent_is_asked_for_every_third_party_request() -> None:
    policy = AlwaysAskConsent(first_party_clients=("mine",))
    assert await policy.consent_required("u", Client("theirs", "public", "none"), ("openid",))
    assert not await policy.consent_required("u", Client("mine", "public", "none"), ("openid",))


async def test_logging_sink_drops_secret_looking_keys(caplog: pytest.LogCaptureFixture) -> None:
    sink = LoggingEventSink()
    with caplog.at_level(logging.DEBUG, logger="authward.events"):
        await sink.emit(Event("token.issued", 1.0, {"client_id": "web", "refresh_token": "rt"}))
    [record] = caplog.records
    assert json.loads(record.getMessage()) == {
        "event": "token.issued", "at": 1.0, "client_id": "web"
    }


async def test_logging_sink_writes_per_request_token_events_at_debug_and_others_at_info(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="authward.events"):
        await LoggingEventSink().emit(Event("token.issued", 1.0, {"client_id": "web"}))
        await LoggingEventSink().emit(Event("token.refused", 1.0, {"error": "invalid_grant"}))
        await LoggingEventSink().emit(Event("code.reused", 2.0, {"client_id": "web"}))
    assert [json.loads(r.getMessage())["event"] for r in caplog.records] == ["code.reused"]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="authward.events"):
        await LoggingEventSink(routine_level=logging.INFO).emit(Event("token.issued", 1.0, {}))
    assert [r.levelno for r in caplog.records] == [logging.INFO]


async def test_logging_sink_builds_nothing_when_info_is_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Watched(dict[str, object]):
        read = False

        def items(self):  # type: ignore[no-untyped-def]
            Watched.read = True
            return super().items()

    with caplog.at_level(logging.WARNING, logger="authward.events"):
        await LoggingEventSink().emit(Event("token.issued", 1.0, Watched(client_id="web")))
    assert not Watched.read
    assert caplog.records == []


async def test_logging_sink_keeps_flags_and_types_but_drops_every_secret_name(
    caplog: pytest.LogCaptureFixture,
) -> None:
    secrets_by_key = {
        "code": "c-1", "device_code": "d-1", "user_code": "u-1", "client_secret": "s-1",
        "password": "p-1", "logout_token": "l-1", "client_assertion": "a-1",
        "code_verifier": "v-1", "request_uri": "r-1", "Access_Token": "t-1",
    }
    kept = {"token_type": "DPoP", "refresh_token_issued": True, "jti": "j-1", "sid": "s-9"}
    sink = LoggingEventSink()
    with caplog.at_level(logging.INFO, logger="authward.events"):
        await sink.emit(Event("x", 1.0, {**secrets_by_key, **kept}))
    for value in secrets_by_key.values():
        assert value not in caplog.text
    for name in kept:
        assert name in caplog.text


# --- signed login cookie ---------------------------------------------------------------------


def login(clock: FrozenClock | None = None) -> SignedCookieLogin:
    return SignedCookieLogin(SECRET, issuer=ISSUER, clock=clock or FrozenClock(1000.0))


def with_cookie(value: str, name: str = "authward_login") -> Request:
    return Request.build("GET", ISSUER + "/authorize", headers=[("Cookie", f"a=b; {name}={value}")])


async def test_signed_cookie_round_trips_the_session() -> None:
    """OIDC Core §2: subject, auth_time, sid, amr come back from a valid cookie."""
    session = login()
    found = await session.authenticated(with_cookie(session.issue("u-1")))
    assert found is not None
    assert found.subject == "u-1"
    assert found.auth_time == 1000
    assert found.amr == ("pwd",)
    assert len(found.sid) >= 16
    other = await session.authenticated(with_cookie(session.issue("u-1")))
    assert other is not None
    assert other.sid != found.sid


async def test_tampered_or_foreign_cookie_is_refused() -> None:
    session = login()
    value = session.issue("u-1")
    body, signature = value.split(".")
    forged_body = body[:-2] + ("AA" if body[-2:] != "AA" else "BB")
    assert await session.authenticated(with_cookie(f"{forged_body}.{signature}")) is None
    foreign = SignedCookieLogin(b"z" * 32, issuer=ISSUER).issue("u-1")
    assert await session.authenticated(with_cookie(foreign)) is None
    assert await session.authenticated(with_cookie("garbage")) is None
    assert await session.authenticated(with_cookie(value, name="other")) is None


async def test_cookie_expires_after_its_lifetime() -> None:
    clock = FrozenClock(1000.0)
    session = login(clock)
    value = session.issue("u-1")
    clock.advance(session.lifetime - 1)
    assert await session.authenticated(with_cookie(value)) is not None
    clock.advance(1)
    assert await session.authenticated(with_cookie(value)) is None


def test_short_cookie_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        SignedCookieLogin(b"short", issuer=ISSUER)


def test_login_url_carries_return_to() -> None:
    url = login().login_url(ISSUER + "/authorize?client_id=a&x=1")
    assert url == (
        "https://as.example/auth/login?return_to="
        "https%3A%2F%2Fas.example%2Fauth%2Fauthorize%3Fclient_id%3Da%26x%3D1"
    )


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/auth/authorize",
        "//evil.example/auth/authorize",
        "/auth/authorize",
        "http://as.example/auth/authorize",
        "https://as.example/other",
        "https://as.example/authx",
        "https://as.example/auth/../admin",
        "https://as.example/auth/%2e%2e/admin",
        "https://user@as.example/auth/authorize",
        "https://as.example.evil.example/auth/",
        "https://as.example/auth/\\evil",
        "javascript:alert(1)",
        "",
    ],
)
def test_return_to_outside_the_issuer_falls_back_to_the_issuer(target: str) -> None:
    """RFC 9700 §4.11: never an open redirector."""
    assert login().safe_return_to(target) == ISSUER + "/"


def test_return_to_under_the_issuer_is_kept() -> None:
    target = ISSUER + "/authorize?client_id=a"
    assert login().safe_return_to(target) == target
    assert login().safe_return_to(ISSUER) == ISSUER
