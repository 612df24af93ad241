"""The refresh-token grant through the token endpoint (spec §3.2.7; RT-30..33).

Real SQL stores on the ``db`` fixture (SQLite and PostgreSQL).
"""

from __future__ import annotations

from authward.core.clients import Client
from authward.stores.digest import digest
from tests.core.endpoints.kit import (
    CONFIDENTIAL_SECRET,
    PUBLIC_CLIENT_ID,
    REDIRECT_URI,
    Kit,
    build,
)
from tests.core.endpoints.token_requests import (
    basic,
    call,
    code_form,
    dpop_header,
    dpop_key,
    error_of,
    new_code,
    ok,
    redeem,
    verify_signed,
)
from tests.dbkit import T0, Db


def refresh_form(token: str, *extra: tuple[str, str]) -> list[tuple[str, str]]:
    return [("grant_type", "refresh_token"), ("refresh_token", token), *extra]


async def first_refresh_token(kit: Kit, **kw: object) -> str:
    return str((await redeem(kit, await new_code(kit, **kw)))["refresh_token"])  # type: ignore[arg-type]


async def test_refresh_rotates_and_mints_a_fresh_access_token(db: Db) -> None:
    kit = build(db, refresh_token_ttl=7200)
    first = await first_refresh_token(kit)
    kit.clock.advance(10)

    got = ok(await call(kit, refresh_form(first)))

    assert got["refresh_token"] != first
    assert got["token_type"] == "Bearer"
    assert got["scope"] == "openid offline_access read"
    assert "id_token" not in got
    claims = verify_signed(kit, got["access_token"])
    assert claims["iat"] == int(T0) + 10
    rows = {r.token_hash: r for r in await db.rows(db.tables.refresh_tokens)}
    child = rows[digest(got["refresh_token"])]
    assert child.generation == 1
    # The configured TTL is passed to rotation (spec §3.2.7 "Python should pass it").
    assert child.expires_at.timestamp() == int(T0) + 10 + 7200
    assert rows[digest(first)].consumed is True


async def test_confidential_dpop_retry_in_grace_returns_same_successor_bound_to_new_key(
    db: Db,
) -> None:
    """RT-30."""
    kit = build(db, refresh_token_rotation_grace_seconds=60)
    first = str(
        ok(
            await call(
                kit, code_form(await new_code(kit)), headers=[dpop_header(kit, dpop_key(0))]
            )
        )["refresh_token"]
    )
    rotated = ok(await call(kit, refresh_form(first), headers=[dpop_header(kit, dpop_key(1))]))
    kit.clock.advance(5)

    retried = ok(await call(kit, refresh_form(first), headers=[dpop_header(kit, dpop_key(2))]))

    assert retried["refresh_token"] == rotated["refresh_token"]
    assert retried["token_type"] == "DPoP"
    assert verify_signed(kit, retried["access_token"])["cnf"] == {"jkt": dpop_key(2).thumbprint()}
    assert verify_signed(kit, rotated["access_token"])["cnf"] == {"jkt": dpop_key(1).thumbprint()}
    assert not any(r.family_revoked for r in await db.rows(db.tables.refresh_tokens))


async def test_without_grace_an_immediate_retry_is_invalid_grant(db: Db) -> None:
    """RT-31: grace 0 means strict; the replay revokes the family."""
    kit = build(db, refresh_token_rotation_grace_seconds=0)
    first = await first_refresh_token(kit)
    rotated = ok(await call(kit, refresh_form(first)))

    assert error_of(await call(kit, refresh_form(first))) == (400, "invalid_grant")
    assert error_of(await call(kit, refresh_form(rotated["refresh_token"]))) == (
        400,
        "invalid_grant",
    )
    assert "refresh_token.reused" in kit.events.names()


async def test_public_dpop_bound_refresh_token_with_another_key_is_invalid_grant(
    db: Db,
) -> None:
    """RT-32."""
    kit = build(db)
    code = await new_code(kit, client_id=PUBLIC_CLIENT_ID)
    first = str(
        ok(
            await call(
                kit,
                code_form(code, public=True),
                public=True,
                headers=[dpop_header(kit, dpop_key(0))],
            )
        )["refresh_token"]
    )
    public_form = refresh_form(first, ("client_id", PUBLIC_CLIENT_ID))

    other = await call(kit, public_form, public=True, headers=[dpop_header(kit, dpop_key(1))])
    assert error_of(other) == (400, "invalid_grant")
    none = await call(kit, public_form, public=True)
    assert error_of(none) == (400, "invalid_grant")
    # Neither attempt burned the token: the right key still rotates it.
    same = ok(await call(kit, public_form, public=True, headers=[dpop_header(kit, dpop_key(0))]))
    assert same["token_type"] == "DPoP"


