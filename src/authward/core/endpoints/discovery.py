"""The authorization server metadata document, listing only what this server has enabled.

Spec: RFC 8414 §2 (metadata), §3 (served as JSON at a well-known URI); OpenID Connect
Discovery 1.0 §3 (provider metadata), §4; OIDC RP-Initiated Logout 1.0 §2.1 and Back-Channel
Logout 1.0 §2.1 (logout metadata); RFC 9126 §5 (PAR metadata); RFC 9207 §3
(``authorization_response_iss_parameter_supported``); RFC 9449 §5.1
(``dpop_signing_alg_values_supported``); RFC 7636 §4.2 (S256 only, as OAuth 2.1 requires);
RFC 8628 §4 (``device_authorization_endpoint``).

The same document answers at ``/.well-known/openid-configuration`` and
``/.well-known/oauth-authorization-server`` relative to the issuer (the app's mount point).
A host whose issuer has a path and wants the RFC 8414 §3.1 location
(``https://host/.well-known/oauth-authorization-server/auth``) routes that URL to this handler
itself. Every URL is ``server.url(server.paths.X)``, so it follows the mount.

Deliberate choices:

* ``request_uri_parameter_supported`` is true only with PAR enabled: the only ``request_uri``
  accepted is one this server issued at its PAR endpoint (no fetched request objects), and
  ``request_parameter_supported``/``claims_parameter_supported`` are false.
* ``scopes_supported`` lists only what every deployment supports (``openid``, plus
  ``offline_access`` with the refresh grant); RFC 8414 §2 lets a server leave scopes out.
* Optional features are advertised only while switched on: the device authorization grant
  with ``features.device_authorization_grant``; ``end_session_endpoint`` with
  ``features.end_session``, plus ``backchannel_logout_supported`` and
  ``backchannel_logout_session_supported`` when ``logout.enabled`` is true as well;
  ``client_id_metadata_document_supported`` with ``client_id_metadata.enabled``.
"""

from __future__ import annotations

from typing import Final, Literal, NotRequired, TypedDict

from authward.core.client_auth import AssertionPolicy
from authward.core.grants.device_code import GRANT_TYPE as DEVICE_CODE_GRANT_TYPE
from authward.core.http import Request, Response, json_response
from authward.core.server import AuthorizationServer

__all__ = ["CACHE_SECONDS", "ServerMetadata", "handle", "metadata"]

#: How long clients may cache the document (``Cache-Control: public, max-age``).
CACHE_SECONDS: Final = 3600

AuthMethod = Literal["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]
_AUTH_METHODS: Final[tuple[AuthMethod, ...]] = (
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
    "none",
)
#: Introspection needs a client that can authenticate (no ``none``); revocation also serves
#: public clients, which identify themselves by ``client_id`` (RFC 7009 §2.1).
_CONFIDENTIAL_AUTH_METHODS: Final[tuple[AuthMethod, ...]] = _AUTH_METHODS[:3]


class ServerMetadata(TypedDict):
    """The metadata JSON body (RFC 8414 §2, OIDC Discovery §3 names)."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: NotRequired[str]
    end_session_endpoint: NotRequired[str]
    backchannel_logout_supported: NotRequired[bool]
    backchannel_logout_session_supported: NotRequired[bool]
    revocation_endpoint: NotRequired[str]
    revocation_endpoint_auth_methods_supported: NotRequired[list[AuthMethod]]
    introspection_endpoint: NotRequired[str]
    introspection_endpoint_auth_methods_supported: NotRequired[list[AuthMethod]]
    pushed_authorization_request_endpoint: NotRequired[str]
    device_authorization_endpoint: NotRequired[str]
    require_pushed_authorization_requests: NotRequired[bool]
    scopes_supported: list[str]
    response_types_supported: list[str]
    response_modes_supported: list[str]
    grant_types_supported: list[str]
    code_challenge_methods_supported: list[str]
    token_endpoint_auth_methods_supported: list[AuthMethod]
    token_endpoint_auth_signing_alg_values_supported: list[str]
    subject_types_supported: list[str]
    id_token_signing_alg_values_supported: list[str]
    dpop_signing_alg_values_supported: NotRequired[list[str]]
    authorization_response_iss_parameter_supported: bool
    claims_parameter_supported: bool
    request_parameter_supported: bool
    request_uri_parameter_supported: bool
    client_id_metadata_document_supported: NotRequired[bool]


def metadata(server: AuthorizationServer) -> ServerMetadata:
    """The metadata document for ``server``'s settings (pure; no I/O)."""
    settings, features, paths = server.settings, server.settings.features, server.paths
    grants = ["authorization_code"]
    if features.refresh_token_grant:
        grants.append("refresh_token")
    if features.client_credentials_grant:
        grants.append("client_credentials")
    if features.device_authorization_grant:
        grants.append(DEVICE_CODE_GRANT_TYPE)
    scopes = ["openid"]
    if features.refresh_token_grant:
        scopes.append("offline_access")
    body: ServerMetadata = {
        "issuer": server.issuer,
        "authorization_endpoint": server.url(paths.authorization),
        "token_endpoint": server.url(paths.token),
        "jwks_uri": server.url(paths.jwks),
        "scopes_supported": scopes,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": grants,
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": list(_AUTH_METHODS),
        "token_endpoint_auth_signing_alg_values_supported": list(
            AssertionPolicy(issuer=server.issuer).algorithms
        ),
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [
            settings.id_token_signing_alg,
            *(alg for alg in server.keys.algorithms if alg != settings.id_token_signing_alg),
        ],
        "authorization_response_iss_parameter_supported": True,
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": features.pushed_authorization_requests,
    }
    if features.userinfo:
        body["userinfo_endpoint"] = server.url(paths.userinfo)
    if features.end_session:
        # RP-Initiated Logout 1.0 §2.1; Back-Channel Logout 1.0 §2.1 (every token has sid).
        body["end_session_endpoint"] = server.url(paths.end_session)
        if settings.logout.enabled:
            body["backchannel_logout_supported"] = True
            body["backchannel_logout_session_supported"] = True
    if features.revocation:
        body["revocation_endpoint"] = server.url(paths.revocation)
        body["revocation_endpoint_auth_methods_supported"] = list(_AUTH_METHODS)
    if features.introspection:
        body["introspection_endpoint"] = server.url(paths.introspection)
        body["introspection_endpoint_auth_methods_supported"] = list(_CONFIDENTIAL_AUTH_METHODS)
    if features.pushed_authorization_requests:
        body["pushed_authorization_request_endpoint"] = server.url(
            paths.pushed_authorization_request
        )
        body["require_pushed_authorization_requests"] = (
            settings.require_pushed_authorization_requests
        )
    if features.device_authorization_grant:
        # RFC 8628 §4: the device authorization endpoint.
        body["device_authorization_endpoint"] = server.url(paths.device_authorization)
    if features.dpop:
        body["dpop_signing_alg_values_supported"] = list(settings.dpop_algs)
    if settings.client_id_metadata.enabled:
        # draft-ietf-oauth-client-id-metadata-document §5: URL client ids are accepted.
        body["client_id_metadata_document_supported"] = True
    return body


async def handle(server: AuthorizationServer, request: Request) -> Response:
    """Answer a GET of either well-known URI with the metadata (cacheable, public)."""
    return json_response(
        metadata(server),
        no_store=False,
        headers=(("Cache-Control", f"public, max-age={CACHE_SECONDS}"),),
    )
