"""Device-flow helpers for core tests: device clients, the endpoint call, token polls.

Builds on ``tests.core.endpoints.kit``; no HTTP server is started.
"""

from __future__ import annotations

from collections.abc import Iterable

from authward.core.clients import Client
from authward.core.endpoints import device_authorization, token
from authward.core.grants.device_code import GRANT_TYPE
from authward.core.http import Response
from tests.core.endpoints.kit import ISSUER, TOKEN_URL, Kit, post
from tests.core.endpoints.token_requests import basic

DEVICE_URL = ISSUER + "/device_authorization"
DEVICE_CLIENT_ID = "tv-app"
DEVICE_SECRET = "tv-app-secret"
PUBLIC_DEVICE_CLIENT_ID = "cli-app"
NO_DEVICE_CLIENT_ID = "web-only"
NO_DEVICE_SECRET = "web-only-secret"


def add_device_clients(kit: Kit) -> None:
    """A confidential and a public device client, and a confidential one without the grant."""
    kit.clients.add(
        Client(
            DEVICE_CLIENT_ID, "confidential", "client_secret_basic",
            grant_types=(GRANT_TYPE, "refresh_token"),
            scope=("openid", "profile", "offline_access", "read"),
            client_name="Living Room TV",
        ),
        DEVICE_SECRET,
    )
    kit.clients.add(
        Client(
            PUBLIC_DEVICE_CLIENT_ID, "public", "none",
            grant_types=(GRANT_TYPE,),
            client_name="Command Line",
        )
    )
    kit.clients.add(
        Client(
            NO_DEVICE_CLIENT_ID, "confidential", "client_secret_basic",
            grant_types=("client_credentials",),
        ),
        NO_DEVICE_SECRET,
    )


def device_auth() -> tuple[str, str]:
    """Basic credentials of the confidential device client."""
    return basic(DEVICE_CLIENT_ID, DEVICE_SECRET)


async def start(
    kit: Kit,
    form: Iterable[tuple[str, str]] = (("scope", "openid offline_access read"),),
    *,
    headers: Iterable[tuple[str, str]] | None = None,
) -> Response:
    """POST to the device authorization endpoint (as the confidential device client)."""
    chosen = tuple(headers) if headers is not None else (device_auth(),)
    return await device_authorization.handle(
        kit.server, post(DEVICE_URL, list(form), headers=chosen)
    )


async def started(kit: Kit, **kw: object) -> dict[str, object]:
    """The 200 body of :func:`start` (asserting success)."""
    res = await start(kit, **kw)  # type: ignore[arg-type]
    assert res.status == 200, res.json
    assert res.json is not None
    return dict(res.json)


async def poll(
    kit: Kit,
    device_code: str,
    *,
    headers: Iterable[tuple[str, str]] | None = None,
    extra: Iterable[tuple[str, str]] = (),
) -> Response:
    """One token request with the device code (as the confidential device client)."""
    chosen = tuple(headers) if headers is not None else (device_auth(),)
    form = [("grant_type", GRANT_TYPE), ("device_code", device_code), *extra]
    return await token.handle(kit.server, post(TOKEN_URL, form, headers=chosen))


def error_of(res: Response) -> str:
    """The ``error`` member of a JSON error response."""
    assert res.json is not None, res
    value = res.json.get("error")
    assert isinstance(value, str), res.json
    return value
