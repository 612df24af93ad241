"""The login form's limit on failed sign-ins per username.

RFC 6749 §10.10 and RFC 6819 §5.1.4.2.3 (bound password guessing per account), RFC 6585 §4
(429 with ``Retry-After``), RFC 6749 §10.12 (the CSRF check comes first). Real SQL replay store
on SQLite and PostgreSQL; the clock is frozen at ``T0`` (a multiple of the 60 s window).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx
import pytest

from authward.asgi import LoginPage, create_app
from authward.asgi.pages import DEFAULT_LOGIN_DELAY, LOGIN_CHECKS_PER_FAILURE, login_identifier
from authward.core.attempt_limits import GrowingDelay, identifier_digest
from authward.core.defaults import FileUserDirectory, SignedCookieLogin
from tests.asgi.test_pages import RETURN_TO, hidden, sign_in, users
from tests.core.endpoints import kit
from tests.dbkit import Db

LOCKED_TEXT = "Too many sign-in attempts for this account."
BAD_TEXT = "The username or password is not correct."


class CountingUsers:
    """The file user directory, counting how often a password is checked (argon2 runs)."""

    def __init__(self, inner: FileUserDirectory) -> None:
        self.inner = inner
        self.checks = 0

    async def verify_password(self, username: str, password: str) -> str | None:
        self.checks += 1
        return await self.inner.verify_password(username, password)


@dataclass
class Setup:
    client: httpx.AsyncClient
    users: CountingUsers
    k: kit.Kit
    app: object
    #: (seconds waited, password checks done before the wait): the page's injected sleep.
    sleeps: list[tuple[float, int]]


def setup(
    db: Db, *, failures: int = 3, window: int = 60, delay: GrowingDelay = DEFAULT_LOGIN_DELAY
) -> Setup:
    k = kit.build(db)
    session = SignedCookieLogin(b"s" * 32, issuer=kit.ISSUER, clock=k.clock)
    counting = CountingUsers(users())
    sleeps: list[tuple[float, int]] = []

    async def sleep(seconds: float) -> None:
        sleeps.append((seconds, counting.checks))

    page = LoginPage(counting, session, max_failed_logins=failures,
                     failed_login_window_seconds=window, delay=delay, sleep=sleep)
    app = create_app(k.server, login_page=page)
    client = client_from(app, "127.0.0.1")
    return Setup(client, counting, k, app, sleeps)


def client_from(app: object, address: str) -> httpx.AsyncClient:
    """An HTTP client of ``app`` whose requests come from ``address``."""
    transport = httpx.ASGITransport(app=app, client=(address, 50000))  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url=kit.ISSUER)


def signed_in(response: httpx.Response) -> bool:
    return any(v.startswith("authward_login=") for v in response.headers.get_list("set-cookie"))


def without_token(response: httpx.Response) -> str:
    """The page with its (random) CSRF token removed."""
    return response.text.replace(hidden(response.text, "csrf_token"), "")


def assert_locked(response: httpx.Response, retry_after: int = 60) -> None:
    assert response.status_code == 429
    assert response.headers["retry-after"] == str(retry_after)
    assert response.headers["cache-control"] == "no-store"
    assert LOCKED_TEXT in response.text
    assert BAD_TEXT not in response.text
    assert not signed_in(response)


async def test_failures_lock_the_username_with_429_and_retry_after(db: Db) -> None:
    s = setup(db)
    async with s.client:
        for _ in range(3):
            wrong = await sign_in(s.client, return_to=RETURN_TO, password="nope")
            assert wrong.status_code == 200
            assert BAD_TEXT in wrong.text
        s.k.clock.advance(20)
        assert_locked(await sign_in(s.client, return_to=RETURN_TO, password="nope"), 40)
    assert s.users.checks == 3


async def test_the_right_password_is_refused_alike_and_not_checked_while_locked(db: Db) -> None:
    """Right and wrong read the same while locked, and no argon2 verification runs."""
    s = setup(db)
    async with s.client:
        for _ in range(3):
            await sign_in(s.client, return_to=RETURN_TO, password="nope")
        wrong = await sign_in(s.client, return_to=RETURN_TO, password="nope")
        right = await sign_in(s.client, return_to=RETURN_TO)
    assert_locked(wrong)
    assert_locked(right)
    assert without_token(wrong) == without_token(right)
    assert s.users.checks == 3
    assert "correct horse" not in right.text


async def test_unknown_usernames_are_counted_and_answered_the_same(db: Db) -> None:
    """No enumeration: an unknown name locks after the same failures, with the same page."""
    s = setup(db)
    async with s.client:
        for _ in range(3):
            unknown = await sign_in(s.client, return_to=RETURN_TO, username="mallory")
            assert unknown.status_code == 200
            assert BAD_TEXT in unknown.text
        locked_unknown = await sign_in(s.client, return_to=RETURN_TO, username="mallory")
        for _ in range(3):
            await sign_in(s.client, return_to=RETURN_TO, password="nope")
        locked_known = await sign_in(s.client, return_to=RETURN_TO)
    assert_locked(locked_unknown)
    assert_locked(locked_known)


async def test_each_username_has_its_own_budget(db: Db) -> None:
    s = setup(db)
    async with s.client:
        for _ in range(4):
            await sign_in(s.client, return_to=RETURN_TO, username="mallory")
        response = await sign_in(s.client, return_to=RETURN_TO)
    assert response.status_code == 303
    assert signed_in(response)


async def test_case_and_spacing_variants_share_one_budget(db: Db) -> None:
    s = setup(db)
    async with s.client:
        for name in ("Alice", " alice ", "ALICE"):
            await sign_in(s.client, return_to=RETURN_TO, username=name, password="nope")
        assert_locked(await sign_in(s.client, return_to=RETURN_TO))
    assert login_identifier(" \uff21LICE\t") == "alice"


async def test_the_next_window_unlocks(db: Db) -> None:
    s = setup(db)
    async with s.client:
        for _ in range(3):
            await sign_in(s.client, return_to=RETURN_TO, password="nope")
        s.k.clock.advance(59)
        assert_locked(await sign_in(s.client, return_to=RETURN_TO), 1)
        s.k.clock.advance(1)
        response = await sign_in(s.client, return_to=RETURN_TO)
    assert response.status_code == 303
    assert response.headers["location"] == RETURN_TO
    assert signed_in(response)


async def test_a_success_does_not_reset_the_failures(db: Db) -> None:
    """Documented: the replay table has no delete, so failures only expire with the window."""
    s = setup(db)
    async with s.client:
        for _ in range(2):
            await sign_in(s.client, return_to=RETURN_TO, password="nope")
        assert (await sign_in(s.client, return_to=RETURN_TO)).status_code == 303
        third = await sign_in(s.client, return_to=RETURN_TO, password="nope")
        assert third.status_code == 200
        assert_locked(await sign_in(s.client, return_to=RETURN_TO))


async def test_password_checks_are_capped_at_ten_per_allowed_failure(db: Db) -> None:
    """Right or wrong, at most LOGIN_CHECKS_PER_FAILURE * max_failed_logins checks per username
    and window (a bound on concurrent guesses); far above what a person signs in."""
    s = setup(db, failures=2)
    cap = LOGIN_CHECKS_PER_FAILURE * 2
    async with s.client:
        for _ in range(cap):
            assert (await sign_in(s.client, return_to=RETURN_TO)).status_code == 303
        assert_locked(await sign_in(s.client, return_to=RETURN_TO))
    assert s.users.checks == cap


async def test_the_csrf_check_comes_first_and_counts_nothing(db: Db) -> None:
    """A forged post is a 400 that spends no budget, locked or not (RFC 6749 §10.12)."""
    s = setup(db)
    forged = {"username": "alice", "password": "nope", "csrf_token": "forged",
              "return_to": RETURN_TO}
    async with s.client:
        for _ in range(5):
            assert (await s.client.post("/login", data=forged)).status_code == 400
        assert (await sign_in(s.client, return_to=RETURN_TO)).status_code == 303
        for _ in range(3):
            await sign_in(s.client, return_to=RETURN_TO, password="nope")
        s.client.cookies.clear()
        assert (await s.client.post("/login", data=forged)).status_code == 400
    assert s.users.checks == 4


async def test_the_lock_is_an_event_with_a_username_digest_only(db: Db) -> None:
    s = setup(db)
    async with s.client:
        for _ in range(3):
            await sign_in(s.client, return_to=RETURN_TO, username="Alice", password="nope")
        await sign_in(s.client, return_to=RETURN_TO, username="Alice", password="nope")
    locked = [e for e in s.k.events.events if e.name == "login.locked"]
    assert len(locked) == 1
    assert dict(locked[0].data) == {
        "username_digest": identifier_digest("alice"), "retry_after": 60
    }
    for event in s.k.events.events:
        text = repr(event).lower()
        assert "alice" not in text
        assert "nope" not in text


async def test_the_limit_is_shared_by_two_nodes(db: Db) -> None:
    """Two apps on their own engines, one database: failures on one lock the other."""
    first = setup(db)
    other_engine = db.new_engine()
    try:
        node_b = first.k.sibling(other_engine)
        session = SignedCookieLogin(b"s" * 32, issuer=kit.ISSUER, clock=node_b.clock)
        app_b = create_app(node_b.server, login_page=LoginPage(
            users(), session, max_failed_logins=3, failed_login_window_seconds=60))
        client_b = httpx.AsyncClient(transport=httpx.ASGITransport(app=app_b),
                                     base_url=kit.ISSUER)
        async with first.client, client_b:
            await sign_in(first.client, return_to=RETURN_TO, password="nope")
            await sign_in(client_b, return_to=RETURN_TO, password="nope")
            await sign_in(first.client, return_to=RETURN_TO, password="nope")
            assert_locked(await sign_in(client_b, return_to=RETURN_TO))
    finally:
        await other_engine.dispose()


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_failed_logins", 0), ("max_failed_logins", True),
     ("failed_login_window_seconds", 0), ("failed_login_window_seconds", 1.5)],
)
def test_the_login_page_refuses_a_bad_limit(field: str, value: object) -> None:
    session = SignedCookieLogin(b"s" * 32, issuer=kit.ISSUER)
    with pytest.raises(ValueError, match=field):
        LoginPage(users(), session, **{field: value})  # type: ignore[arg-type]


async def test_a_stranger_elsewhere_cannot_lock_the_owner_out(db: Db) -> None:
    """The budget of a username is counted per source address: failures from 127.0.0.2 lock
    that address out of the account, while its owner at 127.0.0.1 signs in."""
    s = setup(db)
    stranger = client_from(s.app, "127.0.0.2")
    async with s.client, stranger:
        for _ in range(3):
            await sign_in(stranger, return_to=RETURN_TO, password="nope")
        assert_locked(await sign_in(stranger, return_to=RETURN_TO))
        owner = await sign_in(s.client, return_to=RETURN_TO)
    assert owner.status_code == 303
    assert signed_in(owner)


async def test_one_address_spraying_many_usernames_is_stopped(db: Db) -> None:
    """Per address, all usernames together: 5 x max_failed_logins failures per window, then
    429 for any username from there (another address is unaffected)."""
    s = setup(db, failures=2)
    other = client_from(s.app, "127.0.0.3")
    async with s.client, other:
        for i in range(10):  # 5 x 2 failures, each username below its own budget of 2
            wrong = await sign_in(s.client, return_to=RETURN_TO, username=f"user{i // 2}",
                                  password="nope")
            assert wrong.status_code in (200, 429)
        assert_locked(await sign_in(s.client, return_to=RETURN_TO, username="fresh-name"))
        assert_locked(await sign_in(s.client, return_to=RETURN_TO))
        assert signed_in(await sign_in(other, return_to=RETURN_TO))


async def test_failures_past_the_free_ones_delay_each_next_check_growing(db: Db) -> None:
    """Three posts cost nothing; once three failures are recorded each post waits 1, 2, 4, 8,
    8 s before its password is checked, the right password included (so an early answer
    would tell nothing)."""
    s = setup(db, failures=10)
    async with s.client:
        for _ in range(7):
            assert BAD_TEXT in (await sign_in(s.client, return_to=RETURN_TO, password="no")).text
        right = await sign_in(s.client, return_to=RETURN_TO)
    assert signed_in(right)
    # (wait, checks done before it): every wait comes before that post's check
    assert s.sleeps == [(1.0, 3), (2.0, 4), (4.0, 5), (8.0, 6), (8.0, 7)]
    assert s.users.checks == 8


async def test_the_delay_counts_per_username_and_address(db: Db) -> None:
    """A stranger's failures slow the stranger, not the owner elsewhere or another username."""
    s = setup(db, failures=10)
    stranger = client_from(s.app, "127.0.0.2")
    async with s.client, stranger:
        for _ in range(5):
            await sign_in(stranger, return_to=RETURN_TO, password="nope")
        assert [seconds for seconds, _ in s.sleeps] == [1.0, 2.0]
        assert signed_in(await sign_in(s.client, return_to=RETURN_TO))
        await sign_in(stranger, return_to=RETURN_TO, username="bob", password="nope")
        assert [seconds for seconds, _ in s.sleeps] == [1.0, 2.0]
        await sign_in(stranger, return_to=RETURN_TO, password="nope")
    assert [seconds for seconds, _ in s.sleeps] == [1.0, 2.0, 4.0]


