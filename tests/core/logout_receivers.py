"""Back-channel logout receivers for tests: tiny real HTTP servers on 127.0.0.1.

Each receiver records every ``logout_token`` it is sent and answers with its ``status``. A
receiver can be held: it reads the request, then waits until ``release()`` (or forever) before
answering, which makes a receiver "slow" without any timing in the test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from urllib.parse import parse_qsl


@dataclass
class Receiver:
    """A running receiver: where it listens, what it answers and what it got."""

    port: int
    path: str = "/backchannel-logout"
    status: int = 200
    tokens: list[str] = field(default_factory=list)
    connections: int = 0
    answered: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _gate: asyncio.Event | None = None

    @property
    def url(self) -> str:
        """The receiver's ``backchannel_logout_uri`` (http, loopback)."""
        return f"http://127.0.0.1:{self.port}{self.path}"

    def hold(self) -> None:
        """Make the receiver wait before answering until :meth:`release`."""
        self._gate = asyncio.Event()

    def release(self) -> None:
        """Let a held receiver answer."""
        if self._gate is not None:
            self._gate.set()


@asynccontextmanager
async def receiver(*, status: int = 200, held: bool = False) -> AsyncIterator[Receiver]:
    """Run one receiver on a free 127.0.0.1 port until the block ends."""
    state = Receiver(port=0, status=status)
    if held:
        state.hold()
    open_writers: set[asyncio.StreamWriter] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        open_writers.add(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.decode("latin-1").split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            body = await reader.readexactly(length) if length else b""
            form = dict(parse_qsl(body.decode("ascii")))
            if "logout_token" in form:
                state.tokens.append(form["logout_token"])
            state.arrived.set()
            if state._gate is not None:
                await state._gate.wait()
            writer.write(
                f"HTTP/1.1 {state.status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                .encode("latin-1")
            )
            await writer.drain()
            state.answered += 1
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            open_writers.discard(writer)
            writer.close()
            with suppress(ConnectionError):
                await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        state.release()
        for writer in list(open_writers):
            writer.close()
        server.close()
        with suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 5)