async def test_dpop_required_confidential_client_without_proof_is_invalid_request(
    db: Db,
) -> None:
    """RT-33."""
    kit = build(db)
    kit.clients.add(
        Client(
            "dpop-web", "confidential", "client_secret_basic",
            redirect_uris=(REDIRECT_URI,),
            grant_types=("authorization_code", "refresh_token"),
            dpop_bound_access_tokens=True,
        ),
        CONFIDENTIAL_SECRET,
    )
    auth = basic("dpop-web", CONFIDENTIAL_SECRET)
    code = await new_code(kit, client_id="dpop-web")
    first = ok(await call(kit, code_form(code), auth=auth, headers=[dpop_header(kit, dpop_key())]))

    response = await call(kit, refresh_form(first["refresh_token"]), auth=auth)

    assert error_of(response) == (400, "invalid_request")
    assert response.json is not None
    assert "DPoP" in str(response.json["error_description"])
    ok(
        await call(
            kit, refresh_form(first["refresh_token"]), auth=auth,
            headers=[dpop_header(kit, dpop_key(1))],
        )
    )


async def test_scope_and_resource_beyond_the_grant_pass_through(db: Db) -> None:
    kit = build(db)
    first = await first_refresh_token(kit, resource=("https://a.example/",))

    wider = await call(kit, refresh_form(first, ("scope", "read admin")))
    assert error_of(wider) == (400, "invalid_scope")
    target = await call(kit, refresh_form(first, ("resource", "https://b.example/")))
    assert error_of(target) == (400, "invalid_target")

    narrowed = ok(await call(kit, refresh_form(first, ("scope", "read"))))
    assert narrowed["scope"] == "read"
    assert verify_signed(kit, narrowed["access_token"])["aud"] == "https://a.example/"


async def test_missing_unknown_foreign_or_expired_refresh_token(db: Db) -> None:
    kit = build(db, refresh_token_ttl=100)
    response = await call(kit, [("grant_type", "refresh_token")])
    assert error_of(response) == (400, "invalid_request")
    assert error_of(await call(kit, refresh_form("nope"))) == (400, "invalid_grant")

    first = await first_refresh_token(kit)
    foreign = await call(
        kit, refresh_form(first, ("client_id", PUBLIC_CLIENT_ID)), public=True
    )
    assert error_of(foreign) == (400, "invalid_grant")
    kit.clock.advance(100)
    assert error_of(await call(kit, refresh_form(first))) == (400, "invalid_grant")


async def test_retries_in_the_grace_window_are_bounded_and_each_is_an_event(db: Db) -> None:
    """A retry inside the window gets the same successor and the same access token, at most
    ``refresh_token_rotation_max_retries`` times per rotation, each one a
    ``refresh_token.retried`` event; the next is reuse: invalid_grant and the family revoked,
    so a replayer cannot stay in sync for ever."""
    kit = build(db, refresh_token_rotation_grace_seconds=60, refresh_token_rotation_max_retries=2)
    first = await first_refresh_token(kit)
    rotated = ok(await call(kit, refresh_form(first)))
    for _ in range(2):
        kit.clock.advance(1)
        retried = ok(await call(kit, refresh_form(first)))
        assert retried["refresh_token"] == rotated["refresh_token"]
        assert retried["access_token"] == rotated["access_token"]  # the same, not a new one
    retries = [e.data["retry"] for e in kit.events.events if e.name == "refresh_token.retried"]
    assert retries == [1, 2]
    kit.clock.advance(1)
    assert error_of(await call(kit, refresh_form(first))) == (400, "invalid_grant")
    assert error_of(await call(kit, refresh_form(str(rotated["refresh_token"])))) == (
        400,
        "invalid_grant",
    )
    reused = [e.data for e in kit.events.events if e.name == "refresh_token.reused"]
    assert {"client_id": "web-app", "reason": "too_many_retries"} in reused


async def test_each_rotation_has_its_own_retry_budget(db: Db) -> None:
    kit = build(db, refresh_token_rotation_grace_seconds=60, refresh_token_rotation_max_retries=1)
    first = await first_refresh_token(kit)
    second = ok(await call(kit, refresh_form(first)))["refresh_token"]
    assert ok(await call(kit, refresh_form(first)))["refresh_token"] == second
    third = ok(await call(kit, refresh_form(str(second))))["refresh_token"]
    assert ok(await call(kit, refresh_form(str(second))))["refresh_token"] == third
