"""Run the store benchmarks: ``python -m bench [--iterations N] [--engines sqlite,postgresql]``."""

from __future__ import annotations

import argparse
import asyncio
import os

from bench.stores import main

parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
parser.add_argument("--iterations", type=int, default=300, help="operations per measurement")
parser.add_argument("--engines", default="sqlite,postgresql", help="comma-separated engines")
parser.add_argument(
    "--pg-url",
    default=os.environ.get("AUTHWARD_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    help="PostgreSQL URL (default: $AUTHWARD_TEST_PG_URL or the local test database)",
)
args = parser.parse_args()
asyncio.run(main(args.iterations, tuple(args.engines.split(",")), args.pg_url))
