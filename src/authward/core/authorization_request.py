"""Parse and validate an authorization request into a frozen ``AuthorizationRequest``.

Spec: RFC 6749 §3.1 (no repeated parameters, empty means omitted, unknown ones ignored),
§3.1.1 (response_type), §3.1.2.3 and §4.1.2.1 (client and redirect URI first; errors about them
are never redirected); RFC 7636 §4.3 and OAuth 2.1 §4.1.1 (PKCE, S256 only); RFC 8707 §2
(resource: absolute URI, no fragment, may repeat); RFC 8252 §7.3 (loopback redirects for native
clients); RFC 9101 §5 and RFC 9126 §4 (``request`` and ``request_uri``); RFC 9449 §10
(``dpop_jkt``); OIDC Core 1.0 §3.1.2.1 (``nonce``, ``prompt``, ``max_age``).

Validation runs in two stages, in this order:

1. ``resolve_target``: the client (``client_id`` present, once, known to the host registry)
   and its redirect URI (exact match, or an RFC 8252 loopback match for a native client; may be
   omitted only when exactly one is registered). Any failure here raises a plain ``OAuthError``
   the endpoint must answer DIRECTLY: the redirect URI cannot be trusted.
2. ``validate``: everything else. Failures raise ``OAuthError`` too, but the caller now holds a
   trusted ``Target`` and sends them BY REDIRECT (with ``state`` when it could be read).

``parse`` runs both and wraps the outcome in ``AuthorizationRequestError`` carrying the target
(``None`` for a direct error).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

from authward.core import pkce, redirects
from authward.core.clients import Client
from authward.core.errors import (
    InvalidClientError,
    InvalidRequestError,
    InvalidScopeError,
    OAuthError,
    RegistrationNotSupportedError,
    RequestNotSupportedError,
    RequestUriNotSupportedError,
    UnauthorizedClientError,
    UnsupportedResponseTypeError,
)
from authward.core.http import MultiDict
from authward.core.policy import ClientRegistry
from authward.core.resource_indicators import MAX_RESOURCE_CHARS, parse_resources
from authward.core.scopes import parse as parse_scopes

__all__ = [
    "MAX_CLIENT_ID_CHARS",
    "MAX_NONCE_CHARS",
    "MAX_REDIRECT_URI_CHARS",
    "MAX_RESOURCE_CHARS",
    "MAX_SCOPE_CHARS",
    "MAX_STATE_CHARS",
    "MAX_VALUE_CHARS",
    "PROMPT_VALUES",
    "AuthorizationRequest",
    "AuthorizationRequestError",
    "Prompt",
    "Target",
    "parse",
    "resolve_target",
    "validate",
]

Prompt = Literal["none", "login", "consent", "select_account"]
PROMPT_VALUES: Final[frozenset[str]] = frozenset({"none", "login", "consent", "select_account"})

#: Length limits, checked before anything is stored (the code and PAR rows hold these values).
MAX_CLIENT_ID_CHARS: Final = 255
MAX_REDIRECT_URI_CHARS: Final = 2_048
MAX_STATE_CHARS: Final = 2_048
MAX_NONCE_CHARS: Final = 255
MAX_SCOPE_CHARS: Final = 2_048
MAX_SCOPE_TOKEN_CHARS: Final = 255
#: Any other parameter value (parameters this server ignores included).
MAX_VALUE_CHARS: Final = 4_096
#: ``max_age`` above this is refused (ten years of seconds; also keeps int() cheap).
MAX_MAX_AGE: Final = 315_360_000

#: Parameters that may legitimately repeat (RFC 8707 §2: one ``resource`` per resource).
_REPEATABLE: Final = frozenset({"resource"})
_JKT: Final = re.compile(r"[A-Za-z0-9_-]{43}")
_DIGITS: Final = re.compile(r"[0-9]{1,10}")


@dataclass(frozen=True, slots=True)
class Target:
    """A trusted client and redirect URI: errors from here on go back by redirect.

    ``state`` is the request's ``state`` when it could be read (present once, within limits),
    else ``None``; it is echoed in every redirect.
    """

    client: Client
    redirect_uri: str
    state: str | None


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """A fully validated authorization-code request (``response_type=code``, PKCE S256).

    ``scope`` is the requested scope tokens in order without duplicates; ``prompt`` the set of
    prompt values (``none`` never combined with another); ``resource`` the RFC 8707 indicators;
    ``response_mode`` is ``None`` or ``"query"``. Satisfies ``authward.stores.consent.
    ConsentRequest``, so a consent grant can be bound to it.
    """

    client: Client
    client_id: str
    redirect_uri: str
    scope: tuple[str, ...]
    state: str | None
    nonce: str | None
    code_challenge: str
    code_challenge_method: Literal["S256"]
    prompt: frozenset[str]
    max_age: int | None
    resource: tuple[str, ...]
    dpop_jkt: str | None
    response_type: Literal["code"] = "code"
    response_mode: Literal["query"] | None = None


class AuthorizationRequestError(Exception):
    """An invalid request: ``error`` to answer, ``target`` to redirect to (``None``: directly)."""

    def __init__(self, error: OAuthError, target: Target | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.target = target


async def resolve_target(params: MultiDict, clients: ClientRegistry) -> Target:
    """Stage 1: the client and redirect URI, or an ``OAuthError`` to answer directly.

    ``client_id`` missing, repeated or over-long: ``invalid_request``; unknown to the host:
    ``invalid_client``. ``redirect_uri`` repeated, over-long, malformed, unregistered, or
    omitted while several are registered: ``invalid_request``.
    """
    for name in ("client_id", "redirect_uri"):
        if len(params.get_all(name)) > 1:
            raise InvalidRequestError(f"{name} must not be repeated")
    client_id = params.get_one("client_id")
    if client_id is None:
        raise InvalidRequestError("client_id is required")
    if len(client_id) > MAX_CLIENT_ID_CHARS:
        raise InvalidRequestError("client_id is too long")
    client = await clients.get_client(client_id)
    if client is None:
        raise InvalidClientError("unknown client", detail=f"client_id {client_id[:64]!r}")
    requested = params.get_one("redirect_uri")
    if requested is not None and len(requested) > MAX_REDIRECT_URI_CHARS:
        raise InvalidRequestError("redirect_uri is too long")
    redirect_uri = redirects.resolve(requested, client.redirect_uris, native=client.native)
    state = _readable_state(params)
    return Target(client=client, redirect_uri=redirect_uri, state=state)


def validate(params: MultiDict, target: Target) -> AuthorizationRequest:
    """Stage 2: everything after the client and redirect URI; errors go back by redirect.

    In order: repeated parameters (``invalid_request``), ``request`` (``request_not_supported``),
    ``request_uri`` (``request_uri_not_supported``: only this server's pushed requests are
    accepted, and those are resolved before validation), ``registration``
    (``registration_not_supported``), ``response_type`` (missing: ``invalid_request``; not
    ``code``: ``unsupported_response_type``; not allowed for the client:
    ``unauthorized_client``), ``response_mode`` (``query`` only), over-long values
    (``invalid_request``), ``scope`` (``invalid_scope``), PKCE (``invalid_request``), ``prompt``,
    ``max_age``, ``nonce``, ``dpop_jkt`` (``invalid_request``) and ``resource``
    (``invalid_target``).
    """
    repeated = [name for name in params.repeated() if name not in _REPEATABLE]
    if repeated:
        raise InvalidRequestError(f"{repeated[0]} must not be repeated")
    if params.get_one("request") is not None:
        raise RequestNotSupportedError("request objects are not supported; use PAR")
    if params.get_one("request_uri") is not None:
        raise RequestUriNotSupportedError("only request_uri values from this server's PAR")
    if params.get_one("registration") is not None:
        raise RegistrationNotSupportedError("the registration parameter is not supported")
    response_type = params.get_one("response_type")
    if response_type is None:
        raise InvalidRequestError("response_type is required")
    if response_type != "code":
        raise UnsupportedResponseTypeError("only response_type=code is supported")
    client = target.client
    if "code" not in client.response_types or "authorization_code" not in client.grant_types:
        raise UnauthorizedClientError("the client may not use the authorization code flow")
    response_mode = params.get_one("response_mode")
    if response_mode is not None and response_mode != "query":
        raise InvalidRequestError("only response_mode=query is supported")
    _check_lengths(params)
    scope = _scope(params.get_one("scope"))
    challenge = params.get_one("code_challenge")
    method = pkce.check_challenge(challenge, params.get_one("code_challenge_method"))
    assert challenge is not None
    return AuthorizationRequest(
        client=client,
        client_id=client.client_id,
        redirect_uri=target.redirect_uri,
        scope=scope,
        state=params.get_one("state"),
        nonce=params.get_one("nonce"),
        code_challenge=challenge,
        code_challenge_method=method,
        prompt=_prompt(params.get_one("prompt")),
        max_age=_max_age(params.get_one("max_age")),
        resource=parse_resources(params.get_all("resource")),
        dpop_jkt=_dpop_jkt(params.get_one("dpop_jkt")),
        response_mode="query" if response_mode == "query" else None,
    )


async def parse(params: MultiDict, clients: ClientRegistry) -> AuthorizationRequest:
    """Both stages; failures raise ``AuthorizationRequestError`` saying how to answer."""
    try:
        target = await resolve_target(params, clients)
    except OAuthError as error:
        raise AuthorizationRequestError(error, None) from error
    try:
        return validate(params, target)
    except OAuthError as error:
        raise AuthorizationRequestError(error, target) from error


def params_from_pairs(pairs: Iterable[tuple[str, str]]) -> MultiDict:
    """A parameter set from ``(name, value)`` pairs."""
    return MultiDict(tuple(pairs))


def params_from_json(stored: Mapping[str, object]) -> MultiDict | None:
    """Stored (pushed) params back as a parameter set; ``None`` if the shape is not ours.

    Values are strings, or lists of strings for the repeatable ``resource``.
    """
    pairs: list[tuple[str, str]] = []
    for name, value in stored.items():
        if isinstance(value, str):
            pairs.append((name, value))
        elif isinstance(value, list | tuple) and name in _REPEATABLE:
            if not all(isinstance(v, str) for v in value):
                return None
            pairs.extend((name, v) for v in value)
        else:
            return None
    return MultiDict(pairs)


def params_to_json(params: MultiDict, *, drop: Iterable[str] = ()) -> dict[str, str | list[str]]:
    """A parameter set as a JSON object: one string per name, a list for ``resource``.

    Empty values are dropped (they count as omitted); names in ``drop`` are left out. Only
    call on a parameter set ``validate`` accepted (nothing else repeats).
    """
    dropped = frozenset(drop)
    out: dict[str, str | list[str]] = {}
    for name in dict.fromkeys(key for key, _ in params):
        if name in dropped:
            continue
        values = [v for v in params.get_all(name) if v != ""]
        if not values:
            continue
        out[name] = values if name in _REPEATABLE else values[0]
    return out


# --- helpers ---------------------------------------------------------------------------------


def _readable_state(params: MultiDict) -> str | None:
    values = params.get_all("state")
    if len(values) != 1 or values[0] == "" or len(values[0]) > MAX_STATE_CHARS:
        return None
    return values[0]


def _check_lengths(params: MultiDict) -> None:
    limits = {"state": MAX_STATE_CHARS, "nonce": MAX_NONCE_CHARS, "scope": MAX_SCOPE_CHARS}
    for name, value in params:
        if len(name) > MAX_VALUE_CHARS or len(value) > limits.get(name, MAX_VALUE_CHARS):
            raise InvalidRequestError(f"{name[:64]} is too long")


def _scope(value: str | None) -> tuple[str, ...]:
    scopes = parse_scopes(value)
    if any(len(token) > MAX_SCOPE_TOKEN_CHARS for token in scopes):
        raise InvalidScopeError("a scope value is too long")
    return scopes


def _prompt(value: str | None) -> frozenset[str]:
    if value is None:
        return frozenset()
    parts = value.split(" ")
    if any(part not in PROMPT_VALUES for part in parts):
        raise InvalidRequestError("prompt must be none, login, consent or select_account")
    prompt = frozenset(parts)
    if "none" in prompt and len(prompt) > 1:
        raise InvalidRequestError("prompt=none cannot be combined with other values")
    return prompt


def _max_age(value: str | None) -> int | None:
    if value is None:
        return None
    if not _DIGITS.fullmatch(value) or int(value) > MAX_MAX_AGE:
        raise InvalidRequestError("max_age must be a non-negative integer number of seconds")
    return int(value)


def _dpop_jkt(value: str | None) -> str | None:
    if value is not None and not _JKT.fullmatch(value):
        raise InvalidRequestError("dpop_jkt must be a base64url SHA-256 JWK thumbprint")
    return value


