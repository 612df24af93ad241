"""The messages between the bench orchestrator and the load driver process: a job, a result.

Spec: authward GitHub issue 10 item 1 (what each run reports: req/s, p50, p99, errors by
status and by socket error, server CPU per 1,000 requests, the driver's own CPU).

Both travel as JSON files (``python -m bench.http.driver JOB RESULT``). A :class:`Job` holds one
or more :class:`Workload` s (groups of connections sending one kind of request); the driver
answers with a :class:`DriverResult` holding one :class:`Phase` per measured window (a plain
run has one; the wrong-secret flood has an unloaded and a loaded one).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, cast, get_args

__all__ = [
    "SCENARIOS",
    "DriverResult",
    "Job",
    "Mode",
    "Phase",
    "Scenario",
    "Stats",
    "Workload",
    "WorkloadKind",
    "read_job",
    "read_result",
    "write_json",
]

Scenario = Literal[
    "cc_secret_basic",
    "cc_private_key_jwt",
    "code_exchange",
    "refresh_confidential",
    "refresh_dpop_public",
    "introspection",
]
#: Every measured scenario, in the order the matrix runs them (``cc_secret_basic`` first: its
#: rate sizes what the later scenarios pre-build).
SCENARIOS: Final[tuple[Scenario, ...]] = get_args(Scenario)
#: What a group of connections sends: a scenario, wrong client secrets (the flood) or whole
#: code flows through the pages (the soak).
WorkloadKind = Literal[
    "cc_secret_basic",
    "cc_private_key_jwt",
    "code_exchange",
    "refresh_confidential",
    "refresh_dpop_public",
    "introspection",
    "wrong_secret",
    "code_flow",
]
Mode = Literal["run", "flood", "soak"]


@dataclass(frozen=True)
class Workload:
    """``concurrency`` connections sending ``kind`` requests to ``path``.

    Only the fields a kind needs are set: ``authorization`` (an ``Authorization`` header value
    for ``client_secret_basic``), ``client_id``, ``scope``, ``redirect_uri``, ``codes``
    (``(code, verifier)`` pairs, shared by the connections), ``tokens`` (refresh tokens: one
    chain per connection; access tokens to introspect: cycled), ``key_pem``/``kid`` (the
    client's ES256 key for assertions and DPoP proofs), ``audience`` (assertion ``aud``),
    ``htu`` (DPoP ``htu``), ``prebuild`` (assertions or proofs signed before timing; 0 signs
    one per request), for the soak's code flows ``cookie`` (a signed-in session) and
    ``authorize_path``, and ``source_address``, the local address its connections come from
    (default: whatever the system picks).
    """

    kind: WorkloadKind
    path: str
    concurrency: int
    authorization: str = ""
    client_id: str = ""
    scope: str = ""
    redirect_uri: str = ""
    codes: tuple[tuple[str, str], ...] = ()
    tokens: tuple[str, ...] = ()
    key_pem: str = ""
    kid: str = ""
    audience: str = ""
    htu: str = ""
    prebuild: int = 0
    cookie: str = ""
    authorize_path: str = ""
    source_address: str = ""


@dataclass(frozen=True)
class Job:
    """What the driver does: ``mode`` against ``host``:``port`` (the server's process id is
    ``server_pid``, read for CPU and memory), after ``warmup`` seconds measure ``duration``
    seconds, then wait at most ``drain_timeout`` seconds for requests still in flight.

    ``run``: one workload. ``flood``: workload 0 is the legitimate client, measured alone and
    then while workload 1 (the flooders) runs. ``soak``: every workload at once, the server's
    RSS sampled every ``sample_interval`` seconds.
    """

    mode: Mode
    host: str
    port: int
    server_pid: int
    workloads: tuple[Workload, ...]
    warmup: float
    duration: float
    drain_timeout: float = 30.0
    sample_interval: float = 5.0


@dataclass(frozen=True)
class Stats:
    """One workload's figures over one measured window.

    ``completed`` counts every response that finished inside the window, ``ok`` the 2xx ones;
    ``rps`` is ``ok`` per second; latencies (ms) are of the 2xx responses. ``statuses`` counts
    responses by status code, ``socket_errors`` failed exchanges by exception name.
    ``exhausted``: the pre-built requests (codes, assertions, proofs) ran out before the end;
    ``broken``: refresh chains that stopped on an error.
    """

    kind: WorkloadKind
    concurrency: int
    completed: int
    ok: int
    rps: float
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    mean_ms: float | None
    statuses: dict[str, int] = field(default_factory=dict)
    socket_errors: dict[str, int] = field(default_factory=dict)
    exhausted: bool = False
    broken: int = 0


@dataclass(frozen=True)
class Phase:
    """One measured window: its length, the server's and the driver's CPU seconds in it, and
    the stats of each workload that ran (in job order)."""

    name: str
    window_s: float
    server_cpu_s: float
    driver_cpu_s: float
    stats: tuple[Stats, ...]


@dataclass(frozen=True)
class DriverResult:
    """What the driver reports: its phases; the CPU seconds it spent pre-building requests;
    whether everything in flight finished within the drain timeout; the last refresh token of
    every chain per workload (so chains carry on into the next run); the RSS samples
    ``(seconds since start, bytes)`` taken under load and the RSS once the load drained
    (soak only); and a ``failure`` message if the job could not run."""

    phases: tuple[Phase, ...]
    prebuild_cpu_s: float = 0.0
    prebuild_s: float = 0.0
    drained: bool = True
    chains: tuple[tuple[str, ...], ...] = ()
    rss_samples: tuple[tuple[float, int], ...] = ()
    rss_idle_bytes: int = 0
    failure: str | None = None


def write_json(path: Path, value: Job | DriverResult) -> None:
    """Write a job or a result as JSON."""
    path.write_text(json.dumps(asdict(value)), encoding="utf-8")


def _workload(data: Mapping[str, Any]) -> Workload:
    values = dict(data)
    values["codes"] = tuple((str(c), str(v)) for c, v in values.get("codes", ()))
    values["tokens"] = tuple(values.get("tokens", ()))
    return Workload(**values)


def read_job(path: Path) -> Job:
    """The job in JSON file ``path``."""
    data = json.loads(path.read_text(encoding="utf-8"))
    data["workloads"] = tuple(_workload(w) for w in data["workloads"])
    return Job(**data)


def read_result(path: Path) -> DriverResult:
    """The driver result in JSON file ``path``."""
    data = json.loads(path.read_text(encoding="utf-8"))
    phases = tuple(
        Phase(
            name=p["name"],
            window_s=p["window_s"],
            server_cpu_s=p["server_cpu_s"],
            driver_cpu_s=p["driver_cpu_s"],
            stats=tuple(Stats(**s) for s in p["stats"]),
        )
        for p in data["phases"]
    )
    return DriverResult(
        phases=phases,
        prebuild_cpu_s=data["prebuild_cpu_s"],
        prebuild_s=data["prebuild_s"],
        drained=data["drained"],
        chains=tuple(tuple(chain) for chain in data["chains"]),
        rss_samples=tuple((float(t), int(b)) for t, b in data["rss_samples"]),
        rss_idle_bytes=int(data.get("rss_idle_bytes", 0)),
        failure=cast(str | None, data.get("failure")),
    )
