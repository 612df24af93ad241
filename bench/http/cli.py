"""``python -m bench http``: the token endpoint benchmark against the floor, the wrong-secret
flood and (``--soak``) the soak; results to ``bench/results/http.json`` and docs/performance.md.

Spec: authward GitHub issue 10 item 1.

Without ``--soak``: every scenario x concurrency on every engine against ``authward serve``
and the floor, then the flood, on each engine. With ``--soak [SECONDS]``: only the soak.
Each section of the results file (``matrix``, ``flood``, ``soak``) is replaced by the one this
invocation ran, with its own machine, version and commit information; the others are kept.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sqlite3
import subprocess
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Final, cast

from bench.http.jobs import SCENARIOS, Scenario
from bench.http.report import update_document
from bench.http.runner import (
    Engine,
    Options,
    as_json,
    log,
    run_flood_and_matrix,
    run_soak,
)
from bench.http.servers import REPOSITORY

__all__ = ["main"]

RESULTS: Final = REPOSITORY / "bench" / "results" / "http.json"
DOCUMENT: Final = REPOSITORY / "docs" / "performance.md"
ENGINES: Final[tuple[Engine, ...]] = ("sqlite", "postgresql")
PACKAGES: Final = (
    "uvicorn",
    "starlette",
    "sqlalchemy",
    "asyncpg",
    "aiosqlite",
    "joserfc",
    "cryptography",
    "argon2-cffi",
    "uvloop",
    "httptools",
    "httpx",
)


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def parser() -> argparse.ArgumentParser:
    """The command line of ``python -m bench http``."""
    p = argparse.ArgumentParser(
        prog="python -m bench http",
        description="HTTP benchmark of authward serve's token endpoint against a floor app "
        "(see docs/performance.md).",
    )
    p.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated, from: {', '.join(SCENARIOS)} (default: all)",
    )
    p.add_argument(
        "--engines",
        default=",".join(ENGINES),
        help="comma-separated: sqlite, postgresql (default: both)",
    )
    p.add_argument(
        "--concurrency",
        default="1,8,64",
        help="comma-separated connection counts (default: 1,8,64)",
    )
    p.add_argument(
        "--duration", type=float, default=5.0, help="measured seconds per run (default: 5)"
    )
    p.add_argument(
        "--warmup", type=float, default=1.0, help="seconds of load before each window (default: 1)"
    )
    p.add_argument("--no-flood", action="store_true", help="skip the wrong-secret flood")
    p.add_argument(
        "--flood-only", action="store_true", help="only the wrong-secret flood (no scenario matrix)"
    )
    p.add_argument(
        "--flood-concurrency",
        type=int,
        default=64,
        help="wrong-secret connections of the flood (default: 64)",
    )
    p.add_argument(
        "--flood-same-address",
        action="store_true",
        help="flood from 127.0.0.1 like the legitimate client (default: the flooders "
        "connect from 127.0.0.2, another address of this machine)",
    )
    p.add_argument(
        "--soak",
        type=float,
        nargs="?",
        const=600.0,
        default=None,
        metavar="SECONDS",
        help="run only the soak: mixed load against authward serve for SECONDS "
        "(default 600) on each engine, sampling its RSS",
    )
    p.add_argument(
        "--soak-concurrency",
        type=int,
        default=2,
        help="connections per workload in the soak (default: 2)",
    )
    p.add_argument(
        "--soak-sample",
        type=float,
        default=5.0,
        help="seconds between RSS samples in the soak (default: 5)",
    )
    p.add_argument(
        "--pg-url",
        default=os.environ.get("AUTHWARD_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"),
        help="a PostgreSQL URL whose server may CREATE DATABASE (a fresh authward_bench_* "
        "database is made and dropped); default $AUTHWARD_TEST_PG_URL or the local test one",
    )
    p.add_argument(
        "--max-codes",
        type=int,
        default=6000,
        help="most codes minted through authward's pages for one run (default 6000)",
    )
    p.add_argument(
        "--max-prebuilt",
        type=int,
        default=30000,
        help="most assertions/proofs pre-signed, or floor codes, for one run (default 30000)",
    )
    p.add_argument(
        "--drain-timeout",
        type=float,
        default=30.0,
        help="seconds to wait for requests in flight after a window (default: 30)",
    )
    p.add_argument("--results", type=Path, default=RESULTS, help=f"default: {RESULTS}")
    p.add_argument(
        "--docs",
        type=Path,
        default=DOCUMENT,
        help=f"document whose results block is rewritten (default: {DOCUMENT})",
    )
    p.add_argument("--no-docs", action="store_true", help="do not touch the document")
    p.add_argument(
        "--render-only",
        action="store_true",
        help="run nothing: rewrite the document's tables from the results file",
    )
    return p


def _options(args: argparse.Namespace) -> Options:
    scenarios = _csv(args.scenarios)
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        raise SystemExit(f"unknown scenarios: {', '.join(unknown)}")
    engines = _csv(args.engines)
    if any(e not in ENGINES for e in engines):
        raise SystemExit(f"engines are {', '.join(ENGINES)}")
    concurrencies = tuple(int(c) for c in _csv(args.concurrency))
    if not concurrencies or min(concurrencies) < 1:
        raise SystemExit("concurrencies must be positive integers")
    return Options(
        scenarios=tuple(cast(Scenario, s) for s in scenarios),
        engines=tuple(cast(Engine, e) for e in engines),
        concurrencies=concurrencies,
        warmup=args.warmup,
        duration=args.duration,
        flood=not args.no_flood,
        matrix=not args.flood_only,
        pg_url=args.pg_url,
        max_codes=args.max_codes,
        max_prebuilt=args.max_prebuilt,
        drain_timeout=args.drain_timeout,
        soak_seconds=args.soak,
        soak_concurrency=args.soak_concurrency,
        soak_sample=args.soak_sample,
        flood_concurrency=args.flood_concurrency,
        flood_source="127.0.0.1" if args.flood_same_address else "127.0.0.2",
    )


# --- where and with what it ran --------------------------------------------------------------


def _git(*args: str) -> str:
    try:
        return subprocess.run(  # noqa: S603 - fixed git arguments
            ["git", *args],  # noqa: S607 - git from PATH
            cwd=REPOSITORY,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout.strip()
    except OSError:
        return ""


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


async def _postgres_version(url: str) -> str | None:
    try:
        import asyncpg
        from sqlalchemy.engine import make_url

        dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        connection = await asyncpg.connect(dsn, timeout=10)
        try:
            return str(await connection.fetchval("SHOW server_version"))
        finally:
            await connection.close()
    except Exception:
        return None


def run_metadata(options: Options) -> dict[str, Any]:
    """Machine, versions, commit and timing of this invocation."""
    versions: dict[str, Any] = {
        "python": platform.python_version(),
        "authward": _version("authward"),
    }
    versions.update({name: _version(name) for name in PACKAGES})
    versions["sqlite"] = sqlite3.sqlite_version
    versions["postgresql"] = asyncio.run(_postgres_version(options.pg_url))
    return {
        "timestamp": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "machine": {
            "cpu_model": _cpu_model(),
            "cpus": os.cpu_count(),
            "memory_gb": _memory_gb(),
            "kernel": platform.release(),
            "system": platform.system(),
        },
        "versions": versions,
        "uvicorn_loop": "uvloop" if versions.get("uvloop") else "asyncio",
        "uvicorn_http": "httptools" if versions.get("httptools") else "h11",
        "warmup": options.warmup,
        "duration": options.duration,
        "concurrencies": list(options.concurrencies),
        "scenarios": list(options.scenarios),
        "engines": list(options.engines),
    }


# --- main ------------------------------------------------------------------------------------


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def main(argv: Sequence[str]) -> int:
    """Run what the arguments ask; 0 when every run produced figures, 1 if any failed."""
    args = parser().parse_args(list(argv))
    if args.render_only:
        update_document(args.docs, _load(args.results))
        log(f"tables: {args.docs} (from {args.results})")
        return 0
    options = _options(args)
    meta = run_metadata(options)
    started = time.monotonic()
    results = _load(args.results)
    failed = False
    if options.soak_seconds is not None:
        soaks, failures = asyncio.run(run_soak(options))
        results["soak"] = {
            "meta": {**meta, "duration": options.soak_seconds, "warmup": 0.0},
            "results": [as_json(r) for r in soaks],
            "failures": failures,
        }
        failed = bool(failures) or any(r.failure for r in soaks)
    else:
        records, floods, failures = asyncio.run(run_flood_and_matrix(options))
        if options.matrix:
            results["matrix"] = {
                "meta": meta,
                "runs": [{**as_json(r), "errors": r.errors} for r in records],
                "failures": failures,
            }
        if options.flood:
            results["flood"] = {
                "meta": meta,
                "results": [as_json(r) for r in floods],
                "failures": failures,
            }
        failed = bool(failures) or any(r.failure for r in records) or any(r.failure for r in floods)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    log(f"results: {args.results}")
    if not args.no_docs:
        update_document(args.docs, results)
        log(f"tables: {args.docs}")
    log(f"done in {time.monotonic() - started:.0f} s")
    return 1 if failed else 0
