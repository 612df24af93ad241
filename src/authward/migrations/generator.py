"""Write the frozen Alembic revision that creates the nine authward tables, once per target.

Spec: authward spec/stores.md §1.1, §1.2 (``authward gen-migration``), §2, §2.12, §7 items 1
and 10.

The revision is rendered by Alembic's own autogenerate renderer from
``build_metadata(prefix, "postgresql")``, the one source of every table. Nothing here connects to
a database: heads are read from the revision files with ``alembic.script.ScriptDirectory``.
"""

from __future__ import annotations

import importlib
import secrets
import string
import sys
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import render_python_code
from alembic.autogenerate.api import AutogenContext
from alembic.config import Config
from alembic.operations import ops
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from authward.migrations.template import MARKER, REVISION_TEMPLATE
from authward.stores.errors import InvalidTablePrefixError
from authward.stores.sql.schema import Tables, build_metadata, validate_table_prefix

#: File-name suffix of a generated revision (after the UTC timestamp).
FILE_SUFFIX = "_create_authward_tables.py"
SUPPORTED_DIALECTS = ("postgresql", "sqlite")


class GenerationError(Exception):
    """The command cannot run as asked: bad usage, bad prefix, no target (exit code 2)."""

    exit_code = 2


class MigrationExistsError(GenerationError):
    """A target already holds the authward revision; nothing was written (exit code 3)."""

    exit_code = 3


@dataclass(frozen=True, slots=True)
class Target:
    """One directory to write a revision into, with the revision heads it must follow."""

    versions_dir: Path
    heads: tuple[str, ...]
    #: Where the target came from (the ini file or the database URL), for messages.
    source: str


@dataclass(frozen=True, slots=True)
class Written:
    """One revision file written by ``generate``."""

    path: Path
    revision: str
    down_revision: str | tuple[str, ...] | None


# --- prefix -----------------------------------------------------------------------------------


def resolve_prefix(explicit: str | None, settings: str | None, cwd: Path) -> str:
    """Return the validated table prefix; the first source that answers wins.

    Order: ``explicit`` (``--table-prefix``; ``""`` counts), ``settings`` (``MODULE:ATTR`` whose
    ``table_prefix`` attribute or key is read, nothing else validated), ``[tool.authward]
    table_prefix`` in the nearest ``pyproject.toml`` above ``cwd``, then ``""``. Raises
    ``GenerationError`` naming ``--table-prefix`` when the prefix is unusable.
    """
    value: object
    if explicit is not None:
        value = explicit
    elif settings is not None:
        value = _prefix_from_settings(settings, cwd)
    else:
        value = _pyproject_setting(cwd, "table_prefix")
    if value is None:
        value = ""
    try:
        return validate_table_prefix(value)
    except InvalidTablePrefixError as exc:
        message = str(exc)
        if "--table-prefix" not in message:
            message = f"invalid --table-prefix {value!r}: {message}"
        raise GenerationError(message) from exc


def _prefix_from_settings(spec: str, cwd: Path) -> object:
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise GenerationError(f"--settings expects MODULE:ATTR, got {spec!r}")
    added = str(cwd) not in sys.path
    if added:
        sys.path.insert(0, str(cwd))
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise GenerationError(f"--settings: cannot import {module_name!r}: {exc}") from exc
    finally:
        if added:
            sys.path.remove(str(cwd))
    obj: object = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise GenerationError(f"--settings: {module_name!r} has no {attr!r}") from exc
    if isinstance(obj, Mapping):
        return obj.get("table_prefix")
    return getattr(obj, "table_prefix", None)


def _nearest_pyproject(cwd: Path) -> Path | None:
    for directory in (cwd, *cwd.parents):
        candidate = directory / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def _pyproject_setting(cwd: Path, key: str) -> object:
    """``[tool.authward] <key>`` from the nearest ``pyproject.toml``, or None."""
    path = _nearest_pyproject(cwd)
    if path is None:
        return None
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise GenerationError(f"cannot read {path}: {exc}") from exc
    section = data.get("tool", {}).get("authward", {})
    return section.get(key) if isinstance(section, dict) else None


# --- targets ----------------------------------------------------------------------------------


