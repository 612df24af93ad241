"""The server's settings as one validated, frozen object, built from Python, environment or TOML.

Spec: authward spec/stores.md §8 (defaults), §3.2.6 and §7 item 4 (successor keys; a grace window
without a key refuses to start), §3.5 (DPoP nonce policy), §1.2 and §7 item 1 (table prefix);
RFC 8414 §2 and OIDC Discovery §3 (issuer: https, no query, no fragment); RFC 9449 §5, §8, §11.1.

Every value is checked when the object is built; the first bad one raises ``SettingsError``
whose message starts with the key (``"access_token_ttl: must be a positive integer"``). Unknown
keys are errors. ``Settings.from_env`` is the only place in core that reads environment
variables, and only from the mapping it is handed.
"""

from __future__ import annotations

import json
import re
import tomllib
import types
from collections.abc import Collection, Mapping
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from os import PathLike
from pathlib import Path
from typing import Any, ClassVar, Final, Literal, TypeVar, Union, get_args, get_origin
from typing import get_type_hints as _hints
from urllib.parse import urlsplit

SigningAlg = Literal["ES256", "EdDSA", "PS256", "RS256"]
NoncePolicy = Literal["windowed", "single_use"]

SIGNING_ALGS: Final[tuple[SigningAlg, ...]] = ("ES256", "EdDSA", "PS256", "RS256")
ENV_PREFIX: Final = "AUTHWARD_"

#: Table prefix grammar, the same rule ``authward.stores.sql.schema`` enforces (core may not
#: import the SQL layer, which re-validates the prefix itself when it builds the tables).
TABLE_PREFIX_PATTERN: Final = re.compile(r"^[a-z_][a-z0-9_]*$")
MAX_IDENTIFIER_BYTES: Final = 63
#: Bytes of the longest identifier the schema emits without a prefix
#: (``attesto_pushed_authorization_requests_expires_at_index``); a test keeps it in sync.
LONGEST_SCHEMA_IDENTIFIER_BYTES: Final = 54
MIN_SUCCESSOR_SECRET_BYTES: Final = 32

_LOCAL_HOSTS: Final = frozenset({"localhost", "127.0.0.1"})
_KID: Final = re.compile(r"^[A-Za-z0-9._~-]{1,64}$")
_HOST: Final = re.compile(r"^[a-z0-9.:\[\]*-]+$")


