"""End to end over HTTP: the device flow across two ``authward serve`` processes sharing one
PostgreSQL database, as behind a load balancer.

Spec: authward issue ("the same flows work with two server processes sharing one PostgreSQL");
RFC 8628 §3.3-§3.5 (a code approved on one node is redeemed by polling the other; slow_down and
single redemption hold across nodes), §5.1 (the user-code budget is shared). Every piece of
state is in the shared tables; nothing in either process's memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.device_flow import device_client, enter_code, poll, sign_in, start, user_decides
from tests.e2e.harness import Deployment, deployment
from tests.e2e.test_two_nodes import via


@pytest.fixture(scope="module")
def device_cluster(
    tmp_path_factory: pytest.TempPathFactory, e2e_keys: Path
) -> Iterator[Deployment]:
    """Two nodes on one PostgreSQL (skipped when PostgreSQL is unreachable, failed in CI)."""
    with deployment(
        "postgresql",
        tmp_path_factory.mktemp("e2e-device-cluster"),
        e2e_keys,
        settings={
            "device_authorization": {
                "code_ttl_seconds": 120,
                # Whole-second stamps: 2 s keeps an immediate second poll too fast.
                "poll_interval_seconds": 2,
                "max_failed_user_codes": 2,
            }
        },
        extra_clients=[device_client()],
        nodes=2,
    ) as running:
        yield running


async def test_code_approved_on_a_is_redeemed_by_polling_b(device_cluster: Deployment) -> None:
    """DEV-NODE-01: device request and approval at node A; polls at node B: pending, then a
    too-fast poll is slow_down (the stamp from B is seen), then tokens; a replay at A fails."""
    async with (
        via(device_cluster, 0) as node_a,
        via(device_cluster, 1) as node_b,
        via(device_cluster, 0) as user_a,
    ):
        body = await start(node_a)
        pending = await poll(node_b, body["device_code"])
        assert pending.json()["error"] == "authorization_pending"
        fast = await poll(node_a, body["device_code"])
        assert (fast.json()["error"], fast.json()["interval"]) == ("slow_down", 7)

        done = await user_decides(user_a, body["verification_uri_complete"], "approve")
        assert "is now connected" in done.text

        await asyncio.sleep(7.2)
        tokens = await poll(node_b, body["device_code"])
        assert tokens.status_code == 200, tokens.text
        assert "access_token" in tokens.json()
        await asyncio.sleep(2.2)
        replay = await poll(node_a, body["device_code"])
    assert (replay.status_code, replay.json()["error"]) == (400, "invalid_grant")


async def test_denial_on_b_is_seen_polling_a(device_cluster: Deployment) -> None:
    """DEV-NODE-02: the user denies at node B; node A answers access_denied."""
    async with via(device_cluster, 0) as node_a, via(device_cluster, 1) as user_b:
        body = await start(node_a)
        done = await user_decides(user_b, body["verification_uri_complete"], "deny")
        assert "You denied access" in done.text
        res = await poll(node_a, body["device_code"])
    assert (res.status_code, res.json()["error"]) == (400, "access_denied")


async def test_the_user_code_budget_is_shared_by_the_nodes(device_cluster: Deployment) -> None:
    """DEV-NODE-03: one wrong code at A, one at B, then the right code is 429 at either node.
    (Runs last: it locks the user for the window.)"""
    async with (
        via(device_cluster, 0) as node_a,
        via(device_cluster, 0) as user_a,
        via(device_cluster, 1) as user_b,
    ):
        body = await start(node_a)
        await sign_in(user_a)
        await sign_in(user_b)
        assert "Attempts left: 1" in (await enter_code(user_a, "BBBB-BBBB")).text
        assert "Attempts left: 0" in (await enter_code(user_b, "CCCC-CCCC")).text
        assert (await enter_code(user_a, body["user_code"])).status_code == 429
        assert (await enter_code(user_b, body["user_code"])).status_code == 429
