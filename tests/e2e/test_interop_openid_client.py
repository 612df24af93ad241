"""Interoperability with openid-client 6 (Node), an OpenID-certified relying party library.

Spec: RFC 6749, RFC 7636, RFC 9126, RFC 9449, RFC 7662, RFC 7009, RFC 8628, RFC 7523, OpenID
Connect Core 1.0 and RP-Initiated Logout 1.0, as openid-client implements them.

``tests/e2e/interop/run.mjs`` drives ``authward serve --config`` (one deployment per engine)
through every flow the server advertises and the error paths a client reads (invalid_client,
invalid_grant on reuse, slow_down, access_denied). The end user's browser steps (sign-in,
consent, device approval, the logout page) are this module's ``Browser``: the script asks for
them on stdout and reads the answer on stdin. openid-client is installed from
``tests/e2e/interop/package-lock.json`` by ``make install`` (``npm ci``).
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest

from tests.dbkit import KINDS
from tests.e2e.browser import Browser
from tests.e2e.device_flow import PUBLIC_DEVICE_CLIENT, public_device_client, user_decides
from tests.e2e.harness import (
    DPOP_CLIENT,
    JWT_CLIENT,
    PAR_CLIENT,
    PAR_SECRET,
    PASSWORD,
    REDIRECT_URI,
    RS_CLIENT,
    RS_SECRET,
    SPA_CLIENT,
    SUBJECT,
    USER_CLAIMS,
    USERNAME,
    WEB_CLIENT,
    WEB_SECRET,
    Deployment,
    deployment,
    http_client,
)

INTEROP: Final = Path(__file__).parent / "interop"
#: Every scenario of run.mjs: each must pass on both engines.
SCENARIOS: Final = (
    "discovery",
    "code_confidential_basic_with_userinfo",
    "code_reuse_is_invalid_grant",
    "code_public_client_pkce",
    "pkce_is_required",
    "code_private_key_jwt",
    "pushed_authorization_request",
    "dpop_bound_tokens",
    "refresh_rotation_and_reuse_detection",
    "client_credentials",
    "wrong_secret_is_invalid_client",
    "introspection_and_revocation",
    "device_flow_approved",
    "device_flow_denied_is_access_denied",
    "device_polling_too_fast_is_slow_down",
    "end_session_url",
)
#: The device grant's poll interval here: 2 s makes an immediate second poll always too fast.
POLL_INTERVAL: Final = 2
#: The whole run's bound (16 scenarios, a few polls of 2 s each).
RUN_TIMEOUT: Final = 110.0


def _node() -> str:
    node = shutil.which("node")
    if node is None or not (INTEROP / "node_modules" / "openid-client").is_dir():
        pytest.fail("node and tests/e2e/interop/node_modules are required: run `make install`")
    return node


@pytest.fixture(scope="module", params=KINDS)
def interop_deployed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, e2e_keys: Path
) -> Iterator[Deployment]:
    """The standard deployment plus a public device client, polling every 2 s."""
    kind = str(request.param)
    with deployment(
        kind,
        tmp_path_factory.mktemp(f"e2e-interop-{kind}"),
        e2e_keys,
        settings={"device_authorization": {"poll_interval_seconds": POLL_INTERVAL}},
        extra_clients=[public_device_client()],
    ) as running:
        yield running


def _config(deployed: Deployment) -> dict[str, Any]:
    jwk = dict(deployed.client_key.key.as_dict(private=True))
    jwk["kid"] = deployed.client_key.kid
    return {
        "issuer": deployed.issuer,
        "redirect_uri": REDIRECT_URI,
        "subject": SUBJECT,
        "email": USER_CLAIMS["email"],
        "web": {"id": WEB_CLIENT, "secret": WEB_SECRET},
        "spa": {"id": SPA_CLIENT},
        "jwt": {"id": JWT_CLIENT, "jwk": jwk},
        "dpop": {"id": DPOP_CLIENT},
        "par": {"id": PAR_CLIENT, "secret": PAR_SECRET},
        "rs": {"id": RS_CLIENT, "secret": RS_SECRET},
        "device": {"id": PUBLIC_DEVICE_CLIENT},
    }


async def _run(deployed: Deployment) -> dict[str, dict[str, Any]]:
    """Run every scenario, playing the browser; the result line of each, by name."""
    process = await asyncio.create_subprocess_exec(
        _node(), str(INTEROP / "run.mjs"), json.dumps(_config(deployed)),
        cwd=INTEROP,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        limit=1 << 20,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    results: dict[str, dict[str, Any]] = {}
    async with http_client(deployed.issuer) as http:
        user = Browser(http, username=USERNAME, password=PASSWORD)
        while True:
            line = await process.stdout.readline()
            if not line:
                break
            message = json.loads(line)
            kind = message["type"]
            if kind == "end":
                break
            if kind == "result":
                results[message["name"]] = message
                continue
            if kind == "authorize":
                arrival = await user.authorize(message["url"], redirect_uri=REDIRECT_URI)
                answer: dict[str, Any] = {"callback": arrival.url}
            elif kind == "device":
                await user_decides(http, message["url"], message["decision"])
                answer = {"done": True}
            elif kind == "logout":
                answer = {"status": (await http.get(message["url"])).status_code}
            else:
                raise AssertionError(f"unknown request from run.mjs: {message}")
            process.stdin.write((json.dumps(answer) + "\n").encode())
            await process.stdin.drain()
    process.stdin.close()
    stderr = (await process.stderr.read()).decode() if process.stderr else ""
    await process.wait()
    assert results, f"run.mjs reported nothing (exit {process.returncode}): {stderr[-3000:]}"
    return results


@pytest.fixture(scope="module")
def interop_results(interop_deployed: Deployment) -> dict[str, dict[str, Any]]:
    """One openid-client run per deployment, shared by the scenario tests."""

    async def bounded() -> dict[str, dict[str, Any]]:
        return await asyncio.wait_for(_run(interop_deployed), RUN_TIMEOUT)

    return asyncio.run(bounded())


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_openid_client_scenario(
    interop_results: dict[str, dict[str, Any]], scenario: str
) -> None:
    result = interop_results.get(scenario)
    assert result is not None, f"run.mjs did not report {scenario}"
    assert result["ok"], f"{scenario}: {result['detail']}"


def test_every_scenario_of_the_script_is_checked(
    interop_results: dict[str, dict[str, Any]],
) -> None:
    assert set(interop_results) == set(SCENARIOS)
