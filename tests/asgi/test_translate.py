"""The Starlette-to-core request translation: the peer address reaches core; the token-path
endpoints read the body from ASGI messages (chunks, the size limit, a client that leaves).

Spec: ASGI HTTP connection scope (``client``); RFC 6749 §10.10 (failures counted per source).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import MutableMapping
from typing import Any, cast

import pytest
from starlette.requests import Request as StarletteRequest

from authward.asgi.translate import client_address, endpoint, read_request
from authward.core.http import Request, Response, json_response


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


# --- the token-path endpoints read the ASGI messages themselves -----------------------------


async def echo_form(_server: Any, request: Request) -> Response:
    return json_response({"form": dict(request.form.items), "query": dict(request.query.items)})


def run_endpoint(
    messages: list[dict[str, Any]], **extra: Any
) -> tuple[list[dict[str, Any]], int]:
    """Drive a CoreEndpoint with ``messages``; the messages it sent and how many it read."""
    pending = list(messages)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return pending.pop(0)

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    app = endpoint(cast(Any, None), echo_form, max_body_bytes=16)
    form_scope = scope(
        headers=[(b"host", b"as.example"), (b"content-type", b"application/x-www-form-urlencoded")],
        **extra,
    )
    asyncio.run(app(form_scope, receive, send))
    return sent, len(messages) - len(pending)


def test_a_body_in_several_chunks_is_joined() -> None:
    sent, read = run_endpoint(
        [
            {"type": "http.request", "body": b"a=1&", "more_body": True},
            {"type": "http.request", "body": b"b=2", "more_body": False},
        ]
    )
    assert read == 2
    assert sent[0]["status"] == 200
    assert json.loads(sent[1]["body"]) == {"form": {"a": "1", "b": "2"}, "query": {}}
    headers = dict(sent[0]["headers"])
    assert headers[b"content-length"] == str(len(sent[1]["body"])).encode()
    assert headers[b"content-type"] == b"application/json"


def test_a_body_over_the_limit_is_refused_as_soon_as_it_is_too_long() -> None:
    sent, read = run_endpoint(
        [
            {"type": "http.request", "body": b"a=" + b"x" * 20, "more_body": True},
            {"type": "http.request", "body": b"never read", "more_body": False},
        ]
    )
    assert read == 1
    assert sent[0]["status"] == 413
    assert json.loads(sent[1]["body"])["error"] == "invalid_request"


def test_a_client_that_disconnects_before_its_body_gets_no_answer() -> None:
    sent, read = run_endpoint(
        [
            {"type": "http.request", "body": b"a=1", "more_body": True},
            {"type": "http.disconnect"},
        ]
    )
    assert (sent, read) == ([], 2)


def test_a_bad_query_is_refused_before_the_body_is_read() -> None:
    sent, read = run_endpoint(
        [{"type": "http.request", "body": b"a=1", "more_body": False}],
        query_string=b"%ff=1",
    )
    assert read == 0
    assert sent[0]["status"] == 400
