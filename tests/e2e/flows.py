"""Client-side helpers of the end-to-end suite: Authlib clients, the code flow, ID token checks
and DPoP proofs, all built with third-party libraries (Authlib, joserfc), never with authward.

Spec: RFC 6749 §4.1 and §4.4; RFC 7636 (S256); RFC 9126 §2 and §4 (PAR); OIDC Core 1.0
§3.1.3.7 (ID token validation), §3.1.3.6 (``at_hash``); RFC 9449 §4 (DPoP proofs), §4.3
(``ath``); RFC 7638 (JWK thumbprint).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlencode

import httpx
from authlib.integrations.httpx_client import (  # type: ignore[import-untyped]
    AsyncOAuth2Client,
)
from authlib.oauth2.rfc7523 import (  # type: ignore[import-untyped]
    PrivateKeyJWT,
    private_key_jwt_sign,
)
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from tests.e2e.browser import Arrival, Browser
from tests.e2e.harness import (
    HTTP_TIMEOUT,
    JWT_CLIENT,
    PAR_CLIENT,
    PAR_SECRET,
    PASSWORD,
    REDIRECT_URI,
    RS_CLIENT,
    RS_SECRET,
    USERNAME,
    WEB_CLIENT,
    WEB_SECRET,
    Deployment,
    http_client,
)

FORM: Final = {"Content-Type": "application/x-www-form-urlencoded"}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def token_hash(token: str) -> str:
    """``at_hash`` / ``ath``: base64url of the left half (or all, for ath) of SHA-256."""
    return b64url(hashlib.sha256(token.encode("ascii")).digest()[:16])


def ath(token: str) -> str:
    """RFC 9449 §4.2 ``ath``: base64url(SHA-256(access token))."""
    return b64url(hashlib.sha256(token.encode("ascii")).digest())


@dataclass(frozen=True)
class Metadata:
    """The endpoint URLs a client learns from discovery (RFC 8414)."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    pushed_authorization_request_endpoint: str
    revocation_endpoint: str
    introspection_endpoint: str
    userinfo_endpoint: str
    jwks_uri: str
    raw: dict[str, Any]


async def discover(deployed: Deployment) -> Metadata:
    """Read ``/.well-known/openid-configuration`` over HTTP."""
    async with http_client(deployed.issuer) as http:
        response = await http.get("/.well-known/openid-configuration")
    assert response.status_code == 200, response.text
    doc: dict[str, Any] = response.json()
    return Metadata(
        issuer=doc["issuer"],
        authorization_endpoint=doc["authorization_endpoint"],
        token_endpoint=doc["token_endpoint"],
        pushed_authorization_request_endpoint=doc["pushed_authorization_request_endpoint"],
        revocation_endpoint=doc["revocation_endpoint"],
        introspection_endpoint=doc["introspection_endpoint"],
        userinfo_endpoint=doc["userinfo_endpoint"],
        jwks_uri=doc["jwks_uri"],
        raw=doc,
    )


class ShortLivedPrivateKeyJWT(PrivateKeyJWT):  # type: ignore[misc]
    """Authlib's ``private_key_jwt`` with a 60 s assertion: Authlib's default lifetime is
    3600 s and authward refuses assertions living longer than 300 s (``AssertionPolicy``)."""

    def sign(self, auth: Any, token_endpoint: str) -> str:
        assertion: str = private_key_jwt_sign(
            auth.client_secret,
            client_id=auth.client_id,
            token_endpoint=token_endpoint,
            claims=self.claims,
            header=self.headers,
            alg=self.alg,
            expires_in=60,
        )
        return assertion


CLIENT_SECRETS: Final = {WEB_CLIENT: WEB_SECRET, PAR_CLIENT: PAR_SECRET, RS_CLIENT: RS_SECRET}
CLIENT_AUTH_METHODS: Final = {RS_CLIENT: "client_secret_post"}


def oauth_client(
    deployed: Deployment, client_id: str, *, redirect_uri: str = REDIRECT_URI, **options: Any
) -> Any:
    """Authlib's ``AsyncOAuth2Client`` for one of the configured clients (PKCE S256); any other
    ``client_id`` (an extra or a CIMD client) is public (``none``)."""
    if client_id == JWT_CLIENT:
        client = AsyncOAuth2Client(
            client_id=client_id,
            client_secret=deployed.client_key.key,
            token_endpoint_auth_method="private_key_jwt",
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            timeout=HTTP_TIMEOUT,
            **options,
        )
        client.register_client_auth_method(
            ShortLivedPrivateKeyJWT(
                deployed.url("/token"), alg="ES256", headers={"kid": deployed.client_key.kid}
            )
        )
        return client
    secret = CLIENT_SECRETS.get(client_id)
    method = "none" if secret is None else CLIENT_AUTH_METHODS.get(client_id, "client_secret_basic")
    return AsyncOAuth2Client(
        client_id=client_id,
        client_secret=secret,
        token_endpoint_auth_method=method,
        revocation_endpoint_auth_method=method,
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        timeout=HTTP_TIMEOUT,
        **options,
    )


@dataclass
class CodeFlow:
    """One authorization code flow's client-side state and results."""

    client: Any
    verifier: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    nonce: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    state: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    arrival: Arrival | None = None
    token: dict[str, Any] | None = None
    #: The end-user's browser that authorized (``logins`` counts the login forms it filled).
    user: Browser | None = None


