"""Two nodes started at the same moment on an empty database both come up and serve.

Spec: authward issue 11 item 7 (``authward serve`` creates the schema; without a lock the
second node died on ``CREATE TABLE``). Real ``authward serve`` processes, ten rounds per engine,
each on a database (a fresh SQLite file, or a fresh table prefix on PostgreSQL) with no table.
"""

from __future__ import annotations

import secrets
import threading
from pathlib import Path

import pytest

from tests.dbkit import KINDS, PG_URL, require_postgres
from tests.e2e.harness import (
    ClientKey,
    Database,
    ServerProcess,
    _child_env,
    _drop_tables,
    config_text,
    free_port,
    run_async,
    serve_command,
)

ROUNDS = 10


def _start_together(nodes: list[ServerProcess]) -> list[BaseException]:
    """Start every node in its own thread at once; the failures (a node that exited or never
    served), if any."""
    failures: list[BaseException] = []

    def start(node: ServerProcess) -> None:
        try:
            node.start()
        except BaseException as error:  # reported to the test below
            failures.append(error)

    threads = [threading.Thread(target=start, args=(node,)) for node in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures


@pytest.mark.parametrize("kind", KINDS)
def test_two_nodes_started_together_on_an_empty_database_both_serve(
    kind: str, tmp_path: Path, e2e_keys: Path
) -> None:
    if kind == "postgresql":
        run_async(require_postgres)
    for round_ in range(ROUNDS):
        directory = tmp_path / f"round-{round_}"
        directory.mkdir()
        if kind == "sqlite":
            database = Database(kind, f"sqlite:///{directory / 'empty.db'}", "")
        else:
            database = Database(kind, PG_URL, f"r{secrets.token_hex(3)}_")
        config = directory / "authward.toml"
        issuer_port = free_port()
        config.write_text(
            config_text(
                issuer=f"http://127.0.0.1:{issuer_port}", prefix=database.prefix,
                client_key=ClientKey(),
            ),
            encoding="utf-8",
        )
        env = {**_child_env(), "AUTHWARD_DATABASE_URL": database.url}
        nodes = [
            ServerProcess(
                name=f"round{round_}-node{i}",
                port=port,
                command=serve_command(config, e2e_keys, port),
                env=env,
                log_path=directory / f"node{i}.log",
            )
            for i, port in enumerate((issuer_port, free_port()))
        ]
        try:
            failures = _start_together(nodes)
            assert not failures, f"round {round_}: {failures[0]}"
        finally:
            for node in nodes:
                node.stop()
            if kind == "postgresql":
                run_async(lambda db=database: _drop_tables(db))  # type: ignore[misc]
