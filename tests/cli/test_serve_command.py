"""``authward serve`` in a real process: demo files, real HTTP, a browser-style code flow, a clean
stop on SIGINT, and a second start that reuses the files without printing secrets again.

Spec: RFC 8414 §3 (discovery answers over HTTP); RFC 6749 §4.1, §4.4; RFC 7636 (the printed
PKCE pair); RFC 8252 §7.3 (the demo public client's loopback redirect, any port); RFC 6819
§5.1.4.2.2 (only hashes at rest). Every wait is bounded so a hung server cannot hang the suite.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from click.testing import CliRunner

from authward.cli.main import cli
from authward.cli.serve import ensure_demo_file
from authward.core.defaults import (
    generate_client_secret,
    hash_secret,
    is_argon2_hash,
    is_fast_digest,
)
from authward.core.defaults.toml_file import load_toml
from tests.asgi.forms import only_form, submit

START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
HTTP_TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    port: int
    stdout: Path
    stderr: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.stdout.read_text(encoding="utf-8")

    def diagnostics(self) -> str:
        return f"stdout:\n{self.output()}\nstderr:\n{self.stderr.read_text(encoding='utf-8')}"

    def stop(self) -> int:
        """SIGINT, then wait (bounded) for the exit status."""
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=STOP_TIMEOUT)


@contextmanager
def serve(directory: Path, run: int, *args: str) -> Iterator[Running]:
    """``authward serve --port <free>`` in ``directory``, ready (discovery answers) or failed."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHWARD_")}
    env["PYTHONUNBUFFERED"] = "1"
    stdout = directory / f"serve-{run}.out"
    stderr = directory / f"serve-{run}.err"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and fixed arguments
            [sys.executable, "-c", "from authward.cli.main import main; main()",
             "serve", "--port", str(port), *args],
            cwd=directory, env=env, stdout=out, stderr=err,
        )
    running = Running(process, port, stdout, stderr)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert process.poll() is None, f"serve exited early\n{running.diagnostics()}"
            assert time.monotonic() < deadline, f"serve did not start\n{running.diagnostics()}"
            try:
                response = httpx.get(
                    running.base + "/.well-known/openid-configuration", timeout=1.0
                )
                if response.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        yield running
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)


def printed(output: str, label: str) -> str:
    match = re.search(rf"^\s*{re.escape(label)}:\s+(\S+)", output, re.MULTILINE)
    assert match is not None, f"{label!r} not printed:\n{output}"
    return match.group(1)


def query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


async def browser_code_flow(base: str, authorize_url: str, password: str) -> str:
    """Follow the printed authorization URL like a browser; the code from /demo/callback."""
    async with httpx.AsyncClient(base_url=base, timeout=HTTP_TIMEOUT) as browser:
        html = {"Accept": "text/html"}
        start = await browser.get(authorize_url, headers=html)
        assert start.status_code == 302, start.text
        login_form = only_form((await browser.get(start.headers["location"], headers=html)).text)
        signed_in = await submit(browser, login_form, username="demo", password=password)
        assert signed_in.status_code == 303, signed_in.text
        consent = await browser.get(signed_in.headers["location"], headers=html)
        assert consent.status_code == 200, consent.text
        approved = await submit(browser, only_form(consent.text), button=("decision", "approve"))
        assert approved.status_code == 302, approved.text
        callback = approved.headers["location"]
        assert callback.startswith(base + "/demo/callback?")
        params = query(callback)
        assert params["state"] == query(authorize_url)["state"]
        assert params["iss"] == base
        page = await browser.get(callback, headers=html)
        assert page.status_code == 200
        assert params["code"] in page.text
        return params["code"]


async def test_serve_runs_a_demo_server_that_completes_a_code_flow(tmp_path: Path) -> None:
    with serve(tmp_path, 1) as first:
        output = first.output()
        base = first.base
        assert printed(output, "issuer") == base
        assert printed(output, "discovery") == base + "/.well-known/openid-configuration"
        assert printed(output, "public client") == "demo-public"
        assert printed(output, "confidential client") == "demo-confidential"
        secret = printed(output, "client secret")
        password = printed(output, "password")
        verifier = printed(output, "code verifier")
        authorize_url = re.search(rf"^\s+({re.escape(base)}/authorize\?\S+)$", output,
                                  re.MULTILINE)
        assert authorize_url is not None, output

        code = await browser_code_flow(base, authorize_url.group(1), password)
        async with httpx.AsyncClient(base_url=base, timeout=HTTP_TIMEOUT) as client:
            tokens = await client.post(
                "/token",
                data={
                    "grant_type": "authorization_code",
                    "client_id": "demo-public",
                    "redirect_uri": base + "/demo/callback",
                    "code_verifier": verifier,
                    "code": code,
                },
            )
            assert tokens.status_code == 200, tokens.text
            userinfo = await client.get(
                "/userinfo",
                headers={"Authorization": f"Bearer {tokens.json()['access_token']}"},
            )
            assert userinfo.status_code == 200, userinfo.text
            assert userinfo.json()["sub"] == "demo-user"
            service = await client.post(
                "/token", data={"grant_type": "client_credentials", "scope": "openid"},
                auth=("demo-confidential", secret),
            )
            assert service.status_code == 200, service.text
        assert first.stop() == 0, first.diagnostics()

    var = tmp_path / "var"
    for name in ("authward-demo.toml", "authward-keys.json"):
        assert stat.S_IMODE((var / name).stat().st_mode) == 0o600, name
    demo = (var / "authward-demo.toml").read_text(encoding="utf-8")
    assert secret not in demo
    assert password not in demo
    assert (var / "authward.db").exists()

    with serve(tmp_path, 2) as second:
        again = second.output()
        assert "client secret:" not in again
        assert secret not in again
        assert password not in again
        assert "were printed when" in again
        async with httpx.AsyncClient(base_url=second.base, timeout=HTTP_TIMEOUT) as client:
            reused = await client.post(
                "/token", data={"grant_type": "client_credentials", "scope": "openid"},
                auth=("demo-confidential", secret),
            )
        assert reused.status_code == 200, reused.text
        assert second.stop() == 0, second.diagnostics()
    assert (var / "authward-demo.toml").read_text(encoding="utf-8") == demo