def resolve_targets(
    alembic_configs: Sequence[Path],
    database_urls: Sequence[str],
    migrations_paths: Sequence[Path],
    cwd: Path,
) -> list[Target]:
    """Return the deduplicated targets, reading heads without touching any database.

    ``alembic_configs`` are ``alembic.ini`` files (their script location, or
    ``version_locations`` when set, gives the versions directory; one ``migrations_paths`` entry
    may pick among several locations). ``database_urls`` pair with ``migrations_paths`` by
    position (or all share a single path); a URL is parsed only to check its dialect. With no
    target at all: ``./alembic.ini``, else ``[tool.authward] alembic_config`` in the nearest
    ``pyproject.toml``, else ``GenerationError``.
    """
    targets: list[Target] = []
    if database_urls:
        if not migrations_paths:
            raise GenerationError("--database-url needs --migrations-path")
        if len(migrations_paths) not in (1, len(database_urls)):
            raise GenerationError(
                "give one --migrations-path for every --database-url, or a single one for all"
            )
        paths = (
            list(migrations_paths) * len(database_urls)
            if len(migrations_paths) == 1
            else list(migrations_paths)
        )
        for url, path in zip(database_urls, paths, strict=True):
            _check_url(url)
            targets.append(_plain_target(_absolute(path, cwd), source=_safe_url(url)))
    configs = list(alembic_configs)
    if not configs and not database_urls:
        default = cwd / "alembic.ini"
        if default.is_file():
            configs = [default]
        else:
            configured = _pyproject_setting(cwd, "alembic_config")
            pyproject = _nearest_pyproject(cwd)
            if isinstance(configured, str) and configured and pyproject is not None:
                configs = [pyproject.parent / configured]
    if configs:
        override = None
        if not database_urls and migrations_paths:
            if len(migrations_paths) > 1:
                raise GenerationError("give at most one --migrations-path with --alembic-config")
            override = _absolute(migrations_paths[0], cwd)
        targets.extend(_alembic_target(_absolute(c, cwd), override) for c in configs)
    if not targets:
        raise GenerationError(
            "no migration targets; pass --alembic-config or --database-url with --migrations-path"
        )
    unique: dict[Path, Target] = {}
    for target in targets:
        unique.setdefault(target.versions_dir, target)
    return list(unique.values())


def _absolute(path: Path, cwd: Path) -> Path:
    return (path if path.is_absolute() else cwd / path).resolve()


def _check_url(url: str) -> None:
    try:
        backend = make_url(url).get_backend_name()
    except ArgumentError as exc:
        raise GenerationError(f"invalid --database-url {url!r}: {exc}") from exc
    if backend not in SUPPORTED_DIALECTS:
        raise GenerationError(
            f"unsupported database {backend!r} in --database-url: use postgresql or sqlite"
        )


def _safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _alembic_target(ini: Path, override: Path | None) -> Target:
    if not ini.is_file():
        raise GenerationError(f"--alembic-config {ini}: no such file")
    try:
        script = ScriptDirectory.from_config(Config(str(ini)))
        heads = tuple(script.get_heads())
        several = len(script.version_locations) > 1
        single = None if several else Path(script.versions).resolve()
    except CommandError as exc:
        raise GenerationError(f"--alembic-config {ini}: {exc}") from exc
    if override is not None:
        versions_dir = override
    elif single is not None:
        versions_dir = single
    else:
        raise GenerationError(
            f"--alembic-config {ini} has several version_locations; pick one with "
            "--migrations-path"
        )
    return Target(versions_dir=versions_dir, heads=heads, source=str(ini))


def _plain_target(path: Path, *, source: str) -> Target:
    """A ``--migrations-path``: an Alembic script directory, its versions dir, or a plain dir."""
    if (path / "env.py").is_file():
        return Target(path / "versions", _heads(path, None), source)
    if (path.parent / "env.py").is_file():
        return Target(path, _heads(path.parent, path), source)
    return Target(path, _heads(path, path) if path.is_dir() else (), source)


def _heads(script_dir: Path, versions_dir: Path | None) -> tuple[str, ...]:
    """Heads of the revision files under ``script_dir`` (no database), or () if unreadable."""
    if not script_dir.is_dir():
        return ()
    locations = [str(versions_dir)] if versions_dir is not None else None
    if versions_dir is None and not (script_dir / "versions").is_dir():
        return ()
    try:
        return tuple(ScriptDirectory(str(script_dir), version_locations=locations).get_heads())
    except CommandError as exc:
        raise GenerationError(f"cannot read the revisions in {script_dir}: {exc}") from exc


# --- rendering --------------------------------------------------------------------------------