class SettingsError(ValueError):
    """A setting is missing, unknown or invalid; ``key`` names it (dotted for nested keys)."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


# --- value checks (each raises SettingsError naming the key) ---------------------------------


def _int(key: str, value: object, *, minimum: int) -> None:
    if type(value) is not int or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise SettingsError(key, f"must be {kind}")


def _positive(key: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise SettingsError(key, "must be a positive number")


def _bool(key: str, value: object) -> None:
    if type(value) is not bool:
        raise SettingsError(key, "must be true or false")


def _choice(key: str, value: object, choices: Collection[str]) -> None:
    if value not in choices:
        raise SettingsError(key, f"must be one of {', '.join(choices)}")


def _strings(key: str, value: object) -> None:
    if not isinstance(value, tuple) or not all(isinstance(v, str) and v for v in value):
        raise SettingsError(key, "must be a tuple of non-empty strings")


def _hosts(key: str, value: object) -> None:
    _strings(key, value)
    assert isinstance(value, tuple)
    for host in value:
        if host != host.lower() or not _HOST.match(host):
            raise SettingsError(key, f"{host!r} is not a lower-case host name")


def check_table_prefix(key: str, prefix: object) -> None:
    """Raise ``SettingsError`` unless ``prefix`` is ``""`` or a usable lower-case identifier.

    The rule matches the SQL layer's: ``^[a-z_][a-z0-9_]*$`` and no emitted identifier longer
    than 63 bytes (PostgreSQL's limit).
    """
    if not isinstance(prefix, str):
        raise SettingsError(key, "must be a string")
    if prefix and not TABLE_PREFIX_PATTERN.match(prefix):
        raise SettingsError(key, "must be empty or a lower-case identifier [a-z_][a-z0-9_]*")
    room = MAX_IDENTIFIER_BYTES - LONGEST_SCHEMA_IDENTIFIER_BYTES
    if len(prefix.encode()) > room:
        raise SettingsError(
            key, f"must be at most {room} bytes so every identifier fits in 63 bytes"
        )


def check_issuer(key: str, issuer: object) -> None:
    """Raise ``SettingsError`` unless ``issuer`` is an https URL without query or fragment.

    ``http`` is accepted only for ``localhost`` and ``127.0.0.1`` (development).
    """
    if not isinstance(issuer, str) or not issuer:
        raise SettingsError(key, "must be a non-empty URL")
    try:
        parts = urlsplit(issuer)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError as exc:
        raise SettingsError(key, f"is not a valid URL ({exc})") from None
    if parts.scheme == "http":
        if parts.hostname not in _LOCAL_HOSTS:
            raise SettingsError(key, "must use https (http only for localhost or 127.0.0.1)")
    elif parts.scheme != "https":
        raise SettingsError(key, "must be an https URL")
    if not parts.hostname or parts.username is not None or parts.password is not None:
        raise SettingsError(key, "must have a host and no user information")
    if parts.query or "?" in issuer or "#" in issuer:
        raise SettingsError(key, "must not have a query or fragment")


# --- sections --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SuccessorKey:
    """One refresh-successor envelope key: ``kid`` and a secret of at least 32 bytes."""

    kid: str
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        key = "refresh_successor_keys"
        if not isinstance(self.kid, str) or not _KID.match(self.kid):
            raise SettingsError(key, "each kid must be 1-64 characters of [A-Za-z0-9._~-]")
        if not isinstance(self.secret, bytes) or len(self.secret) < MIN_SUCCESSOR_SECRET_BYTES:
            raise SettingsError(
                f"{key}.{self.kid}", f"must be at least {MIN_SUCCESSOR_SECRET_BYTES} bytes"
            )


@dataclass(frozen=True, slots=True)
class DeviceAuthorizationSettings:
    """RFC 8628 device authorization grant settings."""

    section: ClassVar[str] = "device_authorization"

    code_ttl_seconds: int = 600
    poll_interval_seconds: int = 5
    user_code_length: int = 8
    #: RFC 8628 §5.1: wrong user codes one signed-in user may enter per window, then the
    #: verification page refuses (429) until the window ends.
    max_failed_user_codes: int = 5
    failed_user_code_window_seconds: int = 900
    #: Refuse public clients that send no DPoP proof at the device authorization endpoint (a
    #: proof pre-binds the device code to its key). Off by default: neither RFC 8628 nor RFC
    #: 9449 asks for one there, and certified clients cannot send one. Clients registered with
    #: ``dpop_bound_access_tokens`` always need one.
    require_dpop_for_public_clients: bool = False

    def __post_init__(self) -> None:
        _int(f"{self.section}.code_ttl_seconds", self.code_ttl_seconds, minimum=1)
        _int(f"{self.section}.poll_interval_seconds", self.poll_interval_seconds, minimum=1)
        _int(f"{self.section}.user_code_length", self.user_code_length, minimum=6)
        _int(f"{self.section}.max_failed_user_codes", self.max_failed_user_codes, minimum=1)
        _int(
            f"{self.section}.failed_user_code_window_seconds",
            self.failed_user_code_window_seconds,
            minimum=1,
        )


@dataclass(frozen=True, slots=True)
class LogoutSettings:
    """OIDC Back-Channel Logout settings (off until the host enables it)."""

    section: ClassVar[str] = "logout"

    enabled: bool = False
    session_ttl_seconds: int = 86_400
    delivery_timeout_seconds: float = 5.0
    #: Development and tests only: deliver logout tokens to loopback receivers (and over
    #: plain http to them). Every other special-use address stays refused.
    allow_loopback: bool = False

    def __post_init__(self) -> None:
        _bool(f"{self.section}.enabled", self.enabled)
        _int(f"{self.section}.session_ttl_seconds", self.session_ttl_seconds, minimum=1)
        _positive(f"{self.section}.delivery_timeout_seconds", self.delivery_timeout_seconds)
        _bool(f"{self.section}.allow_loopback", self.allow_loopback)


@dataclass(frozen=True, slots=True)
class ClientIdMetadataSettings:
    """Client ID Metadata Document (URL client ids) settings; host lists are lower-case."""

    section: ClassVar[str] = "client_id_metadata"

    enabled: bool = False
    max_document_bytes: int = 5_120
    request_timeout_ms: int = 5_000
    cache_ttl_bounds: tuple[int, int] = (60, 86_400)
    allow_loopback: bool = False
    allowed_hosts: tuple[str, ...] | None = None
    blocked_hosts: tuple[str, ...] = ()
    require_same_origin_redirect_uri: bool = True
    #: Seconds a failed fetch or an unusable document is remembered in each process, so a
    #: burst of requests for a broken client id costs one outbound fetch (0: not remembered).
    failure_cache_seconds: int = 30

    def __post_init__(self) -> None:
        s = self.section
        _bool(f"{s}.enabled", self.enabled)
        _int(f"{s}.failure_cache_seconds", self.failure_cache_seconds, minimum=0)
        _int(f"{s}.max_document_bytes", self.max_document_bytes, minimum=1)
        _int(f"{s}.request_timeout_ms", self.request_timeout_ms, minimum=1)
        bounds = self.cache_ttl_bounds
        if (
            not isinstance(bounds, tuple)
            or len(bounds) != 2
            or not all(type(b) is int and b > 0 for b in bounds)
            or bounds[0] > bounds[1]
        ):
            raise SettingsError(
                f"{s}.cache_ttl_bounds", "must be two positive integers (minimum, maximum)"
            )
        _bool(f"{s}.allow_loopback", self.allow_loopback)
        if self.allowed_hosts is not None:
            _hosts(f"{s}.allowed_hosts", self.allowed_hosts)
        _hosts(f"{s}.blocked_hosts", self.blocked_hosts)
        _bool(f"{s}.require_same_origin_redirect_uri", self.require_same_origin_redirect_uri)


@dataclass(frozen=True, slots=True)
class FeatureSettings:
    """Switches for optional protocol features; all on by default."""

    section: ClassVar[str] = "features"

    refresh_token_grant: bool = True
    client_credentials_grant: bool = True
    device_authorization_grant: bool = True
    pushed_authorization_requests: bool = True
    dpop: bool = True
    introspection: bool = True
    revocation: bool = True
    userinfo: bool = True
    end_session: bool = True

    def __post_init__(self) -> None:
        for f in fields(self):
            _bool(f"{self.section}.{f.name}", getattr(self, f.name))


# --- the settings object ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the protocol core is configured with; validated on construction.

    Times are whole seconds unless the name says otherwise. ``refresh_successor_keys`` are
    required while ``refresh_token_rotation_grace_seconds > 0`` (and the refresh grant is on);
    ``refresh_successor_active_kid`` picks the key that seals new envelopes and may be omitted
    when exactly one key is configured.
    """

    issuer: str
    authorization_code_ttl: int = 60
    access_token_ttl: int = 900
    refresh_token_ttl: int = 1_209_600
    refresh_token_rotation_grace_seconds: int = 0
    #: With a grace window: how many honest retries of one rotated refresh token are answered
    #: (each is an event); the next one counts as reuse and revokes the family.
    refresh_token_rotation_max_retries: int = 2
    refresh_successor_keys: tuple[SuccessorKey, ...] = ()
    refresh_successor_active_kid: str | None = None
    par_ttl: int = 90
    require_pushed_authorization_requests: bool = False
    dpop_nonce_required: bool = False
    dpop_nonce_policy: NoncePolicy = "windowed"
    dpop_nonce_ttl: int = 300
    dpop_proof_window_seconds: int = 60
    dpop_algs: tuple[SigningAlg, ...] = SIGNING_ALGS
    id_token_signing_alg: SigningAlg = "RS256"  # noqa: S105 - an algorithm name
    access_token_signing_alg: SigningAlg = "ES256"  # noqa: S105 - an algorithm name
    access_token_audience: str | None = None
    table_prefix: str = ""
    sweep_interval_seconds: int | None = None
    device_authorization: DeviceAuthorizationSettings = field(
        default_factory=DeviceAuthorizationSettings
    )
    logout: LogoutSettings = field(default_factory=LogoutSettings)
    client_id_metadata: ClientIdMetadataSettings = field(
        default_factory=ClientIdMetadataSettings
    )
    features: FeatureSettings = field(default_factory=FeatureSettings)

    def __post_init__(self) -> None:
        check_issuer("issuer", self.issuer)
        for name in (
            "authorization_code_ttl",
            "access_token_ttl",
            "refresh_token_ttl",
            "par_ttl",
            "dpop_nonce_ttl",
            "dpop_proof_window_seconds",
        ):
            _int(name, getattr(self, name), minimum=1)
        _int(
            "refresh_token_rotation_grace_seconds",
            self.refresh_token_rotation_grace_seconds,
            minimum=0,
        )
        _int(
            "refresh_token_rotation_max_retries",
            self.refresh_token_rotation_max_retries,
            minimum=1,
        )
        if self.sweep_interval_seconds is not None:
            _int("sweep_interval_seconds", self.sweep_interval_seconds, minimum=1)
        _bool("require_pushed_authorization_requests", self.require_pushed_authorization_requests)
        _bool("dpop_nonce_required", self.dpop_nonce_required)
        _choice("dpop_nonce_policy", self.dpop_nonce_policy, ("windowed", "single_use"))
        _strings("dpop_algs", self.dpop_algs)
        if not self.dpop_algs:
            raise SettingsError("dpop_algs", "must name at least one algorithm")
        for alg in self.dpop_algs:
            _choice("dpop_algs", alg, SIGNING_ALGS)
        _choice("id_token_signing_alg", self.id_token_signing_alg, SIGNING_ALGS)
        _choice("access_token_signing_alg", self.access_token_signing_alg, SIGNING_ALGS)
        if self.access_token_audience is not None and (
            not isinstance(self.access_token_audience, str) or not self.access_token_audience
        ):
            raise SettingsError("access_token_audience", "must be a non-empty string")
        check_table_prefix("table_prefix", self.table_prefix)
        for name, kind in (
            ("device_authorization", DeviceAuthorizationSettings),
            ("logout", LogoutSettings),
            ("client_id_metadata", ClientIdMetadataSettings),
            ("features", FeatureSettings),
        ):
            if not isinstance(getattr(self, name), kind):
                raise SettingsError(name, f"must be a {kind.__name__}")
        self._check_successor_keys()
        if self.require_pushed_authorization_requests and not (
            self.features.pushed_authorization_requests
        ):
            raise SettingsError(
                "require_pushed_authorization_requests",
                "needs features.pushed_authorization_requests",
            )

    def _check_successor_keys(self) -> None:
        key = "refresh_successor_keys"
        keys = self.refresh_successor_keys
        if not isinstance(keys, tuple) or not all(isinstance(k, SuccessorKey) for k in keys):
            raise SettingsError(key, "must be a tuple of SuccessorKey")
        kids = [k.kid for k in keys]
        if len(set(kids)) != len(kids):
            raise SettingsError(key, "kids must be unique")
        active = self.refresh_successor_active_kid
        if active is not None and active not in kids:
            raise SettingsError("refresh_successor_active_kid", "must name a configured key")
        if active is None and len(keys) > 1:
            raise SettingsError(
                "refresh_successor_active_kid", "is required when several keys are configured"
            )
        grace = self.refresh_token_rotation_grace_seconds
        if grace > 0 and not keys and self.features.refresh_token_grant:
            raise SettingsError(
                key,
                f"refresh_token_rotation_grace_seconds is {grace} but no key is configured; "
                f"add a key of at least {MIN_SUCCESSOR_SECRET_BYTES} bytes or set the grace to 0",
            )

    @property
    def active_successor_key(self) -> SuccessorKey | None:
        """The key that seals new successor envelopes, or ``None`` when none is configured."""
        if not self.refresh_successor_keys:
            return None
        wanted = self.refresh_successor_active_kid or self.refresh_successor_keys[0].kid
        return next(k for k in self.refresh_successor_keys if k.kid == wanted)

    def successor_key(self, kid: str) -> SuccessorKey | None:
        """The configured key named ``kid`` (active or retired), or ``None``."""
        return next((k for k in self.refresh_successor_keys if k.kid == kid), None)

    # --- builders ----------------------------------------------------------------------------

    @classmethod
    def from_mapping(cls, data: Mapping[str, object]) -> Settings:
        """Build from plain data (as TOML gives it): nested tables for the sections, lists for
        tuples, and ``refresh_successor_keys`` as a table of ``kid = "secret"``."""
        return _build(cls, data, "")

    @classmethod
    def from_toml(cls, path: str | PathLike[str]) -> Settings:
        """Read a TOML file: its ``[authward]`` table if there is one, else the whole document."""
        with Path(path).open("rb") as handle:
            document = tomllib.load(handle)
        return cls.from_toml_document(document)

    @classmethod
    def from_toml_text(cls, text: str) -> Settings:
        """Like ``from_toml`` for TOML text already in memory."""
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError("toml", str(exc)) from None
        return cls.from_toml_document(document)

    @classmethod
    def from_toml_document(cls, document: Mapping[str, object]) -> Settings:
        """Use ``document["authward"]`` when present (other tables belong to other tools)."""
        table = document.get("authward", document)
        if not isinstance(table, Mapping):
            raise SettingsError("authward", "must be a table")
        return cls.from_mapping(table)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str], *, ignore: Collection[str] = ()
    ) -> Settings:
        """Build from ``AUTHWARD_<KEY>`` variables of ``environ`` (pass ``os.environ``).

        Nested keys use a double underscore (``AUTHWARD_DEVICE_AUTHORIZATION__CODE_TTL_SECONDS``).
        Integers and booleans (``true``/``false``/``1``/``0``/``yes``/``no``) are parsed; lists
        are comma-separated; ``AUTHWARD_REFRESH_SUCCESSOR_KEYS`` is a JSON object
        ``{"kid": "secret"}``. Any other ``AUTHWARD_`` variable is an error unless its name
        without the prefix is in ``ignore`` (for variables other components own, such as
        ``DATABASE_URL``).
        """
        ignored = {name.upper() for name in ignore}
        tree: dict[str, Any] = {}
        for name, raw in environ.items():
            if not name.startswith(ENV_PREFIX) or name[len(ENV_PREFIX) :] in ignored:
                continue
            path = name[len(ENV_PREFIX) :].lower().split("__")
            node = tree
            for depth, part in enumerate(path[:-1]):
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    raise SettingsError(".".join(path[: depth + 1]), "is not a section")
                node = child
            node[path[-1]] = raw
        return _build(cls, _parse_strings(cls, tree, ""), "")


