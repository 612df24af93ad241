"""The ``authward keys`` commands: generate, rotate, show."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from authward.cli.main import cli
from authward.core.keys import load_key_file


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_generate_writes_the_default_file_with_mode_0600(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(cli, ["keys", "generate"])
    assert result.exit_code == 0, result.output
    path = tmp_path / "authward-keys.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    keyset = load_key_file(path)
    assert keyset.algorithms == ("ES256", "RS256")


def test_generate_with_repeated_alg(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    result = runner.invoke(
        cli, ["keys", "generate", "--file", str(path), "--alg", "EdDSA", "--alg", "PS256"]
    )
    assert result.exit_code == 0, result.output
    assert load_key_file(path).algorithms == ("EdDSA", "PS256")


def test_generate_refuses_an_unknown_alg(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(
        cli, ["keys", "generate", "--file", str(tmp_path / "k.json"), "--alg", "HS256"]
    )
    assert result.exit_code == 2
    assert not (tmp_path / "k.json").exists()


def test_generate_refuses_to_overwrite_without_force(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    assert runner.invoke(cli, ["keys", "generate", "--file", str(path)]).exit_code == 0
    before = path.read_text()
    result = runner.invoke(cli, ["keys", "generate", "--file", str(path)])
    assert result.exit_code == 2
    assert "already exists" in result.output
    assert "--force" in result.output
    assert path.read_text() == before
    forced = runner.invoke(cli, ["keys", "generate", "--file", str(path), "--force"])
    assert forced.exit_code == 0, forced.output
    assert path.read_text() != before


def test_rotate_promotes_the_published_next_key(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    runner.invoke(cli, ["keys", "generate", "--file", str(path), "--alg", "ES256"])
    before = load_key_file(path)
    next_kid = next(k.kid for k in before.keys if k.status == "next")
    result = runner.invoke(cli, ["keys", "rotate", "--file", str(path)])
    assert result.exit_code == 0, result.output
    after = load_key_file(path)
    assert after.signing_key("ES256").kid == next_kid
    assert next_kid in result.output
    assert [k.kid for k in after.keys if k.status == "retired"] == [
        before.signing_key("ES256").kid
    ]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_rotate_with_zero_lifetime_drops_the_retired_key(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    runner.invoke(cli, ["keys", "generate", "--file", str(path), "--alg", "ES256"])
    result = runner.invoke(
        cli, ["keys", "rotate", "--file", str(path), "--max-token-lifetime", "0"]
    )
    assert result.exit_code == 0, result.output
    assert [k.status for k in load_key_file(path).keys if k.status == "retired"] == []


def test_show_prints_the_public_jwks_only(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    runner.invoke(cli, ["keys", "generate", "--file", str(path)])
    result = runner.invoke(cli, ["keys", "show", "--file", str(path)])
    assert result.exit_code == 0, result.output
    jwks = json.loads(result.output)
    assert len(jwks["keys"]) == 4
    for jwk in jwks["keys"]:
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(jwk)
        assert "status" not in jwk
    assert "--private" not in runner.invoke(cli, ["keys", "show", "--help"]).output
    assert runner.invoke(cli, ["keys", "show", "--file", str(path), "--private"]).exit_code == 2


def test_show_and_rotate_report_a_missing_file(runner: CliRunner, tmp_path: Path) -> None:
    for command in ("show", "rotate"):
        result = runner.invoke(cli, ["keys", command, "--file", str(tmp_path / "none.json")])
        assert result.exit_code == 1
        assert "cannot read" in result.output
