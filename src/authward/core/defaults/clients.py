"""The default client registry: clients declared in a TOML file, secrets stored as digests.

Spec: RFC 6749 §2 (registration out of band), §2.3.1 (client passwords), §10.10 (guessing);
RFC 6819 §5.1.4.1.3 (no cleartext at rest), §5.1.4.2.2 (high-entropy secrets); RFC 7591 §2
(client metadata names).

File format (one ``[[clients]]`` table per client; unknown keys are errors)::

    [[clients]]
    client_id = "web"
    client_type = "confidential"                 # or "public"
    token_endpoint_auth_method = "client_secret_basic"
    client_secret_hash = "$sha256$..."           # `authward secret generate`; a list during
                                                 # rotation; "$argon2id$..." also accepted
    redirect_uris = ["https://app.example/cb"]
    grant_types = ["authorization_code", "refresh_token"]
    scope = "openid profile email offline_access"
    # optional: client_name, jwks = { keys = [...] }, jwks_uri, native,
    # require_pushed_authorization_requests, dpop_bound_access_tokens,
    # post_logout_redirect_uris, backchannel_logout_uri, backchannel_logout_session_required,
    # response_types, id_token_signed_response_alg

``client_secret_hash`` takes either form of :mod:`authward.core.defaults.hashing`, or an array
mixing them while a secret is rotated:

* ``$sha256$...``, the fast digest of a generated secret (the recommended form): checked with
  one ``hmac.compare_digest``, in microseconds, on the event loop;
* ``$argon2id$...``, for a secret a person chose: checked through the shared, bounded
  :class:`~authward.core.defaults.hashing.Argon2Verifier`; a success is remembered for five
  minutes by a :class:`~authward.core.defaults.verified_secrets.VerifiedSecretCache`, so a
  legitimate client pays argon2 once per five minutes, not once per request.

Timing does not tell whether a client exists: a client this registry does not know (the
authenticator asks about one after an unknown ``client_id`` or a method mismatch) costs one
placeholder check of the registry's slower form: a digest compare when every secret is a fast
digest (so an unknown id and a known fast-form client both cost microseconds), one argon2
verification while any client still has an argon2 hash. (In a file mixing both forms a
fast-form client_id is therefore told apart from an unknown one by timing; client ids are not
secret, RFC 6749 §2.2, and the difference goes with the last argon2 hash.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from os import PathLike
from typing import Final, cast

from argon2 import PasswordHasher

from authward.core.clients import Client, ClientType, TokenEndpointAuthMethod
from authward.core.clock import Clock, SystemClock
from authward.core.defaults.hashing import (
    Argon2Verifier,
    fast_digest_bytes,
    fast_digest_matches,
    is_argon2_hash,
    is_fast_digest,
)
from authward.core.defaults.toml_file import (
    HostFileError,
    check_keys,
    entries,
    load_toml,
    read_bool,
    read_string,
    read_strings,
    require_string,
    table,
)
from authward.core.defaults.verified_secrets import VerifiedSecretCache
from authward.core.failure_limits import FailureBudget, FailureLimiter
from authward.core.scopes import is_scope_token

__all__ = ["ARGON2_FAILURE_BUDGET", "FileClientRegistry"]

_KEYS: Final = frozenset(
    {
        "client_id", "client_type", "token_endpoint_auth_method", "client_secret_hash",
        "redirect_uris", "grant_types", "response_types", "scope", "jwks", "jwks_uri",
        "native", "require_pushed_authorization_requests", "dpop_bound_access_tokens",
        "post_logout_redirect_uris", "backchannel_logout_uri",
        "backchannel_logout_session_required", "client_name", "id_token_signed_response_alg",
    }
)
_SECRET_METHODS: Final = frozenset({"client_secret_basic", "client_secret_post"})
#: Failed argon2 client-secret verifications allowed per client_id and minute.
ARGON2_FAILURE_BUDGET: Final = FailureBudget(max_failures=20, window_seconds=60)


@dataclass(frozen=True, slots=True)
class _StoredSecret:
    """One client's stored secret forms: fast digests (raw bytes) and argon2 hashes."""

    fast: tuple[bytes, ...]
    argon2: tuple[str, ...]


