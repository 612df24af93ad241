"""The ``authward secret`` commands: generate a client secret, hash a secret from stdin.

Spec: RFC 6749 §2.3.1; RFC 6819 §5.1.4.1.3, §5.1.4.2.2.
"""

from __future__ import annotations

import json
import secrets

import pytest
from click.testing import CliRunner

from authward.cli.main import cli
from authward.core.defaults import (
    FileClientRegistry,
    FileUserDirectory,
    hash_secret,
    is_argon2_hash,
)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_generate_prints_a_secret_and_the_digest_to_store(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["secret", "generate"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("client secret: ")
    plain = lines[0].removeprefix("client secret: ")
    assert len(plain) == 43
    assert lines[1] == f'client_secret_hash = "{hash_secret(plain, fast=True)}"'
    assert "shown only now" in result.stderr


def test_generate_json_is_one_object_for_scripts(runner: CliRunner) -> None:
    first = json.loads(runner.invoke(cli, ["secret", "generate", "--json"]).stdout)
    second = json.loads(runner.invoke(cli, ["secret", "generate", "--json"]).stdout)
    assert set(first) == {"client_secret", "client_secret_hash"}
    assert first["client_secret_hash"] == hash_secret(first["client_secret"], fast=True)
    assert first["client_secret"] != second["client_secret"]


async def test_a_generated_digest_authenticates_through_the_registry(
    runner: CliRunner,
) -> None:
    made = json.loads(runner.invoke(cli, ["secret", "generate", "--json"]).stdout)
    registry = FileClientRegistry.from_mapping({"clients": [{
        "client_id": "web", "client_type": "confidential",
        "client_secret_hash": made["client_secret_hash"],
    }]})
    web = await registry.get_client("web")
    assert web is not None
    assert await registry.verify_client_secret(web, made["client_secret"]) is True
    assert await registry.verify_client_secret(web, made["client_secret"][1:]) is False


def test_hash_fast_reads_the_secret_from_stdin(runner: CliRunner) -> None:
    plain = secrets.token_urlsafe(32)
    result = runner.invoke(cli, ["secret", "hash", "--fast"], input=plain + "\n")
    assert result.exit_code == 0, result.output
    assert result.stdout == hash_secret(plain, fast=True) + "\n"
    assert plain not in result.stdout


def test_hash_fast_refuses_a_short_secret_with_exit_1(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["secret", "hash", "--fast"], input="hunter2\n")
    assert result.exit_code == 1
    assert "at least 43 characters" in result.stderr
    assert "argon2" in result.stderr
    assert "hunter2" not in result.output


def test_hash_fast_refuses_a_long_secret_that_is_not_random(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["secret", "hash", "--fast"], input="ab" * 30)
    assert result.exit_code == 1
    assert "distinct characters" in result.stderr


def test_hash_argon2_hashes_a_password(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["secret", "hash", "--argon2"], input="correct horse\r\n")
    assert result.exit_code == 0, result.output
    hashed = result.stdout.strip()
    assert is_argon2_hash(hashed)
    users = FileUserDirectory.from_mapping(
        {"users": [{"subject": "u", "username": "alice", "password_hash": hashed}]}
    )
    assert users is not None


@pytest.mark.parametrize(("given", "message"), [("", "no secret"), ("\n", "no secret"),
                                                ("one\ntwo\n", "one line")])
def test_hash_refuses_empty_or_multi_line_input(
    runner: CliRunner, given: str, message: str
) -> None:
    result = runner.invoke(cli, ["secret", "hash", "--argon2"], input=given)
    assert result.exit_code == 1
    assert message in result.stderr


def test_hash_needs_a_form_and_takes_no_secret_argument(runner: CliRunner) -> None:
    missing = runner.invoke(cli, ["secret", "hash"], input="x" * 50)
    assert missing.exit_code == 2
    assert "--fast" in missing.stderr
    assert "--argon2" in missing.stderr
    on_argv = runner.invoke(cli, ["secret", "hash", "--fast", secrets.token_urlsafe(32)])
    assert on_argv.exit_code == 2
