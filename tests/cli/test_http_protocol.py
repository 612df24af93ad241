"""``authward serve``'s HTTP protocol closes connections that never finish a request head.

Spec: RFC 9112 §9.8 (closing slow connections). Real uvicorn on 127.0.0.1, real sockets.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from authward.cli.http_protocol import HEADER_TIMEOUT_SECONDS, HeaderDeadlineProtocol
from authward.cli.serve import _Server


class QuickDeadline(HeaderDeadlineProtocol):
    header_timeout = 0.5


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def port() -> AsyncIterator[int]:
    async def hello(_request: object) -> PlainTextResponse:
        return PlainTextResponse("ok")

    chosen = _free_port()
    config = uvicorn.Config(
        Starlette(routes=[Route("/", hello)]),
        host="127.0.0.1",
        port=chosen,
        http=QuickDeadline,
        log_level="warning",
        lifespan="off",
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(250):  # uvicorn offers no start event; poll its flag (5 s at most)
        if server.started:
            break
        await asyncio.sleep(0.02)
    assert server.started
    try:
        yield chosen
    finally:
        server.should_exit = True
        await task


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), seconds) == b""
    except TimeoutError:
        return False


async def test_connections_that_never_finish_their_headers_are_closed(port: int) -> None:
    silent = await asyncio.open_connection("127.0.0.1", port)
    partial = await asyncio.open_connection("127.0.0.1", port)
    partial[1].write(b"POST /token HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    await partial[1].drain()
    assert await _closed_within(silent[0], 3.0)
    assert await _closed_within(partial[0], 3.0)
    for _, writer in (silent, partial):
        writer.close()


async def test_a_complete_request_is_served_and_the_deadline_rearms_per_request(
    port: int,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for _ in range(2):  # keep-alive: each request head gets its own deadline
        await asyncio.sleep(0.3)
        writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3.0)
        assert head.startswith(b"HTTP/1.1 200")
        assert await asyncio.wait_for(reader.readexactly(2), 3.0) == b"ok"
    writer.write(b"GET / HTTP/1.1\r\n")  # a third head, never finished
    await writer.drain()
    assert await _closed_within(reader, 3.0)
    writer.close()


def test_the_default_deadline_is_ten_seconds() -> None:
    assert HEADER_TIMEOUT_SECONDS == 10.0
    assert HeaderDeadlineProtocol.header_timeout == HEADER_TIMEOUT_SECONDS
