"""The load driver: keep-alive HTTP/1.1 connections, one coroutine each, timing every request.

Spec: authward GitHub issue 10 item 1 (the driver runs in its own process, the same driver for
authward and the floor); RFC 9112 §9.3 (persistent connections); RFC 7523 §2.2, §3
(client assertions); RFC 9449 §4.2 (DPoP proofs); RFC 6749 §6 (refresh rotation chains).

Run as ``python -m bench.http.driver JOB.json RESULT.json`` (see :mod:`bench.http.jobs`). It
never raises: any failure is written into the result's ``failure``. Work done per request is
kept small: requests are bytes built before timing wherever they can be (client assertions and
DPoP proofs are signed up front when the workload's ``prebuild`` says how many; codes are
pre-built one request each), and a refresh chain only formats its next token into a template.
Responses are read whole (``Content-Length`` or chunked); only refresh responses (for the
next token) and the soak's consent pages are parsed.

A response counts in a window when it completes inside it, whenever it was sent. After the
last window the driver stops sending and waits (at most ``drain_timeout`` seconds) for what is
in flight, so the next run starts on an idle server. uvloop drives the loop when installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import resource
import secrets
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Protocol
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from bench.http.forms import forms
from bench.http.jobs import (
    DriverResult,
    Job,
    Phase,
    Stats,
    Workload,
    read_job,
    write_json,
)
from bench.http.jws import CompactSigner, ec_private_key_from_pem, ec_public_jwk, sha256_b64url
from bench.http.procstat import cpu_seconds, rss_bytes
from bench.http.wire import Connection, Reply, ReplyError, form_request, get_request

__all__ = ["main", "run_job"]

ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: Lifetime of a client assertion (authward refuses more than 300 s).
ASSERTION_LIFETIME: Final = 120
#: Pause after a socket error before the connection tries again (no hot error loop).
ERROR_PAUSE: Final = 0.05
_SOCKET_ERRORS: Final = (OSError, EOFError, asyncio.IncompleteReadError, ReplyError, ValueError)


def _process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- what one connection sends ---------------------------------------------------------------


class Source(Protocol):
    """The requests of one connection: ``next`` gives the next one (``None``: nothing left),
    ``answer`` sees its response and ``failed`` a socket error (``False``: stop)."""

    def next(self) -> bytes | None: ...

    def answer(self, reply: Reply) -> bool: ...

    def failed(self) -> bool: ...


class Fixed:
    """The same request again and again, or a fixed list cycled from an offset."""

    def __init__(self, requests: Sequence[bytes], offset: int = 0) -> None:
        self._requests = requests
        self._index = offset % len(requests)

    def next(self) -> bytes | None:
        request = self._requests[self._index]
        self._index = (self._index + 1) % len(self._requests)
        return request

    def answer(self, reply: Reply) -> bool:
        return True

    def failed(self) -> bool:
        return True


class Pool:
    """Single-use requests shared by every connection of a workload (codes, assertions):
    pre-built in a deque, or made one at a time by ``make`` when nothing was pre-built."""

    def __init__(self, built: deque[bytes], make: Callable[[], bytes] | None) -> None:
        self._built = built
        self._make = make
        self.exhausted = False

    def next(self) -> bytes | None:
        if self._built:
            return self._built.popleft()
        if self._make is not None:
            return self._make()
        self.exhausted = True
        return None

    def answer(self, reply: Reply) -> bool:
        return True

    def failed(self) -> bool:
        return True


class Chain:
    """A refresh chain: each request presents the refresh token the last response returned.

    ``build`` makes the request for a token (``None`` when its DPoP proofs ran out). A non-2xx
    answer or a socket error breaks the chain (the token may be spent) and ends the connection.
    """

    def __init__(self, token: str, build: Callable[[str], bytes | None]) -> None:
        self.token = token
        self._build = build
        self.broken = False
        self.exhausted = False

    def next(self) -> bytes | None:
        request = self._build(self.token)
        if request is None:
            self.exhausted = True
        return request

    def answer(self, reply: Reply) -> bool:
        if not 200 <= reply.status < 300:
            self.broken = True
            return False
        token = json.loads(reply.body).get("refresh_token")
        if isinstance(token, str):
            self.token = token
        return True

    def failed(self) -> bool:
        self.broken = True
        return False


def refresh_builder(
    host: str, path: str, body_prefix: str, headers: Sequence[tuple[str, str]], proofs: Pool | None
) -> Callable[[str], bytes | None]:
    """Requests ``body_prefix + refresh_token`` to ``path`` with ``headers``, plus a ``DPoP``
    header from ``proofs`` when given. The head is formatted once; each request only adds the
    proof, the length and the body."""
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}"]
    lines.extend(f"{name}: {value}" for name, value in headers)
    lines.append("Content-Type: application/x-www-form-urlencoded")
    head = "\r\n".join(lines) + "\r\n"

    def build(token: str) -> bytes | None:
        body = body_prefix + quote(token, safe="")
        proof = ""
        if proofs is not None:
            made = proofs.next()
            if made is None:
                return None
            proof = f"DPoP: {made.decode('ascii')}\r\n"
        return f"{head}{proof}Content-Length: {len(body)}\r\n\r\n{body}".encode("latin-1")

    return build


class CodeFlow:
    """The soak's code flow through the pages: GET the authorization request (signed in by
    ``cookie``), POST the consent form, exchange the code; then again."""

    def __init__(self, host: str, workload: Workload) -> None:
        self._host = host
        self._w = workload
        self._step = 0
        self._verifier = ""
        self._pending: bytes | None = None

    def next(self) -> bytes | None:
        if self._pending is not None:
            request, self._pending = self._pending, None
            return request
        self._step = 0
        self._verifier = secrets.token_urlsafe(48)
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self._w.client_id,
                "redirect_uri": self._w.redirect_uri,
                "scope": self._w.scope,
                "state": secrets.token_urlsafe(12),
                "nonce": secrets.token_urlsafe(12),
                "code_challenge": sha256_b64url(self._verifier),
                "code_challenge_method": "S256",
            }
        )
        target = f"{self._w.authorize_path}?{query}"
        return get_request(self._host, target, [("Cookie", self._w.cookie)])

    def answer(self, reply: Reply) -> bool:
        location = reply.header("location")
        code = parse_qs(urlsplit(location).query).get("code") if location else None
        if code:
            self._pending = form_request(
                self._host,
                self._w.path,
                urlencode(
                    {
                        "grant_type": "authorization_code",
                        "code": code[0],
                        "redirect_uri": self._w.redirect_uri,
                        "code_verifier": self._verifier,
                    }
                ),
                [("Authorization", self._w.authorization)],
            )
        elif self._step == 0 and reply.status == 200:
            page = forms(reply.body.decode("utf-8", "replace"))
            consent = next((f for f in page if "consent_token" in f.names()), None)
            if consent is not None:
                action = urlsplit(consent.action)
                target = action.path + (f"?{action.query}" if action.query else "")
                self._pending = form_request(
                    self._host,
                    target,
                    urlencode([*consent.fields(), ("decision", "approve")]),
                    [("Cookie", self._w.cookie)],
                )
        self._step += 1
        return True

    def failed(self) -> bool:
        self._pending = None
        return True


# --- building the sources --------------------------------------------------------------------


def _basic(workload: Workload) -> list[tuple[str, str]]:
    return [("Authorization", workload.authorization)] if workload.authorization else []


def _assertion_maker(host: str, workload: Workload) -> Callable[[], bytes]:
    signer = CompactSigner(
        "ES256", ec_private_key_from_pem(workload.key_pem), {"typ": "JWT", "kid": workload.kid}
    )
    client_id = workload.client_id
    prefix = urlencode(
        {
            "grant_type": "client_credentials",
            "scope": workload.scope,
            "client_id": client_id,
            "client_assertion_type": ASSERTION_TYPE,
        }
    )

    def make() -> bytes:
        now = int(time.time())
        assertion = signer.sign(
            {
                "iss": client_id,
                "sub": client_id,
                "aud": workload.audience,
                "iat": now,
                "exp": now + ASSERTION_LIFETIME,
                "jti": secrets.token_urlsafe(16),
            }
        )
        return form_request(host, workload.path, f"{prefix}&client_assertion={assertion}")

    return make


def _proof_maker(workload: Workload) -> Callable[[], bytes]:
    key = ec_private_key_from_pem(workload.key_pem)
    signer = CompactSigner("ES256", key, {"typ": "dpop+jwt", "jwk": ec_public_jwk(key)})
    htu = workload.htu

    def make() -> bytes:
        claims = {
            "jti": secrets.token_urlsafe(16),
            "htm": "POST",
            "htu": htu,
            "iat": int(time.time()),
        }
        return signer.sign(claims).encode("ascii")

    return make


def _pool(make: Callable[[], bytes], prebuild: int) -> Pool:
    """``prebuild`` requests made now, or (``prebuild`` 0) one made per request."""
    if prebuild <= 0:
        return Pool(deque(), make)
    return Pool(deque(make() for _ in range(prebuild)), None)


# --- recording -------------------------------------------------------------------------------


@dataclass
class Window:
    """The measured window in ``perf_counter`` seconds (open-ended until it ends)."""

    start: float = math.inf
    end: float = math.inf


class Recorder:
    """What one workload's responses did inside the current window."""

    def __init__(self, ok_below: int = 300) -> None:
        self.window = Window()
        #: Statuses from 200 up to this one (excluded) succeed (the soak's code flows: 400,
        #: as the consent step answers with a redirect).
        self.ok_below = ok_below
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}
        self.errors: dict[str, int] = {}
        self.completed = 0

    def reset(self, window: Window) -> None:
        self.window = window
        self.latencies = []
        self.statuses = {}
        self.errors = {}
        self.completed = 0

    def reply(self, sent: float, done: float, status: int) -> None:
        window = self.window
        if not window.start <= done <= window.end:
            return
        self.completed += 1
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if 200 <= status < self.ok_below:
            self.latencies.append(done - sent)

    def error(self, name: str, when: float) -> None:
        window = self.window
        if window.start <= when <= window.end:
            self.errors[name] = self.errors.get(name, 0) + 1

    def stats(self, group: Group, window_s: float) -> Stats:
        ordered = sorted(self.latencies)
        ok = len(ordered)

        def pick(q: float) -> float | None:
            if not ordered:
                return None
            return round(ordered[min(ok - 1, max(0, math.ceil(q * ok) - 1))] * 1000, 3)

        sources = group.sources
        return Stats(
            kind=group.workload.kind,
            concurrency=group.workload.concurrency,
            completed=self.completed,
            ok=ok,
            rps=round(ok / window_s, 2) if window_s > 0 else 0.0,
            p50_ms=pick(0.50),
            p90_ms=pick(0.90),
            p99_ms=pick(0.99),
            max_ms=round(ordered[-1] * 1000, 3) if ordered else None,
            mean_ms=round(sum(ordered) / ok * 1000, 3) if ordered else None,
            statuses={str(k): v for k, v in sorted(self.statuses.items())},
            socket_errors=dict(sorted(self.errors.items())),
            exhausted=any(getattr(s, "exhausted", False) for s in sources),
            broken=sum(1 for s in sources if getattr(s, "broken", False)),
        )


