"""The orchestrator of ``python -m bench http``: servers up, setup, every run through the
driver process, figures into ``bench/results/http.json``.

Spec: authward GitHub issue 10 item 1 (scenarios at concurrency 1, 8 and 64 on SQLite and
PostgreSQL against a floor, the wrong-secret flood, the soak).

Per engine: a fresh database (a SQLite file in a temporary directory, or a new PostgreSQL
database dropped afterwards), a key file from ``authward keys generate``, the config of
:mod:`bench.http.deployment`, ``authward serve`` on a free port, then the floor (configured
with what authward returned for each scenario) on another. For each scenario and concurrency
the driver runs against authward, then the floor, with what that run consumes made just before
it (codes, refresh chains, access tokens) and, between runs, a wait until the server is idle.
The flood and the soak run against authward only. Servers are stopped and the database dropped
however the engine's runs end; a failed run is recorded with its message and the next one
goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Final, Literal

from bench.http import provision
from bench.http.deployment import (
    DPOP_CLIENT,
    FLOOD_CLIENT,
    JWT_CLIENT,
    REDIRECT_URI,
    WEB_CLIENT,
    Credentials,
    authward_config,
)
from bench.http.floor import FloorConfig, write_config
from bench.http.jobs import (
    DriverResult,
    Job,
    Phase,
    Scenario,
    Stats,
    Workload,
    read_result,
    write_json,
)
from bench.http.provision import AuthwardSetup, FloorSetup, basic_authorization
from bench.http.servers import (
    REPOSITORY,
    ServerProcess,
    authward_executable,
    child_environment,
    free_port,
    fresh_postgres_database,
    running,
    serve_logs_access_by_default,
    wait_until_idle,
)

__all__ = [
    "Engine",
    "FloodRecord",
    "Options",
    "RunRecord",
    "SoakRecord",
    "run_flood_and_matrix",
    "run_soak",
]

Engine = Literal["sqlite", "postgresql"]
Server = Literal["authward", "floor"]
SERVERS: Final[tuple[Server, ...]] = ("authward", "floor")
#: Access tokens each server mints for the introspection scenario (cycled by the driver).
INTROSPECTION_TOKENS: Final = 32
#: Extra seconds a driver process may take beyond its windows, pre-building and draining.
DRIVER_SLACK: Final = 180.0
CPUS: Final = os.cpu_count() or 1


@dataclass(frozen=True)
class Options:
    """What to run (see ``python -m bench http --help``)."""

    scenarios: tuple[Scenario, ...]
    engines: tuple[Engine, ...]
    concurrencies: tuple[int, ...]
    warmup: float
    duration: float
    flood: bool
    matrix: bool
    pg_url: str
    max_codes: int
    max_prebuilt: int
    drain_timeout: float
    soak_seconds: float | None = None
    soak_concurrency: int = 2
    soak_sample: float = 5.0
    flood_concurrency: int = 64
    flood_source: str = "127.0.0.2"


@dataclass(frozen=True)
class RunRecord:
    """One driver run of one scenario at one concurrency against one server on one engine.

    ``server_cpu_per_1k`` is server CPU seconds per 1,000 completed requests; ``driver_share``
    and ``server_share`` are CPU seconds over (window x cores). ``prepared`` says what the run
    was given (codes minted, assertions or proofs pre-signed, chains, tokens). ``load_1m`` is
    the machine's one-minute load average just before the run (other work on the machine
    shows there).
    """

    engine: Engine
    server: Server
    scenario: Scenario
    concurrency: int
    rps: float = 0.0
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    completed: int = 0
    ok: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    socket_errors: dict[str, int] = field(default_factory=dict)
    window_s: float = 0.0
    server_cpu_s: float = 0.0
    server_cpu_per_1k: float | None = None
    server_share: float = 0.0
    driver_cpu_s: float = 0.0
    driver_share: float = 0.0
    prebuild_cpu_s: float = 0.0
    prepared: dict[str, int] = field(default_factory=dict)
    exhausted: bool = False
    broken_chains: int = 0
    drained: bool = True
    load_1m: float | None = None
    failure: str | None = None

    @property
    def errors(self) -> int:
        """Non-2xx responses plus socket errors."""
        return (self.completed - self.ok) + sum(self.socket_errors.values())


@dataclass(frozen=True)
class FloodRecord:
    """The wrong-secret flood on one engine: the legitimate client's p99 alone and under the
    flood, their ratio, and every answer counted by status (5xx separately). The legitimate
    client connects from 127.0.0.1, the flooders from ``flood_source``."""

    engine: Engine
    flood_concurrency: int
    flood_source: str = ""
    unloaded_p99_ms: float | None = None
    loaded_p99_ms: float | None = None
    p99_ratio: float | None = None
    unloaded_rps: float = 0.0
    loaded_rps: float = 0.0
    legit_statuses_unloaded: dict[str, int] = field(default_factory=dict)
    legit_statuses_loaded: dict[str, int] = field(default_factory=dict)
    flood_statuses: dict[str, int] = field(default_factory=dict)
    flood_rps: float = 0.0
    socket_errors: dict[str, int] = field(default_factory=dict)
    server_5xx: int = 0
    server_share_loaded: float = 0.0
    driver_share_loaded: float = 0.0
    failure: str | None = None


@dataclass(frozen=True)
class SoakRecord:
    """The soak on one engine: mixed load for ``seconds``, the server's RSS sampled (MB
    figures are medians over a span, see :func:`soak_record`; ``rss_idle_end_mb`` is one
    reading after the load drained)."""

    engine: Engine
    seconds: float
    concurrency_per_workload: int
    requests: int = 0
    ok: int = 0
    errors: int = 0
    per_workload: list[dict[str, Any]] = field(default_factory=list)
    rss_first_minute_mb: float | None = None
    rss_first_minute_at_s: float | None = None
    rss_end_mb: float | None = None
    rss_growth_pct: float | None = None
    rss_idle_end_mb: float | None = None
    rss_samples: list[tuple[float, int]] = field(default_factory=list)
    server_share: float = 0.0
    driver_share: float = 0.0
    failure: str | None = None


def log(message: str) -> None:
    """Progress on stderr."""
    print(message, file=sys.stderr, flush=True)


# --- one engine's servers --------------------------------------------------------------------


@dataclass
class Deployment:
    """One engine's running pair: authward and the floor, their setups and what the runs
    carry from one to the next (refresh chains)."""

    engine: Engine
    directory: Path
    database_url: str
    credentials: Credentials
    authward: ServerProcess
    floor: ServerProcess
    aw: AuthwardSetup
    fl: FloorSetup
    chains: dict[tuple[Server, str], list[str]] = field(default_factory=dict)
    access_tokens: dict[Server, list[str]] = field(default_factory=dict)

    def server(self, which: Server) -> ServerProcess:
        return self.authward if which == "authward" else self.floor

    def port(self, which: Server) -> int:
        return int(self.server(which).ready_url.split(":")[2].split("/")[0])


@contextlib.asynccontextmanager
async def _database(engine: Engine, directory: Path, pg_url: str) -> AsyncIterator[str]:
    if engine == "sqlite":
        yield f"sqlite:///{directory / 'bench.db'}"
        return
    async with fresh_postgres_database(pg_url) as url:
        yield url


@contextlib.asynccontextmanager
async def deployed(engine: Engine, options: Options) -> AsyncIterator[Deployment]:
    """Both servers of ``engine`` running with their setups (all torn down on exit)."""
    with tempfile.TemporaryDirectory(prefix=f"authward-bench-{engine}-") as tmp:
        directory = Path(tmp)
        async with _database(engine, directory, options.pg_url) as database_url:
            credentials = Credentials()
            config = directory / "authward.toml"
            config.write_text(authward_config(credentials), encoding="utf-8")
            keys = directory / "keys.json"
            await asyncio.to_thread(_generate_keys, keys)
            aw_port, floor_port = free_port(), free_port()
            authward = ServerProcess(
                f"authward serve ({engine})",
                [
                    authward_executable(),
                    "serve",
                    "--config",
                    str(config),
                    "--database-url",
                    database_url,
                    "--key-file",
                    str(keys),
                    "--port",
                    str(aw_port),
                ],
                f"http://127.0.0.1:{aw_port}/.well-known/openid-configuration",
                directory / "authward.log",
            )
            floor_config = directory / "floor.json"
            floor = ServerProcess(
                f"floor ({engine})",
                [
                    sys.executable,
                    "-m",
                    "bench.http.floor",
                    str(floor_config),
                    "--port",
                    str(floor_port),
                ],
                f"http://127.0.0.1:{floor_port}/health",
                directory / "floor.log",
            )
            with running([authward, floor]):
                log(f"[{engine}] starting authward serve on port {aw_port}")
                authward.start()
                aw = AuthwardSetup(f"http://127.0.0.1:{aw_port}", credentials)
                fl = FloorSetup(f"http://127.0.0.1:{floor_port}", database_url, credentials)
                try:
                    shapes = await aw.shapes()
                    write_config(
                        floor_config,
                        FloorConfig(
                            database_url=database_url,
                            issuer=f"http://127.0.0.1:{floor_port}",
                            key_file=str(keys),
                            secret_client=WEB_CLIENT,
                            secret_digest=_sha256_hex(credentials.web_secret),
                            jwt_client=JWT_CLIENT,
                            jwt_client_jwk=credentials.jwt_public_jwk(),
                            dpop_client=DPOP_CLIENT,
                            redirect_uri=REDIRECT_URI,
                            shapes={k: v for k, v in shapes.items()},
                            access_log=serve_logs_access_by_default(),
                        ),
                    )
                    await fl.prepare()
                    log(f"[{engine}] starting the floor on port {floor_port}")
                    floor.start()
                    yield Deployment(
                        engine, directory, database_url, credentials, authward, floor, aw, fl
                    )
                except Exception:
                    for server in (authward, floor):
                        if server.process is not None:
                            log(f"--- end of the {server.name} log ---\n{server.log_tail(3000)}")
                    raise
                finally:
                    await aw.close()
                    await fl.close()


def _generate_keys(path: Path) -> None:
    """``authward keys generate --file path`` (ES256 and RS256, as a user would)."""
    subprocess.run(  # noqa: S603 - our own CLI, fixed arguments
        [authward_executable(), "keys", "generate", "--file", str(path)],
        env=child_environment(),
        check=True,
        capture_output=True,
        timeout=120,
    )


def _sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- the driver process ----------------------------------------------------------------------


def drive(job: Job, directory: Path, name: str) -> DriverResult:
    """Run ``job`` in a driver process; a crash or a timeout becomes the result's failure."""
    job_path, result_path = directory / f"{name}.job.json", directory / f"{name}.result.json"
    write_json(job_path, job)
    result_path.unlink(missing_ok=True)
    limit = job.warmup * 2 + job.duration * 2 + job.drain_timeout + DRIVER_SLACK
    try:
        completed = subprocess.run(  # noqa: S603 - our own module
            [sys.executable, "-m", "bench.http.driver", str(job_path), str(result_path)],
            env=child_environment(),
            cwd=REPOSITORY,
            capture_output=True,
            text=True,
            timeout=limit,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return DriverResult(phases=(), failure=f"driver did not finish within {limit:.0f} s")
    if completed.returncode != 0 or not result_path.exists():
        return DriverResult(
            phases=(),
            failure=f"driver exited {completed.returncode}: {completed.stderr[-2000:]}",
        )
    return read_result(result_path)


# --- the matrix ------------------------------------------------------------------------------


def _budget(rate: float | None, options: Options, concurrency: int, cap: int) -> int:
    """How many single-use requests a run may need: 1.5x what ``rate`` would use over
    warm-up plus window, within [20, cap]; ``cap`` when no rate is known."""
    if rate is None:
        return cap
    wanted = math.ceil(rate * (options.warmup + options.duration) * 1.5) + 2 * concurrency
    return max(20, min(cap, wanted))


def _run_budget(
    rates: dict[tuple[Server, int], float],
    options: Options,
    server: Server,
    scenario: Scenario,
    concurrency: int,
) -> int:
    """The budget of one run. Codes minted through authward's pages (slow to make) are sized
    by authward's own client_credentials rate at this concurrency (a code exchange does all
    of its work and more); everything else by the floor's, an upper bound for any scenario on
    either server."""
    if scenario == "code_exchange" and server == "authward":
        return _budget(
            rates.get(("authward", concurrency)), options, concurrency, options.max_codes
        )
    return _budget(rates.get(("floor", concurrency)), options, concurrency, options.max_prebuilt)


#: Longest warm-up plus window for pre-signed DPoP proofs (authward accepts a proof's ``iat``
#: for 60 s); longer runs sign one proof per request in the driver.
PRESIGNED_PROOF_SECONDS: Final = 45.0
#: Same for pre-signed client assertions (the bench signs them for 120 s).
PRESIGNED_ASSERTION_SECONDS: Final = 100.0


async def _workload(
    d: Deployment,
    server: Server,
    scenario: Scenario,
    concurrency: int,
    budget: int,
    run_seconds: float,
) -> tuple[Workload, dict[str, int]]:
    """The workload of one run, with what it consumes made now (``budget`` codes, assertions
    or proofs; those are signed per request instead when the run is too long for them)."""
    aw = server == "authward"
    port = d.port(server)
    base = f"http://127.0.0.1:{port}"
    prefix = "" if aw else f"/{scenario}"
    token_path = f"{prefix}/token"
    basic = basic_authorization(WEB_CLIENT, d.credentials.web_secret)
    if scenario == "cc_secret_basic":
        return Workload(scenario, token_path, concurrency, authorization=basic, scope="api"), {}
    if scenario == "cc_private_key_jwt":
        return (
            Workload(
                scenario,
                token_path,
                concurrency,
                client_id=JWT_CLIENT,
                scope="api",
                key_pem=d.credentials.jwt_key_pem,
                kid=d.credentials.jwt_public_jwk()["kid"],
                audience=base,
                prebuild=budget if run_seconds <= PRESIGNED_ASSERTION_SECONDS else 0,
            ),
            {"assertions": budget if run_seconds <= PRESIGNED_ASSERTION_SECONDS else 0},
        )
    if scenario == "code_exchange":
        codes = (
            await d.aw.mint_codes(budget, WEB_CLIENT, provision.CODE_SCOPE)
            if aw
            else await d.fl.codes(budget)
        )
        return (
            Workload(
                scenario,
                token_path,
                concurrency,
                authorization=basic,
                redirect_uri=REDIRECT_URI,
                codes=tuple((c.code, c.verifier) for c in codes),
            ),
            {"codes": len(codes)},
        )
    if scenario in ("refresh_confidential", "refresh_dpop_public"):
        client = WEB_CLIENT if scenario == "refresh_confidential" else DPOP_CLIENT
        chains = d.chains.setdefault((server, client), [])
        missing = concurrency - len(chains)
        if missing > 0:
            made = (
                await d.aw.refresh_chains(missing, client)
                if aw
                else await d.fl.refresh_chains(missing, client)
            )
            chains.extend(made)
        dpop = scenario == "refresh_dpop_public"
        proofs = budget if dpop and run_seconds <= PRESIGNED_PROOF_SECONDS else 0
        return (
            Workload(
                scenario,
                token_path,
                concurrency,
                authorization="" if dpop else basic,
                client_id=client,
                tokens=tuple(chains[:concurrency]),
                key_pem=d.credentials.dpop_key_pem if dpop else "",
                htu=f"{base}{token_path}",
                prebuild=proofs,
            ),
            {"chains": concurrency, **({"proofs": proofs} if dpop else {})},
        )
    tokens = d.access_tokens.get(server)
    if tokens is None:
        tokens = (
            await d.aw.access_tokens(INTROSPECTION_TOKENS)
            if aw
            else await d.fl.access_tokens(INTROSPECTION_TOKENS)
        )
        d.access_tokens[server] = tokens
    path = "/introspect" if aw else "/introspection/introspect"
    return (
        Workload("introspection", path, concurrency, authorization=basic, tokens=tuple(tokens)),
        {"tokens": len(tokens)},
    )


def _record(
    engine: Engine,
    server: Server,
    scenario: Scenario,
    concurrency: int,
    result: DriverResult,
    prepared: dict[str, int],
) -> RunRecord:
    base = RunRecord(engine, server, scenario, concurrency, prepared=prepared)
    if result.failure is not None or not result.phases:
        return replace(base, failure=result.failure or "no measured window", drained=result.drained)
    phase = result.phases[0]
    stats = phase.stats[0]
    return replace(
        base,
        rps=stats.rps,
        p50_ms=stats.p50_ms,
        p90_ms=stats.p90_ms,
        p99_ms=stats.p99_ms,
        max_ms=stats.max_ms,
        completed=stats.completed,
        ok=stats.ok,
        statuses=stats.statuses,
        socket_errors=stats.socket_errors,
        window_s=phase.window_s,
        server_cpu_s=phase.server_cpu_s,
        server_cpu_per_1k=(
            round(phase.server_cpu_s / stats.completed * 1000, 4) if stats.completed else None
        ),
        server_share=_share(phase.server_cpu_s, phase.window_s),
        driver_cpu_s=phase.driver_cpu_s,
        driver_share=_share(phase.driver_cpu_s, phase.window_s),
        prebuild_cpu_s=result.prebuild_cpu_s,
        exhausted=stats.exhausted,
        broken_chains=stats.broken,
        drained=result.drained,
    )


def _share(cpu: float, window: float) -> float:
    return round(cpu / (window * CPUS), 4) if window > 0 else 0.0


def _summary(record: RunRecord) -> str:
    if record.failure:
        return f"FAILED: {record.failure[:300]}"
    p50 = "-" if record.p50_ms is None else f"{record.p50_ms:.1f}"
    p99 = "-" if record.p99_ms is None else f"{record.p99_ms:.1f}"
    extra = " (ran out of pre-built requests)" if record.exhausted else ""
    return (
        f"{record.rps:9.1f} req/s  p50 {p50} ms  p99 {p99} ms  errors {record.errors}"
        f"  driver {record.driver_share:.0%}{extra}"
    )


async def run_matrix(d: Deployment, options: Options, records: list[RunRecord]) -> None:
    """Every scenario x concurrency against authward, then the floor, on ``d``."""
    rates: dict[tuple[Server, int], float] = {}
    for scenario in options.scenarios:
        for concurrency in options.concurrencies:
            for server in SERVERS:
                name = f"{d.engine}-{server}-{scenario}-c{concurrency}"
                budget = _run_budget(rates, options, server, scenario, concurrency)
                try:
                    workload, prepared = await _workload(
                        d,
                        server,
                        scenario,
                        concurrency,
                        budget,
                        options.warmup + options.duration,
                    )
                except Exception as exc:  # recorded; the next run goes on
                    record = RunRecord(
                        d.engine,
                        server,
                        scenario,
                        concurrency,
                        failure=f"setup failed: {type(exc).__name__}: {exc}",
                    )
                else:
                    job = Job(
                        mode="run",
                        host="127.0.0.1",
                        port=d.port(server),
                        server_pid=d.server(server).pid,
                        workloads=(workload,),
                        warmup=options.warmup,
                        duration=options.duration,
                        drain_timeout=options.drain_timeout,
                    )
                    load = os.getloadavg()[0]
                    result = await asyncio.to_thread(drive, job, d.directory, name)
                    record = _record(d.engine, server, scenario, concurrency, result, prepared)
                    record = replace(record, load_1m=round(load, 2))
                    if result.chains and result.chains[0] and workload.tokens:
                        _carry_chains(d, server, workload, result.chains[0])
                records.append(record)
                if scenario == "cc_secret_basic" and record.rps > 0:
                    rates[(server, concurrency)] = record.rps
                log(f"[{name}] {_summary(record)}")
                await asyncio.to_thread(wait_until_idle, d.server(server).pid)


def _carry_chains(d: Deployment, server: Server, workload: Workload, ends: Sequence[str]) -> None:
    """Keep the live chain ends for the next run (broken chains are dropped)."""
    chains = d.chains[(server, workload.client_id)]
    used = len(workload.tokens)
    chains[:used] = list(ends)


# --- the flood -------------------------------------------------------------------------------


async def run_flood(d: Deployment, options: Options) -> FloodRecord:
    """The legitimate client (c=1, from 127.0.0.1) alone, then under ``flood_concurrency``
    wrong-secret connections (from ``flood_source``), against authward."""
    basic = basic_authorization(WEB_CLIENT, d.credentials.web_secret)
    wrong = basic_authorization(FLOOD_CLIENT, "wrong-" + d.credentials.flood_secret)
    job = Job(
        mode="flood",
        host="127.0.0.1",
        port=d.port("authward"),
        server_pid=d.authward.pid,
        workloads=(
            Workload("cc_secret_basic", "/token", 1, authorization=basic, scope="api"),
            Workload(
                "wrong_secret",
                "/token",
                options.flood_concurrency,
                authorization=wrong,
                scope="api",
                source_address=options.flood_source,
            ),
        ),
        warmup=options.warmup,
        duration=options.duration,
        drain_timeout=options.drain_timeout,
    )
    result = await asyncio.to_thread(drive, job, d.directory, f"{d.engine}-flood")
    await asyncio.to_thread(wait_until_idle, d.authward.pid)
    base = FloodRecord(d.engine, options.flood_concurrency, options.flood_source)
    if result.failure is not None or len(result.phases) != 2:
        return replace(base, failure=result.failure or "the flood did not measure both phases")
    alone, loaded = result.phases
    legit0, legit1, flood = alone.stats[0], loaded.stats[0], loaded.stats[1]
    statuses = [legit0.statuses, legit1.statuses, flood.statuses]
    errors: dict[str, int] = {}
    for stats in (legit0, legit1, flood):
        for name, count in stats.socket_errors.items():
            errors[name] = errors.get(name, 0) + count
    ratio = None
    if legit0.p99_ms and legit1.p99_ms is not None:
        ratio = round(legit1.p99_ms / legit0.p99_ms, 2)
    return replace(
        base,
        unloaded_p99_ms=legit0.p99_ms,
        loaded_p99_ms=legit1.p99_ms,
        p99_ratio=ratio,
        unloaded_rps=legit0.rps,
        loaded_rps=legit1.rps,
        legit_statuses_unloaded=legit0.statuses,
        legit_statuses_loaded=legit1.statuses,
        flood_statuses=flood.statuses,
        flood_rps=round(flood.completed / loaded.window_s, 2) if loaded.window_s else 0.0,
        socket_errors=errors,
        server_5xx=sum(n for s in statuses for code, n in s.items() if code.startswith("5")),
        server_share_loaded=_share(loaded.server_cpu_s, loaded.window_s),
        driver_share_loaded=_share(loaded.driver_cpu_s, loaded.window_s),
    )


def _flood_summary(record: FloodRecord) -> str:
    if record.failure:
        return f"FAILED: {record.failure[:300]}"
    return (
        f"legit p99 {record.unloaded_p99_ms} ms alone, {record.loaded_p99_ms} ms under the "
        f"flood (x{record.p99_ratio}); legit answers flooded {record.legit_statuses_loaded}; "
        f"flood answers {record.flood_statuses}; 5xx {record.server_5xx}"
    )


async def run_flood_and_matrix(
    options: Options,
) -> tuple[list[RunRecord], list[FloodRecord], list[str]]:
    """The matrix and the flood on every engine of ``options``; also the failures that
    stopped an engine early (its servers could not start, for example)."""
    records: list[RunRecord] = []
    floods: list[FloodRecord] = []
    failures: list[str] = []
    for engine in options.engines:
        try:
            async with deployed(engine, options) as d:
                if options.matrix:
                    await run_matrix(d, options, records)
                if options.flood:
                    flood = await run_flood(d, options)
                    floods.append(flood)
                    log(f"[{engine}-flood] {_flood_summary(flood)}")
        except Exception as exc:  # reported, the next engine still runs
            failures.append(f"{engine}: {type(exc).__name__}: {exc}")
            log(f"[{engine}] FAILED: {type(exc).__name__}: {exc}")
    return records, floods, failures


# --- the soak --------------------------------------------------------------------------------


async def _soak_workloads(d: Deployment, options: Options) -> tuple[Workload, ...]:
    c = options.soak_concurrency
    basic = basic_authorization(WEB_CLIENT, d.credentials.web_secret)
    base = f"http://127.0.0.1:{d.port('authward')}"
    web_chains = await d.aw.refresh_chains(c, WEB_CLIENT)
    dpop_chains = await d.aw.refresh_chains(c, DPOP_CLIENT)
    tokens = await d.aw.access_tokens(INTROSPECTION_TOKENS)
    return (
        Workload("cc_secret_basic", "/token", c, authorization=basic, scope="api"),
        Workload(
            "cc_private_key_jwt",
            "/token",
            c,
            client_id=JWT_CLIENT,
            scope="api",
            key_pem=d.credentials.jwt_key_pem,
            kid=d.credentials.jwt_public_jwk()["kid"],
            audience=base,
        ),
        Workload(
            "code_flow",
            "/token",
            c,
            authorization=basic,
            client_id=WEB_CLIENT,
            scope=provision.CODE_SCOPE,
            redirect_uri=REDIRECT_URI,
            cookie=d.aw.login_cookie(),
            authorize_path="/authorize",
        ),
        Workload(
            "refresh_confidential",
            "/token",
            c,
            authorization=basic,
            client_id=WEB_CLIENT,
            tokens=tuple(web_chains),
        ),
        Workload(
            "refresh_dpop_public",
            "/token",
            c,
            client_id=DPOP_CLIENT,
            tokens=tuple(dpop_chains),
            key_pem=d.credentials.dpop_key_pem,
            htu=f"{base}/token",
        ),
        Workload("introspection", "/introspect", c, authorization=basic, tokens=tuple(tokens)),
    )


def _stats_row(stats: Stats) -> dict[str, Any]:
    return {
        "kind": stats.kind,
        "completed": stats.completed,
        "ok": stats.ok,
        "rps": stats.rps,
        "p50_ms": stats.p50_ms,
        "p99_ms": stats.p99_ms,
        "statuses": stats.statuses,
        "socket_errors": stats.socket_errors,
        "broken_chains": stats.broken,
    }


def _median_mb(samples: Sequence[tuple[float, int]]) -> float | None:
    values = sorted(b for _, b in samples)
    return round(values[len(values) // 2] / 2**20, 1) if values else None


def soak_record(engine: Engine, options: Options, result: DriverResult) -> SoakRecord:
    """The soak's figures from the driver's result.

    RSS under load swings with what is in flight (an argon2 verification alone allocates its
    memory cost), so each figure is the median of the samples over a span (a minute, or a
    quarter of a soak shorter than four minutes): the span starting after the first minute
    (after half the soak when it is shorter than two), and the soak's last span.
    """
    seconds = float(options.soak_seconds or 0)
    base = SoakRecord(engine, seconds, options.soak_concurrency)
    if result.failure is not None or not result.phases:
        return replace(base, failure=result.failure or "no soak window")
    phase: Phase = result.phases[0]
    samples = list(result.rss_samples)
    mark = min(60.0, seconds / 2)
    span = min(60.0, seconds / 4)
    first = [(t, b) for t, b in samples if mark <= t < mark + span] or samples[:1]
    last_time = samples[-1][0] if samples else 0.0
    end = [(t, b) for t, b in samples if t > last_time - span] or samples[-1:]
    first_mb, end_mb = _median_mb(first), _median_mb(end)
    growth = None
    if first_mb and end_mb is not None:
        growth = round((end_mb - first_mb) / first_mb * 100, 2)
    completed = sum(s.completed for s in phase.stats)
    ok = sum(s.ok for s in phase.stats)
    socket_errors = sum(sum(s.socket_errors.values()) for s in phase.stats)
    return replace(
        base,
        requests=completed,
        ok=ok,
        errors=completed - ok + socket_errors,
        per_workload=[_stats_row(s) for s in phase.stats],
        rss_first_minute_mb=first_mb,
        rss_first_minute_at_s=first[0][0] if first else None,
        rss_end_mb=end_mb,
        rss_growth_pct=growth,
        rss_idle_end_mb=round(result.rss_idle_bytes / 2**20, 1),
        rss_samples=samples,
        server_share=_share(phase.server_cpu_s, phase.window_s),
        driver_share=_share(phase.driver_cpu_s, phase.window_s),
    )


async def run_soak(options: Options) -> tuple[list[SoakRecord], list[str]]:
    """The soak against authward on every engine of ``options``."""
    records: list[SoakRecord] = []
    failures: list[str] = []
    seconds = float(options.soak_seconds or 0)
    for engine in options.engines:
        try:
            async with deployed(engine, options) as d:
                workloads = await _soak_workloads(d, options)
                log(f"[{engine}-soak] {seconds:.0f} s of mixed load against authward")
                job = Job(
                    mode="soak",
                    host="127.0.0.1",
                    port=d.port("authward"),
                    server_pid=d.authward.pid,
                    workloads=workloads,
                    warmup=0.0,
                    duration=seconds,
                    drain_timeout=options.drain_timeout,
                    sample_interval=options.soak_sample,
                )
                result = await asyncio.to_thread(drive, job, d.directory, f"{engine}-soak")
                record = soak_record(engine, options, result)
                records.append(record)
                log(
                    f"[{engine}-soak] {record.requests} requests, {record.errors} errors, RSS "
                    f"{record.rss_first_minute_mb} MB -> {record.rss_end_mb} MB "
                    f"({record.rss_growth_pct}%)"
                    + (f" FAILED: {record.failure}" if record.failure else "")
                )
        except Exception as exc:
            failures.append(f"{engine}: {type(exc).__name__}: {exc}")
            log(f"[{engine}-soak] FAILED: {type(exc).__name__}: {exc}")
    return records, failures


def as_json(value: RunRecord | FloodRecord | SoakRecord) -> dict[str, Any]:
    """A record as a JSON object."""
    return asdict(value)
