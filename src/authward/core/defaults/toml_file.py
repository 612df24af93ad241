"""Reading the host's TOML file of clients and users, with errors that name the bad key.

Spec: TOML 1.0 (https://toml.io/en/v1.0.0); the record rules are in ``clients.py`` and
``users.py``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Final

__all__ = [
    "HostFileError",
    "check_keys",
    "entries",
    "load_toml",
    "read_bool",
    "read_string",
    "read_strings",
    "require_string",
    "table",
]

_MISSING: Final = object()


class HostFileError(ValueError):
    """The clients/users file is unreadable or wrong; ``key`` names the bad entry
    (``clients[1].redirect_uris``)."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


def load_toml(path: str | PathLike[str]) -> Mapping[str, object]:
    """Parse the TOML file at ``path``; syntax errors become ``HostFileError``."""
    try:
        with Path(path).open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise HostFileError(str(path), f"is not valid TOML ({exc})") from None
    except OSError as exc:
        raise HostFileError(str(path), f"cannot be read ({exc.strerror})") from None


def entries(data: Mapping[str, object], name: str) -> list[tuple[str, Mapping[str, object]]]:
    """The ``[[name]]`` array of tables as (key, table) pairs; absent means empty."""
    value = data.get(name, [])
    if not isinstance(value, list):
        raise HostFileError(name, "must be an array of tables ([[" + name + "]])")
    found: list[tuple[str, Mapping[str, object]]] = []
    for index, item in enumerate(value):
        key = f"{name}[{index}]"
        found.append((key, table(key, item)))
    return found


def table(key: str, value: object) -> Mapping[str, object]:
    """``value`` as a table with string keys, else ``HostFileError``."""
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise HostFileError(key, "must be a table")
    return value


def check_keys(key: str, entry: Mapping[str, object], allowed: frozenset[str]) -> None:
    """Refuse keys outside ``allowed`` (a typo must not silently drop a setting)."""
    for name in entry:
        if name not in allowed:
            raise HostFileError(f"{key}.{name}", "is not a known key")


def read_string(key: str, entry: Mapping[str, object], name: str, *, required: bool = False
                ) -> str | None:
    """A non-empty string value, ``None`` when absent and not ``required``."""
    value = entry.get(name, _MISSING)
    if value is _MISSING:
        if required:
            raise HostFileError(f"{key}.{name}", "is required")
        return None
    if not isinstance(value, str) or not value:
        raise HostFileError(f"{key}.{name}", "must be a non-empty string")
    return value


def require_string(key: str, entry: Mapping[str, object], name: str) -> str:
    """A required non-empty string value."""
    value = read_string(key, entry, name, required=True)
    assert value is not None
    return value


def read_strings(key: str, entry: Mapping[str, object], name: str) -> tuple[str, ...] | None:
    """An array of non-empty strings, ``None`` when absent."""
    value = entry.get(name, _MISSING)
    if value is _MISSING:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise HostFileError(f"{key}.{name}", "must be an array of non-empty strings")
    return tuple(value)


def read_bool(key: str, entry: Mapping[str, object], name: str) -> bool | None:
    """A boolean value, ``None`` when absent."""
    value = entry.get(name, _MISSING)
    if value is _MISSING:
        return None
    if not isinstance(value, bool):
        raise HostFileError(f"{key}.{name}", "must be true or false")
    return value