@dataclass
class Group:
    """One workload's connections: a source each, and what they recorded."""

    workload: Workload
    sources: list[Source]
    recorder: Recorder = field(default_factory=Recorder)


def build_group(host: str, workload: Workload) -> Group:
    """The sources of ``workload``'s connections (signing whatever it pre-builds)."""
    w = workload
    count = w.concurrency
    basic = _basic(w)
    sources: list[Source]
    if w.kind in ("cc_secret_basic", "wrong_secret"):
        request = form_request(
            host, w.path, urlencode({"grant_type": "client_credentials", "scope": w.scope}), basic
        )
        sources = [Fixed([request]) for _ in range(count)]
    elif w.kind == "cc_private_key_jwt":
        pool = _pool(_assertion_maker(host, w), w.prebuild)
        sources = [pool] * count
    elif w.kind == "code_exchange":
        built = deque(
            form_request(
                host,
                w.path,
                urlencode(
                    {
                        "grant_type": "authorization_code",
                        "code": code,
                        "redirect_uri": w.redirect_uri,
                        "code_verifier": verifier,
                    }
                ),
                basic,
            )
            for code, verifier in w.codes
        )
        shared = Pool(built, None)
        sources = [shared] * count
    elif w.kind == "refresh_confidential":
        build = refresh_builder(
            host, w.path, "grant_type=refresh_token&refresh_token=", basic, None
        )
        sources = [Chain(token, build) for token in w.tokens[:count]]
    elif w.kind == "refresh_dpop_public":
        build = refresh_builder(
            host,
            w.path,
            f"grant_type=refresh_token&client_id={quote(w.client_id, safe='')}&refresh_token=",
            (),
            _pool(_proof_maker(w), w.prebuild),
        )
        sources = [Chain(token, build) for token in w.tokens[:count]]
    elif w.kind == "introspection":
        requests = [
            form_request(
                host, w.path, urlencode({"token": t, "token_type_hint": "access_token"}), basic
            )
            for t in w.tokens
        ]
        sources = [Fixed(requests, offset=i) for i in range(count)]
    elif w.kind == "code_flow":
        sources = [CodeFlow(host, w) for _ in range(count)]
    else:  # pragma: no cover - WorkloadKind is closed
        raise ValueError(f"unknown workload kind {w.kind!r}")
    return Group(w, sources, Recorder(ok_below=400 if w.kind == "code_flow" else 300))