def browser(http: httpx.AsyncClient) -> Browser:
    """The end-user's browser (alice)."""
    return Browser(http, username=USERNAME, password=PASSWORD)


async def authorize_url(flow: CodeFlow, metadata: Metadata, scope: str, **extra: str) -> str:
    """Authlib's authorization URL with PKCE S256, state and nonce."""
    url, _ = flow.client.create_authorization_url(
        metadata.authorization_endpoint,
        state=flow.state,
        code_verifier=flow.verifier,
        nonce=flow.nonce,
        scope=scope,
        **extra,
    )
    return str(url)


async def pushed_authorize_url(flow: CodeFlow, metadata: Metadata, scope: str) -> str:
    """PAR (RFC 9126): push the request with the client's authenticated POST, then the
    front-channel URL carries only ``client_id`` and ``request_uri``."""
    url = await authorize_url(flow, metadata, scope)
    params = dict(httpx.URL(url).params)
    response = await flow.client.request(
        "POST",
        metadata.pushed_authorization_request_endpoint,
        data=params,
        withhold_token=True,
        auth=flow.client.client_auth(flow.client.token_endpoint_auth_method),
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["request_uri"].startswith("urn:ietf:params:oauth:request_uri:")
    assert isinstance(body["expires_in"], int)
    assert body["expires_in"] > 0
    query = urlencode({"client_id": flow.client.client_id, "request_uri": body["request_uri"]})
    return f"{metadata.authorization_endpoint}?{query}"


async def run_code_flow(
    deployed: Deployment,
    client_id: str,
    *,
    scope: str = "openid profile email offline_access",
    pushed: bool = False,
    http: httpx.AsyncClient | None = None,
    redirect_uri: str = REDIRECT_URI,
    **client_options: Any,
) -> CodeFlow:
    """Log in, consent and redeem the code with Authlib; returns the flow with its token
    (``flow.client`` is closed afterwards: make a new one with ``token=flow.token``).

    ``http`` is the browser's HTTP client (its cookies are the login session); ``client_options``
    go to Authlib's client (e.g. ``transport`` to send the token request to another node)."""
    metadata = await discover(deployed)
    flow = CodeFlow(oauth_client(deployed, client_id, scope=scope, redirect_uri=redirect_uri,
                                 **client_options))
    own_http = http is None
    front = http if http is not None else http_client(deployed.issuer)
    try:
        if pushed:
            url = await pushed_authorize_url(flow, metadata, scope)
        else:
            url = await authorize_url(flow, metadata, scope)
        flow.user = browser(front)
        flow.arrival = await flow.user.authorize(url, redirect_uri=redirect_uri)
        assert "code" in flow.arrival.params, flow.arrival
        assert flow.arrival.params["state"] == flow.state
        assert flow.arrival.params["iss"] == deployed.issuer
        flow.token = dict(
            await flow.client.fetch_token(
                metadata.token_endpoint,
                authorization_response=flow.arrival.url,
                code_verifier=flow.verifier,
            )
        )
    finally:
        await flow.client.aclose()
        if own_http:
            await front.aclose()
    return flow


async def validate_id_token(
    deployed: Deployment, id_token: str, *, client_id: str, nonce: str, access_token: str
) -> dict[str, Any]:
    """OIDC Core §3.1.3.7 with joserfc: signature against the published JWKS, ``iss``,
    ``aud``, ``exp``/``iat``, ``nonce`` and ``at_hash`` (§3.1.3.6)."""
    metadata = await discover(deployed)
    async with http_client(deployed.issuer) as http:
        jwks = (await http.get(metadata.jwks_uri)).json()
    keys = KeySet.import_key_set(jwks)
    decoded = jwt.decode(id_token, keys, algorithms=["RS256", "ES256", "PS256", "EdDSA"])
    registry = jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": deployed.issuer},
        aud={"essential": True, "value": client_id},
        sub={"essential": True},
        exp={"essential": True},
        iat={"essential": True},
        nonce={"essential": True, "value": nonce},
        at_hash={"essential": True, "value": token_hash(access_token)},
    )
    registry.validate(decoded.claims)
    return dict(decoded.claims)


# --- DPoP ------------------------------------------------------------------------------------


@dataclass
class DPoPKey:
    """A client's DPoP key pair; proofs are signed ES256 with joserfc."""

    key: ECKey = field(default_factory=lambda: ECKey.generate_key("P-256"))

    @property
    def jkt(self) -> str:
        """RFC 7638 thumbprint (SHA-256) of the public key."""
        return self.key.thumbprint()

    def proof(
        self,
        method: str,
        url: str,
        *,
        access_token: str | None = None,
        nonce: str | None = None,
        iat: float | None = None,
        jti: str | None = None,
    ) -> str:
        """A fresh proof for ``method`` ``url`` (``ath`` when bound to ``access_token``)."""
        header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": self.key.as_dict(private=False)}
        claims: dict[str, Any] = {
            "jti": jti or secrets.token_urlsafe(16),
            "htm": method,
            "htu": url,
            "iat": int(time.time() if iat is None else iat),
        }
        if access_token is not None:
            claims["ath"] = ath(access_token)
        if nonce is not None:
            claims["nonce"] = nonce
        return jwt.encode(header, claims, self.key)


async def token_request(
    http: httpx.AsyncClient,
    url: str,
    form: dict[str, str],
    *,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """A raw form POST to the token endpoint (or any form endpoint)."""
    return await http.post(url, data=form, headers={**FORM, **(headers or {})})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
