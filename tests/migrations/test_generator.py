"""The generated revision: its text, and what it builds when run for real (GEN-01..14, GEN-16).

Spec: authward spec/stores.md §1.1, §1.2, §2, §6.1.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncEngine

from authward.migrations.generator import (
    FILE_SUFFIX,
    GenerationError,
    MigrationExistsError,
    generate,
    render_revision,
    resolve_prefix,
    resolve_targets,
)
from authward.migrations.template import MARKER
from authward.stores.sql.engine import create_engine
from authward.stores.sql.schema import TABLE_NAMES, build_metadata
from tests.dbkit import KINDS, empty_database
from tests.migrations.kit import generate_into, load_revision, reflect, run_step


@dataclass
class Applied:
    """A generated revision, upgraded on a real empty database."""

    kind: str
    path: Path
    text: str
    module: ModuleType
    engine: AsyncEngine
    schema: dict[str, dict[str, Any]]

    def column(self, table: str, name: str) -> dict[str, Any]:
        return dict(self.schema[table]["columns"][name])

    def index(self, table: str, name: str) -> dict[str, Any]:
        return dict(self.schema[table]["indexes"][name])


async def _applied(kind: str, tmp_path: Path, prefix: str) -> AsyncIterator[Applied]:
    path = generate_into(tmp_path / "versions", prefix)
    module = load_revision(path)
    async with empty_database(kind, tmp_path) as (url, options):
        engine = create_engine(url, **options)
        try:
            await run_step(engine, module, "upgrade")
            yield Applied(kind, path, path.read_text(), module, engine, await reflect(engine))
        finally:
            await engine.dispose()


@pytest.fixture(params=KINDS)
async def applied(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Applied]:
    """The unprefixed revision upgraded on SQLite, then on PostgreSQL."""
    async for item in _applied(request.param, tmp_path, ""):
        yield item


@pytest.fixture(params=KINDS)
async def applied_oauth(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Applied]:
    """The revision for prefix ``oauth_`` upgraded on SQLite, then on PostgreSQL."""
    async for item in _applied(request.param, tmp_path, "oauth_"):
        yield item


def _is_json(applied: Applied, column: dict[str, Any]) -> bool:
    if applied.kind == "postgresql":
        return isinstance(column["type"], postgresql.JSONB)
    return isinstance(column["type"], sa.JSON)


def _length(column: dict[str, Any]) -> int | None:
    return getattr(column["type"], "length", None)


# --- GEN-01 .. GEN-10: the tables the revision builds -------------------------------------------


async def test_upgrade_creates_all_nine_tables(applied: Applied) -> None:
    """GEN-01 (+ device codes and logout sessions): the nine tables and nothing else."""
    for name in TABLE_NAMES:
        assert f"op.create_table({name!r}," in applied.text
    assert set(applied.schema) == set(TABLE_NAMES)


async def test_cimd_table_is_keyed_on_url_with_json_metadata(applied: Applied) -> None:
    """GEN-02: url NOT NULL PK varchar(255), metadata NOT NULL JSON, index on expires_at."""
    t = "attesto_client_id_metadata"
    url = applied.column(t, "url")
    assert (url["nullable"], _length(url)) == (False, 255)
    assert applied.schema[t]["pk"]["constrained_columns"] == ["url"]
    metadata = applied.column(t, "metadata")
    assert metadata["nullable"] is False
    assert _is_json(applied, metadata)
    assert applied.index(t, f"{t}_expires_at_index")["column_names"] == ["expires_at"]


async def test_par_table_is_keyed_on_request_uri_with_json_params(applied: Applied) -> None:
    """GEN-03: request_uri NOT NULL PK varchar(255), params NOT NULL JSON, expires_at index."""
    t = "attesto_pushed_authorization_requests"
    uri = applied.column(t, "request_uri")
    assert (uri["nullable"], _length(uri)) == (False, 255)
    assert applied.schema[t]["pk"]["constrained_columns"] == ["request_uri"]
    params = applied.column(t, "params")
    assert params["nullable"] is False
    assert _is_json(applied, params)
    assert applied.index(t, f"{t}_expires_at_index")["column_names"] == ["expires_at"]


async def test_secret_lookups_have_unique_indexes(applied: Applied) -> None:
    """GEN-04: unique indexes on code_hash, token_hash and dpop nonce."""
    for table, col in [
        ("attesto_authorization_codes", "code_hash"),
        ("attesto_refresh_tokens", "token_hash"),
        ("dpop_nonces", "nonce"),
    ]:
        index = applied.index(table, f"{table}_{col}_index")
        assert index["unique"], (table, col)
        assert index["column_names"] == [col]


async def test_replay_jti_is_the_primary_key_without_a_separate_index(applied: Applied) -> None:
    """GEN-05: dpop_replays.jti is the PK (varchar(255)), no unique index on jti, usec times."""
    t = "dpop_replays"
    jti = applied.column(t, "jti")
    assert (jti["nullable"], _length(jti)) == (False, 255)
    pk = applied.schema[t]["pk"]
    assert pk["constrained_columns"] == ["jti"]
    assert not [ix for ix in applied.schema[t]["indexes"].values() if "jti" in ix["column_names"]]
    inserted = applied.column(t, "inserted_at")
    assert inserted["nullable"] is False
    assert "'inserted_at', sa.DateTime().with_variant(postgresql.TIMESTAMP(precision=6)" in (
        applied.text
    )
    if applied.kind == "postgresql":
        assert pk["name"] == "dpop_replays_pkey"
        assert inserted["type"].precision == 6


async def test_authorization_code_columns(applied: Applied) -> None:
    """GEN-06: code_hash 88 NOT NULL; PKCE and cnf nullable; claims NOT NULL default {}."""
    t = "attesto_authorization_codes"
    code_hash = applied.column(t, "code_hash")
    assert (code_hash["nullable"], _length(code_hash)) == (False, 88)
    challenge = applied.column(t, "code_challenge")
    assert (challenge["nullable"], _length(challenge)) == (True, 255)
    method = applied.column(t, "code_challenge_method")
    assert (method["nullable"], _length(method)) == (True, 16)
    cnf = applied.column(t, "cnf")
    assert cnf["nullable"] is True
    assert _is_json(applied, cnf)
    claims = applied.column(t, "claims")
    assert claims["nullable"] is False
    assert _is_json(applied, claims)
    assert "'{}'" in str(claims["default"])
    assert applied.column(t, "consumed_at")["nullable"] is True
    assert "id" not in applied.schema[t]["columns"]
    assert not applied.schema[t]["pk"]["constrained_columns"]


async def test_refresh_token_columns(applied: Applied) -> None:
    """GEN-07: refresh token sizes, defaults and nullability, and the family_id index."""
    t = "attesto_refresh_tokens"
    expected = {
        "token_hash": (False, 88),
        "family_id": (False, 255),
        "parent_hash": (True, 88),
    }
    for name, (nullable, length) in expected.items():
        col = applied.column(t, name)
        assert (col["nullable"], _length(col)) == (nullable, length), name
    generation = applied.column(t, "generation")
    assert generation["nullable"] is False
    assert isinstance(generation["type"], sa.Integer)
    assert "0" in str(generation["default"])
    for name in ("consumed", "family_revoked"):
        col = applied.column(t, name)
        assert col["nullable"] is False
        assert str(col["default"]).lower() in ("false", "'false'", "0"), col["default"]
    assert applied.column(t, "consumed_at")["nullable"] is True
    successor = applied.column(t, "successor")
    assert successor["nullable"] is True
    assert _is_json(applied, successor)
    assert applied.index(t, f"{t}_family_id_index")["column_names"] == ["family_id"]


async def test_dpop_nonce_times(applied: Applied) -> None:
    """GEN-08: issued_at NOT NULL, used_at nullable (and the explicit partial index)."""
    assert applied.column("dpop_nonces", "issued_at")["nullable"] is False
    assert applied.column("dpop_nonces", "used_at")["nullable"] is True
    assert "dpop_nonces_unused_index" in applied.schema["dpop_nonces"]["indexes"]


async def test_expiring_tables_have_expires_at_indexes(applied: Applied) -> None:
    """GEN-09: expires_at indexes on authorization codes, refresh tokens and dpop replays."""
    for table in ("attesto_authorization_codes", "attesto_refresh_tokens", "dpop_replays"):
        index = applied.index(table, f"{table}_expires_at_index")
        assert index["column_names"] == ["expires_at"]
        assert not index["unique"]


async def test_downgrade_drops_every_table_upgrade_created(applied: Applied) -> None:
    """GEN-10: upgrade and downgrade exist; downgrade leaves no table behind, in reverse order."""
    assert callable(applied.module.upgrade)
    assert callable(applied.module.downgrade)
    await run_step(applied.engine, applied.module, "downgrade")
    assert await reflect(applied.engine) == {}
    dropped = re.findall(r"op\.drop_table\('([a-z_]+)'\)", applied.text)
    assert dropped == list(reversed(TABLE_NAMES))


def test_upgrade_creates_tables_in_spec_order_each_followed_by_its_indexes(
    tmp_path: Path,
) -> None:
    """GEN-01/§1.1: creation order, with every table's indexes right after it."""
    text = generate_into(tmp_path / "versions").read_text()
    steps = re.findall(r"op\.create_(table|index)\('([a-z_]+)'(?:, '([a-z_]+)')?", text)
    created = [name for kind, name, _ in steps if kind == "table"]
    assert created == list(TABLE_NAMES)
    current = None
    for kind, name, on_table in steps:
        if kind == "table":
            current = name
        else:
            assert on_table == current, name


