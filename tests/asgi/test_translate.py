"""The Starlette-to-core request translation: the peer address reaches core.

Spec: ASGI HTTP connection scope (``client``); RFC 6749 §10.10 (failures counted per source).
"""

from __future__ import annotations

from typing import Any

import pytest
from starlette.requests import Request as StarletteRequest

from authward.asgi.translate import client_address, read_request


def scope(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "scheme": "https",
        "path": "/token",
        "query_string": b"",
        "headers": [(b"host", b"as.example")],
    }
    base.update(extra)
    return base


async def no_body() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def test_the_peer_host_becomes_the_requests_client_address() -> None:
    request = StarletteRequest(scope(client=("203.0.113.7", 51234)), no_body)
    core = await read_request(request)
    assert core.client_address == "203.0.113.7"
    assert core.url == "https://as.example/token"


@pytest.mark.parametrize("peer", [None, (), ("", 0)])
def test_no_peer_means_no_client_address(peer: Any) -> None:
    assert client_address(scope(client=peer)) is None
    assert client_address(scope()) is None


def test_an_ipv6_peer_is_kept_as_given() -> None:
    assert client_address(scope(client=("2001:db8::1", 443))) == "2001:db8::1"
