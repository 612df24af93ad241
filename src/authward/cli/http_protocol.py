"""The HTTP protocol ``authward serve`` runs: uvicorn's httptools protocol with a deadline for
request headers.

Spec: RFC 9112 §9.8 (a server may close an idle or slow connection); RFC 9110 §15.5.9 (a
request that takes too long).

uvicorn closes an idle keep-alive connection after ``timeout_keep_alive`` seconds, but a
connection that has started a request and never finishes its headers (or opens and sends
nothing) stays open for as long as its peer likes: a few hundred of them ("slowloris") hold
file descriptors and memory indefinitely. :class:`HeaderDeadlineProtocol` gives every request
:data:`HEADER_TIMEOUT_SECONDS` from the connection's first byte (or the end of the previous
response) to the end of its headers, then closes the connection. Bodies are bounded separately
(``authward.asgi.translate``: 64 KiB).
"""

from __future__ import annotations

import asyncio
from typing import Final

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["HEADER_TIMEOUT_SECONDS", "HeaderDeadlineProtocol"]

#: Seconds a client has to send a complete request head.
HEADER_TIMEOUT_SECONDS: Final = 10.0


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing connections whose request head is not complete
    within :data:`HEADER_TIMEOUT_SECONDS`."""

    header_timeout: float = HEADER_TIMEOUT_SECONDS
    _header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_header_deadline()

    def on_headers_complete(self) -> None:
        self._cancel_header_deadline()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_deadline()
        super().connection_lost(exc)

    def _arm_header_deadline(self) -> None:
        self._cancel_header_deadline()
        self._header_deadline = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _cancel_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            self.transport.close()
