"""Signing keys: the private key file, rotation with a published next key, and the public JWKS.

Spec: RFC 7517 §4-§5 (JWK, JWK Set); RFC 7638 §3 (kid = thumbprint); OIDC Core 1.0 §10.1.1
(rotation of signing keys: publish before use, keep verifiable after retirement); OIDC Discovery
§3 (RS256 must be supported for ID tokens).

The key file is a JWK Set whose entries carry their private members plus authward's bookkeeping
members ``status`` (``next`` | ``active`` | ``retired``), ``created_at`` and, for retired keys,
``retired_at`` (Unix seconds). RFC 7517 §4 lets readers ignore such extra members. The file is
written with mode 0600, atomically (temporary file + rename). A :class:`KeySet` is an immutable
value: ``rotate`` and ``prune`` return new sets, which the caller saves.

Invariants per algorithm: exactly one ``active`` key, at most one ``next`` key; any number of
``retired`` keys. The public JWKS lists ``next`` (published before it signs, so verifiers have it
by the time it does), ``active`` and the retired keys whose tokens may still be alive.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final, Literal, TypedDict, cast

from authward.core.jose import (
    SIGNING_ALGORITHMS,
    JoseError,
    JsonWebKey,
    PrivateJwk,
    PublicJwk,
    SigningAlgorithm,
    generate_signing_key,
    import_signing_key,
)

__all__ = [
    "DEFAULT_KEY_FILE",
    "Jwks",
    "KeyFileError",
    "KeySet",
    "KeyStatus",
    "SigningKey",
    "load_key_file",
    "save_key_file",
]

KeyStatus = Literal["next", "active", "retired"]

#: Where the CLI reads and writes keys unless told otherwise (relative to the working directory).
DEFAULT_KEY_FILE: Final = "authward-keys.json"

_FILE_MODE: Final = 0o600
_STATUSES: Final[tuple[KeyStatus, ...]] = ("next", "active", "retired")


class Jwks(TypedDict):
    """A public JWK Set document (RFC 7517 §5)."""

    keys: list[PublicJwk]


class KeyFileError(ValueError):
    """The key file is unreadable, not a JWK Set, or breaks a KeySet invariant."""


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One key of the set: the private JWK, its algorithm, status and lifecycle times."""

    key: JsonWebKey
    alg: SigningAlgorithm
    status: KeyStatus
    created_at: float
    retired_at: float | None = None

    def __post_init__(self) -> None:
        if not self.key.is_private or self.key.alg != self.alg:
            raise ValueError("a SigningKey needs a private key with the same alg")
        if (self.status == "retired") != (self.retired_at is not None):
            raise ValueError("retired_at is set exactly for retired keys")

    @property
    def kid(self) -> str:
        """The key id: the RFC 7638 thumbprint."""
        return self.key.kid

    def verifiable_at(self, now: float, max_token_lifetime: float) -> bool:
        """True unless retired so long ago that no token it signed can still be alive."""
        return self.retired_at is None or now < self.retired_at + max_token_lifetime


@dataclass(frozen=True, slots=True)
class KeySet:
    """An immutable set of signing keys; see the module docstring for the invariants."""

    keys: tuple[SigningKey, ...]

    def __post_init__(self) -> None:
        kids = [k.kid for k in self.keys]
        if len(set(kids)) != len(kids):
            raise ValueError("two keys in the set share a kid")
        for alg in {k.alg for k in self.keys}:
            statuses = [k.status for k in self.keys if k.alg == alg]
            if statuses.count("active") != 1:
                raise ValueError(f"{alg}: exactly one active key is required")
            if statuses.count("next") > 1:
                raise ValueError(f"{alg}: at most one next key is allowed")

    @classmethod
    def generate(cls, algorithms: Iterable[SigningAlgorithm], *, now: float) -> KeySet:
        """A new set with, per algorithm, one active key and one published next key."""
        algs = _unique(algorithms)
        if not algs:
            raise ValueError("at least one algorithm is required")
        keys: list[SigningKey] = []
        for alg in algs:
            keys.append(SigningKey(generate_signing_key(alg), alg, "active", now))
            keys.append(SigningKey(generate_signing_key(alg), alg, "next", now))
        return cls(tuple(keys))

    @property
    def algorithms(self) -> tuple[SigningAlgorithm, ...]:
        """The algorithms this set can sign with, in the order they first appear."""
        return _unique(k.alg for k in self.keys if k.status == "active")

    def signing_key(self, alg: SigningAlgorithm) -> JsonWebKey:
        """The active private key for ``alg``; LookupError when the set has none."""
        for key in self.keys:
            if key.alg == alg and key.status == "active":
                return key.key
        raise LookupError(f"no active {alg} signing key; run `authward keys generate --alg {alg}`")

    def verification_keys(self, *, now: float, max_token_lifetime: float) -> tuple[JsonWebKey, ...]:
        """Keys a token signed by this server may verify with: next, active, live retired."""
        return tuple(k.key for k in self._published(now, max_token_lifetime))

    def public_jwks(self, *, now: float, max_token_lifetime: float) -> Jwks:
        """The public JWK Set: public members of next, active and still-needed retired keys."""
        return {"keys": [k.key.public_jwk() for k in self._published(now, max_token_lifetime)]}

    def rotate(self, *, now: float, algorithms: Iterable[SigningAlgorithm] | None = None) -> KeySet:
        """Rotate ``algorithms`` (default: all): next becomes active, active retires at ``now``.

        A next key is generated on the spot when none was published (it then signs without
        having been published first: verifiers that cache the JWKS may miss it briefly). A
        fresh next key is published for every rotated algorithm.
        """
        targets = self.algorithms if algorithms is None else _unique(algorithms)
        keys = list(self.keys)
        for alg in targets:
            active = [i for i, k in enumerate(keys) if k.alg == alg and k.status == "active"]
            if not active:
                raise LookupError(f"no active {alg} key to rotate")
            keys[active[0]] = replace(keys[active[0]], status="retired", retired_at=now)
            upcoming = [i for i, k in enumerate(keys) if k.alg == alg and k.status == "next"]
            if upcoming:
                keys[upcoming[0]] = replace(keys[upcoming[0]], status="active")
            else:
                keys.append(SigningKey(generate_signing_key(alg), alg, "active", now))
            keys.append(SigningKey(generate_signing_key(alg), alg, "next", now))
        return KeySet(tuple(keys))

    def prune(self, *, now: float, max_token_lifetime: float) -> KeySet:
        """Drop retired keys retired at least ``max_token_lifetime`` seconds before ``now``.

        ``max_token_lifetime`` must cover the longest lifetime of anything signed with these keys
        (access tokens, ID tokens, logout tokens) plus the verifiers' clock leeway.
        """
        if max_token_lifetime < 0:
            raise ValueError("max_token_lifetime must not be negative")
        return KeySet(tuple(k for k in self.keys if k.verifiable_at(now, max_token_lifetime)))

    def _published(self, now: float, max_token_lifetime: float) -> list[SigningKey]:
        order = {status: index for index, status in enumerate(("active", "next", "retired"))}
        live = [k for k in self.keys if k.verifiable_at(now, max_token_lifetime)]
        return sorted(live, key=lambda k: order[k.status])


