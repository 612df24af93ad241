"""Flow benchmarks: back-channel logout fan-out, what the user waits for, and CIMD caching.

Every figure is a ratio against a baseline measured in the same run, so machine speed cancels:

* **fan-out vs one by one**: delivering logout tokens to ``receivers`` relying parties that each
  answer after ``delay`` seconds, through ``deliver_logout_tokens`` (concurrent, one deadline),
  against delivering to the same receivers one after another (what spec/stores.md §5.4 describes
  for attesto_phoenix 0.19). The ideal ratio is ``1 / receivers``.
* **the user's wait with a hanging receiver**: ``start_backchannel_logout`` (take the sessions,
  hand them to the background dispatcher) while one receiver never answers, against one trivial
  write transaction on the same engine. The background delivery itself is also timed, to show it
  ends at the configured deadline and not later.
* **CIMD resolution, cached vs fetched**: resolving a Client ID Metadata Document client whose
  document is fresh in the cache, against resolving one that must be fetched (through the SSRF
  guard from a document server on 127.0.0.1), validated and cached.

Receivers are real HTTP servers on 127.0.0.1 (the demo's development setting
``[authward.logout] allow_loopback`` lets delivery reach them). SQLite in a temporary directory;
nothing is left behind. Results are printed and written to ``bench/results/flows.json``.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from authward.cli.wiring import build_server, load_settings, prepare_database
from authward.core.keys import KeySet, save_key_file
from authward.core.logout import LogoutDispatcher, deliver_logout_tokens, start_backchannel_logout
from authward.core.server import AuthorizationServer
from authward.stores.logout_sessions import LogoutSession, LogoutTarget

RESULTS = Path(__file__).parent / "results"
ISSUER = "http://127.0.0.1:9"
DELIVERY_TIMEOUT = 1.0


@dataclass(frozen=True)
class FlowMeasurement:
    """One figure: ``mean_ms`` of the measured step, ``baseline_ms`` of its baseline."""

    name: str
    rounds: int
    mean_ms: float
    baseline_ms: float
    ratio: float


@asynccontextmanager
async def receiver(
    delay: float | None, documents: Callable[[int, str], bytes] | None = None
) -> AsyncIterator[int]:
    """An HTTP server on 127.0.0.1 answering 200 after ``delay`` seconds, or never (``None``):
    empty (a relying party's back-channel endpoint), or with the JSON body
    ``documents(port, path)`` (a CIMD document server). Yields its port."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.decode("latin-1").split("\r\n"):
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            await reader.readexactly(length)
            if delay is None:
                await asyncio.sleep(3600)
            await asyncio.sleep(delay or 0)
            body = b"" if documents is None else documents(port, head.split(b" ")[1].decode())
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Cache-Control: max-age=3600\r\nConnection: close\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        server.close()


def _config(directory: Path) -> tuple[Path, Path]:
    keys = directory / "keys.json"
    save_key_file(KeySet.generate(("ES256", "RS256"), now=time.time()), keys, overwrite=False)
    config = directory / "authward.toml"
    config.write_text(
        f"""
[authward]
issuer = "{ISSUER}"
id_token_signing_alg = "ES256"
refresh_token_rotation_grace_seconds = 0

[authward.logout]
enabled = true
allow_loopback = true
delivery_timeout_seconds = {DELIVERY_TIMEOUT}

[authward.client_id_metadata]
enabled = true
allow_loopback = true

[login]
cookie_secret = "{"b" * 40}"
""",
        encoding="utf-8",
    )
    return keys, config


async def _mean_ms(step: Callable[[int], Awaitable[object]], rounds: int) -> float:
    samples = []
    for i in range(rounds):
        start = time.perf_counter()
        await step(i)
        samples.append(time.perf_counter() - start)
    return statistics.fmean(samples) * 1e3


async def _fan_out(
    server: AuthorizationServer, receivers: int, delay: float, rounds: int
) -> FlowMeasurement:
    async with receivers_at(receivers, delay) as ports:
        targets = [
            LogoutTarget(f"rp-{i}", f"http://127.0.0.1:{port}/bc", f"sid-{i}", False)
            for i, port in enumerate(ports)
        ]

        async def together(_: int) -> object:
            outcomes = await deliver_logout_tokens(server, targets, subject="alice")
            assert all(outcome.delivered for outcome in outcomes), outcomes
            return outcomes

        async def one_by_one(_: int) -> None:
            for target in targets:
                (outcome,) = await deliver_logout_tokens(server, [target], subject="alice")
                assert outcome.delivered, outcome

        baseline = await _mean_ms(one_by_one, rounds)
        mean = await _mean_ms(together, rounds)
    return FlowMeasurement(
        f"logout fan-out to {receivers} receivers ({delay * 1e3:.0f} ms each) vs one by one",
        rounds,
        mean,
        baseline,
        mean / baseline,
    )


@asynccontextmanager
async def receivers_at(count: int, delay: float | None) -> AsyncIterator[list[int]]:
    """``count`` receivers with the same ``delay``; yields their ports."""
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(receiver(delay)) for _ in range(count)]