def render_revision(
    prefix: str,
    revision: str,
    down_revision: str | tuple[str, ...] | None,
    create_date: datetime,
) -> str:
    """Return the source of the frozen revision for ``prefix``.

    Built from ``build_metadata(prefix, "postgresql")`` with Alembic's renderer; list and map
    server defaults become calls to helpers in the file that pick the PostgreSQL or portable
    default (taken from ``build_metadata(prefix, "sqlite")``) from the dialect at run time.
    """
    pg = build_metadata(prefix, "postgresql")
    portable = build_metadata(prefix, "sqlite")
    pg_list, pg_map = _default_texts(pg)
    portable_list, portable_map = _default_texts(portable)

    def render_item(kind: str, obj: Any, _ctx: AutogenContext) -> str | bool:
        if kind == "server_default" and isinstance(obj, sa.DefaultClause):
            text = _text_of(obj)
            if text == pg_list:
                return "_empty_list()"
            if text == pg_map:
                return "_empty_map()"
        return False

    upgrade: list[ops.MigrateOperation] = []
    for table in pg.in_creation_order():
        upgrade.append(ops.CreateTableOp.from_table(table))
        upgrade.extend(
            ops.CreateIndexOp.from_index(index)
            for index in sorted(table.indexes, key=lambda ix: str(ix.name))
        )
    downgrade: list[ops.MigrateOperation] = [
        ops.DropTableOp.from_table(table) for table in reversed(pg.in_creation_order())
    ]
    context = MigrationContext.configure(dialect_name="postgresql")
    date = create_date.strftime("%Y-%m-%d %H:%M:%S")
    return string.Template(REVISION_TEMPLATE).substitute(
        prefix_repr=repr(prefix),
        create_date=date,
        revision=revision,
        revises=_revises(down_revision),
        marker=MARKER,
        revision_repr=repr(revision),
        down_revision_repr=repr(down_revision),
        pg_empty_list=repr(pg_list),
        portable_empty_list=repr(portable_list),
        pg_empty_map=repr(pg_map),
        portable_empty_map=repr(portable_map),
        upgrade_body=_render(ops.UpgradeOps(ops=upgrade), render_item, context),
        downgrade_body=_render(ops.DowngradeOps(ops=downgrade), render_item, context),
    )


def _default_texts(tables: Tables) -> tuple[str, str]:
    """The server-default SQL of a list column and of a map column in ``tables``."""
    codes = tables.authorization_codes
    return _text_of(codes.c.scope.server_default), _text_of(codes.c.claims.server_default)


def _text_of(default: object) -> str:
    if isinstance(default, sa.DefaultClause) and isinstance(default.arg, sa.TextClause):
        return default.arg.text
    raise TypeError(f"expected a text server default, got {default!r}")


def _render(
    operations: ops.UpgradeOps | ops.DowngradeOps, render_item: Any, context: MigrationContext
) -> str:
    code = render_python_code(operations, render_item=render_item, migration_context=context)
    lines = [line for line in code.splitlines() if not line.lstrip().startswith("# ###")]
    return "\n".join(lines)


def _revises(down_revision: str | tuple[str, ...] | None) -> str:
    if down_revision is None:
        return ""
    if isinstance(down_revision, tuple):
        return ", ".join(down_revision)
    return down_revision


# --- writing ----------------------------------------------------------------------------------


def existing_revision(versions_dir: Path) -> Path | None:
    """The authward revision already in ``versions_dir`` (by file name or marker), if any."""
    if not versions_dir.is_dir():
        return None
    for path in sorted(versions_dir.glob("*.py")):
        if path.name.endswith(FILE_SUFFIX):
            return path
        try:
            if MARKER in path.read_text(encoding="utf-8", errors="replace"):
                return path
        except OSError:
            continue
    return None


def generate(targets: Sequence[Target], prefix: str, now: datetime | None = None) -> list[Written]:
    """Write one revision per target; refuse (writing nothing) if any target already has one.

    ``prefix`` must already be validated (``resolve_prefix``). Raises ``MigrationExistsError``.
    """
    for target in targets:
        found = existing_revision(target.versions_dir)
        if found is not None:
            raise MigrationExistsError(
                f"migration create_authward_tables already exists in {target.versions_dir} "
                f"({found.name}); remove it before regenerating to avoid duplicate tables"
            )
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    written: list[Written] = []
    for target in targets:
        revision = secrets.token_hex(6)
        down: str | tuple[str, ...] | None
        if not target.heads:
            down = None
        elif len(target.heads) == 1:
            down = target.heads[0]
        else:
            down = tuple(sorted(target.heads))
        source = render_revision(prefix, revision, down, moment)
        target.versions_dir.mkdir(parents=True, exist_ok=True)
        path = target.versions_dir / f"{moment.strftime('%Y%m%d%H%M%S')}{FILE_SUFFIX}"
        with path.open("x", encoding="utf-8") as handle:
            handle.write(source)
        written.append(Written(path=path, revision=revision, down_revision=down))
    return written
