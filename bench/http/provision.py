"""What the measured requests need, made before timing: codes minted through authward's real
login and consent pages, refresh chains, access tokens to introspect, and the floor's rows.

Spec: RFC 6749 §4.1.1-§4.1.3 (the code flow), §6 (refresh); RFC 7636 §4 (S256); OIDC Core 1.0
§3.1.2.3-§3.1.2.4 (login and consent); RFC 9449 §5 (DPoP at the token endpoint); RFC 7662 §2.

:class:`AuthwardSetup` is a scripted browser plus client (httpx, cookies kept like a browser):
it signs in once with the login form, then for every code opens the authorization request,
posts the consent form (its hidden fields and ``decision=approve``) and takes ``code`` from the
redirect. It also records one token response per scenario (:meth:`AuthwardSetup.shapes`), which
the floor copies. :class:`FloorSetup` writes the floor's code and refresh rows directly (the
floor has no pages) and gets its access tokens from its own token endpoint.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar
from urllib.parse import parse_qs, quote_plus, urlencode, urljoin, urlsplit

import httpx

from bench.http.deployment import (
    DPOP_CLIENT,
    JWT_CLIENT,
    REDIRECT_URI,
    SUBJECT,
    USERNAME,
    WEB_CLIENT,
    Credentials,
)
from bench.http.floor import (
    TokenShape,
    TokenTemplate,
    create_tables,
    floor_engine,
    seed_codes,
    seed_refresh_tokens,
    token_digest,
)
from bench.http.forms import forms
from bench.http.jws import (
    CompactSigner,
    ec_private_key_from_pem,
    ec_public_jwk,
    jwk_thumbprint,
    sha256_b64url,
)

__all__ = [
    "CODE_SCOPE",
    "REFRESH_SCOPE",
    "AuthwardSetup",
    "FloorSetup",
    "ProvisionError",
    "basic_authorization",
]

#: The code_exchange scenario's scope (no offline_access: the exchange returns no refresh token).
CODE_SCOPE: Final = "openid profile"
#: Scope of the flows that start refresh chains.
REFRESH_SCOPE: Final = "openid profile offline_access"
MAX_STEPS: Final = 12
SETUP_CONCURRENCY: Final = 8
HTTP_TIMEOUT: Final = 120.0

_T = TypeVar("_T")


class ProvisionError(RuntimeError):
    """A setup step got an answer it cannot go on from."""


def basic_authorization(client_id: str, secret: str) -> str:
    """An ``Authorization: Basic`` value (RFC 6749 §2.3.1: form-encode, then base64)."""
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def template_of(token: str) -> TokenTemplate:
    """The (unverified) header and claims of a compact JWT."""
    header, payload, _ = token.split(".")

    def part(text: str) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        return value

    return TokenTemplate(header=part(header), claims=part(payload))


def shape_of(response: dict[str, Any]) -> TokenShape:
    """What a token response held (see :class:`~bench.http.floor.TokenShape`)."""
    id_token = response.get("id_token")
    return TokenShape(
        access=template_of(str(response["access_token"])),
        id_token=template_of(str(id_token)) if isinstance(id_token, str) else None,
        refresh="refresh_token" in response,
        members={
            k: v
            for k, v in response.items()
            if k not in ("access_token", "id_token", "refresh_token")
        },
    )


async def _bounded(jobs: Sequence[Callable[[], Awaitable[_T]]], limit: int) -> list[_T]:
    gate = asyncio.Semaphore(limit)

    async def one(job: Callable[[], Awaitable[_T]]) -> _T:
        async with gate:
            return await job()

    return list(await asyncio.gather(*(one(job) for job in jobs)))


def _json_of(response: httpx.Response, what: str) -> dict[str, Any]:
    if response.status_code != 200:
        raise ProvisionError(f"{what}: {response.status_code} {response.text[:500]}")
    body: dict[str, Any] = response.json()
    return body


@dataclass(frozen=True)
class Code:
    """A minted authorization code and its PKCE verifier."""

    code: str
    verifier: str


class AuthwardSetup:
    """Setup requests against one ``authward serve`` at ``base_url`` (see the module doc)."""

    def __init__(self, base_url: str, credentials: Credentials) -> None:
        self.base_url = base_url
        self.credentials = credentials
        self.http = httpx.AsyncClient(base_url=base_url, timeout=HTTP_TIMEOUT)
        self._dpop = CompactSigner(
            "ES256",
            ec_private_key_from_pem(credentials.dpop_key_pem),
            {
                "typ": "dpop+jwt",
                "jwk": ec_public_jwk(ec_private_key_from_pem(credentials.dpop_key_pem)),
            },
        )
        self.logins = 0
        self.consents = 0

    async def close(self) -> None:
        await self.http.aclose()

    @property
    def web_authorization(self) -> str:
        return basic_authorization(WEB_CLIENT, self.credentials.web_secret)

    def login_cookie(self) -> str:
        """The session cookies as one ``Cookie`` header value."""
        return "; ".join(f"{c.name}={c.value}" for c in self.http.cookies.jar)

    # -- the front channel --

    async def authorize(self, client_id: str, scope: str) -> Code:
        """Run one authorization request through login (if needed) and consent."""
        verifier = secrets.token_urlsafe(48)
        query = urlencode(
            {
                "response_type": "code",
                "client_id": client_id,
                "redirect_uri": REDIRECT_URI,
                "scope": scope,
                "state": secrets.token_urlsafe(12),
                "nonce": secrets.token_urlsafe(12),
                "code_challenge": sha256_b64url(verifier),
                "code_challenge_method": "S256",
            }
        )
        url = f"{self.base_url}/authorize?{query}"
        response = await self.http.get(url)
        for _ in range(MAX_STEPS):
            if response.is_redirect:
                location = urljoin(str(response.url), response.headers["location"])
                if location.startswith(REDIRECT_URI):
                    params = parse_qs(urlsplit(location).query)
                    if "code" not in params:
                        raise ProvisionError(f"authorization refused: {location}")
                    return Code(params["code"][0], verifier)
                response = await self.http.get(location)
                continue
            if response.status_code != 200:
                raise ProvisionError(
                    f"{response.request.url} answered {response.status_code}: {response.text[:500]}"
                )
            response = await self._submit(response)
        raise ProvisionError(f"no redirect to the client after {MAX_STEPS} steps")

    async def _submit(self, page: httpx.Response) -> httpx.Response:
        for form in forms(page.text):
            target = urljoin(str(page.url), form.action)
            names = form.names()
            if "password" in names:
                self.logins += 1
                pairs = form.fields(username=USERNAME, password=self.credentials.password)
            elif "consent_token" in names:
                self.consents += 1
                pairs = [*form.fields(), ("decision", "approve")]
            else:
                continue
            return await self.http.post(
                target,
                content=urlencode(pairs).encode("ascii"),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
        raise ProvisionError(f"page at {page.url} has no login or consent form")

    async def mint_codes(self, count: int, client_id: str, scope: str) -> list[Code]:
        """``count`` codes, signed in first (one flow alone), then several flows at once."""
        if count <= 0:
            return []
        first = await self.authorize(client_id, scope)
        rest = await _bounded(
            [lambda: self.authorize(client_id, scope)] * (count - 1), SETUP_CONCURRENCY
        )
        return [first, *rest]

    # -- the token endpoint --

    def dpop_proof(self, htu: str) -> str:
        """A fresh DPoP proof for ``POST htu``."""
        return self._dpop.sign(
            {"jti": secrets.token_urlsafe(16), "htm": "POST", "htu": htu, "iat": int(time.time())}
        )

    async def exchange(self, code: Code, client_id: str) -> dict[str, Any]:
        """Exchange ``code``: the web client with its secret, the DPoP client with a proof."""
        form = {
            "grant_type": "authorization_code",
            "code": code.code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": code.verifier,
        }
        headers: dict[str, str] = {}
        if client_id == WEB_CLIENT:
            headers["Authorization"] = self.web_authorization
        else:
            form["client_id"] = client_id
            headers["DPoP"] = self.dpop_proof(f"{self.base_url}/token")
        response = await self.http.post("/token", data=form, headers=headers)
        return _json_of(response, f"code exchange for {client_id}")

    async def refresh_chains(self, count: int, client_id: str) -> list[str]:
        """``count`` refresh tokens, each from its own code flow (``offline_access``)."""
        codes = await self.mint_codes(count, client_id, REFRESH_SCOPE)
        responses = await _bounded(
            [functools.partial(self.exchange, c, client_id) for c in codes], SETUP_CONCURRENCY
        )
        tokens = [r.get("refresh_token") for r in responses]
        if not all(isinstance(t, str) for t in tokens):
            raise ProvisionError(f"{client_id}: a code exchange returned no refresh_token")
        return [str(t) for t in tokens]

    async def refresh(self, token: str, client_id: str) -> dict[str, Any]:
        """One refresh of ``token`` (the probe of the refresh scenarios)."""
        headers: dict[str, str] = {}
        form = {"grant_type": "refresh_token", "refresh_token": token}
        if client_id == WEB_CLIENT:
            headers["Authorization"] = self.web_authorization
        else:
            form["client_id"] = client_id
            headers["DPoP"] = self.dpop_proof(f"{self.base_url}/token")
        response = await self.http.post("/token", data=form, headers=headers)
        return _json_of(response, f"refresh for {client_id}")

    async def client_credentials(self) -> dict[str, Any]:
        """A client_credentials token for the web client (``scope=api``)."""
        response = await self.http.post(
            "/token",
            data={"grant_type": "client_credentials", "scope": "api"},
            headers={"Authorization": self.web_authorization},
        )
        return _json_of(response, "client_credentials")

    async def access_tokens(self, count: int) -> list[str]:
        """``count`` access tokens of the web client (to introspect)."""
        responses = await _bounded([self.client_credentials] * count, SETUP_CONCURRENCY)
        return [str(r["access_token"]) for r in responses]

    async def assertion_token(self) -> dict[str, Any]:
        """One client_credentials response of the private_key_jwt client."""
        key = ec_private_key_from_pem(self.credentials.jwt_key_pem)
        kid = self.credentials.jwt_public_jwk()["kid"]
        now = int(time.time())
        assertion = CompactSigner("ES256", key, {"typ": "JWT", "kid": kid}).sign(
            {
                "iss": JWT_CLIENT,
                "sub": JWT_CLIENT,
                "aud": self.base_url,
                "iat": now,
                "exp": now + 120,
                "jti": secrets.token_urlsafe(16),
            }
        )
        response = await self.http.post(
            "/token",
            data={
                "grant_type": "client_credentials",
                "scope": "api",
                "client_id": JWT_CLIENT,
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": assertion,
            },
        )
        return _json_of(response, "client_credentials with private_key_jwt")

    async def introspect(self, token: str) -> dict[str, Any]:
        """Introspect ``token`` as the web client (a sanity check before timing)."""
        response = await self.http.post(
            "/introspect",
            data={"token": token, "token_type_hint": "access_token"},
            headers={"Authorization": self.web_authorization},
        )
        return _json_of(response, "introspection")

    async def shapes(self) -> dict[str, TokenShape]:
        """One real response per scenario, for the floor to copy (spends one code and one
        refresh token of each kind, outside any measurement)."""
        web_code = (await self.mint_codes(1, WEB_CLIENT, CODE_SCOPE))[0]
        web_chain = (await self.refresh_chains(1, WEB_CLIENT))[0]
        dpop_chain = (await self.refresh_chains(1, DPOP_CLIENT))[0]
        cc = await self.client_credentials()
        introspection = await self.introspect(str(cc["access_token"]))
        if introspection.get("active") is not True:
            raise ProvisionError(f"a fresh access token introspects as {introspection}")
        return {
            "cc_secret_basic": shape_of(cc),
            "cc_private_key_jwt": shape_of(await self.assertion_token()),
            "code_exchange": shape_of(await self.exchange(web_code, WEB_CLIENT)),
            "refresh_confidential": shape_of(await self.refresh(web_chain, WEB_CLIENT)),
            "refresh_dpop_public": shape_of(await self.refresh(dpop_chain, DPOP_CLIENT)),
        }


class FloorSetup:
    """Rows and tokens for the floor at ``base_url`` on ``database_url``."""

    def __init__(self, base_url: str, database_url: str, credentials: Credentials) -> None:
        self.base_url = base_url
        self.credentials = credentials
        self.engine = floor_engine(database_url)
        key = ec_private_key_from_pem(credentials.dpop_key_pem)
        self.dpop_jkt = jwk_thumbprint(ec_public_jwk(key))

    async def close(self) -> None:
        await self.engine.dispose()

    async def prepare(self) -> None:
        await create_tables(self.engine)

    async def codes(self, count: int) -> list[Code]:
        """``count`` code rows of the web client (``CODE_SCOPE``), inserted in one batch."""
        minted = [Code(secrets.token_urlsafe(32), secrets.token_urlsafe(48)) for _ in range(count)]
        expires = time.time() + 900
        await seed_codes(
            self.engine,
            [
                {
                    "code_hash": token_digest(c.code),
                    "client_id": WEB_CLIENT,
                    "redirect_uri": REDIRECT_URI,
                    "code_challenge": sha256_b64url(c.verifier),
                    "scope": CODE_SCOPE,
                    "subject": SUBJECT,
                    "nonce": secrets.token_urlsafe(12),
                    "expires_at": expires,
                }
                for c in minted
            ],
        )
        return minted

    async def refresh_chains(self, count: int, client_id: str) -> list[str]:
        """``count`` refresh token rows of ``client_id`` (DPoP-bound for the DPoP client)."""
        tokens = [secrets.token_urlsafe(32) for _ in range(count)]
        jkt = self.dpop_jkt if client_id == DPOP_CLIENT else None
        await seed_refresh_tokens(
            self.engine,
            [
                {
                    "token_hash": token_digest(t),
                    "client_id": client_id,
                    "subject": SUBJECT,
                    "scope": REFRESH_SCOPE,
                    "jkt": jkt,
                    "expires_at": time.time() + 86_400,
                    "consumed": False,
                }
                for t in tokens
            ],
        )
        return tokens

    async def access_tokens(self, count: int) -> list[str]:
        """``count`` access tokens from the floor's own client_credentials endpoint."""
        authorization = basic_authorization(WEB_CLIENT, self.credentials.web_secret)
        async with httpx.AsyncClient(base_url=self.base_url, timeout=HTTP_TIMEOUT) as http:
            tokens = []
            for _ in range(count):
                response = await http.post(
                    "/cc_secret_basic/token",
                    data={"grant_type": "client_credentials", "scope": "api"},
                    headers={"Authorization": authorization},
                )
                tokens.append(str(_json_of(response, "floor client_credentials")["access_token"]))
            return tokens
