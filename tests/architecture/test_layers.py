"""The layering rule of ARCHITECTURE.md, checked on every import statement in src/authward.

cli -> asgi -> core -> stores (contracts); stores.sql implements the contracts. The core is
transport-free (no web framework, no SQL library, no environment reads), only ``core.jose``
touches the JOSE library, and only ``asgi`` knows Starlette.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"


@dataclass(frozen=True)
class Rule:
    """Modules in ``scope`` (minus ``except_scope``) must not import anything in ``forbidden``."""

    scope: str
    forbidden: tuple[str, ...]
    except_scope: tuple[str, ...] = ()


WEB = ("starlette", "uvicorn", "jinja2", "fastapi")
SQL = ("sqlalchemy", "alembic", "asyncpg", "aiosqlite")

RULES = (
    Rule(
        "authward.core",
        (*WEB, *SQL, "click", "authward.asgi", "authward.cli", "authward.migrations",
         "authward.stores.sql"),
    ),
    Rule(
        "authward.stores",
        (*WEB, *SQL, "click", "authward.core", "authward.asgi", "authward.cli",
         "authward.migrations", "authward.stores.sql"),
        except_scope=("authward.stores.sql",),
    ),
    Rule(
        "authward.stores.sql",
        (*WEB, "click", "authward.core", "authward.asgi", "authward.cli", "authward.migrations"),
    ),
    Rule("authward.migrations", (*WEB, "authward.core", "authward.asgi", "authward.cli")),
    Rule("authward.asgi", ("authward.cli", "click")),
    Rule("authward", ("joserfc",), except_scope=("authward.core.jose",)),
    Rule("authward", ("starlette",), except_scope=("authward.asgi",)),
)


def module_name(path: Path) -> str:
    """Dotted module name of a file under src/."""
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(tree: ast.AST, current: str) -> Iterator[str]:
    """Every module an AST imports, with relative imports resolved against ``current``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = current.split(".")[: -node.level]
                yield ".".join([*base, node.module] if node.module else base)
            elif node.module:
                yield node.module


def within(module: str, scope: str) -> bool:
    """Whether ``module`` is ``scope`` or inside it."""
    return module == scope or module.startswith(scope + ".")


def violations(module: str, tree: ast.AST) -> list[str]:
    """Every layering violation in one module."""
    found: list[str] = []
    for rule in RULES:
        if not within(module, rule.scope) or any(within(module, e) for e in rule.except_scope):
            continue
        for target in imported_modules(tree, module):
            for bad in rule.forbidden:
                if within(target, bad):
                    found.append(f"{module} imports {target} (forbidden in {rule.scope})")
    if within(module, "authward.core"):
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in {"environ", "getenv"}:
                found.append(f"{module} reads the environment (os.{node.attr})")
    return found


def source_modules() -> list[tuple[str, ast.AST]]:
    return [
        (module_name(p), ast.parse(p.read_text(), str(p)))
        for p in sorted((SRC / "authward").rglob("*.py"))
    ]


def test_the_source_tree_keeps_the_layering_rule() -> None:
    found = [v for name, tree in source_modules() for v in violations(name, tree)]
    assert found == []


def test_the_tree_has_every_layer() -> None:
    names = {name for name, _ in source_modules()}
    for layer in ("authward.core", "authward.stores", "authward.stores.sql", "authward.cli"):
        assert layer in names


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("authward.core.tokens", "import sqlalchemy as sa"),
        ("authward.core.tokens", "from starlette.responses import JSONResponse"),
        ("authward.core.tokens", "from authward.stores.sql.codes import SqlAuthorizationCodeStore"),
        ("authward.core.tokens", "from ..stores.sql import schema"),
        ("authward.core.config", "import os\nvalue = os.environ['X']"),
        ("authward.core.tokens", "import joserfc"),
        ("authward.stores.codes", "from sqlalchemy import select"),
        ("authward.stores.codes", "from authward.core.errors import OAuthError"),
        ("authward.stores.sql.codes", "from authward.core import errors"),
        ("authward.asgi.app", "from authward.cli.main import cli"),
    ],
)
def test_a_forbidden_import_is_reported(module: str, source: str) -> None:
    assert violations(module, ast.parse(source)) != []


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("authward.core.tokens", "from authward.stores.codes import CodeEntry"),
        ("authward.core.jose", "import joserfc"),
        ("authward.stores.sql.codes", "import sqlalchemy as sa"),
        ("authward.asgi.app", "from starlette.applications import Starlette"),
        ("authward.cli.main", "from authward.asgi import app"),
    ],
)
def test_an_allowed_import_is_not_reported(module: str, source: str) -> None:
    assert violations(module, ast.parse(source)) == []