# --- building from plain data ----------------------------------------------------------------

_T = TypeVar("_T")


def _build(cls: type[_T], data: Mapping[str, object], prefix: str) -> _T:
    if not isinstance(data, Mapping):
        raise SettingsError(prefix.rstrip(".") or "settings", "must be a table")
    assert is_dataclass(cls)
    hints = _hints(cls)
    known = {f.name: f for f in fields(cls)}
    kwargs: dict[str, object] = {}
    for name, value in data.items():
        key = f"{prefix}{name}"
        if name not in known:
            raise SettingsError(key, "unknown setting")
        kwargs[name] = _convert(hints[name], value, key)
    for name, f in known.items():
        if name not in kwargs and f.default is MISSING and f.default_factory is MISSING:
            raise SettingsError(f"{prefix}{name}", "is required")
    return cls(**kwargs)


def _convert(hint: object, value: object, key: str) -> object:
    """Turn TOML-shaped data into the field's Python shape; values are checked later."""
    if isinstance(hint, type) and is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise SettingsError(key, "must be a table")
        return _build(hint, value, f"{key}.")
    if hint == tuple[SuccessorKey, ...]:
        if not isinstance(value, Mapping):
            raise SettingsError(key, "must be a table of kid = secret")
        pairs: list[SuccessorKey] = []
        for kid, secret in value.items():
            if not isinstance(secret, str):
                raise SettingsError(f"{key}.{kid}", "must be a string")
            pairs.append(SuccessorKey(kid=str(kid), secret=secret.encode("utf-8")))
        return tuple(pairs)
    if isinstance(value, list):
        return tuple(value)
    if hint is float and type(value) is int:
        return float(value)
    return value


