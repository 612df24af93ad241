"""The composition root: settings, stores, clock, keys, outbound HTTP and host policy.

Spec: authward ARCHITECTURE.md (``core/server.py``). No protocol logic lives here: endpoints
and grants take an ``AuthorizationServer`` and read what they need from it. Endpoint URLs are
the issuer followed by the endpoint path, so a host that mounts the ASGI app under a path puts
that path in its issuer (``https://example.com/auth``) and every advertised URL follows.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from authward.core.client_auth import AssertionPolicy, ClientAuthenticator, ClientAuthLimits
from authward.core.client_metadata import (
    BASIC_REALM,
    ClientMetadataRegistry,
    ClientMetadataResolver,
)
from authward.core.clock import Clock, SystemClock
from authward.core.config import Settings, SettingsError
from authward.core.dpop import DPoPVerifier
from authward.core.keys import KeySet
from authward.core.policy import (
    ClaimsProvider,
    ClientRegistry,
    ConsentPolicy,
    EventSink,
    ResourceOwnerLogin,
    ScopePolicy,
)
from authward.core.ssrf import GuardedFetcher
from authward.stores.client_metadata import ClientMetadataCache
from authward.stores.codes import AuthorizationCodeStore
from authward.stores.consent import ConsentGrantStore
from authward.stores.device_codes import DeviceCodeStore
from authward.stores.dpop_nonces import DpopNonceStore
from authward.stores.logout_sessions import LogoutSessionStore
from authward.stores.par import PushedAuthorizationRequestStore
from authward.stores.refresh import RefreshTokenStore
from authward.stores.replay import ReplayStore


@dataclass(frozen=True, slots=True)
class Stores:
    """The nine stores, all backed by one shared database in a multi-node deployment."""

    authorization_codes: AuthorizationCodeStore
    refresh_tokens: RefreshTokenStore
    device_codes: DeviceCodeStore
    logout_sessions: LogoutSessionStore
    dpop_nonces: DpopNonceStore
    replay: ReplayStore
    pushed_authorization_requests: PushedAuthorizationRequestStore
    client_metadata: ClientMetadataCache
    consent_grants: ConsentGrantStore


@dataclass(frozen=True, slots=True)
class HostPolicy:
    """Everything the host supplies (see ``authward.core.policy``)."""

    clients: ClientRegistry
    login: ResourceOwnerLogin
    consent: ConsentPolicy
    claims: ClaimsProvider
    scopes: ScopePolicy
    events: EventSink


@dataclass(frozen=True, slots=True)
class EndpointPaths:
    """Where each endpoint lives, relative to the issuer (the app's mount point)."""

    authorization: str = "/authorize"
    token: str = "/token"  # noqa: S105 - a path, not a secret
    pushed_authorization_request: str = "/par"
    revocation: str = "/revoke"
    introspection: str = "/introspect"
    userinfo: str = "/userinfo"
    jwks: str = "/jwks.json"
    device_authorization: str = "/device_authorization"
    device_verification: str = "/device"
    end_session: str = "/end_session"
    openid_configuration: str = "/.well-known/openid-configuration"
    authorization_server_metadata: str = "/.well-known/oauth-authorization-server"


@dataclass(frozen=True)
class AuthorizationServer:
    """One authorization server instance; stateless apart from what its stores hold.

    ``keys`` is the signing key set this node loaded; ``max_token_lifetime`` bounds how long
    retired keys stay published (the longest lifetime of anything they signed).
    ``client_auth_limits`` are the in-process failure limits of secret-based client
    authentication (``authward.core.client_auth``), shared by every authenticator this server
    hands out; ``None`` switches them off.
    """

    settings: Settings
    stores: Stores
    keys: KeySet
    policy: HostPolicy
    fetcher: GuardedFetcher
    clock: Clock = field(default_factory=SystemClock)
    paths: EndpointPaths = field(default_factory=EndpointPaths)
    client_auth_limits: ClientAuthLimits | None = field(default_factory=ClientAuthLimits)

    def __post_init__(self) -> None:
        for name in ("access_token_signing_alg", "id_token_signing_alg"):
            alg = getattr(self.settings, name)
            if alg not in self.keys.algorithms:
                raise SettingsError(
                    name,
                    f"is {alg} but the key set has no active {alg} key: add one "
                    f"(`authward keys generate --alg {alg}`) or choose one of "
                    f"{', '.join(self.keys.algorithms)}"
                )

    @property
    def issuer(self) -> str:
        """The issuer identifier (RFC 8414 §2), without a trailing slash."""
        return self.settings.issuer.rstrip("/")

    def url(self, path: str) -> str:
        """The absolute URL of an endpoint ``path`` (one of ``paths``)."""
        return self.issuer + path

    @property
    def max_token_lifetime(self) -> int:
        """The longest lifetime of a signed artefact (access token; ID tokens share it)."""
        return self.settings.access_token_ttl

    @property
    def clients(self) -> ClientRegistry:
        """The client registry the authorization endpoint uses: the host's registry, with Client
        ID Metadata Document URLs resolved in front of it when that feature is enabled (an
        unusable document is a direct ``invalid_client``)."""
        return self._client_registry(basic_realm=None)

    def _client_registry(self, *, basic_realm: str | None) -> ClientRegistry:
        if not self.settings.client_id_metadata.enabled:
            return self.policy.clients
        return ClientMetadataRegistry(
            self._metadata_resolver,
            self.policy.clients,
            events=self.policy.events,
            clock=self.clock,
            basic_realm=basic_realm,
        )

    def client_authenticator(self) -> ClientAuthenticator:
        """The client authenticator for the token, PAR, revocation and introspection endpoints
        (built once per server: it holds no per-request state).

        CIMD clients are resolved as in ``clients``; an unusable document is ``invalid_client``
        401 with a ``Basic`` challenge (RFC 6749 §5.2, RFC 9110 §15.5.2)."""
        return self._client_authenticator

    def dpop_verifier(self) -> DPoPVerifier:
        """The DPoP proof verifier configured from the settings and the shared stores (built
        once per server)."""
        return self._dpop_verifier

    @functools.cached_property
    def _metadata_resolver(self) -> ClientMetadataResolver:
        """One CIMD resolver per server: it holds the in-flight fetches and recent failures
        that every request of this process shares."""
        return ClientMetadataResolver(
            self.settings.client_id_metadata,
            cache=self.stores.client_metadata,
            fetcher=self.fetcher,
            clock=self.clock,
        )

    @functools.cached_property
    def _client_authenticator(self) -> ClientAuthenticator:
        return ClientAuthenticator(
            registry=self._client_registry(basic_realm=BASIC_REALM),
            replay=self.stores.replay,
            policy=AssertionPolicy(
                issuer=self.issuer, token_endpoint=self.url(self.paths.token)
            ),
            fetcher=self.fetcher,
            clock=self.clock,
            limits=self.client_auth_limits,
        )

    @functools.cached_property
    def _dpop_verifier(self) -> DPoPVerifier:
        return DPoPVerifier.from_settings(
            self.settings,
            replay_store=self.stores.replay,
            nonce_store=self.stores.dpop_nonces,
            clock=self.clock,
        )
