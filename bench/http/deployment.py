"""The benchmark's deployment: its clients, user and secrets, and the TOML file
``authward serve --config`` reads.

Spec: authward ``cli/wiring.py`` (the host file: ``[authward]``, ``[[clients]]``, ``[[users]]``,
``[login]``, ``[consent]``); RFC 6749 §2.3.1 (client secrets), RFC 7523 §2.2 (the
``private_key_jwt`` client's ``jwks``), RFC 9449 §5 (the DPoP-bound public client).

:func:`client_secret_hash` is the one place that decides how the generated (random, 256-bit)
client secrets are stored (authward's fast ``$sha256$`` digest); :func:`authward_config` is the
one place that writes the file.
Users' passwords stay argon2 (sign-in happens only before timing). Consent is asked (no
first-party clients): codes are minted through the login and consent pages. The code lifetime
is raised so codes minted before a run are still valid when it exchanges them; DPoP nonces
stay off.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from authward.core.defaults import hash_secret
from bench.http.jws import (
    ec_private_key_from_pem,
    ec_private_key_pem,
    ec_public_jwk,
    generate_ec_key,
    jwk_thumbprint,
)

__all__ = [
    "AUTHORIZATION_CODE_TTL",
    "DPOP_CLIENT",
    "FLOOD_CLIENT",
    "JWT_CLIENT",
    "REDIRECT_URI",
    "USERNAME",
    "WEB_CLIENT",
    "Credentials",
    "authward_config",
    "client_secret_hash",
]

WEB_CLIENT: Final = "bench-web"
JWT_CLIENT: Final = "bench-jwt"
DPOP_CLIENT: Final = "bench-dpop"
FLOOD_CLIENT: Final = "bench-flood"
USERNAME: Final = "bench-user"
SUBJECT: Final = "bench-user-1"
REDIRECT_URI: Final = "https://client.bench.example/cb"
#: Seconds a minted code stays valid (authward's default is 60; minting happens before timing).
AUTHORIZATION_CODE_TTL: Final = 900
WEB_SCOPE: Final = "openid profile email offline_access api"


def _secret() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Credentials:
    """Every secret of one deployment, in clear (the bench is both the clients and the user)."""

    web_secret: str = field(default_factory=_secret)
    flood_secret: str = field(default_factory=_secret)
    password: str = field(default_factory=_secret)
    cookie_secret: str = field(default_factory=_secret)
    successor_key: str = field(default_factory=_secret)
    jwt_key_pem: str = field(default_factory=lambda: ec_private_key_pem(generate_ec_key()))
    dpop_key_pem: str = field(default_factory=lambda: ec_private_key_pem(generate_ec_key()))

    def jwt_public_jwk(self) -> dict[str, str]:
        """The ``private_key_jwt`` client's public JWK with ``kid`` (its thumbprint),
        ``alg`` and ``use``."""
        jwk = ec_public_jwk(ec_private_key_from_pem(self.jwt_key_pem))
        return {**jwk, "kid": jwk_thumbprint(jwk), "alg": "ES256", "use": "sig"}


def client_secret_hash(secret: str) -> str:
    """How a generated client secret is stored in the config: authward's fast ``$sha256$``
    digest (``hash_secret(secret, fast=True)``), the form authward documents for generated
    secrets of at least 256 random bits such as these."""
    return hash_secret(secret, fast=True)


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_key(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def _key(name: object) -> str:
    text = str(name)
    bare = text.replace("-", "").replace("_", "").isalnum()
    return text if bare else json.dumps(text)


def _table(header: str, values: Mapping[str, object]) -> str:
    return "\n".join([header, *(f"{_key(k)} = {_toml(v)}" for k, v in values.items())]) + "\n"


def authward_config(credentials: Credentials, *, max_failed_logins: int = 1000) -> str:
    """The ``authward serve --config`` file of the bench deployment (see the module
    docstring). ``max_failed_logins`` keeps the sign-in limit out of the way."""
    settings: dict[str, object] = {
        "authorization_code_ttl": AUTHORIZATION_CODE_TTL,
        "dpop_nonce_required": False,
    }
    clients: list[dict[str, Any]] = [
        {
            "client_id": WEB_CLIENT,
            "client_name": "Bench web app",
            "client_type": "confidential",
            "token_endpoint_auth_method": "client_secret_basic",
            "client_secret_hash": client_secret_hash(credentials.web_secret),
            "redirect_uris": [REDIRECT_URI],
            "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
            "scope": WEB_SCOPE,
        },
        {
            "client_id": JWT_CLIENT,
            "client_type": "confidential",
            "token_endpoint_auth_method": "private_key_jwt",
            "grant_types": ["client_credentials"],
            "scope": "api",
            "jwks": {"keys": [credentials.jwt_public_jwk()]},
        },
        {
            "client_id": DPOP_CLIENT,
            "client_type": "public",
            "token_endpoint_auth_method": "none",
            "redirect_uris": [REDIRECT_URI],
            "grant_types": ["authorization_code", "refresh_token"],
            "scope": "openid profile offline_access",
            "dpop_bound_access_tokens": True,
        },
        {
            "client_id": FLOOD_CLIENT,
            "client_type": "confidential",
            "token_endpoint_auth_method": "client_secret_basic",
            "client_secret_hash": client_secret_hash(credentials.flood_secret),
            "grant_types": ["client_credentials"],
            "scope": "api",
        },
    ]
    parts = [
        "# authward HTTP benchmark deployment, written by bench/http/deployment.py\n",
        _table("[authward]", settings),
        _table("[authward.refresh_successor_keys]", {"bench-1": credentials.successor_key}),
        _table(
            "[login]",
            {"cookie_secret": credentials.cookie_secret, "max_failed_logins": max_failed_logins},
        ),
        *(_table("[[clients]]", client) for client in clients),
        _table(
            "[[users]]",
            {
                "subject": SUBJECT,
                "username": USERNAME,
                "password_hash": hash_secret(credentials.password),
            },
        ),
        _table(
            "[users.claims]",
            {"name": "Bench User", "email": "bench@example.com", "email_verified": True},
        ),
    ]
    return "\n".join(parts)