def _parse_strings(cls: type[Any], tree: Mapping[str, object], prefix: str) -> dict[str, object]:
    """Parse environment strings into TOML-shaped data following the field types of ``cls``."""
    hints = _hints(cls)
    out: dict[str, object] = {}
    for name, value in tree.items():
        key = f"{prefix}{name}"
        if name not in hints or name == "section":
            raise SettingsError(key, "unknown setting")
        hint = hints[name]
        if isinstance(hint, type) and is_dataclass(hint):
            if not isinstance(value, Mapping):
                raise SettingsError(key, "must be set through nested variables (use __)")
            out[name] = _parse_strings(hint, value, f"{key}.")
        elif isinstance(value, Mapping):
            raise SettingsError(key, "is not a section")
        else:
            assert isinstance(value, str)
            out[name] = _parse_string(hint, value, key)
    return out


def _parse_string(hint: object, raw: str, key: str) -> object:
    base = _strip_optional(hint)
    if base == tuple[SuccessorKey, ...]:
        try:
            parsed = json.loads(raw)
        except ValueError:
            raise SettingsError(key, 'must be a JSON object {"kid": "secret"}') from None
        if not isinstance(parsed, dict):
            raise SettingsError(key, 'must be a JSON object {"kid": "secret"}')
        return parsed
    if base is bool:
        lowered = raw.strip().lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise SettingsError(key, "must be true or false")
    if base is int:
        try:
            return int(raw.strip())
        except ValueError:
            raise SettingsError(key, "must be an integer") from None
    if base is float:
        try:
            return float(raw.strip())
        except ValueError:
            raise SettingsError(key, "must be a number") from None
    if get_origin(base) is tuple:
        items = [item.strip() for item in raw.split(",") if item.strip()]
        args = get_args(base)
        if args and args[0] is int:
            try:
                return [int(item) for item in items]
            except ValueError:
                raise SettingsError(key, "must be comma-separated integers") from None
        return items
    return raw


def _strip_optional(hint: object) -> object:
    if get_origin(hint) in (Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint
