"""What every grant shares: the token request it receives, the tokens it returns, the minting.

Spec: RFC 6749 §5.1 (the token response), §6 and RFC 9700 §4.14 (refresh tokens), RFC 9068 §2
(access tokens), RFC 8707 §2 (``resource`` and the audience), RFC 9449 §5 (``token_type``
``DPoP``), OIDC Core §3.1.3.3 (``id_token``); OIDC Back-Channel Logout 1.0 §2.2 (the session an
ID token starts is recorded); authward spec/stores.md §3.2.7 (which refresh tokens are bound).

Access-token audience rule (one place, every grant): the resource indicators of the grant when
there are any (one becomes ``aud`` as a string, several as a list); otherwise
``settings.access_token_audience`` when configured; otherwise the ``client_id`` of the client
the token is issued to (the client is then the only party the token is meant for).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, NotRequired, TypedDict

from authward.core.clients import Client
from authward.core.dpop import VerifiedProof
from authward.core.errors import InvalidClientError
from authward.core.http import MultiDict
from authward.core.id_token import mint_id_token
from authward.core.jose import JsonWebKey
from authward.core.logout import record_logout_session
from authward.core.resource_indicators import parse_resources
from authward.core.tokens import MintedAccessToken, mint_access_token
from authward.stores.refresh import RefreshData

if TYPE_CHECKING:
    from authward.core.server import AuthorizationServer

__all__ = [
    "GrantResult",
    "TokenRequest",
    "TokenResponse",
    "TokenType",
    "access_token_audience",
    "id_token_key",
    "int_claim",
    "issue_access_token",
    "issue_id_token",
    "issue_user_access_token",
    "refresh_data",
    "requested_resources",
    "str_claim",
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
    """The ``resource`` parameters of a request (RFC 8707 §2), or ``None`` when none is sent;
    parsed by :func:`authward.core.resource_indicators.parse_resources` (``InvalidTargetError``)."""
    return parse_resources(form.get_all("resource")) or None


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


def int_claim(value: object) -> int | None:
    """``value`` when it is an integer claim (not a bool), else ``None``."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def str_claim(value: object) -> str | None:
    """``value`` when it is a string claim, else ``None``."""
    return value if isinstance(value, str) else None


def issue_user_access_token(
    server: AuthorizationServer,
    request: TokenRequest,
    *,
    subject: str,
    scopes: Sequence[str],
    resources: Sequence[str],
    claims: Mapping[str, object],
) -> MintedAccessToken:
    """The access token of a user grant: bound to the request's DPoP key when a proof was
    sent, carrying ``auth_time`` and ``acr`` from the login facts in ``claims``."""
    proof = request.proof
    return issue_access_token(
        server,
        subject=subject,
        client_id=request.client.client_id,
        scopes=scopes,
        resources=resources,
        dpop_jkt=proof.jkt if proof is not None else None,
        now=request.now,
        auth_time=int_claim(claims.get("auth_time")),
        acr=str_claim(claims.get("acr")),
    )


async def issue_id_token(
    server: AuthorizationServer,
    client: Client,
    *,
    subject: str,
    scopes: Sequence[str],
    claims: Mapping[str, object],
    access_token: str,
    nonce: str | None,
    now: float,
) -> str | None:
    """The ID token of a user grant when ``openid`` was granted, else ``None``.

    ``claims`` are the login facts bound at authorization or approval (``auth_time``, ``acr``,
    ``amr``, ``sid``); the host's claims for ``scopes`` are added, and ``at_hash`` binds
    ``access_token``. When the token carries a ``sid``, the (sid, client) session is recorded
    for back-channel logout (best effort, ``authward.core.logout``).
    """
    if "openid" not in scopes:
        return None
    user_claims = await server.policy.claims.claims(subject, tuple(scopes))
    amr = claims.get("amr")
    sid = str_claim(claims.get("sid"))
    token = mint_id_token(
        id_token_key(server, client),
        issuer=server.issuer,
        subject=subject,
        client_id=client.client_id,
        lifetime=server.max_token_lifetime,
        now=now,
        auth_time=int_claim(claims.get("auth_time")),
        nonce=nonce,
        acr=str_claim(claims.get("acr")),
        amr=[str(v) for v in amr] if isinstance(amr, list) else (),
        access_token=access_token,
        sid=sid,
        extra_claims=user_claims,
    ).token
    await record_logout_session(server, client, sid, subject, now)
    return token


def id_token_key(server: AuthorizationServer, client: Client) -> JsonWebKey:
    """The key that signs ``client``'s ID tokens: its registered
    ``id_token_signed_response_alg``, else the server's ``id_token_signing_alg``.

    Raises ``InvalidClientError`` when the client registered an algorithm this server holds
    no active key for (a registration the server cannot honour; OIDC Registration §2).
    """
    alg = client.id_token_signed_response_alg or server.settings.id_token_signing_alg
    if alg not in server.keys.algorithms:
        raise InvalidClientError(
            "the client's id_token_signed_response_alg is not supported by this server",
            detail=f"no active {alg} key",
        )
    return server.keys.signing_key(alg)


def refresh_data(
    server: AuthorizationServer,
    request: TokenRequest,
    *,
    subject: str,
    scopes: Sequence[str],
    resources: Sequence[str],
    claims: Mapping[str, object],
) -> RefreshData | None:
    """What a new refresh token of a user grant carries, or ``None`` when none is issued:
    ``offline_access`` must be granted, the refresh grant enabled and registered for the client.
    Only a public client's refresh token is bound to its DPoP key (spec §3.2.7)."""
    client, proof = request.client, request.proof
    if (
        "offline_access" not in scopes
        or not server.settings.features.refresh_token_grant
        or "refresh_token" not in client.grant_types
    ):
        return None
    return RefreshData(
        subject=subject,
        scope=tuple(scopes),
        resource=tuple(resources),
        acr=str_claim(claims.get("acr")),
        auth_time=int_claim(claims.get("auth_time")),
        client_id=client.client_id,
        dpop_jkt=proof.jkt if proof is not None and client.is_public else None,
        claims={k: v for k, v in claims.items() if k in ("amr", "sid")},
    )
