"""Tokens already issued, for the revocation, introspection and UserInfo tests.

Builds on ``kit`` (never forks it): tokens are minted with ``core.tokens`` and the server's own
signing key, and their rows are put with the real SQL stores of the kit's server, the way the
token endpoint leaves them (a code row finalised with its access token recorded, generation 0 of
the code's refresh family).
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from urllib.parse import quote_plus

from authward.core.clients import Client
from authward.core.http import Request, Response
from authward.core.refresh_rotation import Issued, RefreshRotation
from authward.core.tokens import MintedAccessToken, mint_access_token
from authward.stores.codes import CodeEntry
from authward.stores.digest import digest
from authward.stores.refresh import RefreshData
from tests.core.endpoints.kit import (
    CONFIDENTIAL_CLIENT_ID,
    CONFIDENTIAL_SECRET,
    REDIRECT_URI,
    Kit,
    post,
)

SUBJECT = "alice"
REVOKE_URL = "https://as.example/revoke"
INTROSPECT_URL = "https://as.example/introspect"
USERINFO_URL = "https://as.example/userinfo"

RS_CLIENT_ID = "https://api.example"
RS_SECRET = "api-secret"
OTHER_CLIENT_ID = "other-app"
OTHER_SECRET = "other-secret"


@dataclass(frozen=True)
class CodeFamily:
    """What a successful authorization-code redemption leaves behind."""

    family_id: str
    access: MintedAccessToken
    refresh: str


def mint(
    kit: Kit,
    *,
    client_id: str = CONFIDENTIAL_CLIENT_ID,
    subject: str = SUBJECT,
    scopes: tuple[str, ...] = ("openid", "profile"),
    resources: tuple[str, ...] = (),
    dpop_jkt: str | None = None,
    lifetime: int = 900,
    now: float | None = None,
) -> MintedAccessToken:
    """An access token signed by the kit server's active RS256 key (audience: the client)."""
    server = kit.server
    return mint_access_token(
        server.keys.signing_key(server.settings.access_token_signing_alg),
        issuer=server.issuer,
        subject=subject,
        client_id=client_id,
        audience=client_id,
        resources=resources,
        scopes=scopes,
        lifetime=lifetime,
        now=kit.clock.now() if now is None else now,
        dpop_jkt=dpop_jkt,
    )


async def issue_refresh(
    kit: Kit,
    *,
    client_id: str | None = CONFIDENTIAL_CLIENT_ID,
    subject: str = SUBJECT,
    scopes: tuple[str, ...] = ("openid", "offline_access"),
    family_id: str | None = None,
    ttl: int = 3600,
) -> Issued:
    """Generation 0 of a refresh family, through the real rotation and store."""
    rotation = refresh_rotation(kit, ttl=ttl)
    outcome = await rotation.issue(
        RefreshData(subject=subject, scope=scopes, client_id=client_id), family_id=family_id
    )
    assert isinstance(outcome, Issued)
    return outcome


def refresh_rotation(kit: Kit, *, ttl: int = 3600) -> RefreshRotation:
    """The rotation the token endpoint would use, on the kit's store and clock."""
    settings = kit.server.settings
    return RefreshRotation(
        kit.server.stores.refresh_tokens,
        clock=kit.clock,
        grace_seconds=settings.refresh_token_rotation_grace_seconds,
        ttl=ttl,
    )


async def code_family(
    kit: Kit,
    *,
    client_id: str = CONFIDENTIAL_CLIENT_ID,
    scopes: tuple[str, ...] = ("openid", "offline_access"),
    dpop_jkt: str | None = None,
) -> CodeFamily:
    """A redeemed code: its row finalised with the access token recorded, plus its refresh."""
    codes = kit.server.stores.authorization_codes
    family_id = secrets.token_urlsafe(32)
    code_hash = digest(secrets.token_urlsafe(32))
    await codes.put(
        CodeEntry(
            code_hash=code_hash,
            client_id=client_id,
            subject=SUBJECT,
            redirect_uri=REDIRECT_URI,
            expires_at=int(kit.clock.now()) + 60,
            scope=scopes,
            family_id=family_id,
        )
    )
    await codes.take(code_hash)
    access = mint(kit, client_id=client_id, scopes=scopes, dpop_jkt=dpop_jkt)
    await codes.record_access_token(family_id, access.jti, access.exp)
    refresh = await issue_refresh(kit, client_id=client_id, scopes=scopes, family_id=family_id)
    await codes.mark_consumed(code_hash)
    return CodeFamily(family_id=family_id, access=access, refresh=refresh.token)


def add_clients(kit: Kit) -> None:
    """Register a second confidential client and a resource server (confidential, its
    ``client_id`` being its resource identifier)."""
    kit.clients.add(
        Client(OTHER_CLIENT_ID, "confidential", "client_secret_basic",
               redirect_uris=(REDIRECT_URI,)),
        OTHER_SECRET,
    )
    kit.clients.add(
        Client(RS_CLIENT_ID, "confidential", "client_secret_basic", grant_types=()),
        RS_SECRET,
    )


def basic(client_id: str = CONFIDENTIAL_CLIENT_ID, secret: str = CONFIDENTIAL_SECRET) -> str:
    """An ``Authorization: Basic`` value (RFC 6749 §2.3.1: both parts form-encoded first)."""
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def form_post(
    url: str,
    form: list[tuple[str, str]],
    *,
    client_id: str = CONFIDENTIAL_CLIENT_ID,
    secret: str = CONFIDENTIAL_SECRET,
) -> Request:
    """A form POST authenticated with client_secret_basic."""
    return post(url, form, headers=[("Authorization", basic(client_id, secret))])


def error_of(response: Response) -> object:
    """The ``error`` member of a JSON error body (None when there is no body)."""
    return None if response.json is None else response.json.get("error")
