"""The processes and databases a benchmark run needs: ``authward serve``, the floor, free ports,
a fresh PostgreSQL database; each stopped or dropped again even when the run fails.

Spec: authward ``cli/serve.py`` (the command line a user deploys with); PostgreSQL
``CREATE DATABASE`` / ``DROP DATABASE ... WITH (FORCE)``.

Servers run in their own session (process group) with their output in a log file; they are
ready when a readiness URL answers 200 (bounded wait, the log is shown on failure); stopping
sends SIGTERM to that group, then SIGKILL after a grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from sqlalchemy.engine import make_url

from bench.http.procstat import cpu_seconds

__all__ = [
    "REPOSITORY",
    "ServerProcess",
    "authward_executable",
    "child_environment",
    "free_port",
    "fresh_postgres_database",
    "serve_logs_access_by_default",
    "wait_until_idle",
]

REPOSITORY: Final = Path(__file__).resolve().parents[2]
START_TIMEOUT: Final = 60.0
STOP_TIMEOUT: Final = 15.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def authward_executable() -> str:
    """The ``authward`` console script next to this interpreter (the venv's)."""
    return str(Path(sys.executable).with_name("authward"))


def child_environment() -> dict[str, str]:
    """Our environment without ``AUTHWARD_*`` variables, with the repository importable (for
    ``python -m bench.http...``) and unbuffered output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHWARD_")}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPOSITORY), env.get("PYTHONPATH", "")) if p
    )
    env["PYTHONUNBUFFERED"] = "1"
    return env


def serve_logs_access_by_default() -> bool:
    """Whether ``authward serve --config`` writes uvicorn's access log (the floor does the
    same): older serve commands always did; newer ones have ``--access-log`` off by default
    with ``--config``."""
    from authward.cli.serve import serve

    return not any(param.name == "access_log" for param in serve.params)


@dataclass
class ServerProcess:
    """One server: its ``command``, the ``ready_url`` that answers 200 once it serves, and the
    ``log_path`` its output goes to."""

    name: str
    command: Sequence[str]
    ready_url: str
    log_path: Path
    env: dict[str, str] = field(default_factory=child_environment)
    process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The server's process id (it must have been started)."""
        assert self.process is not None, f"{self.name} was not started"
        return self.process.pid

    def start(self) -> None:
        """Start and wait until ``ready_url`` answers 200; RuntimeError with the log tail if
        the process exits or does not get ready in time (it is stopped first)."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our own commands
                list(self.command),
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=REPOSITORY,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(self.ready_url, timeout=2) as response,  # noqa: S310
            ):
                if response.status == 200:
                    return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"{self.name} not ready in {START_TIMEOUT} s:\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM to the server's process group, SIGKILL after a grace period; reaps it."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_TIMEOUT)

    def log_tail(self, limit: int = 6000) -> str:
        """The end of the server's output."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-limit:]
        except OSError:
            return "(no log)"


@contextlib.contextmanager
def running(servers: Sequence[ServerProcess]) -> Iterator[None]:
    """Stop every server in ``servers`` on exit, however the block ends."""
    try:
        yield
    finally:
        for server in reversed(servers):
            server.stop()


def wait_until_idle(pid: int, *, busy_below: float = 0.03, timeout: float = 20.0) -> float:
    """Wait until ``pid`` uses less than ``busy_below`` of a core over 0.2 s (or ``timeout``
    passes); return the seconds waited. Keeps one run's leftovers out of the next."""
    started = time.monotonic()
    previous = cpu_seconds(pid)
    while time.monotonic() - started < timeout:
        time.sleep(0.2)
        current = cpu_seconds(pid)
        if current - previous < busy_below * 0.2:
            break
        previous = current
    return time.monotonic() - started


async def _admin_execute(admin_url: str, statement: str) -> None:
    import asyncpg

    url = make_url(admin_url).set(drivername="postgresql")
    connection = await asyncpg.connect(url.render_as_string(hide_password=False))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def fresh_postgres_database(admin_url: str) -> AsyncIterator[str]:
    """A new, empty database ``authward_bench_<random>`` on the server of ``admin_url``;
    yields its URL and drops it afterwards (``WITH (FORCE)``)."""
    name = f"authward_bench_{secrets.token_hex(4)}"
    await _admin_execute(admin_url, f'CREATE DATABASE "{name}"')
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                _admin_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'), 60
            )
