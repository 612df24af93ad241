"""The client record the protocol core works with, whoever stores it (host registry or CIMD).

Spec: RFC 6749 §2.1 (client types), §2.3 (client authentication); RFC 7591 §2 (client metadata:
``token_endpoint_auth_method``, ``grant_types``, ``response_types``, ``jwks``/``jwks_uri`` are
mutually exclusive); RFC 8252 §7.3 (loopback redirects for native apps); RFC 9126 §6
(``require_pushed_authorization_requests``); RFC 9449 §5.2 (``dpop_bound_access_tokens``);
OIDC Back-Channel Logout 1.0 §2.2; OIDC RP-Initiated Logout 1.0 §3.1.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal, get_args

from authward.core.jose import SIGNING_ALGORITHMS, SigningAlgorithm
from authward.core.scopes import Scopes, is_scope_token

__all__ = [
    "CLIENT_TYPES",
    "TOKEN_ENDPOINT_AUTH_METHODS",
    "Client",
    "ClientType",
    "TokenEndpointAuthMethod",
]

ClientType = Literal["confidential", "public"]
TokenEndpointAuthMethod = Literal[
    "client_secret_basic", "client_secret_post", "private_key_jwt", "none"
]
CLIENT_TYPES: Final[tuple[ClientType, ...]] = get_args(ClientType)
TOKEN_ENDPOINT_AUTH_METHODS: Final[tuple[TokenEndpointAuthMethod, ...]] = get_args(
    TokenEndpointAuthMethod
)


@dataclass(frozen=True, slots=True)
class Client:
    """One registered client, immutable.

    * ``client_type``/``token_endpoint_auth_method`` agree: a ``public`` client uses ``none``
      (client_id only, no secret); a ``confidential`` one uses any other method.
    * ``private_key_jwt`` needs exactly one of ``jwks`` (public JWKs only, as ``{"keys": [...]}``
      entries) or ``jwks_uri`` (fetched through the SSRF guard, which insists on https).
    * ``scope`` is the set of scope tokens the client may request (empty: no restriction is
      declared here; the host's scope policy decides).
    * ``native`` marks an RFC 8252 native app, which may use loopback redirect URIs with any
      port.
    * ``backchannel_logout_session_required`` is stored but always satisfied (every logout
      token carries ``sid``).
    * ``id_token_signed_response_alg`` (OIDC Registration §2) is the algorithm of the client's
      ID tokens; ``None`` uses the server's ``id_token_signing_alg``.

    Violations raise ``ValueError`` when the record is built (a host configuration bug).
    """

    client_id: str
    client_type: ClientType
    token_endpoint_auth_method: TokenEndpointAuthMethod
    redirect_uris: tuple[str, ...] = ()
    grant_types: tuple[str, ...] = ("authorization_code",)
    response_types: tuple[str, ...] = ("code",)
    scope: Scopes = ()
    jwks: tuple[Mapping[str, object], ...] | None = None
    jwks_uri: str | None = None
    require_pushed_authorization_requests: bool = False
    dpop_bound_access_tokens: bool = False
    backchannel_logout_uri: str | None = None
    backchannel_logout_session_required: bool = False
    post_logout_redirect_uris: tuple[str, ...] = ()
    client_name: str | None = None
    native: bool = False
    id_token_signed_response_alg: SigningAlgorithm | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.client_id, str) or not self.client_id:
            raise ValueError("client_id must be a non-empty string")
        if self.client_type not in CLIENT_TYPES:
            raise ValueError(f"client_type must be one of {CLIENT_TYPES}")
        if self.token_endpoint_auth_method not in TOKEN_ENDPOINT_AUTH_METHODS:
            raise ValueError(
                f"token_endpoint_auth_method must be one of {TOKEN_ENDPOINT_AUTH_METHODS}"
            )
        public = self.client_type == "public"
        if public != (self.token_endpoint_auth_method == "none"):  # noqa: S105 - a method name
            raise ValueError("a public client authenticates with 'none', and only a public one")
        for name in ("redirect_uris", "grant_types", "response_types", "scope",
                     "post_logout_redirect_uris"):
            values = getattr(self, name)
            if not isinstance(values, tuple) or not all(isinstance(v, str) and v for v in values):
                raise ValueError(f"{name} must be a tuple of non-empty strings")
        if not all(is_scope_token(token) for token in self.scope):
            raise ValueError("scope holds a value that is not an RFC 6749 scope-token")
        if self.jwks is not None and self.jwks_uri is not None:
            raise ValueError("jwks and jwks_uri are mutually exclusive (RFC 7591 §2)")
        if self.jwks is not None and (
            not isinstance(self.jwks, tuple)
            or not all(isinstance(key, Mapping) for key in self.jwks)
        ):
            raise ValueError("jwks must be a tuple of JWK mappings")
        if self.jwks_uri is not None and (not isinstance(self.jwks_uri, str) or not self.jwks_uri):
            raise ValueError("jwks_uri must be a non-empty URL")
        if (
            self.id_token_signed_response_alg is not None
            and self.id_token_signed_response_alg not in SIGNING_ALGORITHMS
        ):
            raise ValueError(f"id_token_signed_response_alg must be one of {SIGNING_ALGORITHMS}")
        method = self.token_endpoint_auth_method
        if method == "private_key_jwt" and not (
            self.jwks or self.jwks_uri
        ):
            raise ValueError("private_key_jwt needs jwks or jwks_uri")

    @property
    def is_public(self) -> bool:
        """True for a public client (no credentials; PKCE is its only proof)."""
        return self.client_type == "public"
