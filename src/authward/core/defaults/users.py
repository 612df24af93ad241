"""The default user directory: end-users declared in a TOML file, passwords as argon2 hashes.

Spec: OIDC Core 1.0 §5.1 (standard claims), §5.4 (scope values -> claims), §5.1.1 (address);
RFC 6819 §5.1.4.2.2 (hashed at rest).

File format (one ``[[users]]`` table per user; unknown keys and unknown claims are errors)::

    [[users]]
    subject = "248289761001"          # the stable `sub`, never reassigned
    username = "alice"
    password_hash = "$argon2id$..."   # hash_secret("...") or `authward secret hash --argon2`
    [users.claims]
    name = "Alice Example"
    email = "alice@example.com"
    email_verified = true
    [users.claims.address]
    locality = "Paris"

Passwords are human-chosen, so ``password_hash`` must be argon2: the fast ``$sha256$`` form of
generated client secrets is refused. They are checked through the bounded
:class:`~authward.core.defaults.hashing.Argon2Verifier` (share one with the client registry).

Only the OIDC standard claims (§5.1, without ``sub``) are accepted, and each is released only
under its §5.4 scope: ``profile``, ``email``, ``address``, ``phone``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from os import PathLike
from typing import Final

from argon2 import PasswordHasher

from authward.core.defaults.hashing import Argon2Verifier, is_argon2_hash, is_fast_digest
from authward.core.defaults.toml_file import (
    HostFileError,
    check_keys,
    entries,
    load_toml,
    require_string,
    table,
)

__all__ = ["SCOPE_CLAIMS", "FileUserDirectory", "User"]

#: OIDC Core §5.4: the claims each scope value requests.
SCOPE_CLAIMS: Final[Mapping[str, tuple[str, ...]]] = {
    "profile": (
        "name", "family_name", "given_name", "middle_name", "nickname", "preferred_username",
        "profile", "picture", "website", "gender", "birthdate", "zoneinfo", "locale",
        "updated_at",
    ),
    "email": ("email", "email_verified"),
    "address": ("address",),
    "phone": ("phone_number", "phone_number_verified"),
}
_BOOLEAN_CLAIMS: Final = frozenset({"email_verified", "phone_number_verified"})
_ADDRESS_FIELDS: Final = frozenset(
    {"formatted", "street_address", "locality", "region", "postal_code", "country"}
)
_KNOWN_CLAIMS: Final = frozenset(c for claims in SCOPE_CLAIMS.values() for c in claims)
_USER_KEYS: Final = frozenset({"subject", "username", "password_hash", "claims"})


@dataclass(frozen=True, slots=True)
class User:
    """One end-user: stable ``subject``, login ``username``, argon2 ``password_hash``."""

    subject: str
    username: str
    password_hash: str = field(repr=False)
    claims: Mapping[str, object] = field(default_factory=dict)


class FileUserDirectory:
    """``ClaimsProvider`` over a fixed set of users, plus password verification for the
    default login page. Usernames match exactly (case-sensitive). ``verifier`` is the bounded
    argon2 verifier (default: a new one with ``hasher``)."""

    def __init__(
        self,
        users: tuple[User, ...],
        *,
        hasher: PasswordHasher | None = None,
        verifier: Argon2Verifier | None = None,
    ) -> None:
        self._by_subject = {user.subject: user for user in users}
        self._by_username = {user.username: user for user in users}
        if len(self._by_subject) != len(users) or len(self._by_username) != len(users):
            raise ValueError("subjects and usernames must be unique")
        self._verifier = verifier if verifier is not None else Argon2Verifier(hasher)

    @classmethod
    def from_file(
        cls,
        path: str | PathLike[str],
        *,
        hasher: PasswordHasher | None = None,
        verifier: Argon2Verifier | None = None,
    ) -> FileUserDirectory:
        """Read the ``[[users]]`` tables of the TOML file at ``path``."""
        return cls.from_mapping(load_toml(path), hasher=hasher, verifier=verifier)

    @classmethod
    def from_mapping(
        cls,
        data: Mapping[str, object],
        *,
        hasher: PasswordHasher | None = None,
        verifier: Argon2Verifier | None = None,
    ) -> FileUserDirectory:
        """Build from parsed TOML; raises ``HostFileError`` naming the first bad key."""
        users: list[User] = []
        subjects: set[str] = set()
        usernames: set[str] = set()
        for key, entry in entries(data, "users"):
            user = _read_user(key, entry)
            if user.subject in subjects:
                raise HostFileError(f"{key}.subject", "is already used by another user")
            if user.username in usernames:
                raise HostFileError(f"{key}.username", "is already used by another user")
            subjects.add(user.subject)
            usernames.add(user.username)
            users.append(user)
        return cls(tuple(users), hasher=hasher, verifier=verifier)

    async def verify_password(self, username: str, password: str) -> str | None:
        """The subject of ``username`` when ``password`` is right, else ``None``.

        An unknown username costs one argon2 verification too (no user enumeration by
        timing); never raises, never logs the password.
        """
        user = self._by_username.get(username) if isinstance(username, str) else None
        hashes = (user.password_hash,) if user is not None else ()
        if await self._verifier.verify(hashes, password) and user is not None:
            return user.subject
        return None

    async def claims(self, subject: str, scopes: tuple[str, ...]) -> Mapping[str, object]:
        """The user's claims that ``scopes`` allow (OIDC Core §5.4), without ``sub``."""
        user = self._by_subject.get(subject)
        if user is None:
            return {}
        allowed = {claim for scope in scopes for claim in SCOPE_CLAIMS.get(scope, ())}
        return {name: value for name, value in user.claims.items() if name in allowed}


