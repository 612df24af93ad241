"""Store operation cost, in units of one trivial write transaction on the same engine.

The baseline is ``BEGIN; SELECT 1; COMMIT`` through the same AsyncEngine and pool (on SQLite the
engine's ``BEGIN IMMEDIATE``), measured in the same run right before each store is measured, so a
ratio of 1.0 means "as cheap as the cheapest round trip the engine can make" and machine speed
cancels out. The device-grant figures are the four steps of one RFC 8628 flow, the logout
figures the per-ID-token record and the single-use fan-out read, and the CIMD figure a fresh
cache hit (what every request of a CIMD client costs while its document is fresh). The refresh
rotation is also compared head to head with the three-commit sequence
of attesto_phoenix 0.19 (consume, insert child, remember successor) that spec §3.2.8 replaces.

Each run uses a fresh SQLite file, or tables under a random prefix in the PostgreSQL database
that are dropped afterwards; nothing is left behind.
Results are printed and written as JSON to ``bench/results/stores-<engine>.json``.
"""

from __future__ import annotations

import json
import secrets
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from authward.core.device_codes import (
    IssuedDeviceCode,
    approve_user_code,
    issue_device_code,
    redeem_device_code,
)
from authward.stores.codes import CodeEntry
from authward.stores.consent import ConsentBinding
from authward.stores.device_codes import Approval
from authward.stores.digest import digest
from authward.stores.logout_sessions import LogoutCriteria, LogoutSession
from authward.stores.refresh import RefreshData, RefreshEntry, Successor
from authward.stores.sql.client_metadata import SqlClientMetadataCache
from authward.stores.sql.codes import SqlAuthorizationCodeStore
from authward.stores.sql.consent import SqlConsentGrantStore
from authward.stores.sql.device_codes import SqlDeviceCodeStore
from authward.stores.sql.engine import create_engine
from authward.stores.sql.logout_sessions import SqlLogoutSessionStore
from authward.stores.sql.par import SqlPushedAuthorizationRequestStore
from authward.stores.sql.refresh import SqlRefreshTokenStore
from authward.stores.sql.replay import SqlReplayStore
from authward.stores.sql.schema import Dialect, build_metadata

RESULTS = Path(__file__).resolve().parent / "results"
KEY = {"k1": b"k" * 32}


@dataclass(frozen=True)
class Measurement:
    """One operation's mean cost and its ratio to the baseline of the same run."""

    engine: str
    operation: str
    iterations: int
    mean_us: float
    baseline_us: float
    ratio: float


Op = Callable[[int], Awaitable[object]]


async def _time(op: Op, iterations: int) -> float:
    """Mean microseconds per call of ``op(i)`` over ``iterations`` sequential calls."""
    samples: list[float] = []
    for i in range(iterations):
        start = time.perf_counter()
        await op(i)
        samples.append(time.perf_counter() - start)
    return statistics.fmean(samples) * 1e6


def _token() -> str:
    return secrets.token_urlsafe(32)


async def _bench_engine(
    kind: str, engine: AsyncEngine, prefix: str, iterations: int
) -> list[Measurement]:
    dialect: Dialect = "postgresql" if kind == "postgresql" else "sqlite"
    tables = build_metadata(prefix, dialect)
    async with engine.begin() as conn:
        await conn.run_sync(tables.metadata.create_all)
    try:
        return await _measure(kind, engine, prefix, iterations)
    finally:
        async with engine.begin() as conn:
            await conn.run_sync(tables.metadata.drop_all)