class FileClientRegistry:
    """``ClientRegistry`` over a fixed set of clients (read once; restart to reload).

    ``verify_client_secret`` checks the presented secret against the client's fast digests
    (constant-time compare) and then, if it has any and none matched, its argon2 hashes
    (through ``verifier``, after ``cache``). It answers ``False`` for a mismatch, an empty
    secret, a client without a hash or one this registry did not issue (after the placeholder
    check of the module docstring); it never raises and never logs.

    ``verifier`` is the bounded argon2 verifier (default: a new one with ``hasher``); pass the
    user directory's to bound both together. ``cache`` remembers argon2 successes (default: a
    new five-minute :class:`VerifiedSecretCache`). ``argon2_failure_budget`` bounds failed argon2
    verifications per client_id (default :data:`ARGON2_FAILURE_BUDGET`; ``None``: no limit):
    once a client's budget is spent, its secrets are refused without argon2 work until the
    window ends, except a secret the success cache remembers, so a flood of wrong secrets can
    neither buy argon2 time nor lock out a client that authenticated recently. Fast digests
    are never limited here: their check costs what the refusal would, and a 256-bit secret
    cannot be guessed, so counting them would only let anyone who knows a client_id lock it
    out.
    ``secret_hashes`` values must each be a fast digest or an argon2 hash (``ValueError``).
    """

    def __init__(
        self,
        clients: Mapping[str, Client],
        secret_hashes: Mapping[str, tuple[str, ...]],
        *,
        hasher: PasswordHasher | None = None,
        verifier: Argon2Verifier | None = None,
        cache: VerifiedSecretCache | None = None,
        argon2_failure_budget: FailureBudget | None = ARGON2_FAILURE_BUDGET,
        clock: Clock | None = None,
    ) -> None:
        self._clients = dict(clients)
        self._argon2_failures = (
            None if argon2_failure_budget is None else FailureLimiter(argon2_failure_budget)
        )
        self._clock: Clock = clock or SystemClock()
        self._secrets = {cid: _stored(cid, hashes) for cid, hashes in secret_hashes.items()}
        self._verifier = verifier if verifier is not None else Argon2Verifier(hasher)
        self._cache = cache if cache is not None else VerifiedSecretCache()
        self._argon2_placeholder = any(stored.argon2 for stored in self._secrets.values())

    @classmethod
    def from_file(
        cls,
        path: str | PathLike[str],
        *,
        hasher: PasswordHasher | None = None,
        verifier: Argon2Verifier | None = None,
        cache: VerifiedSecretCache | None = None,
    ) -> FileClientRegistry:
        """Read the ``[[clients]]`` tables of the TOML file at ``path``."""
        return cls.from_mapping(load_toml(path), hasher=hasher, verifier=verifier, cache=cache)

    @classmethod
    def from_mapping(
        cls,
        data: Mapping[str, object],
        *,
        hasher: PasswordHasher | None = None,
        verifier: Argon2Verifier | None = None,
        cache: VerifiedSecretCache | None = None,
    ) -> FileClientRegistry:
        """Build from parsed TOML; raises ``HostFileError`` naming the first bad key."""
        clients: dict[str, Client] = {}
        hashes: dict[str, tuple[str, ...]] = {}
        for key, entry in entries(data, "clients"):
            client, secret_hashes = _read_client(key, entry)
            if client.client_id in clients:
                raise HostFileError(f"{key}.client_id", "is already used by another client")
            clients[client.client_id] = client
            hashes[client.client_id] = secret_hashes
        return cls(clients, hashes, hasher=hasher, verifier=verifier, cache=cache)

    @property
    def client_ids(self) -> tuple[str, ...]:
        """Every registered client_id, in file order."""
        return tuple(self._clients)

    async def get_client(self, client_id: str) -> Client | None:
        """The client registered as exactly ``client_id``, else ``None``."""
        if not isinstance(client_id, str):
            return None
        return self._clients.get(client_id)

    async def verify_client_secret(self, client: Client, presented_secret: str) -> bool:
        """True when ``presented_secret`` matches one of the client's stored forms."""
        mine = self._clients.get(client.client_id) if isinstance(client, Client) else None
        stored = self._secrets.get(client.client_id) if mine == client else None
        if stored is None or not (stored.fast or stored.argon2):
            await self._spend_placeholder(client.client_id, presented_secret)
            return False
        if fast_digest_matches(stored.fast, presented_secret):
            return True
        if not stored.argon2:
            return False
        usable = isinstance(presented_secret, str) and bool(presented_secret)
        if usable and self._cache.seen(client.client_id, stored.argon2, presented_secret):
            return True
        limiter, now = self._argon2_failures, self._clock.now()
        if limiter is not None and limiter.retry_after(client.client_id, now) is not None:
            return False  # the client's argon2 budget is spent: no argon2 work until it frees
        # an empty secret still costs one argon2 verification (the verifier's placeholder)
        if not await self._verifier.verify(stored.argon2, presented_secret):
            if limiter is not None:
                limiter.fail(client.client_id, now)
            return False
        self._cache.remember(client.client_id, stored.argon2, presented_secret)
        return True

    async def _spend_placeholder(self, client_id: str, presented_secret: str) -> None:
        """The work of a wrong secret in this registry, for a client it does not know,
        including the argon2 budget per client_id: an unknown id's placeholder verifications
        are counted and stop when its budget is spent, exactly as a known client's do, so the
        answer time never tells whether a client_id exists."""
        if self._argon2_placeholder:
            # the steps of a known client's miss, in order: fast digests, the success cache,
            # the budget, then argon2
            fast_digest_matches((), presented_secret)
            if isinstance(presented_secret, str) and presented_secret:
                self._cache.seen(client_id, (), presented_secret)
            limiter, now = self._argon2_failures, self._clock.now()
            if limiter is not None and limiter.retry_after(client_id, now) is not None:
                return
            await self._verifier.verify((), presented_secret)
            if limiter is not None:
                limiter.fail(client_id, now)
        else:
            fast_digest_matches((), presented_secret)


