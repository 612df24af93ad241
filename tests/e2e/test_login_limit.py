"""End to end over HTTP: failed sign-ins lock a username on every ``authward serve`` node.

Spec: RFC 6749 §10.10 and RFC 6819 §5.1.4.2.3 (bound password guessing per account); RFC 6585
§4 (429 with ``Retry-After``); RFC 6749 §10.12 (the CSRF check comes first). Two nodes share
one database (SQLite file or PostgreSQL) configured with ``[login] max_failed_logins = 3`` and
a short growing delay; the failures are spread over both nodes, and the lock and the delay are
seen on both.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.asgi.forms import only_form
from tests.dbkit import KINDS
from tests.e2e.browser import post_form
from tests.e2e.harness import PASSWORD, USERNAME, Deployment, deployment
from tests.e2e.test_two_nodes import via

#: Windows are fixed (aligned to the epoch): a day-long one makes it vanishingly unlikely that
#: the few seconds of this test straddle a window boundary and split the failures.
WINDOW = 86_400
#: The growing delay configured here: one free failure, then this long before each check.
DELAY = 0.4
LOCKED_TEXT = "Too many sign-in attempts for this account."
BAD_TEXT = "The username or password is not correct."


@pytest.fixture(scope="module", params=KINDS)
def limited(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, e2e_keys: Path
) -> Iterator[Deployment]:
    kind = str(request.param)
    with deployment(
        kind,
        tmp_path_factory.mktemp(f"e2e-login-limit-{kind}"),
        e2e_keys,
        login={
            "max_failed_logins": 3,
            "failed_login_window_seconds": WINDOW,
            "free_failures": 1,
            "failure_delay_seconds": DELAY,
            "max_failure_delay_seconds": DELAY,
        },
        nodes=2,
    ) as running:
        yield running


async def attempt(http: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    """Open the login form and post it the way a browser does."""
    page = await http.get("/login", params={"return_to": "/"})
    assert page.status_code == 200, page.text
    form = only_form(page.text)
    return await post_form(http, form.action, form.fields(username=username, password=password))


def signed_in(response: httpx.Response) -> bool:
    return any(v.startswith("authward_login=") for v in response.headers.get_list("set-cookie"))


def assert_locked(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert 1 <= int(response.headers["retry-after"]) <= WINDOW
    assert LOCKED_TEXT in response.text
    assert BAD_TEXT not in response.text
    assert not signed_in(response)


async def test_failures_on_both_nodes_lock_the_username_everywhere(limited: Deployment) -> None:
    """Three wrong passwords (two on A, one on B) lock the user on both nodes: the right
    password then gets the same 429 as a wrong one; an unknown username is counted and
    answered the same way; a forged post is still a 400 and spends nothing."""
    async with via(limited, 0) as node_a, via(limited, 1) as node_b:
        for http in (node_a, node_b, node_a):
            wrong = await attempt(http, USERNAME, "not-the-password")
            assert wrong.status_code == 200
            assert BAD_TEXT in wrong.text
            assert not signed_in(wrong)
        assert_locked(await attempt(node_b, USERNAME, PASSWORD))
        assert_locked(await attempt(node_a, USERNAME, PASSWORD))
        assert_locked(await attempt(node_a, USERNAME.upper(), "not-the-password"))

        for http in (node_b, node_a, node_b):
            unknown = await attempt(http, "nobody", "guess")
            assert unknown.status_code == 200
            assert BAD_TEXT in unknown.text
        assert_locked(await attempt(node_a, "nobody", "guess"))

        forged = await node_b.post(
            "/login",
            data={"username": USERNAME, "password": PASSWORD, "csrf_token": "forged"},
        )
        assert forged.status_code == 400
        assert not signed_in(forged)


async def test_the_growing_delay_set_in_the_host_file_holds_across_nodes(
    limited: Deployment,
) -> None:
    """Two failures on node A (one free, so no wait yet); the next post, on node B, waits the
    configured delay before its check (a lower bound on its duration, never an upper one)."""
    async with via(limited, 0) as node_a, via(limited, 1) as node_b:
        first = await attempt(node_a, "delayed-name", "guess")
        assert BAD_TEXT in first.text
        second = await attempt(node_a, "delayed-name", "guess")
        assert BAD_TEXT in second.text
        started = time.monotonic()
        third = await attempt(node_b, "delayed-name", "guess")
        assert time.monotonic() - started >= DELAY
        assert BAD_TEXT in third.text