# --- running ---------------------------------------------------------------------------------


class Runner:
    """Starts connections, measures windows, stops and drains."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.stopping = False
        self.tasks: list[asyncio.Task[None]] = []
        self.active = 0
        self.idle = asyncio.Event()

    def start(self, group: Group) -> None:
        for source in group.sources:
            connection = Connection(self.job.host, self.job.port, group.workload.source_address)
            self.active += 1
            self.idle.clear()
            self.tasks.append(asyncio.create_task(self._connection(connection, source, group)))

    async def _connection(self, connection: Connection, source: Source, group: Group) -> None:
        clock = time.perf_counter
        try:
            while not self.stopping:
                request = source.next()
                if request is None:
                    break
                sent = clock()
                try:
                    reply = await connection.exchange(request)
                except _SOCKET_ERRORS as exc:
                    group.recorder.error(type(exc).__name__, clock())
                    if not source.failed():
                        break
                    await asyncio.sleep(ERROR_PAUSE)
                    continue
                group.recorder.reply(sent, clock(), reply.status)
                if not source.answer(reply):
                    break
        finally:
            connection.close()
            self.active -= 1
            if self.active == 0:
                self.idle.set()

    async def wait(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if every connection has stopped."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.idle.wait(), seconds)

    async def measure(self, name: str, groups: Sequence[Group]) -> Phase:
        """One window of ``job.duration`` seconds (shorter if every connection stopped)."""
        window = Window(start=time.perf_counter())
        for group in groups:
            group.recorder.reset(window)
        pid = self.job.server_pid
        server0, driver0 = cpu_seconds(pid), _process_cpu()
        if not self.idle.is_set():
            await self.wait(self.job.duration)
        window.end = time.perf_counter()
        server1, driver1 = cpu_seconds(pid), _process_cpu()
        length = window.end - window.start
        return Phase(
            name=name,
            window_s=round(length, 4),
            server_cpu_s=round(server1 - server0, 4),
            driver_cpu_s=round(driver1 - driver0, 4),
            stats=tuple(group.recorder.stats(group, length) for group in groups),
        )

    async def stop(self) -> bool:
        """Stop sending; True when everything in flight finished within the drain timeout."""
        self.stopping = True
        if not self.tasks:
            return True
        _, pending = await asyncio.wait(self.tasks, timeout=self.job.drain_timeout)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        return not pending


async def _sample_rss(pid: int, interval: float, into: list[tuple[float, int]]) -> None:
    started = time.monotonic()
    while True:
        into.append((round(time.monotonic() - started, 1), rss_bytes(pid)))
        await asyncio.sleep(interval)


async def run_job(job: Job) -> DriverResult:
    """Run ``job`` and return its result (see the module docstring)."""
    host = job.host if job.port in (80, 0) else f"{job.host}:{job.port}"
    started, cpu0 = time.perf_counter(), _process_cpu()
    groups = [build_group(host, w) for w in job.workloads]
    prebuild_s, prebuild_cpu = time.perf_counter() - started, _process_cpu() - cpu0
    runner = Runner(job)
    phases: list[Phase] = []
    samples: list[tuple[float, int]] = []
    sampler: asyncio.Task[None] | None = None
    idle_rss = 0
    try:
        if job.mode == "run":
            runner.start(groups[0])
            await runner.wait(job.warmup)
            phases.append(await runner.measure("measured", groups[:1]))
        elif job.mode == "flood":
            runner.start(groups[0])
            await runner.wait(job.warmup)
            phases.append(await runner.measure("unloaded", groups[:1]))
            runner.start(groups[1])
            await runner.wait(job.warmup)
            phases.append(await runner.measure("loaded", groups[:2]))
        else:
            sampler = asyncio.create_task(_sample_rss(job.server_pid, job.sample_interval, samples))
            for group in groups:
                runner.start(group)
            await runner.wait(job.warmup)
            phases.append(await runner.measure("soak", groups))
    finally:
        drained = await runner.stop()
        if sampler is not None:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
            idle_rss = rss_bytes(job.server_pid)
    chains = tuple(
        tuple(s.token for s in g.sources if isinstance(s, Chain) and not s.broken) for g in groups
    )
    return DriverResult(
        phases=tuple(phases),
        prebuild_cpu_s=round(prebuild_cpu, 4),
        prebuild_s=round(prebuild_s, 4),
        drained=drained,
        chains=chains,
        rss_samples=tuple(samples),
        rss_idle_bytes=idle_rss,
    )


def _run(job: Job) -> DriverResult:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(run_job(job))
    return uvloop.run(run_job(job))


def main(argv: Sequence[str]) -> int:
    """``driver JOB RESULT``: run the job, write the result; 0 unless the arguments are bad."""
    if len(argv) != 2:
        print("usage: python -m bench.http.driver JOB.json RESULT.json", file=sys.stderr)
        return 2
    job_path, result_path = Path(argv[0]), Path(argv[1])
    try:
        result = _run(read_job(job_path))
    except Exception as exc:  # reported, never raised: the orchestrator reads the failure
        result = DriverResult(phases=(), failure=f"{type(exc).__name__}: {exc}")
    write_json(result_path, result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