async def _measure(
    kind: str, engine: AsyncEngine, prefix: str, iterations: int
) -> list[Measurement]:
    codes = SqlAuthorizationCodeStore(engine, table_prefix=prefix)
    refresh = SqlRefreshTokenStore(engine, table_prefix=prefix, successor_keys=KEY)
    replay = SqlReplayStore(engine, table_prefix=prefix)
    consent = SqlConsentGrantStore(engine, table_prefix=prefix)
    par = SqlPushedAuthorizationRequestStore(engine, table_prefix=prefix)
    devices = SqlDeviceCodeStore(engine, table_prefix=prefix)
    logout = SqlLogoutSessionStore(engine, table_prefix=prefix)
    cimd = SqlClientMetadataCache(engine, table_prefix=prefix)
    now = time.time()

    async def baseline(_: int) -> None:
        async with engine.begin() as conn:
            await conn.execute(sa.text("SELECT 1"))

    code_hashes = [digest(_token()) for _ in range(iterations)]

    async def code_put(i: int) -> None:
        await codes.put(
            CodeEntry(
                code_hash=code_hashes[i],
                client_id="bench",
                subject="alice",
                redirect_uri="https://rp.example/cb",
                expires_at=int(now) + 60,
                scope=("openid",),
                code_challenge="x" * 43,
                code_challenge_method="S256",
                family_id=_token(),
            )
        )

    async def code_take(i: int) -> object:
        return await codes.take(code_hashes[i])

    # Refresh: one parent per iteration, rotated either atomically or the 0.19 way.
    data = RefreshData(subject="alice", scope=("openid", "offline_access"), client_id="bench")

    async def fresh_parent() -> tuple[str, RefreshEntry]:
        family = _token()
        parent = _token()
        entry = RefreshEntry(
            token_hash=digest(parent),
            family_id=family,
            generation=0,
            data=data,
            expires_at=int(now) + 3600,
        )
        await refresh.insert(entry)
        return parent, entry

    def child_of(parent: RefreshEntry) -> tuple[RefreshEntry, Successor]:
        token = _token()
        child = RefreshEntry(
            token_hash=digest(token),
            family_id=parent.family_id,
            generation=1,
            data=data,
            expires_at=int(now) + 3600,
        )
        return child, Successor(token=token, generation=1, context=data, retry_until=None)

    parents_atomic = [await fresh_parent() for _ in range(iterations)]
    parents_legacy = [await fresh_parent() for _ in range(iterations)]

    async def rotate_atomic(i: int) -> object:
        _, parent = parents_atomic[i]
        child, successor = child_of(parent)
        return await refresh.rotate(parent.token_hash, child, successor)

    async def rotate_three_commits(i: int) -> object:
        _, parent = parents_legacy[i]
        child, successor = child_of(parent)
        await refresh.consume(parent.token_hash)
        await refresh.insert(child)
        return await refresh.remember_successor(parent.token_hash, successor)

    async def replay_record(i: int) -> object:
        return await replay.check_and_record("dpop", f"jti-{i}-{_token()}")

    binding = ConsentBinding(
        subject="alice",
        client_id="bench",
        redirect_uri="https://rp.example/cb",
        scope=("openid",),
        code_challenge="x" * 43,
        code_challenge_method="S256",
    )
    grants: list[str] = []

    async def consent_mint(_: int) -> None:
        grants.append(await consent.mint(binding, 60))

    async def consent_consume(i: int) -> object:
        return await consent.consume(grants[i], binding)

    uris = [f"urn:ietf:params:oauth:request_uri:{_token()}" for _ in range(iterations)]
    params: dict[str, Any] = {"client_id": "bench", "scope": "openid", "state": "s"}

    async def par_put(i: int) -> object:
        return await par.put(uris[i], params, 90)

    async def par_take(i: int) -> object:
        return await par.take(uris[i])

    # Device grant: issue (user-code allocation included), the pending poll a device makes every
    # interval, the approval, and the redeeming poll (poll + single-use consume).
    device_codes: list[str] = []
    user_codes: list[str] = []

    async def device_issue(_: int) -> None:
        issued = await issue_device_code(devices, client_id="bench", now=now, scope=("openid",))
        if not isinstance(issued, IssuedDeviceCode):
            raise RuntimeError("no user code could be allocated")
        device_codes.append(issued.device_code)
        user_codes.append(issued.user_code)

    async def device_poll_pending(i: int) -> object:
        return await redeem_device_code(devices, device_codes[i], "bench", None, 0, now)

    async def device_approve(i: int) -> object:
        return await approve_user_code(devices, user_codes[i], Approval("alice"), now=now)

    async def device_redeem(i: int) -> object:
        return await redeem_device_code(devices, device_codes[i], "bench", None, 0, now + 1)

    # Back-channel logout: one row per ID token minted, then the single-use fan-out read.
    async def logout_record(i: int) -> object:
        return await logout.record(
            LogoutSession(
                sid=f"sid-{i}",
                subject="alice",
                client_id="bench",
                backchannel_logout_uri="https://rp.example/bc",
                expires_at=int(now) + 3600,
            )
        )

    async def logout_take(i: int) -> object:
        return await logout.take_targets(LogoutCriteria(sid=f"sid-{i}"))

    cimd_url = "https://client.example/cimd.json"
    await cimd.put(cimd_url, {"client_id": cimd_url, "redirect_uris": ["https://c/cb"]}, now + 3600)

    async def cimd_hit(_: int) -> object:
        return await cimd.get(cimd_url)

    plan: list[tuple[str, Op]] = [
        ("authorization_code.put", code_put),
        ("authorization_code.take", code_take),
        ("refresh.rotate (one transaction)", rotate_atomic),
        ("refresh.consume+insert+remember (0.19, three commits)", rotate_three_commits),
        ("replay.check_and_record", replay_record),
        ("consent.mint", consent_mint),
        ("consent.consume", consent_consume),
        ("par.put", par_put),
        ("par.take", par_take),
        ("device: issue_device_code (put)", device_issue),
        ("device: pending poll (authorization_pending)", device_poll_pending),
        ("device: approve", device_approve),
        ("device: redeeming poll (poll + consume)", device_redeem),
        ("logout_sessions.record", logout_record),
        ("logout_sessions.take_targets", logout_take),
        ("client_metadata.get (fresh hit)", cimd_hit),
    ]
    results: list[Measurement] = []
    for name, op in plan:
        base = await _time(baseline, iterations)
        mean = await _time(op, iterations)
        results.append(Measurement(kind, name, iterations, mean, base, mean / base))
    return results


async def main(iterations: int, engines: tuple[str, ...], pg_url: str) -> None:
    """Measure every engine in ``engines`` and print one table per engine."""
    RESULTS.mkdir(exist_ok=True)
    for kind in engines:
        prefix = "b" + secrets.token_hex(3) + "_"
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{tmp}/bench.db" if kind == "sqlite" else pg_url
            engine = create_engine(url)
            try:
                results = await _bench_engine(kind, engine, prefix, iterations)
            finally:
                await engine.dispose()
        print(f"\n{kind}: mean cost per operation, {iterations} sequential operations each")
        print(f"{'operation':58} {'mean µs':>10} {'baseline µs':>12} {'ratio':>7}")
        for m in results:
            print(f"{m.operation:58} {m.mean_us:10.1f} {m.baseline_us:12.1f} {m.ratio:7.2f}")
        out = RESULTS / f"stores-{kind}.json"
        out.write_text(json.dumps([asdict(m) for m in results], indent=2))