def load_key_file(path: str | os.PathLike[str]) -> KeySet:
    """Read a key file written by :func:`save_key_file`; KeyFileError when it is not valid."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise KeyFileError(f"cannot read key file {os.fspath(path)!r}: {error.strerror}") from error
    try:
        document = json.loads(text)
    except ValueError as error:
        raise KeyFileError(f"key file {os.fspath(path)!r} is not JSON") from error
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        raise KeyFileError(f"key file {os.fspath(path)!r} is not a non-empty JWK Set")
    try:
        return KeySet(tuple(_read_entry(entry) for entry in entries))
    except (JoseError, ValueError, TypeError) as error:
        raise KeyFileError(f"key file {os.fspath(path)!r}: {error}") from error


def save_key_file(keyset: KeySet, path: str | os.PathLike[str], *, overwrite: bool) -> None:
    """Write ``keyset`` with its private keys to ``path`` with mode 0600, atomically.

    With ``overwrite=False`` an existing file is never replaced (FileExistsError), even if one
    appears concurrently; with ``overwrite=True`` it is replaced in one rename.
    """
    target = Path(path)
    document = {"keys": [_write_entry(k) for k in keyset.keys]}
    data = (json.dumps(document, indent=2) + "\n").encode("utf-8")
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), _FILE_MODE)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(temporary, target)
        else:
            os.link(temporary, target)
        _sync_directory(target.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def _sync_directory(directory: Path) -> None:
    """Make the rename durable (best effort: some filesystems refuse directory fsync)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class _Entry(PrivateJwk, total=False):
    status: str
    created_at: float
    retired_at: float


def _write_entry(key: SigningKey) -> _Entry:
    entry = cast(_Entry, dict(key.key.private_jwk()))
    entry["status"] = key.status
    entry["created_at"] = key.created_at
    if key.retired_at is not None:
        entry["retired_at"] = key.retired_at
    return entry


def _read_entry(entry: object) -> SigningKey:
    if not isinstance(entry, dict):
        raise KeyFileError("every key must be a JSON object")
    members = cast(Mapping[str, object], entry)
    status = members.get("status")
    if status not in _STATUSES:
        raise KeyFileError(f"key status must be one of {_STATUSES}, not {status!r}")
    key = import_signing_key(members)
    alg = key.alg
    if alg not in SIGNING_ALGORITHMS:  # import_signing_key guarantees it; keeps mypy exact
        raise KeyFileError("key has no signing alg")
    return SigningKey(
        key=key,
        alg=alg,
        status=status,
        created_at=_number(members.get("created_at", 0), "created_at"),
        retired_at=(
            None if members.get("retired_at") is None
            else _number(members.get("retired_at"), "retired_at")
        ),
    )


def _number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise KeyFileError(f"{name} must be a number of Unix seconds")
    return float(value)


def _unique(algorithms: Iterable[SigningAlgorithm]) -> tuple[SigningAlgorithm, ...]:
    seen: list[SigningAlgorithm] = []
    for alg in algorithms:
        if alg not in SIGNING_ALGORITHMS:
            raise ValueError(f"unsupported signing algorithm {alg!r}")
        if alg not in seen:
            seen.append(alg)
    return tuple(seen)