def _read_user(key: str, entry: Mapping[str, object]) -> User:
    check_keys(key, entry, _USER_KEYS)
    subject = require_string(key, entry, "subject")
    username = require_string(key, entry, "username")
    password_hash = require_string(key, entry, "password_hash")
    if len(subject) > 255:
        raise HostFileError(f"{key}.subject", "must be at most 255 characters (OIDC Core §2)")
    if is_fast_digest(password_hash):
        raise HostFileError(
            f"{key}.password_hash",
            "is a fast $sha256$ digest, which is only for generated client secrets; a password "
            "is chosen by a person and must be an argon2 hash (hash_secret(password) or "
            "`authward secret hash --argon2`)",
        )
    if not is_argon2_hash(password_hash):
        raise HostFileError(
            f"{key}.password_hash", "must be an argon2 hash made with hash_secret()"
        )
    raw_claims = table(f"{key}.claims", entry.get("claims", {}))
    return User(subject, username, password_hash, _read_claims(f"{key}.claims", raw_claims))


def _read_claims(key: str, raw: Mapping[str, object]) -> Mapping[str, object]:
    claims: dict[str, object] = {}
    for name, value in raw.items():
        where = f"{key}.{name}"
        if name not in _KNOWN_CLAIMS:
            raise HostFileError(where, "is not an OIDC standard claim (OIDC Core §5.1)")
        if name in _BOOLEAN_CLAIMS:
            if not isinstance(value, bool):
                raise HostFileError(where, "must be true or false")
        elif name == "updated_at":
            if type(value) is not int or value < 0:
                raise HostFileError(where, "must be a non-negative integer (Unix seconds)")
        elif name == "address":
            address = table(where, value)
            for part, text in address.items():
                if part not in _ADDRESS_FIELDS:
                    raise HostFileError(f"{where}.{part}", "is not an address field (§5.1.1)")
                if not isinstance(text, str):
                    raise HostFileError(f"{where}.{part}", "must be a string")
            value = dict(address)
        elif not isinstance(value, str):
            raise HostFileError(where, "must be a string")
        claims[name] = value
    return claims
