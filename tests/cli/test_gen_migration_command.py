"""``authward gen-migration``: options, messages and exit codes of the real command.

Spec: authward spec/stores.md §1.2, §6.1 (GEN-12, GEN-13, GEN-14, GEN-16 through the CLI).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from click.testing import CliRunner, Result

from authward.cli.main import cli
from authward.migrations.generator import FILE_SUFFIX


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory for the command."""
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.chdir(root)
    return root


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, ["gen-migration", *args])


def revisions(directory: Path) -> list[Path]:
    return sorted(directory.glob(f"*{FILE_SUFFIX}"))


def test_writes_one_revision_and_exits_0(project: Path) -> None:
    """Written: exit 0, the path on stdout, the prefix inside the file."""
    result = invoke(
        "--database-url", "postgresql://u@db/app", "--migrations-path", "versions",
        "--table-prefix", "oauth_",
    )
    assert result.exit_code == 0, result.stderr
    (path,) = revisions(project / "versions")
    assert f"wrote {path}" in result.stdout
    assert "down_revision none" in result.stdout
    assert "op.create_table('oauth_attesto_authorization_codes'," in path.read_text()


def test_invalid_prefix_exits_2_and_writes_nothing(project: Path) -> None:
    """GEN-12: exit 2, "invalid --table-prefix" on stderr, directory stays empty."""
    (project / "versions").mkdir()
    result = invoke(
        "--database-url", "sqlite:///app.db", "--migrations-path", "versions",
        "--table-prefix", "bad-prefix;",
    )
    assert result.exit_code == 2
    assert "invalid --table-prefix 'bad-prefix;'" in result.stderr
    assert list((project / "versions").iterdir()) == []


def test_invalid_prefix_is_reported_before_missing_targets(project: Path) -> None:
    """§1.1: the prefix is checked before the no-target check."""
    result = invoke("--table-prefix", "Bad")
    assert result.exit_code == 2
    assert "invalid --table-prefix" in result.stderr


def test_existing_revision_exits_3_and_keeps_the_first_file(project: Path) -> None:
    """GEN-13: exit 3, "already exists", first file untouched."""
    args = ("--database-url", "sqlite:///app.db", "--migrations-path", "versions")
    assert invoke(*args).exit_code == 0
    (first,) = revisions(project / "versions")
    before = first.read_bytes()
    result = invoke(*args)
    assert result.exit_code == 3
    assert "already exists" in result.stderr
    assert "remove it before regenerating" in result.stderr
    assert revisions(project / "versions") == [first]
    assert first.read_bytes() == before


def test_no_target_exits_2(project: Path) -> None:
    """GEN-14: "no migration targets" with exit 2."""
    result = invoke()
    assert result.exit_code == 2
    expected = (
        "no migration targets; pass --alembic-config or --database-url with --migrations-path"
    )
    assert expected in result.stderr


def test_unsupported_dialect_exits_2(project: Path) -> None:
    """§1.2: only postgresql and sqlite URLs; nothing is written."""
    result = invoke("--database-url", "mysql://u@h/db", "--migrations-path", "versions")
    assert result.exit_code == 2
    assert "unsupported database 'mysql'" in result.stderr
    assert not (project / "versions").exists()


def test_database_url_without_path_exits_2(project: Path) -> None:
    """§1.2: --database-url must be paired with --migrations-path."""
    result = invoke("--database-url", "sqlite:///app.db")
    assert result.exit_code == 2
    assert "--migrations-path" in result.stderr


def test_default_alembic_ini_is_used(project: Path) -> None:
    """§1.2: with no target, ./alembic.ini is the target."""
    command.init(Config(str(project / "alembic.ini")), str(project / "migrations"))
    result = invoke()
    assert result.exit_code == 0, result.stderr
    assert len(revisions(project / "migrations" / "versions")) == 1


def test_pyproject_alembic_config_is_used(project: Path) -> None:
    """§1.2: else [tool.authward] alembic_config from pyproject.toml."""
    command.init(Config(str(project / "db" / "alembic.ini")), str(project / "db" / "migrations"))
    (project / "pyproject.toml").write_text('[tool.authward]\nalembic_config = "db/alembic.ini"\n')
    result = invoke()
    assert result.exit_code == 0, result.stderr
    assert len(revisions(project / "db" / "migrations" / "versions")) == 1


def test_prefix_sources_and_precedence(project: Path) -> None:
    """GEN-16: --settings beats pyproject, --table-prefix beats both; too long is rejected."""
    (project / "pyproject.toml").write_text('[tool.authward]\ntable_prefix = "proj_"\n')
    (project / "gen16_cli_settings.py").write_text("SETTINGS = {'table_prefix': 'sett_'}\n")
    base = ("--database-url", "sqlite:///app.db")

    def prefix_written(*args: str, directory: str) -> str:
        result = invoke(*base, "--migrations-path", directory, *args)
        assert result.exit_code == 0, result.stderr
        (path,) = revisions(project / directory)
        text = path.read_text()
        return text.split("TABLE_PREFIX = ", 1)[1].split("\n", 1)[0]

    assert prefix_written(directory="a") == "'proj_'"
    assert prefix_written("--settings", "gen16_cli_settings:SETTINGS", directory="b") == "'sett_'"
    assert (
        prefix_written(
            "--settings", "gen16_cli_settings:SETTINGS", "--table-prefix", "flag_", directory="c"
        )
        == "'flag_'"
    )
    assert prefix_written("--table-prefix", "", directory="d") == "''"
    result = invoke(*base, "--migrations-path", "e", "--table-prefix", "abcdefghij")
    assert result.exit_code == 2
    assert "63 bytes" in result.stderr
    assert not (project / "e").exists()


def test_bad_settings_reference_exits_2(project: Path) -> None:
    """--settings that cannot be imported is a usage error."""
    result = invoke(
        "--database-url", "sqlite:///app.db", "--migrations-path", "v",
        "--settings", "no_such_module_gen16:X",
    )
    assert result.exit_code == 2
    assert "cannot import" in result.stderr
