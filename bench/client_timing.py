"""Does the token endpoint's answer time tell whether a client_id exists?

``python -m bench client-timing [--attempts N]``: a server built as ``authward serve --config``
builds it (SQLite, one client whose secret is an argon2 hash with the default parameters, as a
human-chosen secret would be stored), answering ``client_credentials`` requests with a wrong
secret for that client and with a secret for a client_id that does not exist, interleaved,
``N`` of each (default 50; the same unknown client_id each time, as a prober asks about one
id), each from its own source address so the per-address limit stays
out of the way. Reports the median and p90 answer time of each and the ratio of the medians,
and writes ``bench/results/client_timing.json``.

Spec: RFC 6749 §10.10, RFC 6819 §5.1.4.2.2 (no account enumeration); authward issue 11 item 5
(within 10 % of each other in median over 50 attempts).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from authward.cli.wiring import build_server, load_settings, prepare_database
from authward.core.defaults import hash_secret
from authward.core.endpoints import token
from authward.core.http import Request
from authward.core.keys import KeySet, save_key_file

RESULTS = Path(__file__).parent / "results" / "client_timing.json"
ISSUER = "http://127.0.0.1:8000"
CLIENT = "timing-client"
SECRET = "a human-chosen secret"  # noqa: S105 - the bench's own test client


def _config(directory: Path) -> Path:
    path = directory / "authward.toml"
    path.write_text(
        "\n".join(
            [
                "[authward]",
                f'issuer = "{ISSUER}"',
                "[[clients]]",
                f'client_id = "{CLIENT}"',
                'client_type = "confidential"',
                'token_endpoint_auth_method = "client_secret_basic"',
                f'client_secret_hash = "{hash_secret(SECRET)}"',
                'grant_types = ["client_credentials"]',
                'scope = "api"',
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    return path


def _request(client_id: str, secret: str, address: str) -> Request:
    credentials = base64.b64encode(f"{client_id}:{secret}".encode()).decode("ascii")
    return Request.build(
        "POST",
        ISSUER + "/token",
        headers=[
            ("Authorization", f"Basic {credentials}"),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        form=[("grant_type", "client_credentials"), ("scope", "api")],
        client_address=address,
    )


def _summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_ms": round(statistics.median(ordered) * 1000, 3),
        "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))] * 1000, 3),
        "min_ms": round(ordered[0] * 1000, 3),
        "max_ms": round(ordered[-1] * 1000, 3),
    }


async def measure(attempts: int) -> dict[str, Any]:
    """Interleaved known-wrong and unknown attempts; their timings, summarised."""
    with tempfile.TemporaryDirectory() as folder:
        directory = Path(folder)
        config = _config(directory)
        keys = directory / "keys.json"
        save_key_file(KeySet.generate(("ES256", "RS256"), now=time.time()), keys, overwrite=False)
        settings = load_settings(config)
        built = build_server(
            settings, database_url=f"sqlite:///{directory / 'a.db'}", key_file=keys,
            config_file=config,
        )
        try:
            await prepare_database(built.engine, settings)
            timings: dict[str, list[float]] = {"known_client_wrong_secret": [],
                                               "unknown_client": []}
            for i in range(50):  # warm-up (first-use costs), with an id measured nowhere
                await token.handle(built.server, _request("warm-up", "x", f"10.255.0.{i}"))
            gc.collect()
            gc.disable()  # a collection inside one sample is noise the size of the signal
            pair = (("known_client_wrong_secret", CLIENT), ("unknown_client", "no-such-client"))
            for i in range(attempts):
                # alternate which kind goes first, so neither always follows the other
                for kind, client_id in pair if i % 2 == 0 else pair[::-1]:
                    address = f"10.{i // 250}.{i % 250}.{1 if client_id == CLIENT else 2}"
                    request = _request(client_id, "a wrong secret", address)
                    started = time.perf_counter()
                    response = await token.handle(built.server, request)
                    timings[kind].append(time.perf_counter() - started)
                    assert response.status == 401, response
        finally:
            gc.enable()
            await built.engine.dispose()
    known = _summary(timings["known_client_wrong_secret"])
    unknown = _summary(timings["unknown_client"])
    return {
        "attempts_each": attempts,
        "known_client_wrong_secret": known,
        "unknown_client": unknown,
        "median_ratio_unknown_to_known": round(unknown["median_ms"] / known["median_ms"], 3),
    }


def main(argv: list[str]) -> int:
    """``python -m bench client-timing``."""
    parser = argparse.ArgumentParser(prog="python -m bench client-timing", description=__doc__)
    parser.add_argument("--attempts", type=int, default=50, help="attempts of each kind")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    result = asyncio.run(measure(args.attempts))
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=1))
    return 0
