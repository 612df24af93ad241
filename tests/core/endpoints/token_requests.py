"""Token-endpoint requests for core tests: codes, client credentials, DPoP proofs, calls.

Builds on ``tests.core.endpoints.kit`` (the shared server builder). Every call goes through
``authward.core.endpoints.token.handle`` with a ``Request`` value; no HTTP server is started.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from typing import Any

import sqlalchemy as sa

from authward.core.endpoints import token
from authward.core.grants.authorization_code import issue_code
from authward.core.http import Response
from authward.core.jose import JsonWebKey, generate_signing_key, import_public_jwk, verify_jwt
from authward.stores.digest import digest
from tests.core import dpop_proofs
from tests.core.endpoints.kit import (
    CODE_CHALLENGE,
    CODE_VERIFIER,
    CONFIDENTIAL_CLIENT_ID,
    CONFIDENTIAL_SECRET,
    PUBLIC_CLIENT_ID,
    REDIRECT_URI,
    TOKEN_URL,
    Kit,
    post,
)

SUBJECT = "alice"
NONCE = "n-0S6_WzA2Mj"
AUTH_TIME = 1_767_225_500


def basic(client_id: str = CONFIDENTIAL_CLIENT_ID, secret: str = CONFIDENTIAL_SECRET) -> tuple[
    str, str
]:
    """An ``Authorization: Basic`` header (RFC 6749 §2.3.1 form-encoding is a no-op here)."""
    raw = f"{client_id}:{secret}".encode()
    return ("Authorization", "Basic " + base64.b64encode(raw).decode("ascii"))


@cache
def dpop_key(n: int = 0) -> JsonWebKey:
    """The ``n``-th test DPoP key (ES256), one per session."""
    return generate_signing_key("ES256")


def dpop_header(kit: Kit, key: JsonWebKey, **claims: object) -> tuple[str, str]:
    """A fresh ``DPoP`` header for a POST to the token endpoint at the kit's clock."""
    claims.setdefault("iat", int(kit.clock.now()))
    claims.setdefault("htu", TOKEN_URL)
    return ("DPoP", dpop_proofs.proof(key, **claims))  # type: ignore[arg-type]


async def new_code(
    kit: Kit,
    *,
    client_id: str = CONFIDENTIAL_CLIENT_ID,
    scope: Sequence[str] = ("openid", "offline_access", "read"),
    resource: Sequence[str] = (),
    dpop_jkt: str | None = None,
    nonce: str | None = NONCE,
    redirect_uri: str = REDIRECT_URI,
) -> str:
    """Issue a code as the authorization endpoint would (PKCE with ``CODE_CHALLENGE``)."""
    return await issue_code(
        kit.server,
        client_id=client_id,
        subject=SUBJECT,
        redirect_uri=redirect_uri,
        scope=scope,
        resource=resource,
        code_challenge=CODE_CHALLENGE,
        dpop_jkt=dpop_jkt,
        nonce=nonce,
        auth_time=AUTH_TIME,
        acr="urn:acr:pwd",
        amr=("pwd",),
        sid="sid-1",
    )


def code_form(
    code: str,
    *,
    verifier: str | None = CODE_VERIFIER,
    redirect_uri: str | None = REDIRECT_URI,
    public: bool = False,
    extra: Iterable[tuple[str, str]] = (),
) -> list[tuple[str, str]]:
    """The form of an authorization-code token request."""
    form = [("grant_type", "authorization_code"), ("code", code)]
    if redirect_uri is not None:
        form.append(("redirect_uri", redirect_uri))
    if verifier is not None:
        form.append(("code_verifier", verifier))
    if public:
        form.append(("client_id", PUBLIC_CLIENT_ID))
    form.extend(extra)
    return form


async def call(
    kit: Kit,
    form: Iterable[tuple[str, str]],
    *,
    public: bool = False,
    headers: Iterable[tuple[str, str]] = (),
    auth: tuple[str, str] | None = None,
) -> Response:
    """POST ``form`` to the token endpoint: Basic for the confidential client unless
    ``public`` (then ``client_id`` must be in ``form``) or another ``auth`` header is given."""
    all_headers = list(headers)
    if not public:
        all_headers.append(auth or basic())
    return await token.handle(kit.server, post(TOKEN_URL, list(form), headers=all_headers))


def body(response: Response) -> Mapping[str, Any]:
    """The JSON body of ``response``."""
    assert response.json is not None, response
    return response.json


def ok(response: Response) -> Mapping[str, Any]:
    """The body of a 200 response (fails with the error body otherwise)."""
    assert response.status == 200, response.json
    return body(response)


def error_of(response: Response) -> tuple[int, str]:
    """``(status, error)`` of an error response."""
    return response.status, str(body(response)["error"])


async def redeem(kit: Kit, code: str, **kw: Any) -> Mapping[str, Any]:
    """Redeem ``code`` for the confidential client and return the 200 body."""
    return ok(await call(kit, code_form(code), **kw))


def verify_signed(kit: Kit, jwt: str) -> Mapping[str, object]:
    """Verify ``jwt`` against the server's PUBLIC JWKS and return its claims."""
    jwks = kit.server.keys.public_jwks(
        now=kit.clock.now(), max_token_lifetime=kit.server.max_token_lifetime
    )
    keys = [import_public_jwk(dict(k)) for k in jwks["keys"]]
    return verify_jwt(jwt, keys, algorithms=("RS256", "ES256")).claims


async def code_row(kit: Kit, code: str) -> sa.Row[Any]:
    """The authorization-code row of ``code``."""
    table = kit.db.tables.authorization_codes
    (row,) = [r for r in await kit.db.rows(table) if r.code_hash == digest(code)]
    return row


async def row_counts(kit: Kit) -> dict[str, int]:
    """Rows per table, for "nothing was written" checks."""
    tables = kit.db.tables
    names = (
        "authorization_codes", "refresh_tokens", "device_codes", "logout_sessions",
        "dpop_nonces", "dpop_replays", "pushed_authorization_requests", "client_id_metadata",
        "consent_grants",
    )
    return {name: len(await kit.db.rows(getattr(tables, name))) for name in names}
