"""Run the benchmarks: ``python -m bench [--iterations N] [--engines sqlite,postgresql]
[--flow-rounds N]``: the store operations on each engine, then the flow figures (logout
fan-out) on SQLite. ``python -m bench http [...]``: the HTTP benchmark of ``authward serve``
against a floor app (``python -m bench http --help``). ``python -m bench client-timing``: whether
the token endpoint's answer time tells which client_ids exist."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys


def _stores_and_flows() -> None:
    from bench import flows, stores

    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--iterations", type=int, default=300, help="operations per measurement")
    parser.add_argument("--engines", default="sqlite,postgresql", help="comma-separated engines")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("AUTHWARD_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"),
        help="PostgreSQL URL (default: $AUTHWARD_TEST_PG_URL or the local test database)",
    )
    parser.add_argument("--flow-rounds", type=int, default=20, help="rounds per flow figure")
    args = parser.parse_args()
    asyncio.run(stores.main(args.iterations, tuple(args.engines.split(",")), args.pg_url))
    asyncio.run(flows.main(args.flow_rounds))


if sys.argv[1:2] == ["http"]:
    from bench.http.cli import main

    sys.exit(main(sys.argv[2:]))
if sys.argv[1:2] == ["client-timing"]:
    from bench.client_timing import main as timing_main

    sys.exit(timing_main(sys.argv[2:]))
_stores_and_flows()
