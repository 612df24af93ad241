"""Test doubles for the SSRF guard's two seams: name resolution and the HTTP transport.

Used where the guard itself is under test (CIMD documents, logout delivery): a refused URL must
make no connection, which a recording transport proves by staying empty.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import httpx

from authward.core.ssrf import Family


class TableResolver:
    """Resolves every name from a table of (A, AAAA) answers and records each lookup."""

    def __init__(self, table: Mapping[str, tuple[Sequence[str], Sequence[str]]]) -> None:
        self.table = table
        self.calls: list[tuple[str, Family]] = []

    async def __call__(self, hostname: str, family: Family) -> Sequence[str]:
        self.calls.append((hostname, family))
        v4, v6 = self.table.get(hostname, ((), ()))
        return v4 if family == 4 else v6


class RecordingTransport:
    """A transport factory (``GuardedFetcher(transport_factory=...)``) recording every request
    it is asked to send; it answers 200, with ``json_body`` when one is given."""

    def __init__(self, json_body: object | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self._json = json_body

    def __call__(self) -> httpx.AsyncBaseTransport:
        def handle(request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            if self._json is None:
                return httpx.Response(200)
            return httpx.Response(200, json=self._json)

        return httpx.MockTransport(handle)