async def test_several_workers_share_the_demo_configuration(tmp_path: Path) -> None:
    """--workers 2 runs the app factory in two processes on the same files; both stop."""
    with serve(tmp_path, 1, "--workers", "2") as running:
        output = running.output()
        secret = printed(output, "client secret")
        async with httpx.AsyncClient(base_url=running.base, timeout=HTTP_TIMEOUT) as client:
            for _ in range(4):
                response = await client.post(
                    "/token", data={"grant_type": "client_credentials", "scope": "openid"},
                    auth=("demo-confidential", secret),
                )
                assert response.status_code == 200, response.text
        assert running.stop() == 0, running.diagnostics()


def test_a_bad_config_file_stops_serve_with_the_key_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fail fast: the first bad key is named and nothing is served (exit status 1)."""
    config = tmp_path / "authward.toml"
    config.write_text(
        '[authward]\nissuer = "https://as.example"\nrefresh_token_rotation_grace_seconds = 0\n'
        '[login]\ncookie_secret = "short"\n',
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        cli, ["serve", "--config", str(config), "--port", str(free_port())],
        env={"AUTHWARD_DATABASE_URL": None},
    )
    assert result.exit_code == 1, result.output
    assert "login.cookie_secret" in result.output
    assert not (tmp_path / "var" / "authward-keys.json").exists()


def test_the_demo_client_secret_is_stored_fast_and_the_password_as_argon2(
    tmp_path: Path,
) -> None:
    """A generated client secret is a $sha256$ digest (microseconds per token request); the
    password, which a person types, stays argon2."""
    demo = ensure_demo_file(tmp_path / "demo.toml", issuer="http://127.0.0.1:9000")
    assert demo.client_secret is not None
    document = load_toml(demo.path)
    clients = document["clients"]
    users = document["users"]
    assert isinstance(clients, list)
    assert isinstance(users, list)
    [confidential] = [c for c in clients if "client_secret_hash" in c]
    assert confidential["client_secret_hash"] == hash_secret(demo.client_secret, fast=True)
    assert is_fast_digest(confidential["client_secret_hash"])
    assert is_argon2_hash(users[0]["password_hash"])
    text = demo.path.read_text(encoding="utf-8")
    assert "$sha256$ digest" in text
    assert demo.client_secret not in text


def _quiet_config(directory: Path) -> tuple[Path, str]:
    """A --config deployment with one client_credentials client (generated fast secret)."""
    generated = generate_client_secret()
    config = directory / "authward.toml"
    config.write_text(
        "[authward]\nrefresh_token_rotation_grace_seconds = 0\n"
        f'[login]\ncookie_secret = "{"c" * 40}"\n'
        '[[clients]]\nclient_id = "svc"\nclient_type = "confidential"\n'
        f'client_secret_hash = "{generated.digest}"\n'
        'grant_types = ["client_credentials"]\nscope = "api"\n',
        encoding="utf-8",
    )
    return config, generated.secret


@pytest.mark.parametrize("loud", [False, True])
async def test_with_config_the_access_log_and_token_events_are_off_unless_asked_for(
    tmp_path: Path, loud: bool
) -> None:
    """Issue 10: no per-request log lines by default (--access-log, --token-events add them)."""
    config, secret = _quiet_config(tmp_path)
    flags = ("--access-log", "--token-events") if loud else ()
    with serve(tmp_path, 1, "--config", str(config), *flags) as running:
        async with httpx.AsyncClient(base_url=running.base, timeout=HTTP_TIMEOUT) as client:
            issued = await client.post(
                "/token", data={"grant_type": "client_credentials", "scope": "api"},
                auth=("svc", secret),
            )
            assert issued.status_code == 200, issued.text
        assert running.stop() == 0, running.diagnostics()
    logs = running.diagnostics()
    assert ('"POST /token HTTP/1.1" 200' in logs) is loud
    assert ('"event": "token.issued"' in logs) is loud
    assert secret not in logs