def _stored(client_id: str, hashes: tuple[str, ...]) -> _StoredSecret:
    fast: list[bytes] = []
    argon2: list[str] = []
    for value in hashes:
        raw = fast_digest_bytes(value)
        if raw is not None:
            fast.append(raw)
        elif is_argon2_hash(value):
            argon2.append(value)
        else:
            raise ValueError(
                f"client {client_id!r}: a secret hash must be a $sha256$ digest or an argon2 hash"
            )
    return _StoredSecret(tuple(fast), tuple(argon2))


def _read_client(key: str, entry: Mapping[str, object]) -> tuple[Client, tuple[str, ...]]:
    check_keys(key, entry, _KEYS)
    client_id = require_string(key, entry, "client_id")
    client_type = require_string(key, entry, "client_type")
    method = read_string(key, entry, "token_endpoint_auth_method")
    if method is None:
        method = "none" if client_type == "public" else "client_secret_basic"
    hashes = _read_hashes(key, entry)
    if method in _SECRET_METHODS and not hashes:
        raise HostFileError(f"{key}.client_secret_hash", f"is required for {method}")
    if method not in _SECRET_METHODS and hashes:
        raise HostFileError(f"{key}.client_secret_hash", f"is not used by {method}")
    scope = read_string(key, entry, "scope")
    scope_tokens = tuple(scope.split(" ")) if scope is not None else ()
    if not all(is_scope_token(token) for token in scope_tokens):
        raise HostFileError(f"{key}.scope", "must be scope-tokens separated by single spaces")
    jwks_value = entry.get("jwks")
    jwks: tuple[Mapping[str, object], ...] | None = None
    if jwks_value is not None:
        keys = table(f"{key}.jwks", jwks_value).get("keys")
        if not isinstance(keys, list) or not keys:
            raise HostFileError(f"{key}.jwks.keys", "must be a non-empty array of JWK tables")
        jwks = tuple(table(f"{key}.jwks.keys[{i}]", jwk) for i, jwk in enumerate(keys))
        for index, jwk in enumerate(jwks):
            if "d" in jwk or "k" in jwk:
                raise HostFileError(f"{key}.jwks.keys[{index}]", "must be a public key")
    optional: dict[str, object] = {}
    for name in ("redirect_uris", "grant_types", "response_types", "post_logout_redirect_uris"):
        values = read_strings(key, entry, name)
        if values is not None:
            optional[name] = values
    for name in ("native", "require_pushed_authorization_requests", "dpop_bound_access_tokens",
                 "backchannel_logout_session_required"):
        flag = read_bool(key, entry, name)
        if flag is not None:
            optional[name] = flag
    for name in ("jwks_uri", "backchannel_logout_uri", "client_name",
                 "id_token_signed_response_alg"):
        text = read_string(key, entry, name)
        if text is not None:
            optional[name] = text
    try:
        client = Client(
            client_id=client_id,
            client_type=cast(ClientType, client_type),
            token_endpoint_auth_method=cast(TokenEndpointAuthMethod, method),
            scope=scope_tokens,
            jwks=jwks,
            **optional,  # type: ignore[arg-type]
        )
    except ValueError as exc:
        raise HostFileError(key, str(exc)) from None
    return client, hashes


def _read_hashes(key: str, entry: Mapping[str, object]) -> tuple[str, ...]:
    value = entry.get("client_secret_hash")
    if value is None:
        return ()
    listed = value if isinstance(value, list) else [value]
    if not listed or not all(is_argon2_hash(item) or is_fast_digest(item) for item in listed):
        raise HostFileError(
            f"{key}.client_secret_hash",
            "must be a $sha256$ digest of a generated secret (`authward secret generate`) or an "
            "argon2 hash (hash_secret()), or an array of them",
        )
    return tuple(cast(list[str], listed))