async def test_prefix_applies_to_every_table_and_index(applied_oauth: Applied) -> None:
    """GEN-11: --table-prefix oauth_ prefixes every table and every index target."""
    assert set(applied_oauth.schema) == {"oauth_" + name for name in TABLE_NAMES}
    for table, info in applied_oauth.schema.items():
        for index_name in info["indexes"]:
            assert index_name.startswith(table), index_name
    t = "oauth_attesto_authorization_codes"
    assert applied_oauth.index(t, f"{t}_code_hash_index")["unique"]
    assert (
        f"op.create_index('{t}_code_hash_index', '{t}', ['code_hash'], unique=True)"
        in applied_oauth.text
    )
    assert "TABLE_PREFIX = 'oauth_'" in applied_oauth.text


# --- the file itself ---------------------------------------------------------------------------


def test_revision_is_frozen_and_marked(tmp_path: Path) -> None:
    """§1.2: only sqlalchemy/alembic imports, the marker line, a docstring naming the prefix."""
    text = generate_into(tmp_path / "versions", "oauth_").read_text()
    imports = [
        line.strip() for line in text.splitlines() if re.match(r"\s*(import|from)\s", line)
    ]
    assert imports
    for line in imports:
        assert re.match(r"(from __future__|import sqlalchemy|from (alembic|sqlalchemy)\b)", line)
    assert "authward." not in "\n".join(imports)
    assert MARKER in text.splitlines()
    assert text.startswith('"""Create the nine authward tables (table prefix: \'oauth_\')')


def test_file_name_is_a_utc_timestamp_and_revision_is_random_hex(tmp_path: Path) -> None:
    """§1.2: <UTC YYYYMMDDhhmmss>_create_authward_tables.py; 12-hex revision id."""
    versions = tmp_path / "versions"
    targets = resolve_targets([], ["sqlite://"], [versions], tmp_path)
    moment = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    (written,) = generate(targets, "", now=moment)
    assert written.path == versions / "20260304050607_create_authward_tables.py"
    assert re.fullmatch(r"[0-9a-f]{12}", written.revision)
    module = load_revision(written.path)
    assert module.revision == written.revision
    assert module.down_revision is None


def test_list_and_map_defaults_are_chosen_by_dialect_at_run_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """§2.12: list/map server defaults come from the running dialect, matching schema.py."""
    module = load_revision(generate_into(tmp_path / "versions"))
    text = generate_into(tmp_path / "other").read_text()
    assert "server_default=_empty_list()" in text
    assert "server_default=_empty_map()" in text

    class FakeDialect:
        name = ""

    class FakeContext:
        dialect = FakeDialect()

    monkeypatch.setattr(module.op, "get_context", lambda: FakeContext())
    for dialect in ("postgresql", "sqlite"):
        FakeDialect.name = dialect
        codes = build_metadata("", dialect).authorization_codes
        list_default, map_default = codes.c.scope.server_default, codes.c.claims.server_default
        assert isinstance(list_default, sa.DefaultClause)
        assert isinstance(map_default, sa.DefaultClause)
        assert module._empty_list().text == str(list_default.arg)
        assert module._empty_map().text == str(map_default.arg)


# --- refusals and resolution (GEN-12 .. GEN-14, GEN-16) ----------------------------------------


def test_invalid_prefix_fails_and_writes_nothing(tmp_path: Path) -> None:
    """GEN-12: `bad-prefix;` is an invalid --table-prefix; the directory stays empty."""
    versions = tmp_path / "versions"
    versions.mkdir()
    with pytest.raises(GenerationError, match="invalid --table-prefix") as caught:
        resolve_prefix("bad-prefix;", None, tmp_path)
    assert caught.value.exit_code == 2
    assert list(versions.iterdir()) == []


def test_second_run_is_refused_and_leaves_the_first_file_untouched(tmp_path: Path) -> None:
    """GEN-13: already exists; the first file's bytes are unchanged, nothing else written."""
    versions = tmp_path / "versions"
    first = generate_into(versions)
    before = first.read_bytes()
    targets = resolve_targets([], ["sqlite://"], [versions], tmp_path)
    with pytest.raises(MigrationExistsError, match="already exists") as caught:
        generate(targets, "", now=datetime(2030, 1, 1, tzinfo=UTC))
    assert caught.value.exit_code == 3
    assert "remove it before regenerating" in str(caught.value)
    assert list(versions.iterdir()) == [first]
    assert first.read_bytes() == before


def test_a_renamed_revision_is_found_by_its_marker(tmp_path: Path) -> None:
    """§1.2 refusals: a file containing the marker comment counts, whatever its name."""
    versions = tmp_path / "versions"
    first = generate_into(versions)
    renamed = first.rename(versions / "0001_initial_auth.py")
    targets = resolve_targets([], ["sqlite://"], [versions], tmp_path)
    with pytest.raises(MigrationExistsError, match="already exists"):
        generate(targets, "")
    assert list(versions.iterdir()) == [renamed]


def test_refusal_in_one_target_writes_nothing_anywhere(tmp_path: Path) -> None:
    """§1.2: all targets are checked before anything is written."""
    taken, free = tmp_path / "taken", tmp_path / "free"
    generate_into(taken)
    targets = resolve_targets([], ["sqlite://", "sqlite://"], [free, taken], tmp_path)
    with pytest.raises(MigrationExistsError):
        generate(targets, "")
    assert not free.exists()


def test_no_target_fails(tmp_path: Path) -> None:
    """GEN-14: no Alembic config, no URL, nothing configured -> "no migration targets"."""
    with pytest.raises(GenerationError, match="no migration targets") as caught:
        resolve_targets([], [], [], tmp_path)
    assert caught.value.exit_code == 2


def test_database_url_needs_a_supported_dialect_and_a_path(tmp_path: Path) -> None:
    """§1.2: the URL is only parsed; mysql is refused; a URL without a path is refused."""
    with pytest.raises(GenerationError, match="unsupported database 'mysql'"):
        resolve_targets([], ["mysql://u@h/db"], [tmp_path / "v"], tmp_path)
    with pytest.raises(GenerationError, match="--migrations-path"):
        resolve_targets([], ["sqlite://"], [], tmp_path)
    # Unreachable server: accepted, because nothing connects.
    (target,) = resolve_targets(
        [], ["postgresql://nobody@203.0.113.1:1/none"], [tmp_path / "v"], tmp_path
    )
    assert target.versions_dir == (tmp_path / "v").resolve()


def test_targets_sharing_a_directory_are_deduplicated(tmp_path: Path) -> None:
    """§1.2 (fixes the Elixir quirk): two URLs, one path -> one revision, no refusal."""
    versions = tmp_path / "versions"
    targets = resolve_targets([], ["sqlite://", "postgresql://x@y/z"], [versions], tmp_path)
    assert len(targets) == 1
    assert len(generate(targets, "")) == 1
    assert len(list(versions.glob(f"*{FILE_SUFFIX}"))) == 1


def _alembic_env(root: Path) -> Config:
    ini = root / "alembic.ini"
    config = Config(str(ini))
    command.init(config, str(root / "migrations"))
    return Config(str(ini))


def test_alembic_config_target_follows_the_current_head(tmp_path: Path) -> None:
    """§1.2: down_revision is the script directory's head, read without a database."""
    config = _alembic_env(tmp_path)
    head = command.revision(config, "host tables", rev_id="aaaa0000host")
    assert head is not None
    ini = tmp_path / "alembic.ini"
    targets = resolve_targets([ini, ini], [], [], tmp_path)
    assert len(targets) == 1
    assert targets[0].versions_dir == (tmp_path / "migrations" / "versions").resolve()
    (written,) = generate(targets, "")
    assert written.down_revision == "aaaa0000host"
    assert load_revision(written.path).down_revision == "aaaa0000host"


def test_several_heads_become_a_tuple(tmp_path: Path) -> None:
    """§1.2: with two heads the revision merges them (down_revision is a tuple)."""
    config = _alembic_env(tmp_path)
    command.revision(config, "one", rev_id="aaaa00000001", head="base", branch_label="one")
    command.revision(config, "two", rev_id="aaaa00000002", head="base", branch_label="two")
    (written,) = generate(resolve_targets([tmp_path / "alembic.ini"], [], [], tmp_path), "")
    assert written.down_revision == ("aaaa00000001", "aaaa00000002")


def test_version_locations_are_respected(tmp_path: Path) -> None:
    """§1.2: with version_locations set, the revision goes there."""
    _alembic_env(tmp_path)
    ini = tmp_path / "alembic.ini"
    text = ini.read_text()
    text = re.sub(r"(?m)^# version_locations = .*$", "version_locations = %(here)s/revs", text)
    assert "version_locations = %(here)s/revs" in text
    ini.write_text(text)
    (tmp_path / "revs").mkdir()
    (target,) = resolve_targets([ini], [], [], tmp_path)
    assert target.versions_dir == (tmp_path / "revs").resolve()


def test_default_targets_are_alembic_ini_then_pyproject(tmp_path: Path) -> None:
    """§1.2: no target -> ./alembic.ini, else [tool.authward] alembic_config."""
    host = tmp_path / "host"
    host.mkdir()
    _alembic_env(host / "db")
    (host / "pyproject.toml").write_text('[tool.authward]\nalembic_config = "db/alembic.ini"\n')
    (target,) = resolve_targets([], [], [], host)
    assert target.versions_dir == (host / "db" / "migrations" / "versions").resolve()
    (target,) = resolve_targets([], [], [], host / "db")
    assert target.source == str((host / "db" / "alembic.ini").resolve())


def test_plain_directory_reads_heads_from_its_revision_files(tmp_path: Path) -> None:
    """§1.2: --migrations-path without an Alembic env is a plain versions directory."""
    versions = tmp_path / "versions"
    versions.mkdir()
    (versions / "0001_host.py").write_text(
        textwrap.dedent(
            """\
            revision = "bbbb00000001"
            down_revision = None
            branch_labels = None
            depends_on = None

            def upgrade() -> None: ...

            def downgrade() -> None: ...
            """
        )
    )
    (written,) = generate(resolve_targets([], ["sqlite://"], [versions], tmp_path), "")
    assert written.down_revision == "bbbb00000001"


def test_too_long_prefix_is_rejected(tmp_path: Path) -> None:
    """GEN-16: a prefix that pushes an identifier over 63 bytes is an invalid --table-prefix."""
    resolve_prefix("a" * 9, None, tmp_path)  # 9 + 54 = 63 bytes: allowed
    with pytest.raises(GenerationError, match=r"invalid --table-prefix.*63 bytes"):
        resolve_prefix("a" * 10, None, tmp_path)


def test_prefix_from_settings_pyproject_and_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GEN-16: --settings and pyproject supply the prefix; the flag wins over both."""
    (tmp_path / "pyproject.toml").write_text('[tool.authward]\ntable_prefix = "proj_"\n')
    (tmp_path / "host_settings_gen16.py").write_text(
        "class Settings:\n    table_prefix = 'attr_'\n\n"
        "SETTINGS = Settings()\nMAPPING = {'table_prefix': 'map_', 'issuer': None}\n"
        "UNSET = {'issuer': 'https://x'}\nNUMBER = {'table_prefix': 7}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert resolve_prefix(None, None, tmp_path) == "proj_"
    assert resolve_prefix(None, None, tmp_path / "sub") == "proj_"
    assert resolve_prefix(None, "host_settings_gen16:SETTINGS", tmp_path) == "attr_"
    assert resolve_prefix(None, "host_settings_gen16:MAPPING", tmp_path) == "map_"
    assert resolve_prefix(None, "host_settings_gen16:UNSET", tmp_path) == ""
    assert resolve_prefix("flag_", "host_settings_gen16:SETTINGS", tmp_path) == "flag_"
    assert resolve_prefix("", "host_settings_gen16:SETTINGS", tmp_path) == ""
    with pytest.raises(GenerationError, match="must be a string"):
        resolve_prefix(None, "host_settings_gen16:NUMBER", tmp_path)
    (tmp_path / "pyproject.toml").write_text('[tool.authward]\ntable_prefix = "Bad"\n')
    with pytest.raises(GenerationError, match="invalid --table-prefix 'Bad'"):
        resolve_prefix(None, None, tmp_path)


def test_render_revision_merges_heads_in_the_header(tmp_path: Path) -> None:
    """§1.2: the header names the revision and what it revises."""
    text = render_revision("", "cccc00000001", ("x1", "x2"), datetime(2026, 1, 1, tzinfo=UTC))
    assert "Revision ID: cccc00000001" in text
    assert "Revises: x1, x2" in text
    assert "down_revision = ('x1', 'x2')" in text