async def _user_wait(
    server: AuthorizationServer, engine: AsyncEngine, rounds: int
) -> list[FlowMeasurement]:
    dispatcher = LogoutDispatcher()
    async with receiver(0.0) as fast, receiver(None) as hanging:
        uris = (f"http://127.0.0.1:{fast}/bc", f"http://127.0.0.1:{hanging}/bc")

        async def record(i: int) -> None:
            for index, uri in enumerate(uris):
                await server.stores.logout_sessions.record(
                    LogoutSession(
                        sid=f"round-{i}",
                        subject="alice",
                        client_id=f"rp-{index}",
                        backchannel_logout_uri=uri,
                        expires_at=int(time.time()) + 600,
                    )
                )

        for i in range(rounds):
            await record(i)

        async def baseline(_: int) -> None:
            async with engine.begin() as conn:
                await conn.execute(sa.text("SELECT 1"))

        async def logout(i: int) -> None:
            told = await start_backchannel_logout(
                server, dispatcher, sid=f"round-{i}", subject="alice"
            )
            assert told == len(uris), told

        base = await _mean_ms(baseline, rounds)
        mean = await _mean_ms(logout, rounds)
        start = time.perf_counter()
        await dispatcher.drain()
        drained = (time.perf_counter() - start) * 1e3
    return [
        FlowMeasurement(
            "user's wait at logout (take + dispatch), one receiver hanging, vs a trivial "
            "transaction",
            rounds,
            mean,
            base,
            mean / base,
        ),
        FlowMeasurement(
            f"background delivery until drained vs the {DELIVERY_TIMEOUT:.0f} s deadline",
            1,
            drained,
            DELIVERY_TIMEOUT * 1e3,
            drained / (DELIVERY_TIMEOUT * 1e3),
        ),
    ]


def _document(port: int, path: str) -> bytes:
    url = f"http://127.0.0.1:{port}{path}"
    return json.dumps(
        {
            "client_id": url,
            "client_name": "bench",
            "redirect_uris": [f"http://127.0.0.1:{port}/callback"],
            "token_endpoint_auth_method": "none",
        }
    ).encode()


async def _cimd(server: AuthorizationServer, rounds: int) -> FlowMeasurement:
    registry = server.clients
    async with receiver(0.0, _document) as port:
        warm_url = f"http://127.0.0.1:{port}/warm.json"
        assert await registry.get_client(warm_url) is not None

        async def cached(_: int) -> None:
            assert await registry.get_client(warm_url) is not None

        async def fetched(i: int) -> None:
            assert await registry.get_client(f"http://127.0.0.1:{port}/cold-{i}.json") is not None

        base = await _mean_ms(fetched, rounds)
        mean = await _mean_ms(cached, rounds)
    return FlowMeasurement(
        "CIMD client resolved from a fresh cache entry vs fetched, validated and cached",
        rounds,
        mean,
        base,
        mean / base,
    )


async def main(rounds: int) -> list[FlowMeasurement]:
    """Measure every flow figure on SQLite and print them."""
    with tempfile.TemporaryDirectory() as tmp:
        keys, config = _config(Path(tmp))
        settings = load_settings(config)
        built = build_server(
            settings,
            database_url=f"sqlite:///{tmp}/flows.db",
            key_file=keys,
            config_file=config,
        )
        try:
            await prepare_database(built.engine, settings)
            results = [
                await _fan_out(built.server, 8, 0.05, rounds),
                await _fan_out(built.server, 4, 0.05, rounds),
                *await _user_wait(built.server, built.engine, rounds),
                await _cimd(built.server, rounds),
            ]
        finally:
            await built.engine.dispose()
    print("\nflows (SQLite): mean per round; ratio = mean / baseline measured in the same run")
    print(f"{'figure':92} {'mean ms':>9} {'base ms':>9} {'ratio':>6}")
    for m in results:
        print(f"{m.name:92} {m.mean_ms:9.1f} {m.baseline_ms:9.1f} {m.ratio:6.2f}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "flows.json").write_text(json.dumps([asdict(m) for m in results], indent=2))
    return results
