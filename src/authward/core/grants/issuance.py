"""What every grant shares: the token request it receives, the tokens it returns, the minting.

Spec: RFC 6749 §5.1 (the token response), RFC 9068 §2 (access tokens), RFC 8707 §2 (``resource``
and the audience), RFC 9449 §5 (``token_type`` ``DPoP``), OIDC Core §3.1.3.3 (``id_token``).

Access-token audience rule (one place, every grant): the resource indicators of the grant when
there are any (one becomes ``aud`` as a string, several as a list); otherwise
``settings.access_token_audience`` when configured; otherwise the ``client_id`` of the client
the token is issued to (the client is then the only party the token is meant for).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, NotRequired, TypedDict
from urllib.parse import urlsplit

from authward.core.clients import Client
from authward.core.dpop import VerifiedProof
from authward.core.errors import InvalidTargetError
from authward.core.http import MultiDict
from authward.core.tokens import MintedAccessToken, mint_access_token

if TYPE_CHECKING:
    from authward.core.server import AuthorizationServer

__all__ = [
    "GrantResult",
    "TokenRequest",
    "TokenResponse",
    "TokenType",
    "access_token_audience",
    "issue_access_token",
    "requested_resources",
]

TokenType = Literal["Bearer", "DPoP"]


class TokenResponse(TypedDict):
    """The successful token response body (RFC 6749 §5.1, RFC 9449 §5, OIDC Core §3.1.3.3)."""

    access_token: str
    token_type: TokenType
    expires_in: int
    scope: str
    refresh_token: NotRequired[str]
    id_token: NotRequired[str]


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """A token request that passed the endpoint's checks, as a grant receives it.

    ``client`` is the authenticated client, ``form`` the request parameters (no parameter
    repeats except ``resource``), ``proof`` the verified DPoP proof if one was sent, and ``now``
    the instant the endpoint read from the server clock (Unix seconds).
    """

    client: Client
    form: MultiDict
    proof: VerifiedProof | None
    now: float


@dataclass(frozen=True, slots=True)
class GrantResult:
    """The tokens a grant issued; ``subject`` and ``family_id`` are for events only."""

    access_token: MintedAccessToken
    scopes: tuple[str, ...]
    subject: str
    refresh_token: str | None = None
    id_token: str | None = None
    family_id: str | None = None

    @property
    def token_type(self) -> TokenType:
        """``DPoP`` when the access token is bound to a proof key (``cnf.jkt``), else Bearer."""
        return "DPoP" if "cnf" in self.access_token.claims else "Bearer"


def requested_resources(form: MultiDict) -> tuple[str, ...] | None:
    """The ``resource`` parameters of a request (RFC 8707 §2), or ``None`` when none is sent.

    ``resource`` may repeat. Each value must be an absolute URI without a fragment, else
    ``InvalidTargetError``. Duplicates are dropped, first occurrence kept.
    """
    values = form.get_all("resource")
    if not values:
        return None
    for value in values:
        try:
            parts = urlsplit(value)
        except ValueError:
            parts = None
        if parts is None or not parts.scheme or not parts.netloc or "#" in value:
            raise InvalidTargetError(
                "resource must be an absolute URI without a fragment",
                detail=f"bad resource {value!r}",
            )
    return tuple(dict.fromkeys(values))


def access_token_audience(server: AuthorizationServer, client_id: str) -> str:
    """The ``aud`` of an access token without resource indicators (see the module docstring)."""
    return server.settings.access_token_audience or client_id


def issue_access_token(
    server: AuthorizationServer,
    *,
    subject: str,
    client_id: str,
    scopes: Sequence[str],
    resources: Sequence[str],
    dpop_jkt: str | None,
    now: float,
    auth_time: int | None = None,
    acr: str | None = None,
) -> MintedAccessToken:
    """Sign an access token with the active key of ``settings.access_token_signing_alg``.

    Lifetime ``settings.access_token_ttl``; audience per the module rule; ``dpop_jkt`` binds
    the token (``cnf.jkt``) to the proof key.
    """
    settings = server.settings
    return mint_access_token(
        server.keys.signing_key(settings.access_token_signing_alg),
        issuer=server.issuer,
        subject=subject,
        client_id=client_id,
        audience=access_token_audience(server, client_id),
        resources=resources,
        scopes=scopes,
        lifetime=settings.access_token_ttl,
        now=now,
        dpop_jkt=dpop_jkt,
        auth_time=auth_time,
        acr=acr,
    )