async def test_the_delay_ends_with_the_window(db: Db) -> None:
    s = setup(db, failures=10)
    async with s.client:
        for _ in range(5):
            await sign_in(s.client, return_to=RETURN_TO, password="nope")
        s.k.clock.advance(60)
        assert signed_in(await sign_in(s.client, return_to=RETURN_TO))
    assert [seconds for seconds, _ in s.sleeps] == [1.0, 2.0]


async def test_a_zero_delay_turns_it_off(db: Db) -> None:
    s = setup(db, failures=10, delay=GrowingDelay(first_seconds=0, max_seconds=0))
    async with s.client:
        for _ in range(6):
            await sign_in(s.client, return_to=RETURN_TO, password="nope")
    assert s.sleeps == []
    assert s.users.checks == 6


async def test_the_default_delay_really_waits(db: Db) -> None:
    """The default ``sleep`` is ``asyncio.sleep``: with a 0.2 s first delay and no free
    failure, the second post takes at least that long (a lower bound, never a timing limit)."""
    k = kit.build(db)
    session = SignedCookieLogin(b"s" * 32, issuer=kit.ISSUER, clock=k.clock)
    page = LoginPage(users(), session, max_failed_logins=5, failed_login_window_seconds=60,
                     delay=GrowingDelay(free_failures=0, first_seconds=0.2, max_seconds=0.2))
    client = client_from(create_app(k.server, login_page=page), "127.0.0.1")
    async with client:
        await sign_in(client, return_to=RETURN_TO, password="nope")
        started = time.monotonic()
        await sign_in(client, return_to=RETURN_TO, password="nope")
        assert time.monotonic() - started >= 0.2
