"""A minimal HTTP/1.1 client connection over asyncio streams, for the load driver.

Spec: RFC 9112 §2.1 (message format), §6.1 (``Transfer-Encoding: chunked``), §6.3 (message body
length), §9.3 (persistent connections, ``Connection: close``); RFC 9110 §15 (status codes).

Requests are bytes the caller builds once (:func:`form_request`, :func:`get_request`); one
:class:`Connection` sends one request at a time and reads the whole response, then reuses the
socket (keep-alive) unless the server said ``Connection: close``. Nothing else of HTTP is
implemented: no redirects, no cookies, no compression.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

__all__ = ["Connection", "Reply", "ReplyError", "form_request", "get_request"]

_CRLF: Final = b"\r\n"
_HEAD_END: Final = b"\r\n\r\n"
_CONTENT_LENGTH: Final = b"\r\ncontent-length:"
_CHUNKED: Final = b"\r\ntransfer-encoding: chunked"
_CLOSE: Final = b"\r\nconnection: close"
_STREAM_LIMIT: Final = 1 << 20


class ReplyError(Exception):
    """The server's bytes are not an HTTP/1.1 response this client can read."""


@dataclass(frozen=True, slots=True)
class Reply:
    """One response: ``status``, the raw ``head`` (status line and headers) and ``body``."""

    status: int
    head: bytes
    body: bytes

    def headers(self, name: str) -> list[str]:
        """Every value of header ``name`` (case-insensitive), in order."""
        wanted = name.lower().encode("ascii") + b":"
        values = []
        for line in self.head.split(_CRLF)[1:]:
            if line.lower().startswith(wanted):
                values.append(line[len(wanted) :].strip().decode("latin-1"))
        return values

    def header(self, name: str) -> str | None:
        """The first value of header ``name``, if any."""
        values = self.headers(name)
        return values[0] if values else None


def _head(method: str, target: str, host: str, headers: Iterable[tuple[str, str]]) -> str:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    lines.extend(f"{name}: {value}" for name, value in headers)
    return "\r\n".join(lines)


def form_request(
    host: str, target: str, body: str, headers: Iterable[tuple[str, str]] = ()
) -> bytes:
    """A ``POST`` of the ``application/x-www-form-urlencoded`` ``body`` to ``target``."""
    encoded = body.encode("ascii")
    head = _head(
        "POST",
        target,
        host,
        [
            *headers,
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Content-Length", str(len(encoded))),
        ],
    )
    return head.encode("latin-1") + _HEAD_END + encoded


def get_request(host: str, target: str, headers: Iterable[tuple[str, str]] = ()) -> bytes:
    """A ``GET`` of ``target``."""
    return _head("GET", target, host, headers).encode("latin-1") + _HEAD_END


class Connection:
    """One keep-alive connection to ``host``:``port`` (opened lazily, reopened after a close),
    from ``source_address`` when given (any 127.x address is this machine's loopback)."""

    def __init__(self, host: str, port: int, source_address: str = "") -> None:
        self.host = host
        self.port = port
        self.source_address = source_address
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        #: How many times a socket was opened (1 for a connection never dropped).
        self.opened = 0

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        local = (self.source_address, 0) if self.source_address else None
        reader, writer = await asyncio.open_connection(
            self.host, self.port, limit=_STREAM_LIMIT, local_addr=local
        )
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._reader, self._writer = reader, writer
        self.opened += 1
        return reader, writer

    async def exchange(self, request: bytes) -> Reply:
        """Send ``request`` and read its response. Socket errors propagate (the connection
        is closed first, so the next exchange opens a new one)."""
        reader, writer = self._reader, self._writer
        if reader is None or writer is None:
            reader, writer = await self._open()
        try:
            writer.write(request)
            reply = await _read_reply(reader)
        except BaseException:
            self.close()
            raise
        if _CLOSE in reply.head.lower():
            self.close()
        return reply

    def close(self) -> None:
        """Drop the socket (idempotent)."""
        writer = self._writer
        self._reader = self._writer = None
        if writer is not None:
            writer.close()


async def _read_reply(reader: asyncio.StreamReader) -> Reply:
    head = await reader.readuntil(_HEAD_END)
    if not head.startswith(b"HTTP/1.") or len(head) < 12:
        raise ReplyError(f"not an HTTP/1.x response: {head[:40]!r}")
    try:
        status = int(head[9:12])
    except ValueError:
        raise ReplyError(f"bad status line: {head[:40]!r}") from None
    lower = head.lower()
    start = lower.find(_CONTENT_LENGTH)
    if start >= 0:
        end = lower.find(_CRLF, start + 2)
        length = int(head[start + len(_CONTENT_LENGTH) : end])
        body = await reader.readexactly(length) if length else b""
    elif _CHUNKED in lower:
        body = await _read_chunked(reader)
    elif status in (204, 304) or 100 <= status < 200:
        body = b""
    else:
        body = await reader.read()
    return Reply(status, head, body)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size_line = await reader.readuntil(_CRLF)
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while (await reader.readuntil(_CRLF)) != _CRLF:
                pass  # trailer fields
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)
